"""Run by the worker-priority tests as an unprivileged user: a new session of its own, then the
middleware's session lowering, as a worker that leads its pool's session; prints the result."""

from __future__ import annotations

import os
import sys

from middleware.cpu_priority import AUTOGROUP, WorkerCpuPriority, session_group_nice


def main() -> None:
    os.setsid()
    lowered = WorkerCpuPriority(int(sys.argv[1]))._lower_session()
    print(lowered, session_group_nice(AUTOGROUP.read_text()))


if __name__ == "__main__":
    main()

"""Worker processes yield the CPU to the processes users wait on (the bot, Redis, the dashboard).

Why: on a shared machine a burst of user commands and the analyses it starts compete for the
same cores. The bot's first reply should come first, the analysis a few milliseconds later, not
the reverse. Measured with ``bench/bot_ack.py`` (100 users at once, the pool polling every
100 ms as in production, 2 cores, three runs each), the first reply at p99: 143-184 ms with the
workers at the bot's priority, 80-101 ms at nice 10, 64-122 ms at nice 19 (the default: the last
first reply of the burst 112-118 ms after its first message, against 144-165 ms at nice 10).
Workers still get every cycle the user-facing processes leave: the benchmark's final results
came at p50 2.06-2.15 s with workers at nice 19, 2.10-2.56 s in its earlier runs at nice 0.

Linux schedules each session (``setsid``: every process our supervisor, the tests and the
benchmarks start) as a group of its own, and a process's nice value only counts inside its
group. So at boot each worker process raises its own nice value to ``WORKER_NICE`` and, where
the kernel groups by session (``/proc/self/autogroup`` names a group), its session's too: the
pool as a whole yields. Only a session of the pool's own (led by the Dramatiq supervisor, as our
supervisor, Compose and the tests start it): a pool started from a terminal shares the
terminal's session, and lowering that would slow the operator's shell and everything else
started from it. Containers are grouped by cgroup instead: ``compose.yaml`` gives the worker
services a lower ``cpu_shares``. ``WORKER_NICE=0`` leaves the priority alone. Raising a nice value needs no
privilege; failures are logged and the worker runs on.

Parameters:
  nice: the nice value to run at (0-19).
"""

from __future__ import annotations

import errno
import logging
import os
import time
from pathlib import Path

from dramatiq import Middleware

logger = logging.getLogger(__name__)

AUTOGROUP = Path("/proc/self/autogroup")
AUTOGROUP_TRIES = 10


def session_group_nice(text: str) -> int | None:
    """The nice value of a session's scheduling group, from a ``/proc/<pid>/autogroup`` text.

    ``"/autogroup-85 nice 7"`` gives 7. The kernel prints nothing for a process whose session
    never got a group of its own (the boot session, as in some containers and CI runners): such a
    session is not scheduled as a group, and None says so.
    """
    _, found, nice = text.rpartition(" nice ")
    if not found:
        return None
    try:
        return int(nice)
    except ValueError:
        return None


class WorkerCpuPriority(Middleware):
    def __init__(self, nice: int) -> None:
        self.nice = int(nice)

    def before_worker_boot(self, broker, worker) -> None:
        if self.nice <= 0:
            return
        try:
            current = os.getpriority(os.PRIO_PROCESS, 0)
            if current < self.nice:
                os.nice(self.nice - current)
        except OSError as exc:
            logger.warning("could not lower this worker's CPU priority: %s", exc)
            return
        grouped = ""
        if os.getsid(0) in (os.getpid(), os.getppid()) and self._session_nice() is not None:
            grouped = " (and its session's)" if self._lower_session() else ""
        logger.info("worker runs at nice %d%s: user-facing processes get the CPU first", self.nice, grouped)

    @staticmethod
    def _session_nice() -> int | None:
        """This session's group nice value; None where sessions are not scheduled as groups."""
        try:
            return session_group_nice(AUTOGROUP.read_text())
        except OSError:  # no such file: a kernel without session groups
            return None

    def _lower_session(self) -> bool:
        """Set this session's group to ``nice``; True once it is there.

        Unprivileged, Linux takes one autogroup change per 100 ms machine-wide and answers EAGAIN
        to the rest: the pools our supervisor starts together boot their workers within that
        window. So try again, 120 ms apart; a sibling worker of the same pool may get there first.
        """
        for _ in range(AUTOGROUP_TRIES):
            current = self._session_nice()
            if current is None:
                return False
            if current >= self.nice:
                return True
            try:
                AUTOGROUP.write_text(str(self.nice))
                return True
            except OSError as exc:
                if exc.errno != errno.EAGAIN:
                    logger.info("this worker's session keeps its CPU share: %s", exc)
                    return False
            time.sleep(0.12)
        logger.warning("could not lower this worker's session CPU share (busy); its processes run at nice %d",
                       self.nice)
        return False

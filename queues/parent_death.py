"""Children that stop when the process that started them dies.

``make run``'s supervisor starts every process of the system in a session of its own (so a
Ctrl-C reaches the supervisor first, and it stops them in order). A supervisor killed outright
(SIGKILL, the OOM killer) then left them all running unsupervised, holding their ports and the
Redis folder, and the next ``make run`` started a second system beside them. Linux can send a
child a signal when its parent dies (``PR_SET_PDEATHSIG``); elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def stop_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen` that has the child receive ``sig`` when
    the thread that started it ends; None where the platform cannot."""
    if not sys.platform.startswith("linux"):
        return None
    # Looked up here, in the parent: the child, between fork and exec, only makes the call.
    prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    args = (_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    parent = os.getpid()

    def arrange() -> None:
        prctl(*args)
        if os.getppid() != parent:  # the parent died between the fork and the prctl: too late to hear of it
            os.kill(os.getpid(), sig)

    return arrange

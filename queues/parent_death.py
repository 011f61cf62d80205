"""Processes that end when the process that started them dies.

``make run``'s supervisor starts every process of the system in a session of its own (so a
Ctrl-C reaches the supervisor first, and it stops them in order). A supervisor killed outright
(SIGKILL, the OOM killer) then left them all running unsupervised, holding their ports and the
Redis folder, and the next ``make run`` started a second system beside them. Linux can send a
process a signal when its parent dies (``PR_SET_PDEATHSIG``); elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl


def stop_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen` that has the child receive ``sig`` when
    the thread that started it ends; None where the platform cannot."""
    prctl = _prctl()  # looked up here, in the parent: the child, between fork and exec, only calls it
    if prctl is None:
        return None
    parent = os.getpid()

    def arrange() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died between the fork and the prctl: too late to hear of it
            os.kill(os.getpid(), sig)

    return arrange


def end_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Have this process receive ``sig`` when its parent dies. For a Dramatiq worker process: its
    parent forwards its stop signals and reads its log pipe; alone, it waited out its jobs with
    nobody reading what it wrote, and hung on the full pipe. False where the platform cannot."""
    prctl = _prctl()
    if prctl is None:
        return False
    parent = os.getppid()
    prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent:
        os.kill(os.getpid(), sig)
    return True

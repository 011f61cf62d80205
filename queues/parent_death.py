"""Processes that end when the process that started them dies.

``make run``'s supervisor starts every process of the system in a session of its own (so a
Ctrl-C reaches the supervisor first, and it stops them in order). A supervisor killed outright
(SIGKILL, the OOM killer) then left them all running unsupervised, holding their ports and the
Redis folder, and the next ``make run`` started a second system beside them. Linux can send a
process a signal when its parent dies (``PR_SET_PDEATHSIG``); elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
#: Set (by ``make run``'s supervisor) for worker processes that end when their dramatiq parent dies.
END_WITH_PARENT_ENV = "WORKER_END_WITH_PARENT"


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl`` (the running process's own libc: no library search), None off Linux."""
    return ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def _arm(prctl: Callable[..., int], sig: int, parent: int) -> None:
    """Ask for ``sig`` when the parent dies; a parent already gone (not ``parent`` any more) was
    missed between the fork and this call: the signal now."""
    prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent:
        os.kill(os.getpid(), sig)


def stop_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen` that has the child receive ``sig`` when
    the thread that started it ends; None where the platform cannot."""
    prctl = _prctl()  # looked up here, in the parent: the child, between fork and exec, only calls it
    if prctl is None:
        return None
    parent = os.getpid()
    return lambda: _arm(prctl, sig, parent)


def end_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Have this process receive ``sig`` when its parent dies. For a Dramatiq worker process: its
    parent forwards its stop signals and reads its log pipe; alone, it waited out its jobs with
    nobody reading what it wrote, and hung on the full pipe. False where the platform cannot."""
    prctl = _prctl()
    if prctl is None:
        return False
    _arm(prctl, sig, os.getppid())
    return True

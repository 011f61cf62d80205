"""A worker process told to stop twice at once stops once; told again later, it ends at once.

Why: Dramatiq's worker process takes its first SIGTERM as "stop gracefully" (its main loop
notices within a second and stops the worker) and the next as "kill", which it does by raising
``SystemExit`` in the main thread. A supervisor that signals the whole process group (systemd's
default ``KillMode=control-group``, ``timeout``, ``kill -- -PGID``) delivers two at once: its
own, and the one the dramatiq parent forwards. The second came before the main loop saw the
first, so the worker was never stopped, and its threads (not daemons) kept the process alive
after the main thread had gone: still heartbeating, still taking jobs, never exiting.

So, in a worker process (installed in ``after_process_boot``, on the main thread, around Dramatiq's
own handler):

* a repeat within ``window`` seconds of the first signal is the same request: the graceful stop
  goes on (running jobs finish, prefetched messages go back);
* a later one ends the process at once (``os._exit``): the jobs it was running come back through
  the dead-worker sweep, as after a SIGKILL, instead of a process that never exits.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

from dramatiq import Middleware

from queues.parent_death import END_WITH_PARENT_ENV, end_with_parent

logger = logging.getLogger(__name__)

#: Seconds after a stop signal within which another counts as the same request.
REPEAT_WINDOW = 2.0
#: The exit status of a worker process ended by a repeated stop signal (Dramatiq's ``RET_KILLED``).
EXIT_KILLED = 1
_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class StopSignals(Middleware):
    """Debounces the stop signals of a Dramatiq worker process (see the module docstring)."""

    def __init__(self, window: float = REPEAT_WINDOW) -> None:
        self.window = window
        self.first_at: float | None = None

    def after_process_boot(self, broker: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set on the main thread (a worker embedded elsewhere)
        if os.environ.get(END_WITH_PARENT_ENV):
            end_with_parent()  # its dramatiq parent gone (killed with its supervisor): gone at once
        for signum in _SIGNALS:
            previous = signal.getsignal(signum)
            if callable(previous):  # Dramatiq's termhandler; nothing to wrap in other processes
                signal.signal(signum, self._handler(previous))

    def _handler(self, previous: Any) -> Any:
        def on_signal(signum: int, frame: Any) -> Any:
            now = time.monotonic()
            if self.first_at is None:
                self.first_at = now
                return previous(signum, frame)  # the graceful stop
            if now - self.first_at <= self.window:
                logger.info("stop signal %s again within %.0f s: the same request, still stopping gracefully",
                            signum, self.window)
                return None
            logger.warning("stop signal %s again while stopping: ending worker process %d now; its running "
                           "jobs come back through the dead-worker sweep", signum, os.getpid())
            for handler in logging.getLogger().handlers:
                handler.flush()
            os._exit(EXIT_KILLED)

        return on_signal

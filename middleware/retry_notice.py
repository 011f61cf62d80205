"""Tells the users waiting on a job that it failed for now and will be tried again, and when.

Why: between attempts nothing runs, so the job's message stayed at its last progress line
("loading the match · 2%") through every retry, up to minutes of FACEIT trouble, while the
record already knew what happened. Once Tracking has recorded ``retrying`` (this middleware's
``after_process_message`` runs after it: ``after_*`` hooks run in reverse order, and it is
listed before Tracking), the job's progress becomes ``{"stage": "retrying", "code", "retry_in",
"attempt", "attempts"}``, written and told to the progress listeners like any progress: the bot
edits the message to "FACEIT is not answering. Trying again in 10 s (attempt 2 of 4)." The next
attempt's first progress replaces it.

Runs the listeners on Dramatiq's event loop thread (the one async actors run on: their
Redis and Telegram resources live there), waiting at most ``timeout`` seconds; any failure is
logged and ignored, never the job's.
"""

from __future__ import annotations

import asyncio
import logging
import time

from dramatiq import Middleware
from dramatiq.asyncio import get_event_loop_thread

from middleware.state import state_of

logger = logging.getLogger(__name__)


class RetryNotice(Middleware):
    """Publishes a ``retrying`` progress for a job Backoff sends again."""

    def __init__(self, *, timeout: float = 10.0) -> None:
        self.timeout = timeout

    def after_process_message(self, broker, message, *, result=None, exception=None):
        state = state_of(message)
        if state.outcome != "retrying" or exception is None:
            return
        loop_thread = get_event_loop_thread()
        if loop_thread is None:
            return
        from actors.base import publish_progress  # the actors import this package: not at load time

        # Backoff's count (first try + retries so far), the same the limit is counted in.
        upcoming = int(message.options.get("retries", 0)) + 1
        progress = {"stage": "retrying", "code": getattr(exception, "code", "error"),
                    "retry_in": round(float(state.retry_delay or 0), 1), "attempt": upcoming,
                    "attempts": state.max_attempts, "at": time.time()}
        # Written (and told) only while the record says this very attempt is retrying: not for a
        # stale attempt whose job was re-delivered and maybe already answered, nor once canceled.
        notice = publish_progress(message.message_id, progress, status="retrying", attempt=state.attempt)
        try:
            loop_thread.run_coroutine(asyncio.wait_for(notice, self.timeout))
        except Exception as exc:
            logger.info("job %s: the retry was not shown to its users: %s: %s", message.message_id,
                        type(exc).__name__, exc)

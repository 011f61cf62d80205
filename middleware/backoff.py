"""Retries on a fixed schedule, replacing Dramatiq's ``Retries`` (which only doubles).

Parameters (each read as message option → actor option → default):
  max_retries: how many retries a job gets (``QUEUE_MAX_RETRIES``, 3).
  retry_delays: seconds before retry 1, 2, 3 … (``QUEUE_RETRY_DELAYS``, 10/30/90); the last
    one repeats when more retries are allowed.
  retry_on_timeout: whether a time-limit kill is retried (default False).

Transient errors (and errors we cannot classify) are retried; a :class:`PermanentError` or a
cancel fails at once. A failure about what was asked (``REQUEST_ERROR_CODES``: a mistyped
nickname, a cancelled match) fails its job without dead-lettering the message: the record says
why, and nothing is left for an operator to requeue or purge (a dead letter is an operator's
to-do; it lowers the health score). An error's own ``retry_after`` (a 429's ``Retry-After``) wins over the
schedule. The retry is the same ``message_id`` re-enqueued with a delay; it is sent in
``before_ack``, i.e. after tracking recorded ``retrying`` and before the original is acked, and
it is sent until it succeeds: if Redis is down the original stays unacked rather than lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from dramatiq import Middleware

from faceit.errors import REQUEST_ERROR_CODES
from middleware.state import state_of
from middleware.until_answered import pusher
from queues.errors import JobCanceled, JobTimeLimitExceeded, PermanentError

logger = logging.getLogger(__name__)


class Backoff(Middleware):
    """Fixed-schedule retries of transient failures; permanent ones fail at once."""

    def __init__(self, *, max_retries: int = 3, retry_delays: Sequence[float] = (10, 30, 90),
                 resend_pause: float = 0.5) -> None:
        self.max_retries = max_retries
        self.retry_delays = tuple(retry_delays)
        self.resend_pause = resend_pause

    @property
    def actor_options(self) -> set[str]:
        return {"max_retries", "retry_delays", "retry_on_timeout", "throws"}

    def _option(self, broker, message, name, default):
        if name in message.options:
            return message.options[name]
        actor = broker.get_actor(message.actor_name) if message.actor_name in broker.actors else None
        if actor is not None and name in actor.options:
            return actor.options[name]
        return default

    def delay_for(self, retry_number: int, delays: Sequence[float]) -> float:
        """Seconds before retry ``retry_number`` (1-based); the last delay repeats."""
        return float(delays[min(retry_number, len(delays)) - 1])

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if exception is None:
            return
        state = state_of(message)
        if isinstance(exception, JobCanceled):
            state.outcome = "canceled"
            return
        retries = int(message.options.get("retries", 0))
        max_retries = int(self._option(broker, message, "max_retries", self.max_retries))
        if isinstance(exception, JobTimeLimitExceeded):
            retryable = bool(self._option(broker, message, "retry_on_timeout", False))
            state.alert_reason = "time_limit"
        else:
            retryable = not isinstance(exception, PermanentError)
        if not retryable or retries >= max_retries:
            state.outcome = "failed"
            state.alert_reason = state.alert_reason or "final_failure"
            # Dead-lettered (an operator's to-do) once Tracking knows this attempt's outcome
            # counted: a stale attempt (the job re-delivered meanwhile) is no failure of the job.
            state.dead_letter = getattr(exception, "code", None) not in REQUEST_ERROR_CODES
            return
        delays = self._option(broker, message, "retry_delays", self.retry_delays) or self.retry_delays
        delay = getattr(exception, "retry_after", None)
        if delay is None:
            delay = self.delay_for(retries + 1, delays)
        state.outcome = "retrying"
        state.max_attempts = max_retries + 1
        state.retry_delay = float(delay)
        state.retry_at = time.time() + float(delay)
        message.options["retries"] = retries + 1
        state.pending_retry = message._message.copy(options={"retries": retries + 1})

    def before_ack(self, broker, message):
        state = getattr(message, "fb", None)
        if state is None or state.pending_retry is None:
            return
        retry, state.pending_retry = state.pending_retry, None
        delay_ms = max(0, int((state.retry_at - time.time()) * 1000)) if state.retry_at else 0
        push = pusher(broker, retry, delay=delay_ms)  # tried again until taken, pushed once
        failures = 0
        while True:
            try:
                push()
                if failures:
                    logger.warning("job %s: retry re-enqueued after %d failed tries", message.message_id,
                                   failures)
                return
            except Exception as exc:  # the broker is unreachable: keep the original unacked
                failures += 1
                logger.warning("job %s: could not re-enqueue the retry (%s: %s); trying again",
                               message.message_id, type(exc).__name__, exc)
                time.sleep(min(5.0, self.resend_pause * failures))

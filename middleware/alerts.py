"""Emits an alert when a job ends badly: final failure, time-limit kill, crash loop.

Levels: ``critical`` when FACEIT refused our key (operators must act), ``error`` for a crash
loop or a final failure, ``warning`` for a time-limit kill. Errors the user caused (bad input,
not found) and cancels are not alerts. Alerts go to :mod:`queues.alerts` (Redis log + sinks).

Parameters:
  alert_store: callable returning the process's :class:`~queues.alerts.AlertStore`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from dramatiq import Middleware

from faceit.errors import REQUEST_ERROR_CODES
from middleware.state import state_of
from queues.alerts import Alert, AlertStore
from queues.health_texts import tell_job_alert

logger = logging.getLogger(__name__)

USER_CAUSED = REQUEST_ERROR_CODES | {"canceled", "unknown_actor"}
#: Failures another alert already tells, once per cause: a worker without a Telegram token fires
#: ``telegram_not_configured`` (deduplicated per host, resolved when it delivers again), while
#: its deliveries fail, are retried and redelivered for hours: one more alert each was a flood.
TOLD_ELSEWHERE = {"not_configured"}


class AlertOnFailure(Middleware):
    """Turns a job's bad end into one alert."""

    def __init__(self, *, alert_store: Callable[[], AlertStore]) -> None:
        self._alert_store = alert_store

    def _alert_for(self, message) -> Alert | None:
        state = state_of(message)
        job = message.message_id
        actor = message.actor_name
        # The message is the English of the details, which let a reader tell it again in another
        # language (queues.health_texts.tell_alert).
        if state.alert_reason == "crash_loop":
            details = {"reason": "crash_loop", "actor": actor, "workers_lost": int(state.extra.get("workers_lost") or 0)}
            return Alert("error", "pipeline", tell_job_alert(details), job_id=job, details=details)
        if state.outcome != "failed" or state.error is None:
            return None
        code = state.error.get("code")
        if code == "auth":  # FACEIT refused the key, or none is set (KeyMissingError)
            details = {"reason": "no_key" if state.error.get("type") == "KeyMissingError" else "auth", "actor": actor}
            return Alert("critical", "faceit", tell_job_alert(details), job_id=job, details=details)
        if code in USER_CAUSED or code in TOLD_ELSEWHERE:
            return None
        timed_out = state.alert_reason == "time_limit"
        details = {"reason": "time_limit" if timed_out else "final_failure", "actor": actor,
                   "error_type": str(state.error.get("type")), "error": str(state.error.get("message", ""))[:200]}
        level = "warning" if timed_out else "error"
        return Alert(level, "pipeline", tell_job_alert(details), job_id=job, details=details)

    def _emit(self, message) -> None:
        alert = self._alert_for(message)
        if alert is None:
            return
        try:
            self._alert_store().emit(alert)
        except Exception:
            logger.exception("job %s: could not write alert", message.message_id)

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if exception is not None:
            self._emit(message)

    def after_skip_message(self, broker, message):
        self._emit(message)

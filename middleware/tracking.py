"""Keeps the job record (:mod:`queues.jobstore`) in step with every delivery.

``before_process_message`` starts an attempt (one Lua call): it counts the delivery, skips a
message whose job already ended or was canceled, and fails a message that was delivered more
than ``max_retries + 1`` times without finishing (its worker died each time: a crash loop).
``after_process_message`` records the outcome that :class:`~middleware.backoff.Backoff`
decided (it runs first, as ``after_*`` hooks run in reverse order), with the result or error.

A message without a record (sent with ``actor.send`` rather than the queue manager) gets one
on its first delivery. While Redis is unreachable both writes are retried until it answers:
the outcome must be recorded before the message is acked, or the job would stay ``started``
forever (Dramatiq itself retries the ack the same way). Any other failing write is logged and
counted in ``write_failures``; it never takes the job down with it.

Parameters:
  job_store: the process's :class:`~queues.jobstore.JobStore` (or a callable returning it).
  max_retries: default retries, to compute the allowed deliveries.
  worker_name: how this process appears in the attempt timeline.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

from dramatiq import Middleware
from dramatiq.middleware import SkipMessage

from middleware.state import state_of
from middleware.until_answered import until_answered
from queues.errors import error_summary
from queues.jobstore import JobStore, write_token

logger = logging.getLogger(__name__)


class Tracking(Middleware):
    """Writes ``started``/``retrying``/``succeeded``/``failed``/``canceled`` to job records."""

    def __init__(self, *, job_store: Callable[[], JobStore], max_retries: int = 3,
                 worker_name: Callable[[], str] = lambda: "") -> None:
        self._job_store = job_store
        self.max_retries = max_retries
        self._worker_name = worker_name
        self.write_failures = 0

    @property
    def actor_options(self) -> set[str]:
        return {"secret_fields"}

    def _until_written(self, message, what: str, write: Callable[[], Any]) -> Any:
        """Run ``write``; while Redis is unreachable, wait and try again (the ack waits too)."""
        return until_answered(write, job_id=message.message_id, doing=f"write {what}", done=f"{what} written",
                              log=logger)

    def _max_deliveries(self, broker, message) -> int:
        if "max_retries" in message.options:
            return int(message.options["max_retries"]) + 1
        actor = broker.actors.get(message.actor_name)
        if actor is not None and "max_retries" in actor.options:
            return int(actor.options["max_retries"]) + 1
        return self.max_retries + 1

    def before_process_message(self, broker, message):
        state = state_of(message)
        store = self._job_store()
        max_deliveries = self._max_deliveries(broker, message)
        worker = self._worker_name()
        made_at_ms = message.message_timestamp
        token = write_token()  # the same on every try: a begin sent again answers as it did
        begin = self._until_written(message, "its start", lambda: store.begin(
            message.message_id, max_deliveries=max_deliveries, worker=worker, made_at_ms=made_at_ms, token=token))
        if begin.verdict == "missing":
            from queues.manager import redacted_arguments  # avoids an import cycle at load time

            actor = broker.actors.get(message.actor_name)
            args, kwargs = redacted_arguments(actor, message.args, message.kwargs)
            self._until_written(message, "its record", lambda: store.create(
                message.message_id, actor=message.actor_name, queue=message.queue_name.removesuffix(".DQ"),
                args=args, kwargs=kwargs, max_retries=max_deliveries - 1))
            begin = self._until_written(message, "its start", lambda: store.begin(
                message.message_id, max_deliveries=max_deliveries, worker=worker, made_at_ms=made_at_ms,
                token=token))
        if begin.verdict == "run":
            state.attempt = begin.attempt
            return
        state.someone_waits = begin.someone_waits
        if begin.verdict == "crash_loop":
            state.outcome = "failed"
            state.alert_reason = "crash_loop"
            state.extra["workers_lost"] = begin.attempt
            message.fail()
            logger.error("job %s: its worker died %d times while running it; failed as a crash loop",
                         message.message_id, begin.attempt)
        elif begin.verdict == "final":
            state.outcome = "skipped"
            state.extra["final_status"] = begin.status
            logger.info("job %s: already %s; delivery skipped", message.message_id, begin.status)
        elif begin.verdict == "superseded":
            state.outcome = "superseded"  # not "skipped": the requeue's own message tells its users
            logger.info("job %s: a message from before its requeue; skipped (the requeue's own runs it)",
                        message.message_id)
        else:
            state.outcome = begin.verdict  # canceled before it ran
            logger.info("job %s: %s before it ran; skipped", message.message_id, begin.verdict)
        raise SkipMessage(begin.verdict)

    def after_process_message(self, broker, message, *, result=None, exception=None):
        state = state_of(message)
        try:
            if state.attempt:
                self._record_outcome(broker, message, state, result, exception)
        finally:
            if state.dead_letter:  # Backoff's verdict, unless the attempt turned out stale
                message.fail()

    def _record_outcome(self, broker, message, state: Any, result: Any, exception: BaseException | None) -> None:
        if result is None:
            result = state.result
        if exception is None:
            state.outcome = "succeeded"
            error = None
        else:
            state.outcome = state.outcome or "failed"
            tb = "".join(traceback.format_exception(type(exception), exception, exception.__traceback__))
            error = error_summary(exception, tb)
            state.error = error
        ack = None
        if exception is None and not (isinstance(result, dict) and result.get("notifications")):
            ack = getattr(broker, "ack_target", lambda _m: None)(message)
        token = write_token()  # the same on every try: a finish sent again answers as it did
        try:
            finish = self._until_written(message, f"outcome {state.outcome}", lambda: self._job_store().finish(
                message.message_id, attempt=state.attempt, status=state.outcome,
                result=result if exception is None else None, error=error, retry_at=state.retry_at, ack=ack,
                token=token,
            ))
        except Exception:
            self.write_failures += 1
            logger.exception("job %s: could not record outcome %s", message.message_id, state.outcome)
            return
        state.requesters = finish.requesters
        state.acked = finish.acked
        if finish.status == "stale":
            # Another delivery of the job runs it (or ran it): this attempt's failure is no
            # failure of the job. No dead letter, no alert, no delivery, no retry of its own.
            logger.warning("job %s: attempt %d is stale (re-delivered meanwhile); outcome %s not recorded",
                           message.message_id, state.attempt, state.outcome)
            state.outcome, state.alert_reason, state.pending_retry = "skipped", "", None
            state.dead_letter = False
        elif finish.status == "missing":
            # The record is gone (evicted, a failover that lost it): nothing else runs the job, so
            # Backoff's verdict stands (the retry, which makes the record anew, or the dead letter).
            logger.warning("job %s: its record is gone; outcome %s not recorded", message.message_id, state.outcome)
        else:
            logger.info("job %s: %s (attempt %d)", message.message_id, state.outcome, state.attempt)

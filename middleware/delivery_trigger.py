"""Sends a ``deliver_result`` job once a job has ended and someone waits for it.

Workers never talk to users inside the job itself: a Telegram flood or a blocked user then
retries only the small delivery job, never the analysis. The trigger fires when tracking
recorded a final status and the record has requesters (or the result carries notifications),
and again when a re-delivered message is skipped because its job already ended — the worker
that ended it may have died before sending the delivery, or when a job canceled while it ran
comes back only to be dropped. Delivery is idempotent per user.

Parameters:
  queue_name: where delivery jobs go (the high queue: users are waiting).
"""

from __future__ import annotations

import logging

from dramatiq import Middleware

from middleware.state import state_of
from middleware.until_answered import pusher, until_answered
from queues.manager import DELIVERY_ACTOR, delivery_message

logger = logging.getLogger(__name__)

FINAL = {"succeeded", "failed", "canceled"}


class DeliveryTrigger(Middleware):
    """Enqueues ``deliver_result(job_id)`` for ended jobs that have someone to tell."""

    def __init__(self, *, queue_name: str) -> None:
        self.queue_name = queue_name

    def enqueue_delivery(self, broker, job_id: str) -> None:
        """Enqueue the delivery; while the broker is unreachable, wait and try again (the job's
        ack waits too, as for its record): the job has ended, so nothing else would send it."""
        push = pusher(broker, delivery_message(job_id, self.queue_name))
        try:
            until_answered(push, job_id=job_id, doing="enqueue its delivery", done="delivery enqueued", log=logger)
        except Exception:
            logger.exception("job %s: could not enqueue its delivery", job_id)
            raise

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if message.actor_name == DELIVERY_ACTOR:
            return
        state = state_of(message)
        if state.outcome not in FINAL or not state.attempt:
            return
        value = result if result is not None else state.result
        has_notifications = isinstance(value, dict) and bool(value.get("notifications"))
        if state.requesters or has_notifications:
            self.enqueue_delivery(broker, message.message_id)

    def after_skip_message(self, broker, message):
        """A skipped delivery may be the only one left to tell the requesters: the job already
        ended (its worker may have died before sending), crash-looped, or was canceled while it
        ran and comes back (its worker died, or it was retrying) only to be dropped. A job
        canceled while queued gets a delivery too: its note is the same, and anyone who joined
        the job learns of it. A job with nobody to tell (no requesters, no notifications: a probe,
        a job an operator sent) gets none: a delivery for nobody would only sit on the high queue."""
        if message.actor_name == DELIVERY_ACTOR:
            return
        state = state_of(message)
        if not state.someone_waits:
            return
        if state.outcome in ("skipped", "canceled") or state.alert_reason == "crash_loop":
            self.enqueue_delivery(broker, message.message_id)

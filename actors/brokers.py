"""A Redis broker whose consumer skips the ack that our job tracking already made.

When a job succeeds and nobody waits for a delivery, :class:`~middleware.tracking.Tracking`
acks its message inside the same Lua call that writes the record (one round trip instead of
two per job). That script mirrors Dramatiq's ``dispatch.lua`` ack (``SREM`` from the worker's
ack set, ``HDEL`` of the message body), so it depends on Dramatiq's Redis key layout:
re-check :meth:`TrackedRedisBroker.ack_target` when upgrading Dramatiq.
"""

from __future__ import annotations

from typing import Any

from dramatiq.brokers.redis import RedisBroker, _RedisConsumer

from queues.jobstore import AckTarget


class _AckAwareConsumer(_RedisConsumer):
    def ack(self, message: Any) -> None:
        state = getattr(message, "fb", None)
        if state is not None and state.acked:
            self.queued_message_ids.discard(message.message_id)
            return
        super().ack(message)


class TrackedRedisBroker(RedisBroker):
    """Dramatiq's RedisBroker, plus the ack target that lets tracking ack in its final write."""

    @property
    def consumer_class(self):
        return _AckAwareConsumer

    def ack_target(self, message: Any) -> AckTarget | None:
        redis_id = message.options.get("redis_message_id")
        if not redis_id:
            return None
        queue = message.queue_name
        return AckTarget(
            acks_key=f"{self.namespace}:__acks__.{self.broker_id}.{queue}",
            msgs_key=f"{self.namespace}:{queue}.msgs",
            redis_message_id=redis_id,
        )

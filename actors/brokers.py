"""Our Redis broker: Dramatiq's, with two gaps closed.

1. When a consumer's Redis connection breaks, Dramatiq's consumer thread throws away the
   delayed messages (our retries) it held in memory and the messages it had prefetched, while
   their ids stay in this live worker's ack set — where no dead-worker sweep will ever look.
   :meth:`TrackedRedisBroker.consume` puts them back in their queue when the consumer is
   re-created after the outage, so no retry is lost.
2. Redis connection errors raised while enqueueing or re-queueing surface as Dramatiq's
   ``ConnectionClosed`` (as a :class:`BrokerUnreachable`, still a ``redis.ConnectionError``):
   otherwise an outage that strikes while a consumer thread moves due retries to their queue
   kills that thread, and its held messages are never seen again.
3. The consumer skips the ack that our job tracking already made (below).

When a job succeeds and nobody waits for a delivery, :class:`~middleware.tracking.Tracking`
acks its message inside the same Lua call that writes the record (one round trip instead of
two per job). That script mirrors Dramatiq's ``dispatch.lua`` ack (``SREM`` from the worker's
ack set, ``HDEL`` of the message body), so it depends on Dramatiq's Redis key layout:
re-check :meth:`TrackedRedisBroker.ack_target` when upgrading Dramatiq.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message

from queues.jobstore import AckTarget


class BrokerUnreachable(ConnectionClosed, redis.ConnectionError):
    """Redis did not answer the broker: Dramatiq's connection error and redis-py's, both."""


class _AckAwareConsumer(_RedisConsumer):
    def requeue(self, messages: Any) -> None:
        try:
            super().requeue(messages)
        except redis.ConnectionError as exc:
            raise BrokerUnreachable(exc) from None

    def ack(self, message: Any) -> None:
        state = getattr(message, "fb", None)
        if state is not None and state.acked:
            self.queued_message_ids.discard(message.message_id)
            return
        super().ack(message)


logger = logging.getLogger(__name__)


class TrackedRedisBroker(RedisBroker):
    """Dramatiq's RedisBroker, plus dropped-message recovery and the ack in the final write."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._consumers: dict[str, _AckAwareConsumer] = {}

    @property
    def consumer_class(self):
        return _AckAwareConsumer

    def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
        try:
            return super().enqueue(message, delay=delay)
        except BrokerUnreachable:
            raise
        except redis.ConnectionError as exc:
            raise BrokerUnreachable(exc) from None

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> _AckAwareConsumer:
        previous = self._consumers.get(queue_name)
        if previous is not None:
            self._put_back_dropped(queue_name, previous)
        consumer = self.consumer_class(self, queue_name, prefetch, timeout)
        self._consumers[queue_name] = consumer
        return consumer

    def _put_back_dropped(self, queue_name: str, previous: _AckAwareConsumer) -> None:
        """Re-queue what the previous consumer of ``queue_name`` held but will never process.

        A delay queue's held messages all lived in the consumer thread's memory (it re-creates
        the consumer from that same thread, so none is being handled now). For a work queue only
        the prefetched-but-not-handed-out messages are dropped; those handed to worker threads
        are still being processed and are acked normally.
        """
        try:
            if queue_name.endswith(".DQ"):
                ids = [i.decode() if isinstance(i, bytes) else i
                       for i in self.client.smembers(f"{self.namespace}:__acks__.{self.broker_id}.{queue_name}")]
            else:
                ids = [Message.decode(data).options["redis_message_id"] for data in previous.message_cache if data]
            if ids:
                self.do_requeue(queue_name, *ids)
                logger.warning("put %d message(s) of %s back after a broken connection", len(ids), queue_name)
        except redis.ConnectionError as exc:
            raise BrokerUnreachable(exc) from None  # Dramatiq retries consume() a bit later
        previous.message_cache = []

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

"""Our Redis broker: Dramatiq's, with these changes:

1. When a consumer's Redis connection breaks, Dramatiq's consumer thread throws away the
   delayed messages (our retries) it held in memory and the messages it had prefetched, while
   their ids stay in this live worker's ack set — where no dead-worker sweep will ever look.
   A fetch whose reply was lost in the outage leaves ids there too. When the consumer is
   re-created after the outage, :meth:`TrackedRedisBroker.consume` puts back every id of that
   ack set that no worker thread of this process is still running, so nothing is lost and
   nothing runs twice.
2. Redis connection errors raised while enqueueing or re-queueing surface as Dramatiq's
   ``ConnectionClosed`` (as a :class:`BrokerUnreachable`, still a ``redis.ConnectionError``):
   otherwise an outage that strikes while a consumer thread moves due retries to their queue
   kills that thread, and its held messages are never seen again.
3. The consumer skips the ack that our job tracking already made (below).
4. redis-py resends a command whose reply was lost to a broken connection (Redis executed it,
   then went away before answering). Two of Dramatiq's commands are not safe to run twice:
   ``enqueue`` would push the same Redis id twice (the job would run twice), and a resent
   ``fetch`` takes a second batch while the first sits in the ack set, owned by nobody and,
   since no error reached the consumer, never put back. Enqueue here pushes a Redis id at most
   once (:data:`_ENQUEUE_ONCE`), and a live consumer puts back, every ``reconcile_interval``
   seconds, the ids of its ack set that no worker thread holds (the same check as after a
   broken connection).

When a job succeeds and nobody waits for a delivery, :class:`~middleware.tracking.Tracking`
acks its message inside the same Lua call that writes the record (one round trip instead of
two per job). That script mirrors Dramatiq's ``dispatch.lua`` ack (``SREM`` from the worker's
ack set, ``HDEL`` of the message body), so it depends on Dramatiq's Redis key layout:
re-check :meth:`TrackedRedisBroker.ack_target` when upgrading Dramatiq.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import redis
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import current_millis, dq_name
from dramatiq.errors import ConnectionClosed, DecodeError
from dramatiq.message import Message

from queues.connection import as_text
from queues.dramatiq_keys import acks_key, enqueue_marker_key, messages_key, queue_key
from queues.enqueue_once import ENQUEUE_MARKER_TTL_MS, ENQUEUE_ONCE_LUA
from queues.jobstore import AckTarget

#: The enqueue-once script (queues/enqueue_once.py), run as a script of its own.
_ENQUEUE_ONCE = ENQUEUE_ONCE_LUA + "return enqueue_once(KEYS, ARGV)\n"

#: How often a live consumer looks for ids of its ack set that nobody holds (seconds).
DEFAULT_RECONCILE_INTERVAL = 30.0


class BrokerUnreachable(ConnectionClosed, redis.ConnectionError):
    """Redis did not answer the broker: Dramatiq's connection error and redis-py's, both."""


class _InFlight:
    """Redis ids of the messages a process's consumers handed to worker threads, per queue.

    An id leaves only after its ack or nack reached Redis, so at any moment every id in the
    process's ack set is either here (a worker thread still owns it) or owned by nobody. Keyed
    by the Redis id, which every enqueue makes new (a retry shares its original's message id).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[str, set[str]] = {}

    def add(self, queue_name: str, message: Any) -> None:
        with self._lock:
            self._ids.setdefault(queue_name, set()).add(message.options["redis_message_id"])

    def discard(self, queue_name: str, message: Any) -> None:
        with self._lock:
            self._ids.get(queue_name, set()).discard(message.options.get("redis_message_id"))

    def snapshot(self, queue_name: str) -> set[str]:
        with self._lock:
            return set(self._ids.get(queue_name, set()))

    def forget(self, queue_name: str) -> None:
        """Drop every id of ``queue_name`` (its holder is gone and its messages were put back)."""
        with self._lock:
            self._ids.pop(queue_name, None)


class _AckAwareConsumer(_RedisConsumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slot_freed = threading.Event()
        #: Fetch again once this many prefetch slots are free: one fetch per freed slot would
        #: cost a round trip per job, waiting for all of them would leave threads idle.
        self.refill_at = max(1, self.prefetch // 4)
        self._next_reconcile = time.monotonic() + self.broker.reconcile_interval

    def _reconcile_if_due(self) -> None:
        """Put back the ack-set ids nobody holds (a resent fetch's first batch), now and then.

        Called from the consumer thread with an empty prefetch cache, right before a fetch: at
        that moment every id this process owns in the ack set is in ``in_flight``.
        """
        if time.monotonic() < self._next_reconcile:
            return
        self._next_reconcile = time.monotonic() + self.broker.reconcile_interval
        self.broker.put_back_unheld(self.queue_name, self.broker.in_flight.snapshot(self.queue_name),
                                    why="that nobody held (a fetch whose reply was lost)")

    def _wait_for_free_slots(self) -> bool:
        """Wait until ``refill_at`` slots are free (or the timeout passed with at least one).

        Dramatiq sleeps a backoff here that doubles from 5 ms up to the worker timeout, so a
        full worker fetches new work late once its jobs end; an ack wakes this wait instead.
        Clear, then re-check: an ack landing in between sets the event again.
        """
        deadline = time.monotonic() + self.timeout / 1000
        while self.outstanding_message_count > self.prefetch - self.refill_at:
            self._slot_freed.clear()
            if self.outstanding_message_count <= self.prefetch - self.refill_at:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self.outstanding_message_count < self.prefetch
            self._slot_freed.wait(remaining)
        return True

    def __next__(self) -> Any:
        if not self.message_cache:
            if not self._wait_for_free_slots():
                return None
            self._reconcile_if_due()
        message = super().__next__()
        if message is not None:
            self.broker.in_flight.add(self.queue_name, message)
        return message

    def requeue(self, messages: Any) -> None:
        messages = list(messages)
        try:
            super().requeue(messages)
        except redis.ConnectionError as exc:
            raise BrokerUnreachable(exc) from None
        for message in messages:
            self.broker.in_flight.discard(self.queue_name, message)
        self._slot_freed.set()

    def ack(self, message: Any) -> None:
        state = getattr(message, "fb", None)
        if state is not None and state.acked:
            self.queued_message_ids.discard(message.message_id)
        else:
            super().ack(message)
        self.broker.in_flight.discard(self.queue_name, message)
        self._slot_freed.set()

    def nack(self, message: Any) -> None:
        super().nack(message)
        self.broker.in_flight.discard(self.queue_name, message)
        self._slot_freed.set()


logger = logging.getLogger(__name__)


class TrackedRedisBroker(RedisBroker):
    """Dramatiq's RedisBroker, plus dropped-message recovery and the ack in the final write."""

    def __init__(self, *, reconcile_interval: float = DEFAULT_RECONCILE_INTERVAL, **kwargs: Any) -> None:
        # No random dead-worker maintenance on fetches (Dramatiq's default: 1 fetch in 1,000).
        # After a Redis outage longer than the heartbeat timeout every live process looks dead,
        # and such a roll put their running jobs back in the queue: run twice, counted as lost
        # workers. The sweep of middleware.worker_presence does that work, every few seconds,
        # and waits a heartbeat timeout after an outage first.
        kwargs.setdefault("maintenance_chance", 0)
        super().__init__(**kwargs)
        self._consumers: dict[str, _AckAwareConsumer] = {}
        self.in_flight = _InFlight()
        self.reconcile_interval = reconcile_interval
        self._enqueue_once = self.client.register_script(_ENQUEUE_ONCE)

    @property
    def consumer_class(self):
        return _AckAwareConsumer

    def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
        return self.prepare_enqueue(message, delay=delay)()

    def prepare_enqueue(self, message: Any, *, delay: int | None = None) -> Callable[[], Any]:
        """Dramatiq's ``enqueue`` of ``message`` in two steps: the Redis id (and, delayed, the
        eta) given now, the push done by the returned call — which may be called again after a
        failure. Each call pushes the same Redis id, so one whose reply was lost and the next
        push the message once (the enqueue-once marker); ``enqueue`` gave a new id per call.
        Raises :class:`BrokerUnreachable` while Redis cannot be reached."""
        queue_name = message.queue_name
        message = self.stamp(message)
        if delay is not None:
            queue_name = dq_name(queue_name)
            message = message.copy(queue_name=queue_name, options={"eta": current_millis() + delay})

        def push() -> Any:
            self.emit_before("enqueue", message, delay)
            try:
                self.do_enqueue(queue_name, message.options["redis_message_id"], message.encode())
            except redis.ConnectionError as exc:
                raise BrokerUnreachable(exc) from None
            self.emit_after("enqueue", message, delay)
            return message

        return push

    def do_enqueue(self, queue_name: str, redis_message_id: str, data: bytes) -> int:
        """Push ``redis_message_id`` onto ``queue_name`` unless it was pushed already (a resend).

        Returns 1 when this call pushed it, 0 when an earlier call had.
        """
        keys, args = self.enqueue_once_call(queue_name, redis_message_id, data)
        return int(self._enqueue_once(keys=keys, args=args))

    def enqueue_once_call(self, queue_name: str, redis_message_id: str, data: bytes) -> tuple[list[str], list[Any]]:
        """The keys and arguments of ``enqueue_once`` (:data:`ENQUEUE_ONCE_LUA`) for one message."""
        return ([self.queue_key(queue_name), messages_key(self.namespace, queue_name),
                 enqueue_marker_key(self.namespace, redis_message_id)],
                [redis_message_id, data, ENQUEUE_MARKER_TTL_MS])

    def queue_key(self, queue_name: str) -> str:
        """The Redis list of ``queue_name``'s waiting message ids."""
        return queue_key(self.namespace, queue_name)

    def stamp(self, message: Message) -> Message:
        """``message`` with its Redis id, as Dramatiq's ``enqueue`` (no delay) gives it one: each
        enqueue needs its own, since a retry re-enqueues the same message id."""
        return message.copy(options={"redis_message_id": str(uuid4())})

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> _AckAwareConsumer:
        previous = self._consumers.get(queue_name)
        if previous is not None:
            self._put_back_dropped(queue_name, previous)
        consumer = self.consumer_class(self, queue_name, prefetch, timeout)
        self._consumers[queue_name] = consumer
        return consumer

    def _put_back_dropped(self, queue_name: str, previous: _AckAwareConsumer) -> None:
        """Re-queue what this process's ack set of ``queue_name`` holds but nobody will process.

        A delay queue's held messages all lived in the consumer thread's memory (it re-creates
        the consumer from that same thread, so none is being handled now). For a work queue,
        the messages handed to worker threads are still being processed and are acked
        normally; the rest (prefetched, or fetched by a call whose reply never arrived) are
        put back. The in-flight ids are read before the ack set: an ack that lands between the
        two reads removes its id from the ack set first, so a running job is never re-queued.
        """
        running = set() if queue_name.endswith(".DQ") else self.in_flight.snapshot(queue_name)
        # Redis still away: BrokerUnreachable, and Dramatiq's consumer thread calls consume() again.
        self.put_back_unheld(queue_name, running, why="after a broken connection")
        if queue_name.endswith(".DQ"):
            self.in_flight.forget(queue_name)  # they lived in the dropped consumer's memory only
        previous.message_cache = []

    def put_back_unheld(self, queue_name: str, running: set[str], why: str) -> int:
        """Re-queue the ids of this process's ack set of ``queue_name`` that are not in ``running``.

        ``running`` must be read before the ack set (an ack removes its id from the set before
        it leaves ``running``) and must include every id this process will still process.
        Returns how many were put back; raises :class:`BrokerUnreachable` (a Dramatiq connection
        error, so the consumer thread re-creates its consumer and this runs again).
        """
        acks = acks_key(self.namespace, self.broker_id, queue_name)
        try:
            held = {as_text(i) for i in self.client.smembers(acks)}
            ids = self._dead_letter_unreadable(queue_name, sorted(held - running))
            if ids:
                self.do_requeue(queue_name, *ids)
        except redis.ConnectionError as exc:
            raise BrokerUnreachable(exc) from None
        if ids:
            logger.warning("put %d message(s) of %s back %s", len(ids), queue_name, why)
        return len(ids)

    def _dead_letter_unreadable(self, queue_name: str, ids: list[str]) -> list[str]:
        """Dead-letter the ids among ``ids`` whose body cannot be decoded; return the others.

        Dramatiq's consumer stops on a message it cannot decode and is re-created: putting such
        a message back would feed it the same message again, forever.
        """
        if not ids:
            return ids
        bodies = self.client.hmget(messages_key(self.namespace, queue_name), ids)
        readable = []
        for redis_id, body in zip(ids, bodies, strict=True):
            try:
                if body is not None:
                    Message.decode(body)
            except DecodeError:
                self.do_nack(queue_name, redis_id)
                logger.error("message %s of %s cannot be decoded: dead-lettered", redis_id, queue_name)
                continue
            readable.append(redis_id)
        return readable

    def ack_target(self, message: Any) -> AckTarget | None:
        redis_id = message.options.get("redis_message_id")
        if not redis_id:
            return None
        queue = message.queue_name
        return AckTarget(
            acks_key=acks_key(self.namespace, self.broker_id, queue),
            msgs_key=messages_key(self.namespace, queue),
            redis_message_id=redis_id,
        )

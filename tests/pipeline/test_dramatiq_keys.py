"""The keys of :mod:`queues.dramatiq_keys` are where Dramatiq's own Redis broker puts things.

Checked against Dramatiq's plain ``RedisBroker`` (not ours), so an upgrade of Dramatiq that
moves a key fails here, by name, rather than in the features that read the keys directly.
"""

from __future__ import annotations

import uuid

import pytest
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker

from actors.brokers import TrackedRedisBroker
from queues.dramatiq_keys import (
    acks_key,
    dead_letters_key,
    dead_messages_key,
    enqueue_marker_key,
    heartbeats_key,
    messages_key,
    queue_key,
)


@pytest.fixture
def namespace() -> str:
    return f"keys-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def broker(redis_url: str, namespace: str):
    broker = RedisBroker(url=redis_url, namespace=namespace, middleware=[])
    broker.declare_queue("work")
    yield broker
    broker.close()


def _message(queue: str = "work") -> Message:
    return Message(queue_name=queue, actor_name="probe", args=(), kwargs={}, options={})


def test_a_waiting_message_is_in_the_queue_list_and_the_bodies_hash(broker, namespace, redis_client):
    sent = broker.enqueue(_message())
    redis_id = sent.options["redis_message_id"]

    assert redis_client.lrange(queue_key(namespace, "work"), 0, -1) == [redis_id]
    body = redis_client.hget(messages_key(namespace, "work"), redis_id)
    assert body is not None and Message.decode(body.encode()).message_id == sent.message_id


def test_a_taken_message_is_in_the_workers_ack_set_and_its_heartbeat_is_kept(broker, namespace, redis_client):
    sent = broker.enqueue(_message())
    consumer = broker.consume("work", prefetch=1, timeout=100)
    try:
        taken = next(consumer)
        assert taken is not None and taken.message_id == sent.message_id
        acks = acks_key(namespace, broker.broker_id, "work")
        assert redis_client.smembers(acks) == {sent.options["redis_message_id"]}
        assert redis_client.zscore(heartbeats_key(namespace), broker.broker_id) is not None
        consumer.ack(taken)
        assert redis_client.smembers(acks) == set()
    finally:
        consumer.close()


@pytest.mark.parametrize("delayed", [False, True], ids=["queue", "delay queue"])
def test_a_dead_letter_of_a_queue_or_its_delay_queue_is_in_the_one_dead_letter_set(
        broker, namespace, redis_client, delayed):
    sent = broker.enqueue(_message(), delay=60_000 if delayed else None)
    taken_from = sent.queue_name
    assert taken_from == ("work.DQ" if delayed else "work")
    # The key spelling of a delay queue is the queue's own, with Dramatiq's suffix.
    assert redis_client.llen(queue_key(namespace, taken_from)) == 1
    consumer = broker.consume(taken_from, prefetch=1, timeout=100)
    try:
        taken = next(consumer)
        assert taken is not None
        consumer.nack(taken)
    finally:
        consumer.close()

    redis_id = sent.options["redis_message_id"]
    for asked_as in ("work", taken_from):  # either name finds the one set
        assert redis_client.zrange(dead_letters_key(namespace, asked_as), 0, -1) == [redis_id]
        assert redis_client.hexists(dead_messages_key(namespace, asked_as), redis_id)
    assert redis_client.hlen(messages_key(namespace, taken_from)) == 0


def test_our_enqueue_once_marks_the_message_under_the_marker_key(redis_url, namespace, redis_client):
    broker = TrackedRedisBroker(url=redis_url, namespace=namespace, middleware=[])
    try:
        broker.declare_queue("work")
        message = broker.stamp(_message())
        redis_id = message.options["redis_message_id"]

        assert broker.do_enqueue("work", redis_id, message.encode()) == 1
        assert broker.do_enqueue("work", redis_id, message.encode()) == 0  # the marker makes it a no-op
        assert redis_client.pttl(enqueue_marker_key(namespace, redis_id)) > 0
        assert redis_client.lrange(queue_key(namespace, "work"), 0, -1) == [redis_id]
        assert broker.queue_key("work") == queue_key(namespace, "work")
    finally:
        broker.close()

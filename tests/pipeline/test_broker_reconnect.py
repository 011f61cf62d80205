"""What the broker puts back when a consumer is re-created after a broken connection.

A real ``TrackedRedisBroker`` on the test Redis: messages are fetched into this process's
ack set the way Dramatiq's consumer does it, then the consumer is re-created as Dramatiq does
after a connection error. Whatever no worker thread holds must go back to the queue; what a
worker thread is running must stay where it is (putting it back would run it twice).
"""

from __future__ import annotations

import dramatiq
import pytest
import redis
from dramatiq.errors import DecodeError

from actors.brokers import TrackedRedisBroker

QUEUE = "reconnect_test"


@pytest.fixture
def broker(redis_url: str):
    broker = TrackedRedisBroker(client=redis.Redis.from_url(redis_url), namespace="rc", middleware=[])
    broker.declare_queue(QUEUE)
    yield broker
    broker.close()


def _send(broker: TrackedRedisBroker, count: int) -> list[str]:
    sent = [broker.enqueue(dramatiq.Message(queue_name=QUEUE, actor_name="a", args=(i,), kwargs={}, options={}))
            for i in range(count)]
    return [m.options["redis_message_id"] for m in sent]


def _acks(client: redis.Redis, broker: TrackedRedisBroker) -> set[str]:
    return client.smembers(f"rc:__acks__.{broker.broker_id}.{QUEUE}")


def test_prefetched_messages_go_back_and_running_ones_stay(broker, redis_client):
    ids = _send(broker, 3)
    consumer = broker.consume(QUEUE, prefetch=3, timeout=100)
    running = next(consumer)  # handed to a worker thread; the other two wait in the prefetch cache
    assert _acks(redis_client, broker) == set(ids)

    broker.consume(QUEUE, prefetch=3, timeout=100)  # what Dramatiq does after a connection error

    assert _acks(redis_client, broker) == {running.options["redis_message_id"]}
    assert sorted(redis_client.lrange(f"rc:{QUEUE}", 0, -1)) == sorted(set(ids) - {running.options["redis_message_id"]})


def test_a_fetch_whose_reply_was_lost_is_put_back(broker, redis_client):
    ids = _send(broker, 2)
    broker.consume(QUEUE, prefetch=2, timeout=100)
    broker.do_fetch(QUEUE, 2)  # Redis moved both to the ack set; the reply never reached a consumer
    assert _acks(redis_client, broker) == set(ids)

    broker.consume(QUEUE, prefetch=2, timeout=100)

    assert _acks(redis_client, broker) == set()
    assert sorted(redis_client.lrange(f"rc:{QUEUE}", 0, -1)) == sorted(ids)


def test_a_message_acked_after_reconnect_leaves_nothing_behind(broker, redis_client):
    _send(broker, 1)
    first = broker.consume(QUEUE, prefetch=1, timeout=100)
    running = next(first)
    second = broker.consume(QUEUE, prefetch=1, timeout=100)
    second.ack(running)  # the worker thread finishes and acks through the new consumer

    assert _acks(redis_client, broker) == set()
    assert broker.in_flight.snapshot(QUEUE) == set()
    broker.consume(QUEUE, prefetch=1, timeout=100)
    assert redis_client.llen(f"rc:{QUEUE}") == 0


def test_a_delay_queue_puts_back_everything_it_held(broker, redis_client):
    dq = f"{QUEUE}.DQ"
    sent = [broker.enqueue(dramatiq.Message(queue_name=QUEUE, actor_name="a", args=(i,), kwargs={}, options={}),
                           delay=60_000) for i in range(2)]
    ids = {m.options["redis_message_id"] for m in sent}
    consumer = broker.consume(dq, prefetch=10, timeout=100)
    next(consumer)  # held in the consumer thread's memory until due, like the other one
    broker.consume(dq, prefetch=10, timeout=100)  # the connection broke: that memory is gone

    assert redis_client.smembers(f"rc:__acks__.{broker.broker_id}.{dq}") == set()
    assert set(redis_client.lrange(f"rc:{dq}", 0, -1)) == ids
    assert broker.in_flight.snapshot(dq) == set()


def test_an_undecodable_message_is_dead_lettered_not_put_back_forever(broker, redis_client):
    redis_client.hset(f"rc:{QUEUE}.msgs", "bad-id", "not json at all")
    redis_client.rpush(f"rc:{QUEUE}", "bad-id")
    consumer = broker.consume(QUEUE, prefetch=1, timeout=100)
    with pytest.raises(DecodeError):
        next(consumer)  # Dramatiq's consumer thread stops here and re-creates its consumer

    broker.consume(QUEUE, prefetch=1, timeout=100)

    assert redis_client.llen(f"rc:{QUEUE}") == 0
    assert redis_client.zscore(f"rc:{QUEUE}.XQ", "bad-id") is not None
    assert _acks(redis_client, broker) == set()

"""The dead-worker sweep (``actors.broker.sweep_dead_workers``) on a real Redis.

Dramatiq's own maintenance runs ``KEYS <ns>:__acks__.<id>*`` for every dead entry of its
heartbeat set, and keeps an entry while that finds any ack set: a dead process whose ack sets
are on a queue no pool consumes stayed for ever, and every sweep (every 5 s) walked the whole
keyspace for it. The sweep checks the dead ids' ack sets with ``EXISTS`` first: ``KEYS`` runs
only while a dead process still holds messages on the sweeping pool's queues. ``KEYS`` is
counted in ``INFO commandstats``, which counts the commands scripts run too (``SLOWLOG`` does
not list them).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import dramatiq
import pytest
import redis
from dramatiq.common import current_millis

from actors.broker import sweep_dead_workers
from actors.brokers import TrackedRedisBroker
from queues.dramatiq_keys import acks_key, heartbeats_key, queue_key

QUEUE = "work"
OTHER = "other"  # declared, consumed by another pool


@pytest.fixture
def namespace() -> str:
    return f"sweep-{uuid.uuid4().hex[:8]}"


def _broker(redis_url: str, namespace: str) -> TrackedRedisBroker:
    broker = TrackedRedisBroker(client=redis.Redis.from_url(redis_url), namespace=namespace, middleware=[],
                                heartbeat_timeout=1000, maintenance_chance=0)  # no random maintenance
    broker.declare_queue(QUEUE)
    broker.declare_queue(OTHER)
    return broker


@pytest.fixture
def broker(redis_url: str, namespace: str) -> Iterator[TrackedRedisBroker]:
    """The sweeping process's broker."""
    broker = _broker(redis_url, namespace)
    yield broker
    broker.close()


@pytest.fixture
def dead_broker(redis_url: str, namespace: str) -> Iterator[TrackedRedisBroker]:
    """Another process's broker, that takes messages and then dies (its heartbeat goes stale)."""
    broker = _broker(redis_url, namespace)
    yield broker
    broker.close()


def keys_calls(client: redis.Redis) -> int:
    """How many ``KEYS`` commands Redis has run, scripts' included."""
    return int(client.info("commandstats").get("cmdstat_keys", {}).get("calls", 0))


def dies(client: redis.Redis, namespace: str, broker_id: str) -> None:
    """``broker_id``'s heartbeat is a minute old: dead for the sweep (timeout 1 s)."""
    client.zadd(heartbeats_key(namespace), {broker_id: current_millis() - 60_000})


def _send(broker: TrackedRedisBroker, queue: str, count: int, delay: int | None = None) -> set[str]:
    sent = [broker.enqueue(dramatiq.Message(queue_name=queue, actor_name="a", args=(i,), kwargs={},
                                            options={}), delay=delay)
            for i in range(count)]
    return {m.options["redis_message_id"] for m in sent}


def test_a_dead_process_holding_nothing_is_forgotten_in_one_sweep_without_keys(
        broker, namespace, redis_client):
    """Every process that stops (workers, and producers: the bot, the scheduler, admin.py) leaves
    its heartbeat entry behind."""
    dies(redis_client, namespace, "gone-1")
    before = keys_calls(redis_client)

    swept = sweep_dead_workers(broker, [QUEUE])

    assert keys_calls(redis_client) == before
    assert redis_client.zscore(heartbeats_key(namespace), "gone-1") is None
    assert swept == 0  # nothing was put back


def test_a_dead_process_holding_acks_only_on_a_queue_nobody_knows_is_forgotten_without_keys(
        broker, namespace, redis_client):
    """A pool removed, or ``QUEUE_NAME_PREFIX`` changed: its dead process's entry stayed for ever,
    and cost one ``KEYS`` per queue on every sweep."""
    redis_client.sadd(acks_key(namespace, "gone-2", "retired"), "m-1")
    dies(redis_client, namespace, "gone-2")
    before = keys_calls(redis_client)

    for _ in range(3):
        sweep_dead_workers(broker, [QUEUE])

    assert keys_calls(redis_client) == before
    assert redis_client.zscore(heartbeats_key(namespace), "gone-2") is None


def test_a_dead_process_holding_messages_of_another_pools_queue_is_left_to_that_pool(
        broker, dead_broker, namespace, redis_client):
    ids = _send(broker, OTHER, 2)
    dead_broker.do_fetch(OTHER, 2)
    dies(redis_client, namespace, dead_broker.broker_id)
    before = keys_calls(redis_client)

    swept = sweep_dead_workers(broker, [QUEUE])  # a pool on QUEUE only: not its messages

    assert keys_calls(redis_client) == before
    assert swept == 0
    assert redis_client.zscore(heartbeats_key(namespace), dead_broker.broker_id) is not None
    assert redis_client.smembers(acks_key(namespace, dead_broker.broker_id, OTHER)) == ids

    assert sweep_dead_workers(broker, [OTHER]) == 1  # the pool that consumes OTHER puts them back
    assert set(redis_client.lrange(queue_key(namespace, OTHER), 0, -1)) == ids
    assert redis_client.zscore(heartbeats_key(namespace), dead_broker.broker_id) is None


def test_a_dead_workers_messages_and_delayed_messages_are_put_back_in_one_sweep(
        broker, dead_broker, namespace, redis_client):
    waiting = _send(broker, QUEUE, 2)
    delayed = _send(broker, QUEUE, 1, delay=60_000)
    dead_broker.do_fetch(QUEUE, 2)
    dead_broker.do_fetch(f"{QUEUE}.DQ", 1)
    assert redis_client.llen(queue_key(namespace, QUEUE)) == 0
    dies(redis_client, namespace, dead_broker.broker_id)
    dies(redis_client, namespace, "gone-3")  # beside one that holds nothing

    sweep_dead_workers(broker, [QUEUE])

    assert set(redis_client.lrange(queue_key(namespace, QUEUE), 0, -1)) == waiting
    assert set(redis_client.lrange(queue_key(namespace, f"{QUEUE}.DQ"), 0, -1)) == delayed
    assert not redis_client.exists(acks_key(namespace, dead_broker.broker_id, QUEUE),
                                   acks_key(namespace, dead_broker.broker_id, f"{QUEUE}.DQ"))
    assert redis_client.zrange(heartbeats_key(namespace), 0, -1) == [broker.broker_id]


def test_a_live_process_is_neither_forgotten_nor_swept(broker, dead_broker, namespace, redis_client):
    ids = _send(broker, QUEUE, 1)
    dead_broker.do_fetch(QUEUE, 1)  # writes its heartbeat now: alive
    before = keys_calls(redis_client)

    assert sweep_dead_workers(broker, [QUEUE]) == 0

    assert redis_client.zscore(heartbeats_key(namespace), dead_broker.broker_id) is not None
    assert redis_client.smembers(acks_key(namespace, dead_broker.broker_id, QUEUE)) == ids
    assert keys_calls(redis_client) == before

"""The dead-worker sweep (``actors.broker.sweep_dead_workers``) on a real Redis.

Dramatiq's own maintenance runs ``KEYS <ns>:__acks__.<id>*`` for every dead entry of its
heartbeat set, and keeps an entry while that finds any ack set: a dead process whose ack sets
are on a queue no pool consumes stayed for ever, and every sweep (every 5 s) walked the whole
keyspace for it. The sweep checks the dead ids' ack sets with ``EXISTS`` first: ``KEYS`` runs
only while a dead process still holds messages on the sweeping pool's queues. A dead process
is forgotten only once ``SCAN`` finds no ack set of it on any queue: Dramatiq puts back only the
messages of the processes its heartbeat set lists.

``KEYS`` and ``SCAN`` are counted in ``INFO commandstats``, which counts the commands scripts run
too (``SLOWLOG`` does not list them). Those counts are the whole server's, so this module runs on
a ``redis-server`` of its own (:func:`redis_url` below): the run's shared one may have another
client at the time (a worker pool an earlier module left, whose Dramatiq maintenance runs
``KEYS`` on its own), and its calls would count as the sweep's.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import pytest
import redis
from dramatiq.common import current_millis

from actors.broker import _FORGET_DEAD, sweep_dead_workers
from actors.brokers import TrackedRedisBroker
from queues.dramatiq_keys import acks_key, heartbeats_key, queue_key
from tests.support.redis_server import RedisServer

QUEUE = "work"
OTHER = "other"  # declared, consumed by another pool
RETIRED = "old-prefix.work"  # a queue nobody here declares: a pool still on an old QUEUE_NAME_PREFIX


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A ``redis-server`` only this module's tests talk to: no other client's ``KEYS`` in its
    ``INFO commandstats``."""
    server = RedisServer(Path(tmp_path_factory.mktemp("sweep-redis")), appendonly=False)
    server.start()
    yield server
    server.stop(flush_to_disk=False)


@pytest.fixture
def redis_url(own_redis: RedisServer) -> str:
    """This module's own Redis, emptied (overrides the run's shared one; ``redis_client`` follows)."""
    own_redis.client().flushall()
    return own_redis.url


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


def calls(client: redis.Redis, command: str) -> int:
    """How many ``command`` commands Redis has run, scripts' included."""
    return int(client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def keys_calls(client: redis.Redis) -> int:
    return calls(client, "keys")


def scan_calls(client: redis.Redis) -> int:
    return calls(client, "scan")


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
    # Another process's ack set, whose id begins with this one's: not this one's.
    redis_client.sadd(acks_key(namespace, "gone-10", RETIRED), "m-1")
    dies(redis_client, namespace, "gone-1")
    before = keys_calls(redis_client)

    swept = sweep_dead_workers(broker, [QUEUE])

    assert keys_calls(redis_client) == before
    assert redis_client.zscore(heartbeats_key(namespace), "gone-1") is None
    assert swept == 0  # nothing was put back


def test_a_dead_process_holding_acks_only_on_a_queue_nobody_here_knows_keeps_its_entry(
        broker, namespace, redis_client, caplog):
    """``QUEUE_NAME_PREFIX`` changed while the old pools still consume the old names: the dead
    process's messages on those are put back only by Dramatiq, and only for a process its
    heartbeat set lists. Forgetting it stranded them for good. It is kept, told once, looked for
    with one ``SCAN`` (not one per sweep), and never with ``KEYS``."""
    caplog.set_level(logging.INFO, logger="actors.broker")
    redis_client.sadd(acks_key(namespace, "gone-2", RETIRED), "m-1", "m-2")
    dies(redis_client, namespace, "gone-2")
    keys_before, scans_before = keys_calls(redis_client), scan_calls(redis_client)

    for _ in range(3):
        assert sweep_dead_workers(broker, [QUEUE]) == 0  # nothing of this pool's to put back

    assert redis_client.zscore(heartbeats_key(namespace), "gone-2") is not None
    assert redis_client.smembers(acks_key(namespace, "gone-2", RETIRED)) == {"m-1", "m-2"}
    assert keys_calls(redis_client) == keys_before
    assert scan_calls(redis_client) == scans_before + 1  # remembered: not looked for on every sweep
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["dead worker process gone-2 holds unacked messages on queues this pool does not "
                        f"consume: {RETIRED}; a pool of those queues will put them back"]
    assert "forgot" not in caplog.text


def test_a_dead_process_kept_for_another_queue_is_looked_for_again_and_forgotten_once_it_holds_nothing(
        broker, namespace, redis_client, caplog):
    caplog.set_level(logging.INFO, logger="actors.broker")
    redis_client.sadd(acks_key(namespace, "gone-4", RETIRED), "m-1")
    dies(redis_client, namespace, "gone-4")
    sweep_dead_workers(broker, [QUEUE])
    scans = scan_calls(redis_client)
    later = 0.0  # the recheck time has passed (ten minutes later, by default)

    sweep_dead_workers(broker, [QUEUE], elsewhere_recheck=later)  # still there: kept, and not told again
    assert scan_calls(redis_client) == scans + 1
    assert redis_client.zscore(heartbeats_key(namespace), "gone-4") is not None
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1

    redis_client.delete(acks_key(namespace, "gone-4", RETIRED))  # a pool of that queue put them back
    sweep_dead_workers(broker, [QUEUE], elsewhere_recheck=later)
    assert redis_client.zscore(heartbeats_key(namespace), "gone-4") is None
    assert "forgot 1 dead worker process(es) holding no unacked message on any queue: gone-4" in caplog.text

    # Nothing of it is remembered: the same id dead again with an ack set elsewhere is told anew
    # (a finding still remembered would keep it quiet, and unscanned, for ten minutes).
    redis_client.sadd(acks_key(namespace, "gone-4", RETIRED), "m-2")
    dies(redis_client, namespace, "gone-4")
    sweep_dead_workers(broker, [QUEUE])
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


def test_a_dead_process_holding_messages_here_and_on_a_queue_nobody_here_knows_keeps_its_entry(
        broker, dead_broker, namespace, redis_client):
    """Its messages of this pool's queue are put back; those of the other queue wait in its ack
    set, its entry kept, for a pool of that queue."""
    ids = _send(broker, QUEUE, 2)
    dead_broker.do_fetch(QUEUE, 2)
    redis_client.sadd(acks_key(namespace, dead_broker.broker_id, RETIRED), "m-1")
    dies(redis_client, namespace, dead_broker.broker_id)

    assert sweep_dead_workers(broker, [QUEUE]) == 1
    assert set(redis_client.lrange(queue_key(namespace, QUEUE), 0, -1)) == ids
    for _ in range(2):  # then it holds nothing here
        assert sweep_dead_workers(broker, [QUEUE]) == 0

    assert redis_client.zscore(heartbeats_key(namespace), dead_broker.broker_id) is not None
    assert redis_client.smembers(acks_key(namespace, dead_broker.broker_id, RETIRED)) == {"m-1"}


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


def test_a_heartbeat_that_came_back_after_the_sweep_read_it_keeps_its_entry(broker, namespace, redis_client):
    """The race ``_FORGET_DEAD`` guards: the sweep read a stale heartbeat and found no ack set,
    then the process beat again (and may have fetched since). Forgetting it now would leave what
    it fetches to nobody, should it die; an entry still at or before the cutoff goes."""
    heartbeats = heartbeats_key(namespace)
    now = current_millis()
    cutoff = now - 1000  # what the sweep computed when it read the heartbeat set
    redis_client.zadd(heartbeats, {"came-back": now, "still-dead": now - 60_000, "at-the-cutoff": cutoff})
    forget = redis_client.register_script(_FORGET_DEAD)

    forgotten = forget(keys=[heartbeats], args=[cutoff, "came-back", "still-dead", "at-the-cutoff", "unknown"])

    assert sorted(forgotten) == ["at-the-cutoff", "still-dead"]
    assert redis_client.zrange(heartbeats, 0, -1, withscores=True) == [("came-back", float(now))]

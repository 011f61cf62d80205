"""What the broker puts back when a consumer is re-created after a broken connection, and
what it does when Redis ran a command whose reply was lost (redis-py then resends it).

A real ``TrackedRedisBroker`` on the test Redis: messages are fetched into this process's
ack set the way Dramatiq's consumer does it, then the consumer is re-created as Dramatiq does
after a connection error. Whatever no worker thread holds must go back to the queue; what a
worker thread is running must stay where it is (putting it back would run it twice). Lost
replies are real: a TCP proxy cuts the connection after Redis ran the command.
"""

from __future__ import annotations

import json

import dramatiq
import pytest
import redis
from dramatiq.errors import DecodeError

from actors.brokers import ENQUEUE_MARKER_TTL_MS, TrackedRedisBroker
from tests.support.reply_dropper import ReplyDroppingProxy

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


@pytest.fixture
def proxy(redis_server) -> ReplyDroppingProxy:
    proxy = ReplyDroppingProxy(redis_server.port)
    yield proxy
    proxy.close()


def _message(i: int) -> dramatiq.Message:
    return dramatiq.Message(queue_name=QUEUE, actor_name="a", args=(i,), kwargs={}, options={})


def test_dramatiqs_own_enqueue_pushes_twice_when_its_reply_is_lost(redis_url, proxy, redis_client):
    """The hazard the next test guards against: redis-py resends, Dramatiq pushes the id twice."""
    from dramatiq.brokers.redis import RedisBroker

    plain = RedisBroker(client=redis.Redis(port=proxy.port), namespace="rc", middleware=[])
    plain.declare_queue(QUEUE)
    plain.client.ping()
    proxy.drop_reply_to(b"enqueue")
    sent = plain.enqueue(_message(0))
    assert proxy.dropped == 1
    assert redis_client.lrange(f"rc:{QUEUE}", 0, -1) == [sent.options["redis_message_id"]] * 2


def test_an_enqueue_whose_reply_was_lost_is_pushed_once(redis_url, proxy, redis_client):
    broker = TrackedRedisBroker(client=redis.Redis(port=proxy.port), namespace="rc", middleware=[])
    broker.declare_queue(QUEUE)
    broker.client.ping()
    proxy.drop_reply_to(b"__enqueued__")
    sent = broker.enqueue(_message(0))  # Redis pushed it; redis-py resent the call on a new connection

    assert proxy.dropped == 1
    assert redis_client.lrange(f"rc:{QUEUE}", 0, -1) == [sent.options["redis_message_id"]]
    assert redis_client.hlen(f"rc:{QUEUE}.msgs") == 1
    marker_ttl = redis_client.pttl(f"rc:__enqueued__.{sent.options['redis_message_id']}")
    assert 10 * 60 * 1000 < marker_ttl <= ENQUEUE_MARKER_TTL_MS  # outlives redis-py's resends, then goes


def test_a_fetch_whose_reply_was_lost_strands_nothing_in_a_live_consumer(redis_url, proxy, redis_client, caplog):
    """The resent fetch takes the next batch; the first one comes back at the next reconcile."""
    broker = TrackedRedisBroker(client=redis.Redis(port=proxy.port), namespace="rc", middleware=[],
                                reconcile_interval=0)
    broker.declare_queue(QUEUE)
    ids = _send(broker, 4)
    consumer = broker.consume(QUEUE, prefetch=2, timeout=100)
    proxy.drop_reply_to(b"fetch")

    delivered = []
    for _ in range(20):
        message = next(consumer)
        if message is None:
            break
        delivered.append(message.options["redis_message_id"])
        consumer.ack(message)  # the worker thread finished it

    assert proxy.dropped == 1
    assert sorted(delivered) == sorted(ids)  # each once: nothing stranded, nothing twice
    assert _acks(redis_client, broker) == set()
    assert f"put 2 message(s) of {QUEUE} back that nobody held" in caplog.text


def test_a_live_consumers_reconcile_leaves_running_messages_alone(broker, redis_client):
    broker.reconcile_interval = 0
    ids = _send(broker, 2)
    consumer = broker.consume(QUEUE, prefetch=2, timeout=100)
    running = [next(consumer), next(consumer)]  # both handed to worker threads, none acked yet

    assert next(consumer) is None  # an empty cache: reconcile, then an empty fetch

    assert _acks(redis_client, broker) == set(ids)
    assert redis_client.llen(f"rc:{QUEUE}") == 0
    for message in running:
        consumer.ack(message)
    assert _acks(redis_client, broker) == set()


def test_a_prepared_enqueue_tried_again_pushes_the_message_once(broker, redis_client):
    """Backoff tries a retry's enqueue until it is taken. A try that reached Redis but failed to
    say so (its reply lost beyond redis-py's own resends) and the next try must not push the
    retry twice: every try of one prepared enqueue pushes the same Redis id."""
    push = broker.prepare_enqueue(_message(1), delay=60_000)
    first = push()
    due = first.options["eta"]  # read before the next try: push() hands back the one prepared message
    again = push()
    assert again.options["eta"] == due  # the next try did not move the due time
    assert first.options["redis_message_id"] == again.options["redis_message_id"]
    assert redis_client.lrange(f"rc:{QUEUE}.DQ", 0, -1) == [first.options["redis_message_id"]]
    assert redis_client.hlen(f"rc:{QUEUE}.DQ.msgs") == 1
    assert first.options["eta"] == again.options["eta"]  # one due time, not a later one per try
    # What Redis holds, written by the first try alone (the next one pushed nothing), says it too.
    stored = json.loads(redis_client.hget(f"rc:{QUEUE}.DQ.msgs", first.options["redis_message_id"]))
    assert stored["options"]["eta"] == first.options["eta"]

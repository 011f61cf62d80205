"""Clearing a queue (``admin.py clear``, the dashboard's "Empty queue") drops what waits in it,
and only that: its dead letters stay, and the jobs workers are running end normally.

Dramatiq's ``flush`` (what the clear called) deletes, on Redis, the queue's list, the bodies of
its messages, running ones included, and its dead letters; on RabbitMQ it purges the
dead-letter queue too. Real Redis with real workers; RabbitMQ at ``RABBITMQ_URL`` (the test
skips, saying why, when it does not answer) with Dramatiq's own consumer doing the nacks.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
from dramatiq import Message
from dramatiq.common import dq_name, xq_name

from queues.dramatiq_keys import acks_key
from settings import load_settings
from tests.pipeline.conftest import wait_until
from tests.support.rabbitmq import RABBITMQ_URL, delete_queues, skip_unless_rabbitmq

#: Seconds before the rate-limited job's retry: long enough to clear the queue before it is due.
RETRY_AFTER = 8.0
CLEARING_MODULES = ("tests.support.job_actors", "tests.pipeline.queue_clearing_actors")


@pytest.fixture
def clearing_manager(manager):
    """The pipeline tests' manager, with the holding actor declared here too."""
    import tests.pipeline.queue_clearing_actors  # noqa: F401

    return manager


def _figures(manager) -> tuple[int | None, ...]:
    """The default queue's waiting, delayed, in progress and dead counts."""
    stats = manager.queue_stats()["default"]
    return stats.waiting, stats.delayed, stats.in_progress, stats.dead


def _delayed_held_by_workers(manager, redis_client) -> int:
    """How many messages of ``default``'s delay queue workers fetched and hold until they are due."""
    pattern = acks_key(manager.settings.dramatiq_namespace, "*", dq_name("default"))
    return sum(redis_client.scard(key) for key in redis_client.scan_iter(match=pattern))


def _released(redis_client, job_id: str) -> None:
    from tests.pipeline.queue_clearing_actors import release_key

    redis_client.set(release_key(job_id), 1)


def test_clearing_a_queue_drops_what_waits_and_keeps_dead_letters_and_running_jobs(
        clearing_manager, start_pool, redis_client, traces):
    from tests.pipeline.queue_clearing_actors import held_key

    manager = clearing_manager
    # Two threads and a prefetch of two: once two jobs run, what comes next waits in the list.
    start_pool(["default"], threads=2, modules=CLEARING_MODULES, env={"dramatiq_queue_prefetch": "2"})
    dead = manager.enqueue_job("t_fail_times", failures=9, kind="bug", retry=0)
    assert manager.wait_for(dead.id, timeout=20).status == "failed"
    wait_until(lambda: manager.queue_stats()["default"].dead == 1, what="the dead letter")
    delayed = manager.enqueue_job("t_fail_times", failures=1, kind="rate", retry_after=RETRY_AFTER)
    wait_until(lambda: manager.queue_stats()["default"].delayed == 1, what="the delayed retry")
    # As in production, the worker fetched it at once and holds it until due (not in the list).
    wait_until(lambda: _delayed_held_by_workers(manager, redis_client) == 1, what="the retry held by the worker")
    retry_at = manager.get_job(delayed.id).retry_at
    finishing = manager.enqueue_job("t_clear_held")
    failing = manager.enqueue_job("t_clear_held", fail=True)
    wait_until(lambda: redis_client.exists(held_key(finishing.id), held_key(failing.id)) == 2, what="both running")
    waiting = [manager.enqueue_job("t_noop") for _ in range(3)]
    assert _figures(manager) == (3, 1, 2, 1)  # waiting, delayed, in progress, dead
    assert time.time() < retry_at  # the retry is still delayed

    cleared, canceled = manager.clear_and_cancel("default")

    assert cleared == {"default": 4} and canceled == 4  # three waiting, one delayed
    assert _figures(manager) == (0, 0, 2, 1)
    assert {manager.get_job_status(j.id) for j in (*waiting, delayed)} == {"canceled"}
    assert {manager.get_job_status(j.id) for j in (finishing, failing)} == {"started"}
    # The running jobs end as they would have: one succeeds, the other's failure is dead-lettered.
    _released(redis_client, finishing.id)
    _released(redis_client, failing.id)
    assert manager.wait_for(finishing.id, timeout=20).status == "succeeded"
    assert manager.wait_for(failing.id, timeout=20).status == "failed"
    wait_until(lambda: manager.queue_stats()["default"].dead == 2, what="the running job's dead letter")
    # The retry a worker held in memory when the queue was cleared comes up when due and is
    # skipped (its record is canceled): once it left the worker's delay queue, a job sent after
    # it runs, and it did not.
    wait_until(lambda: not _delayed_held_by_workers(manager, redis_client), timeout=RETRY_AFTER + 10,
               what="the held retry coming up")
    marker = manager.enqueue_job("t_noop")
    assert manager.wait_for(marker.id, timeout=20).status == "succeeded"
    assert traces.runs(delayed.id) == 1 and manager.get_job_status(delayed.id) == "canceled"
    assert [traces.runs(j.id) for j in waiting] == [0, 0, 0]
    wait_until(lambda: _figures(manager) == (0, 0, 0, 2), what="an empty queue and two dead letters")


def test_clearing_a_queue_keeps_the_deliveries_waiting_in_it(clearing_manager, redis_client):
    """An operator's clear of the high queue dropped the deliveries waiting there too: a finished
    job's result (the user's chat stayed on "preparing the message · 95%" for good) and the
    notices telling a cleared job's users it was stopped (a second clear). They have no record
    to send them again from. No worker runs here: everything waits."""
    from queues.dramatiq_keys import messages_key, queue_key
    from queues.manager import DELIVERY_ACTOR, delivery_message

    manager = clearing_manager
    ns = manager.settings.dramatiq_namespace
    jobs = [manager.enqueue_job("t_high", requester={"user_id": u, "chat_id": u}) for u in (71, 72)]
    manager.broker.enqueue(delivery_message("finished-job", "high"))  # a result on its way
    manager.broker.enqueue(delivery_message("flooded-job", "high"), delay=60_000)  # one waiting out a 429
    manager.broker.enqueue(Message(queue_name="high", actor_name="t_high", args=(), kwargs={}, options={}),
                           delay=60_000)

    def actors(key: str) -> list[str]:
        bodies = redis_client.hgetall(messages_key(ns, key))
        return sorted(json.loads(bodies[i])["actor_name"] for i in redis_client.lrange(queue_key(ns, key), 0, -1))

    cleared, canceled = manager.clear_and_cancel("high")
    assert cleared == {"high": 3} and canceled == 2  # the two jobs and the delayed one; not the deliveries
    # The result still waits, first as it was, then the two stopped jobs' notices; the delayed
    # delivery still waits out its 429.
    assert actors("high") == [DELIVERY_ACTOR] * 3
    assert json.loads(redis_client.hget(messages_key(ns, "high"),
                                        redis_client.lindex(queue_key(ns, "high"), 0)))["args"] == ["finished-job"]
    assert actors(dq_name("high")) == [DELIVERY_ACTOR]
    # Cleared again (the dashboard's button pressed twice): the notices stay too.
    assert manager.clear_and_cancel("high") == ({"high": 0}, 0)
    assert actors("high") == [DELIVERY_ACTOR] * 3
    assert {manager.get_job_status(j.id) for j in jobs} == {"canceled"}


# --- RabbitMQ -----------------------------------------------------------------------------------


@pytest.fixture
def rabbit_manager(redis_url: str) -> Iterator:
    """A queue manager on RabbitMQ with queues of its own (a random prefix), deleted afterwards."""
    skip_unless_rabbitmq()
    from tests.scaleout.helpers import manager_for

    prefix = f"tclear{uuid.uuid4().hex[:8]}_"
    manager = manager_for(load_settings(broker="rabbitmq", rabbitmq_url=RABBITMQ_URL, queue_name_prefix=prefix))
    yield manager
    manager.broker.close()
    delete_queues(RABBITMQ_URL, prefix)


def _message(queue: str) -> Message:
    return Message(queue_name=queue, actor_name="t_low", args=(), kwargs={}, options={})


def test_clearing_a_rabbitmq_queue_keeps_its_dead_letters_and_the_messages_being_run(rabbit_manager):
    manager = rabbit_manager
    broker, queue = manager.broker, manager.settings.queue_name_prefix + "low"

    def counts() -> tuple[int, int, int]:
        return broker.get_queue_message_counts(queue)

    broker.enqueue(_message(queue))
    broker.enqueue(_message(queue))
    consumer = broker.consume(queue, prefetch=1, timeout=5000)  # Dramatiq's own, as a worker's
    try:
        doomed = next(consumer)
        consumer.nack(doomed)  # dead-lettered
        running = next(consumer)  # taken, not acked: a job in progress
        wait_until(lambda: counts()[2] == 1, what="the dead letter")
        for _ in range(3):
            broker.enqueue(_message(queue))
        broker.enqueue(_message(queue), delay=60_000)
        wait_until(lambda: counts() == (3, 1, 1), what="the waiting and delayed messages")  # RabbitMQ routes on its own time

        assert manager.clear_queues(queue) == {queue: 4}  # three waiting, one delayed

        assert counts() == (0, 0, 1)
        consumer.nack(running)  # the job in progress fails after the clear: dead-lettered too
        consumer.connection.process_data_events(time_limit=1)  # the nack is sent from the consumer's thread
        wait_until(lambda: counts()[2] == 2, what="the running job's dead letter")
    finally:
        consumer.close()
    assert counts() == (0, 0, 2) and xq_name(queue) == f"{queue}.XQ"

"""``BROKER=rabbitmq``: the same actors, middleware and behaviour on RabbitMQ (``RABBITMQ_URL``).

Real RabbitMQ (the test skips when it does not answer), real ``dramatiq`` workers, job records
in the session's Redis (they always live in Redis). Every run uses its own queue prefix
(``t<random>_``), so nothing collides with other users of the server, and deletes its queues.
Retry timing runs on the scaled schedule 0.1/0.3/0.9 s from ``tests/conftest.py``.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from settings import Settings, load_settings
from tests.scaleout.helpers import Traces, manager_for, wait_until
from tests.support.rabbitmq import BASES, RABBITMQ_URL, delete_queues, skip_unless_rabbitmq
from tests.support.workers import ROOT, WorkerPool


@dataclass
class Rabbit:
    url: str
    prefix: str
    settings: Settings

    @property
    def env(self) -> dict[str, str]:
        return {"BROKER": "rabbitmq", "RABBITMQ_URL": self.url, "QUEUE_NAME_PREFIX": self.prefix}

    def queue(self, base: str) -> str:
        return self.prefix + base


@pytest.fixture(scope="module")
def rabbit(redis_server) -> Iterator[Rabbit]:
    """This module's RabbitMQ settings with a unique queue prefix; its queues deleted at the end."""
    skip_unless_rabbitmq()
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    settings = load_settings(broker="rabbitmq", rabbitmq_url=RABBITMQ_URL, queue_name_prefix=prefix)
    yield Rabbit(RABBITMQ_URL, prefix, settings)
    delete_queues(RABBITMQ_URL, prefix)


@pytest.fixture
def rabbit_manager(rabbit: Rabbit, redis_url: str):
    """A queue manager on a RabbitMQ broker built by ``build_broker`` (records in Redis)."""
    manager = manager_for(rabbit.settings)
    yield manager
    manager.broker.close()


POOL_BASES = ("high", "default")  # nobody consumes ``low``: its depth is what the stats test counts


@pytest.fixture(scope="module")
def rabbit_pools(rabbit: Rabbit, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[WorkerPool]]:
    """Two worker pools (two consumers) on the prefixed high/default queues, started together."""
    logs = tmp_path_factory.mktemp("rabbit-workers")
    pools = [WorkerPool(queues=[rabbit.queue(b) for b in POOL_BASES], threads=4, env=rabbit.env,
                        log_path=logs / f"pool-{i}.log") for i in range(2)]
    try:
        for pool in pools:
            pool.start(wait=False)
        for pool in pools:
            pool.wait_ready(timeout=60)
        yield pools
    finally:
        for pool in pools:
            pool.stop(graceful=False)


@pytest.fixture
def pools(rabbit_pools: list[WorkerPool], redis_url: str) -> list[WorkerPool]:
    """The module's live pools, back in the (flushed) worker registry before the test starts."""
    live = [p for p in rabbit_pools if p.process is not None and p.process.poll() is None]
    for pool in live:
        pool.wait_ready(timeout=10)
    return live


def _gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


def test_queue_stats_say_what_rabbitmq_cannot_count(rabbit, rabbit_manager):
    """Waiting is RabbitMQ's ready count, dead its dead-letter queue's (nothing consumes it);
    delayed and in progress are None, not guesses."""
    for _ in range(3):
        rabbit_manager.enqueue_job("t_low")
    stats = rabbit_manager.queue_stats()
    assert set(stats) == {rabbit.queue(b) for b in BASES}
    low = stats[rabbit.queue("low")]
    assert (low.waiting, low.delayed, low.in_progress, low.dead) == (3, None, None, 0)
    assert stats[rabbit.queue("high")].waiting == 0

    env = {**os.environ, **rabbit.env}
    out = subprocess.run([sys.executable, "admin.py", "status", "--json"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode in (0, 1), out.stderr  # 1: work waits with no worker (true here)
    data = json.loads(out.stdout)
    assert data["broker"] == "rabbitmq"
    shown = data["queues"][rabbit.queue("low")]
    assert shown["waiting"] == 3
    assert shown["delayed"] is None and shown["in_progress"] is None and shown["dead"] == 0
    assert '"delayed": null' in out.stdout
    rabbit_manager.broker.flush(rabbit.queue("low"))


def test_queue_stats_outlive_a_connection_rabbitmq_dropped(rabbit, rabbit_manager):
    """RabbitMQ restarted, or closed an idle connection: the thread's cached channel is dead. The
    next count opens a new connection instead of failing on the dead one from then on."""
    rabbit_manager.enqueue_job("t_low")
    assert rabbit_manager.queue_stats()[rabbit.queue("low")].waiting == 1
    rabbit_manager.broker.connection.close()  # as a broker restart leaves it
    assert rabbit_manager.queue_stats()[rabbit.queue("low")].waiting == 1
    assert rabbit_manager.queue_stats()[rabbit.queue("low")].waiting == 1
    rabbit_manager.broker.flush(rabbit.queue("low"))


def test_a_job_is_told_its_place_in_the_queue_on_rabbitmq_too(rabbit, rabbit_manager):
    """The bot's "queued, place N": RabbitMQ's ready count (it said "place 1" whatever the backlog)."""
    assert [rabbit_manager.enqueue_job("t_low").position for _ in range(3)] == [1, 2, 3]
    rabbit_manager.broker.flush(rabbit.queue("low"))


def test_a_job_waiting_too_long_on_rabbitmq_raises_the_stale_jobs_alert(rabbit, rabbit_manager, redis_client):
    """RabbitMQ's queues cannot be looked into, so the oldest waiting age was always unknown
    there: neither ``stale_jobs`` nor ``wait_time`` (a queue where nothing starts has no p95) ever
    fired. It is read from the job records now, for each queue even behind another queue's longer
    backlog. Nobody consumes ``low`` or ``high`` here; their jobs are made old by their records'
    times (and the status index's scores), as that long a wait would."""
    import time

    from queues.alert_rules import Thresholds
    from queues.monitoring import OLDEST_SCAN, QueueMonitor

    now = time.time()
    index = rabbit_manager.jobs.index_key("status", "queued")

    def aged(handle_id: str, age: float) -> None:
        redis_client.hset(rabbit_manager.jobs.job_key(handle_id), "enqueued_at", repr(now - age))
        redis_client.zadd(index, {handle_id: now - age})

    try:
        # A backlog on low longer than a page of the scan.
        for i in range(OLDEST_SCAN + 5):
            aged(rabbit_manager.enqueue_job("t_low").id, 3600 - i)
        high = rabbit_manager.enqueue_job("t_high")
        aged(high.id, 125)
        # The monitor reads the queues through the RabbitMQ manager (this process's own broker is Redis).
        monitor = QueueMonitor(rabbit.settings, job_store=rabbit_manager.jobs, telegram=None,
                               thresholds=Thresholds(queued_max_age=60), manager=rabbit_manager)
        snap = monitor.tick()
        assert 3600 <= snap["queues"][rabbit.queue("low")]["oldest_waiting_age"] < 3610
        assert 125 <= snap["queues"][rabbit.queue("high")]["oldest_waiting_age"] < 135
        assert snap["queues"][rabbit.queue("default")]["oldest_waiting_age"] is None
        opened = [(a.rule, a.subject) for a in monitor.open_alerts()]
        assert {("stale_jobs", rabbit.queue("high")), ("stale_jobs", rabbit.queue("low"))} <= set(opened), opened
    finally:
        for base in ("low", "high"):
            rabbit_manager.broker.flush(rabbit.queue(base))


def test_a_publish_after_an_idle_spell_renews_the_connection_without_errors(rabbit, rabbit_manager, caplog):
    """RabbitMQ drops a connection that sent no heartbeat for its timeout (60 s), and a thread
    that publishes now and then sends none while idle: the next publish failed on the dead
    socket, and pika logged three ERRORs with tracebacks (Dramatiq reconnected and the message
    went out). The dropped socket is made here by shutting it down; the idle spell by moving the
    thread's last use back, as :data:`IDLE_RENEW` seconds of waiting would."""
    import logging
    import socket

    broker = rabbit_manager.broker
    rabbit_manager.enqueue_job("t_low")
    idle = broker.connection
    idle._impl._transport._sock.shutdown(socket.SHUT_RDWR)  # as RabbitMQ's close of it leaves it
    broker.state.used_at -= broker.idle_renew + 1
    caplog.set_level(logging.INFO)
    handle = rabbit_manager.enqueue_job("t_low")
    assert handle.position == 2  # it went out, on a new connection
    assert broker.connection is not idle and broker.connection.is_open
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text[-2000:]
    # Used within the spell, a connection is kept.
    kept = broker.connection
    rabbit_manager.enqueue_job("t_low")
    assert broker.connection is kept
    rabbit_manager.broker.flush(rabbit.queue("low"))


def test_a_short_heartbeat_renews_the_connection_sooner(rabbit, redis_url):
    """A heartbeat timeout shorter than the renewal's 25 s (``?heartbeat=4``: RabbitMQ drops a
    silent connection after about 4 s): renewed after half of it, the one it negotiated."""
    from actors.rabbit_broker import IdleSafeRabbitmqBroker

    broker = IdleSafeRabbitmqBroker(url=rabbit.url.rstrip("/") + "/%2F?heartbeat=4", middleware=[])
    try:
        assert broker.channel.is_open  # (this thread's connection, open)
        assert broker._renew_after() == 2.0
    finally:
        broker.close()
    usual = IdleSafeRabbitmqBroker(url=rabbit.url, middleware=[])  # RabbitMQ's default heartbeat, 60 s
    try:
        assert usual.channel.is_open
        assert usual._renew_after() == usual.idle_renew == 25.0  # (25 s is under half of 60)
    finally:
        usual.close()


def test_clear_cancels_the_dropped_jobs_on_rabbitmq_too(rabbit, rabbit_manager):
    """`admin.py clear` read the dropped jobs' ids from the Redis broker's hash: under RabbitMQ it
    canceled none, and their users were left with "queued" until the record expired."""
    handles = [rabbit_manager.enqueue_job("t_low") for _ in range(2)]
    env = {**os.environ, **rabbit.env}
    out = subprocess.run([sys.executable, "admin.py", "clear", "low", "--yes", "--json"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["cleared"] == {rabbit.queue("low"): 2} and data["records_canceled"] == 2
    assert {rabbit_manager.get_job(h.id).status for h in handles} == {"canceled"}


def test_a_job_succeeds_on_rabbitmq(rabbit, pools, rabbit_manager, traces: Traces):
    handle = rabbit_manager.enqueue_job("t_noop", value=41)
    assert handle.queue == rabbit.queue("default")
    record = rabbit_manager.wait_for(handle.id, timeout=20)
    assert record.status == "succeeded" and record.result == {"value": 41}
    assert traces.runs(handle.id) == 1
    assert [t["outcome"] for t in record.timeline] == ["succeeded"]
    # The worker announced itself (heartbeats stay in Redis) with the prefixed queues it consumes.
    live = rabbit_manager.workers_by_queue()
    assert all(live.get(rabbit.queue(b)) == len(pools) for b in POOL_BASES), live


def test_transient_errors_retry_on_the_schedule_then_fail_finally(pools, rabbit_manager, traces):
    ok = rabbit_manager.enqueue_job("t_fail_times", failures=3)
    doomed = rabbit_manager.enqueue_job("t_fail_times", failures=99)
    record = rabbit_manager.wait_for(ok.id, timeout=30)
    assert record.status == "succeeded" and record.result == {"runs": 4}
    assert [t["outcome"] for t in record.timeline] == ["retrying", "retrying", "retrying", "succeeded"]
    # Each retry waits at least its scheduled delay. A delayed message sits in the worker until its
    # consumer wakes, which an idle worker does once a second (Dramatiq's worker timeout), so a
    # retry may run up to ~1 s late, more on a loaded machine: the upper bound leaves 2.5 s, as the
    # Redis test does, which still rules out Dramatiq's own backoff (15 s and up).
    for gap, delay in zip(_gaps(traces.times(ok.id)), (0.1, 0.3, 0.9), strict=True):
        assert delay - 0.02 <= gap < delay + 2.5, (gap, delay)
    final = rabbit_manager.wait_for(doomed.id, timeout=30)
    assert final.status == "failed" and final.attempts == 4
    assert traces.runs(doomed.id) == 4  # first try + QUEUE_MAX_RETRIES, never more
    assert final.error["type"] == "UpstreamError"


def test_a_permanent_failure_fails_at_once_and_only_ours_is_dead_lettered(rabbit, pools, rabbit_manager, traces):
    def dead_letters() -> int:
        return rabbit_manager.broker.get_queue_message_counts(rabbit.queue("default"))[2]

    before = dead_letters()
    refused = rabbit_manager.enqueue_job("t_fail_times", failures=1, kind="permanent")  # the user's mistake
    record = rabbit_manager.wait_for(refused.id, timeout=20)
    assert record.status == "failed" and record.attempts == 1
    assert record.error["code"] == "not_found" and record.error["retryable"] is False
    assert traces.runs(refused.id) == 1
    ours = rabbit_manager.enqueue_job("t_fail_times", failures=1, kind="auth")  # FACEIT refused our key
    record = rabbit_manager.wait_for(ours.id, timeout=20)
    assert record.status == "failed" and record.attempts == 1 and record.error["code"] == "auth"
    # Ours was rejected into RabbitMQ's dead-letter queue, not requeued or dropped; the user's
    # mistake was acked (it ended earlier: had it been rejected, it would be there by now too).
    wait_until(lambda: dead_letters() >= before + 1, timeout=10, what="the dead letter")
    assert dead_letters() == before + 1
    # Counted as on Redis (it was "n/a", and the health score never saw it), and dropped by
    # purge-dead (it refused to run on RabbitMQ), whole: RabbitMQ cannot pick by age.
    assert rabbit_manager.queue_stats()[rabbit.queue("default")].dead == before + 1
    env = {**os.environ, **rabbit.env}

    def purge(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "admin.py", "purge-dead", "--queue", "default", *args], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=60)

    by_age = purge("--older-than", "1h", "--yes")
    assert by_age.returncode != 0 and by_age.stderr.strip().count("\n") == 0, by_age.stderr
    assert "--older-than needs the Redis broker" in by_age.stderr and dead_letters() == before + 1
    done = purge("--yes", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["purged"] == {rabbit.queue("default"): before + 1}
    assert dead_letters() == 0


def test_a_sigkilled_workers_job_is_redelivered_and_succeeds(pools, rabbit_manager, traces):
    """RabbitMQ puts the unacked message back as soon as the dead worker's connection drops, and
    the other pool (another consumer) runs it: no heartbeat timeout, no restart needed.

    Runs last in the module: it kills one of the two pools.
    """
    assert len(pools) == 2
    handle = rabbit_manager.enqueue_job("t_slow", seconds=1.5, steps=15)
    wait_until(lambda: traces.runs(handle.id) == 1, what="first run")
    running_pid = wait_until(lambda: next((w.pid for w in rabbit_manager.worker_registry().workers()
                                           if handle.id in w.current_jobs), None), what="running worker")
    victim = next(p for p in pools if running_pid in p.worker_pids())
    victim.stop(graceful=False)  # SIGKILL to its whole process group
    record = rabbit_manager.wait_for(handle.id, timeout=30)
    assert record.status == "succeeded"
    assert traces.runs(handle.id) == 2 and traces.runs(handle.id, "done") == 1
    assert [t.get("outcome") for t in record.timeline] == ["worker_lost", "succeeded"]
    assert record.deliveries == 2

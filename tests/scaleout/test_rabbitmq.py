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
from tests.support.workers import ROOT, WorkerPool

RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
BASES = ("high", "default", "low")


def _rabbit_answers(url: str) -> str | None:
    """None when RabbitMQ accepts a connection, else why not (one line)."""
    import pika

    params = pika.URLParameters(url)
    params.socket_timeout = 2
    params.blocked_connection_timeout = 2
    params.connection_attempts = 1
    try:
        pika.BlockingConnection(params).close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _delete_queues(url: str, prefix: str) -> None:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        for base in BASES:
            for suffix in ("", ".DQ", ".XQ"):
                channel.queue_delete(queue=f"{prefix}{base}{suffix}")
    finally:
        connection.close()


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
    problem = _rabbit_answers(RABBITMQ_URL)
    if problem:
        pytest.skip(f"RabbitMQ does not answer on {RABBITMQ_URL} ({problem})")
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    settings = load_settings(broker="rabbitmq", rabbitmq_url=RABBITMQ_URL, queue_name_prefix=prefix)
    yield Rabbit(RABBITMQ_URL, prefix, settings)
    _delete_queues(RABBITMQ_URL, prefix)


@pytest.fixture
def rabbit_manager(rabbit: Rabbit, redis_url: str):
    """A queue manager on a RabbitMQ broker built by ``build_broker`` (records in Redis)."""
    manager = manager_for(rabbit.settings)
    yield manager
    manager.broker.close()


@pytest.fixture
def rabbit_pool(rabbit: Rabbit, start_pool):
    """Start a worker pool on RabbitMQ for the prefixed queues of ``bases``."""

    def start(bases: tuple[str, ...] = BASES, **kwargs) -> WorkerPool:
        return start_pool([rabbit.queue(b) for b in bases], env=rabbit.env, **kwargs)

    return start


def _gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


def test_a_job_succeeds_on_rabbitmq(rabbit, rabbit_pool, rabbit_manager, traces: Traces):
    pool = rabbit_pool()
    handle = rabbit_manager.enqueue_job("t_noop", value=41)
    assert handle.queue == rabbit.queue("default")
    record = rabbit_manager.wait_for(handle.id, timeout=20)
    assert record.status == "succeeded" and record.result == {"value": 41}
    assert traces.runs(handle.id) == 1
    assert [t["outcome"] for t in record.timeline] == ["succeeded"]
    # The worker announced itself (heartbeats stay in Redis) with the prefixed queues it consumes.
    live = rabbit_manager.workers_by_queue()
    assert all(live.get(rabbit.queue(b)) == 1 for b in BASES), live
    assert pool.process.poll() is None


def test_transient_errors_retry_on_the_schedule_then_fail_finally(rabbit_pool, rabbit_manager, traces):
    rabbit_pool(("default",))
    ok = rabbit_manager.enqueue_job("t_fail_times", failures=3)
    doomed = rabbit_manager.enqueue_job("t_fail_times", failures=99)
    record = rabbit_manager.wait_for(ok.id, timeout=30)
    assert record.status == "succeeded" and record.result == {"runs": 4}
    assert [t["outcome"] for t in record.timeline] == ["retrying", "retrying", "retrying", "succeeded"]
    for gap, delay in zip(_gaps(traces.times(ok.id)), (0.1, 0.3, 0.9), strict=True):
        assert delay - 0.02 <= gap < delay + 1.0, (gap, delay)
    final = rabbit_manager.wait_for(doomed.id, timeout=30)
    assert final.status == "failed" and final.attempts == 4
    assert traces.runs(doomed.id) == 4  # first try + QUEUE_MAX_RETRIES, never more
    assert final.error["type"] == "UpstreamError"


def test_a_permanent_failure_fails_at_once(rabbit_pool, rabbit_manager, traces):
    rabbit_pool(("default",))
    handle = rabbit_manager.enqueue_job("t_fail_times", failures=1, kind="permanent")
    record = rabbit_manager.wait_for(handle.id, timeout=20)
    assert record.status == "failed" and record.attempts == 1
    assert record.error["code"] == "not_found" and record.error["retryable"] is False
    assert traces.runs(handle.id) == 1


def test_a_sigkilled_workers_job_is_redelivered_and_succeeds(rabbit_pool, rabbit_manager, traces):
    """RabbitMQ puts back the unacked message as soon as the dead worker's connection drops."""
    pool = rabbit_pool(("default",))
    handle = rabbit_manager.enqueue_job("t_slow", seconds=1.5, steps=15)
    wait_until(lambda: traces.runs(handle.id) == 1, what="first run")
    pool.kill_worker()
    pool.stop(graceful=False)
    rabbit_pool(("default",))  # the operator's supervisor starts the pool again
    record = rabbit_manager.wait_for(handle.id, timeout=30)
    assert record.status == "succeeded"
    assert traces.runs(handle.id) == 2 and traces.runs(handle.id, "done") == 1
    assert [t.get("outcome") for t in record.timeline] == ["worker_lost", "succeeded"]


def test_queue_stats_say_what_rabbitmq_cannot_count(rabbit, rabbit_manager):
    """Waiting is RabbitMQ's ready count; delayed, in progress and dead are None, not guesses."""
    for _ in range(3):
        rabbit_manager.enqueue_job("t_low")
    stats = rabbit_manager.queue_stats()
    assert set(stats) == {rabbit.queue(b) for b in BASES}
    low = stats[rabbit.queue("low")]
    assert (low.waiting, low.delayed, low.in_progress, low.dead) == (3, None, None, None)
    assert stats[rabbit.queue("high")].waiting == 0

    env = {**os.environ, **rabbit.env}
    out = subprocess.run([sys.executable, "admin.py", "status", "--json"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode in (0, 1), out.stderr  # 1: work waits with no worker (true here)
    data = json.loads(out.stdout)
    assert data["broker"] == "rabbitmq"
    shown = data["queues"][rabbit.queue("low")]
    assert shown["waiting"] == 3
    assert shown["delayed"] is None and shown["in_progress"] is None and shown["dead"] is None
    assert '"delayed": null' in out.stdout
    rabbit_manager.broker.flush(rabbit.queue("low"))

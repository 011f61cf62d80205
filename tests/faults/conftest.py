"""Fixtures for the fault suite: real worker pools, a queue manager, traces and broker checks.

The suite breaks real parts (it stops and restarts the session's ``redis-server``, makes the
sandbox FACEIT API misbehave) while real ``dramatiq`` workers run, and then checks that no job
was lost or run twice and that nothing is left on the broker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from tests.support.faceit_sandbox import FaceitSandbox


def wait_until(predicate: Callable[[], Any], timeout: float = 20, interval: float = 0.05,
               message: str | Callable[[], str] = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = message() if callable(message) else message
            raise AssertionError(f"condition not met within {timeout} s {detail}".rstrip())
        time.sleep(interval)


@pytest.fixture
def manager(redis_url: str, redis_server):
    """A queue manager on the test Redis, with the test actors declared.

    Checks that this process's Dramatiq broker talks to the test Redis: ``actors`` builds it
    at first import from the environment of that moment, and a broker built before the
    session set ``REDIS_URL`` would send these tests' messages to another Redis.
    """
    import dramatiq

    import actors  # noqa: F401
    import tests.support.job_actors  # noqa: F401
    from queues.manager import QueueManager
    from queues.runtime import reset_runtime

    reset_runtime()
    port = dramatiq.get_broker().client.connection_pool.connection_kwargs.get("port")
    assert port == redis_server.port, f"the Dramatiq broker of this process talks to port {port}"
    return QueueManager()


class Traces:
    """What the test actors recorded (``t:runs:<job id>``), read in pipelines."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def runs(self, job_ids: list[str], name: str = "runs") -> list[int]:
        pipe = self.client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.get(f"t:{name}:{job_id}")
        return [int(v or 0) for v in pipe.execute()]


@pytest.fixture
def traces(redis_client: redis.Redis) -> Traces:
    return Traces(redis_client)


def statuses(client: redis.Redis, job_ids: list[str]) -> list[str | None]:
    """The status field of each job record, in one pipeline."""
    from queues.runtime import get_job_store

    store = get_job_store()
    pipe = client.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hget(store.job_key(job_id), "status")
    return pipe.execute()


def broker_leftovers(client: redis.Redis, namespace: str = "dramatiq") -> dict[str, int]:
    """Every non-empty Dramatiq key that holds messages: queues, delay queues, bodies, ack sets,
    dead letters. Empty when the broker holds nothing (heartbeats are not messages, nor are the
    markers that make an enqueue safe to resend: they expire on their own)."""
    left: dict[str, int] = {}
    for key in client.scan_iter(f"{namespace}:*", count=1000):
        if key.endswith("__heartbeats__") or key.startswith(f"{namespace}:__enqueued__."):
            continue
        kind = client.type(key)
        size = {"list": client.llen, "hash": client.hlen, "set": client.scard,
                "zset": client.zcard}.get(kind, lambda _k: 1)(key)
        if size:
            left[key] = size
    return left


def lost_message_report(client: redis.Redis, job_ids: set[str], namespace: str = "dramatiq") -> dict[str, list]:
    """For jobs that never finished: which Dramatiq keys still hold their messages.

    Returns ``{key: [job ids]}`` over message bodies (``*.msgs`` hashes, whose fields are
    the Redis message ids) and the ack sets that reference those Redis message ids.
    """
    import json

    where: dict[str, list] = {}
    redis_ids: dict[str, str] = {}
    for key in client.scan_iter(f"{namespace}:*.msgs", count=1000):
        for redis_id, body in client.hgetall(key).items():
            job_id = json.loads(body).get("message_id")
            if job_id in job_ids:
                where.setdefault(key, []).append(job_id)
                redis_ids[redis_id] = job_id
    for key in client.scan_iter(f"{namespace}:__acks__*", count=1000):
        for redis_id in client.smembers(key):
            if redis_id in redis_ids:
                where.setdefault(key, []).append(redis_ids[redis_id])
    return where


@pytest.fixture(scope="module")
def faceit_sandbox() -> Iterator[FaceitSandbox]:
    """The sandbox FACEIT Data API in its own process (workers reach it over loopback)."""
    sandbox = FaceitSandbox(subprocess=True).start()
    yield sandbox
    sandbox.stop()

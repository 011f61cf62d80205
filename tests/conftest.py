"""Shared fixtures: a private Redis for the whole run, and scaled-down timing settings.

The run starts its own ``redis-server`` on a free port and points ``REDIS_URL`` at it before
tests are even collected, so no test (and no module imported at collection) can reach a Redis
it did not start.
Sub-packages of ``tests/`` add their own fixtures in their own ``conftest.py``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from queues.waitfor import keep_cancellations
from tests.support.redis_server import RedisServer
from tests.support.workers import WorkerPool, pause_module_pools

# On a timeout, the report shows where each asyncio task of the hung test waited.
pytest_plugins = ["tests.support.timeout_tasks"]

# As every process of ours does at start: a cancel landing while a Redis command is sent is not lost.
keep_cancellations()

# Scaled-down timing for every process a test starts (workers inherit os.environ).
SCALED_ENV = {
    "QUEUE_RETRY_DELAYS": "0.1,0.3,0.9",
    # FACEIT's transient failures are remembered 2 s against retries after 10/30/90 s; scaled with
    # them, so a retry (or a requeue) asks FACEIT again, as in production.
    "FACEIT_CACHE_FAILURE_TTL": "0.02",
    "QUEUE_HEARTBEAT_TIMEOUT": "3",
    "QUEUE_MAINTENANCE_INTERVAL": "0.5",
    "QUEUE_MONITORING_INTERVAL": "1",
    "LOG_LEVEL": "INFO",
    # Workers keep the test processes' priority: timed tests must not depend on how the two
    # cores are shared. tests/pipeline/test_worker_priority.py checks WORKER_NICE itself.
    "WORKER_NICE": "0",
}


_SERVER: RedisServer | None = None
_SAVED_ENV: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Start the private Redis before collection: a test module that imports ``actors`` at
    load time builds its broker from ``REDIS_URL``, which must already be ours."""
    global _SERVER
    _SAVED_ENV.update(os.environ)
    directory = Path(tempfile.mkdtemp(prefix="tests-redis-"))
    _SERVER = RedisServer(directory)
    _SERVER.start()
    os.environ.update(SCALED_ENV)
    os.environ["REDIS_URL"] = _SERVER.url
    for name in ("QUEUE_NAME_PREFIX", "REDIS_PASSWORD", "REDIS_SENTINELS", "BROKER"):
        os.environ.pop(name, None)
    _reset_settings_cache()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SERVER is not None:
        _SERVER.stop(flush_to_disk=False)
        shutil.rmtree(_SERVER.directory, ignore_errors=True)
    os.environ.clear()
    os.environ.update(_SAVED_ENV)


@pytest.fixture(scope="session", autouse=True)
def redis_server() -> RedisServer:
    """The test run's own Redis; tests may stop and restart it (it comes back on the same port)."""
    assert _SERVER is not None
    return _SERVER


def _reset_settings_cache() -> None:
    from settings import get_settings

    get_settings.cache_clear()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The private Redis, emptied before the test (and started again if a test left it down)."""
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.process = None
        redis_server.start()
    redis_server.client().flushall()
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def env_override(monkeypatch: pytest.MonkeyPatch):
    """Set environment variables for this test and reload settings with them."""

    def apply(**values: str) -> None:
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        _reset_settings_cache()

    yield apply
    _reset_settings_cache()


@pytest.fixture
def start_pool(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., WorkerPool]]:
    """Start real ``dramatiq`` worker pools (test actors included); all killed at teardown.

    Teardown kills (fast); graceful stops are tested where they matter.
    """
    pools: list[WorkerPool] = []
    # Before the test body, not only at its first start(): a module's shared pool left running by
    # an earlier test would take a job the test enqueues before starting its own pool (a race
    # that once ran a job the test meant to cancel first).
    pause_module_pools()

    def start(queues: list[str] | None = None, *, processes: int = 1, threads: int = 4,
              env: dict[str, str] | None = None, modules: tuple[str, ...] = ("tests.support.job_actors",),
              wait: bool = True) -> WorkerPool:
        pause_module_pools()  # this test's pools alone consume its queues
        log = tmp_path / f"worker-{len(pools)}.log"
        pool = WorkerPool(queues=queues, processes=processes, threads=threads, env=env, modules=modules,
                          log_path=log)
        pools.append(pool)
        return pool.start(wait=wait, timeout=60)  # a busy 2-core machine imports slowly

    yield start
    for pool in pools:
        pool.stop(graceful=False)

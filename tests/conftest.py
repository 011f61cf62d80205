"""Shared fixtures: a private Redis for the whole run, and scaled-down timing settings.

The session starts its own ``redis-server`` on a free port and points ``REDIS_URL`` at it
before any of our code reads settings, so no test can reach a Redis it did not start.
Sub-packages of ``tests/`` add their own fixtures in their own ``conftest.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.redis_server import RedisServer

# Scaled-down timing for every process a test starts (workers inherit os.environ).
SCALED_ENV = {
    "QUEUE_RETRY_DELAYS": "0.1,0.3,0.9",
    "QUEUE_HEARTBEAT_TIMEOUT": "3",
    "QUEUE_MAINTENANCE_INTERVAL": "0.5",
    "QUEUE_MONITORING_INTERVAL": "1",
    "LOG_LEVEL": "INFO",
}


@pytest.fixture(scope="session", autouse=True)
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The test run's own Redis; tests may stop and restart it (it comes back on the same port)."""
    server = RedisServer(Path(tmp_path_factory.mktemp("redis")))
    server.start()
    saved = dict(os.environ)
    os.environ.update(SCALED_ENV)
    os.environ["REDIS_URL"] = server.url
    _reset_settings_cache()
    yield server
    server.stop(flush_to_disk=False)
    os.environ.clear()
    os.environ.update(saved)


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

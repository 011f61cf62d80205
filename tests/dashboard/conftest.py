"""Fixtures for the dashboard tests: servers in open and credentialed modes, a job store, workers.

Credentials here are test values; the readonly pair and the token are distinct so every role
can be told apart.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from queues.jobstore import JobStore
from queues.manager import reset_queue_manager
from queues.runtime import get_job_store, reset_runtime
from settings import Settings, load_settings
from tests.dashboard.helpers import DashboardServer
from tests.support.telegram_sandbox import (  # noqa: F401  (fixtures used by the chat tests)
    TelegramSandbox,
    telegram_sandbox,
    telegram_sandbox_server,
)
from tests.support.workers import WorkerPool

ADMIN = {"user": "operator", "password": "correct horse battery"}
READONLY = {"user": "viewer", "password": "look but do not touch"}
TOKEN = "tok-0123456789abcdef-dashboard"
AUTH_SETTINGS = {
    "dashboard_user": ADMIN["user"], "dashboard_password": ADMIN["password"], "dashboard_token": TOKEN,
    "dashboard_readonly_user": READONLY["user"], "dashboard_readonly_password": READONLY["password"],
}


def dashboard_settings(**overrides: object) -> Settings:
    from queues.monitoring import reset_queue_monitor

    reset_runtime()
    reset_queue_manager()
    reset_queue_monitor()
    return load_settings(**overrides)


def check_broker(redis_server) -> None:
    """Fail before doing anything if this process's Dramatiq broker is not on the test Redis.

    Importing ``actors`` builds the process's broker from the settings of that moment; a module
    that imports it at collection time (before ``REDIS_URL`` points at the test Redis) leaves a
    broker on the default 127.0.0.1:6379, and a retry or an emptied queue would go there.
    """
    if "actors" not in sys.modules:
        return
    import dramatiq

    port = dramatiq.get_broker().client.connection_pool.connection_kwargs.get("port")
    if port != redis_server.port:
        pytest.fail(f"the Dramatiq broker of this process points at port {port}, not the test Redis "
                    f"({redis_server.port}): something imported `actors` before the session started")


@pytest.fixture
def broker_on_test_redis(redis_server) -> None:
    """For tests whose actions reach the broker (retry, requeue, empty a queue)."""
    check_broker(redis_server)


def load_test_actors(redis_server) -> None:
    """Declare the test actors here (after the session Redis is set), on the right broker."""
    check_broker(redis_server)
    import actors  # noqa: F401
    import tests.support.job_actors  # noqa: F401

    check_broker(redis_server)


@pytest.fixture
def store(redis_url: str) -> JobStore:
    reset_runtime()
    return get_job_store()


@pytest.fixture
def open_dashboard(redis_url: str) -> Iterator[DashboardServer]:
    """No credentials, bound to 127.0.0.1: open for local use (CSRF still required)."""
    server = DashboardServer(dashboard_settings()).start()
    yield server
    server.stop()


@pytest.fixture
def auth_dashboard(redis_url: str) -> Iterator[DashboardServer]:
    """Admin user/password and token, plus a read-only user."""
    server = DashboardServer(dashboard_settings(**AUTH_SETTINGS)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def default_workers(redis_server) -> Iterator[WorkerPool]:
    """Real ``dramatiq`` workers on the default queue with the test actors loaded (per module)."""
    redis_server.client().flushall()
    pool = WorkerPool(queues=["default"], processes=1, threads=4).start()
    yield pool
    pool.stop()

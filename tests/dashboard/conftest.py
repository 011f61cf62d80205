"""Fixtures for the dashboard tests: servers in open and credentialed modes, a job store, workers.

Credentials here are test values; the readonly pair and the token are distinct so every role
can be told apart.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from queues.jobstore import JobStore
from queues.manager import reset_queue_manager
from queues.runtime import get_job_store, reset_runtime
from settings import Settings, load_settings
from tests.dashboard.helpers import DashboardServer
from tests.support.workers import WorkerPool

ADMIN = {"user": "operator", "password": "correct horse battery"}
READONLY = {"user": "viewer", "password": "look but do not touch"}
TOKEN = "tok-0123456789abcdef-dashboard"
AUTH_SETTINGS = {
    "dashboard_user": ADMIN["user"], "dashboard_password": ADMIN["password"], "dashboard_token": TOKEN,
    "dashboard_readonly_user": READONLY["user"], "dashboard_readonly_password": READONLY["password"],
}


def dashboard_settings(**overrides: object) -> Settings:
    reset_runtime()
    reset_queue_manager()
    return load_settings(**overrides)


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

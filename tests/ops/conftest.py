"""Fixtures for the operations tests: a fresh monitor, worker pools, the Telegram sandbox.

Every fixture works on the session's private Redis (flushed per test by ``redis_url``), and
forgets the process-wide singletons (Redis clients, manager, monitor) so settings changed by
``env_override`` take effect.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.waiting import wait_until  # noqa: F401  (re-exported for the tests here)
from tests.support.workers import WorkerPool, resume_module_pool, start_module_pool, stop_module_pool


def reset_singletons() -> None:
    from queues.manager import reset_queue_manager
    from queues.monitoring import reset_queue_monitor
    from queues.runtime import reset_runtime

    reset_runtime()
    reset_queue_manager()
    reset_queue_monitor()


@pytest.fixture
def fresh(redis_url: str) -> Iterator[None]:
    """A flushed Redis and no cached clients, before and after the test."""
    reset_singletons()
    yield
    reset_singletons()


@pytest.fixture
def manager(fresh):
    """A queue manager on the test Redis, with the test actors declared."""
    import actors  # noqa: F401
    import tests.support.job_actors  # noqa: F401
    from queues.manager import get_queue_manager

    return get_queue_manager()


@pytest.fixture
def make_monitor(fresh):
    """Build a :class:`QueueMonitor` (no Telegram unless given) with optional scaled thresholds."""
    from queues.monitoring import QueueMonitor

    def build(**kwargs) -> QueueMonitor:
        kwargs.setdefault("telegram", None)
        return QueueMonitor(**kwargs)

    return build


@pytest.fixture(scope="module")
def ops_pool(redis_server, tmp_path_factory) -> Iterator[WorkerPool]:
    """One pool on all three queues shared by a module's tests (survives per-test flushes)."""
    pool = WorkerPool(queues=["high", "default", "low"], processes=1, threads=4,
                      log_path=tmp_path_factory.mktemp("ops-pool") / "worker.log")
    start_module_pool(pool, redis_server)
    yield pool
    stop_module_pool(pool)


@pytest.fixture
def telegram_sandbox() -> Iterator[object]:
    from tests.support.telegram_sandbox import TelegramSandbox

    with TelegramSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def live_pool(ops_pool: WorkerPool, fresh) -> WorkerPool:
    """The shared pool, once its heartbeat is back in the freshly flushed Redis (started again if
    an earlier test of the module paused it to run pools of its own)."""
    resume_module_pool(ops_pool).wait_ready()
    return ops_pool

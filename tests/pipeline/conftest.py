"""Fixtures for pipeline tests: real worker pools, a queue manager and readers of traces."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
import redis

from tests.support.waiting import wait_until  # noqa: F401  (re-exported for the tests here)
from tests.support.workers import WorkerPool, resume_module_pool, start_module_pool, stop_module_pool

if TYPE_CHECKING:
    from queues.manager import QueueManager


@pytest.fixture(scope="module")
def _shared_pool(redis_server, tmp_path_factory) -> Iterator[WorkerPool]:
    pool = WorkerPool(queues=["high", "default", "low"], processes=1, threads=4,
                      log_path=tmp_path_factory.mktemp("pool") / "worker.log")
    start_module_pool(pool, redis_server)
    yield pool
    stop_module_pool(pool)


@pytest.fixture
def shared_pool(_shared_pool: WorkerPool, redis_url: str) -> WorkerPool:
    """One pool on all three queues for the tests of a module that need nothing special (started
    again if an earlier test of the module paused it to run pools of its own)."""
    return resume_module_pool(_shared_pool)


def build_manager() -> QueueManager:
    """A queue manager on the current settings (the cached Redis clients and stores forgotten
    first, so they are built with them), with the test actors declared."""
    import actors  # noqa: F401
    import tests.support.job_actors  # noqa: F401
    from queues.manager import QueueManager
    from queues.runtime import reset_runtime

    reset_runtime()
    return QueueManager()


@pytest.fixture
def manager(redis_url: str):
    """A queue manager on the test Redis, with the test actors declared."""
    return build_manager()


@pytest.fixture
def manager_with(redis_url: str, env_override: Callable[..., None]) -> Iterator[Callable[..., QueueManager]]:
    """Build a queue manager on settings scaled down through their environment variables
    (``manager_with(QUEUE_INDEX_LIMIT="10")``); the stores built with them are forgotten after
    the test, so no later test inherits them."""
    from queues.runtime import reset_runtime

    def build(**env: str) -> QueueManager:
        env_override(**env)
        return build_manager()

    yield build
    reset_runtime()


@pytest.fixture
def traces(redis_client: redis.Redis):
    """Read what test actors recorded: runs count and run start times of a job."""

    class Traces:
        def runs(self, job_id: str, name: str = "runs") -> int:
            return int(redis_client.get(f"t:{name}:{job_id}") or 0)

        def times(self, job_id: str) -> list[float]:
            return [float(x) for x in redis_client.lrange(f"t:times:{job_id}", 0, -1)]

    return Traces()



"""Fixtures of the scale-out tests: worker pools with their logs, and readers of test traces."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.scaleout.helpers import Traces
from tests.support.workers import WorkerPool


@pytest.fixture
def start_pool(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., WorkerPool]]:
    """Start real ``dramatiq`` worker pools (with the test actors); all SIGKILLed at teardown."""
    pools: list[WorkerPool] = []

    def start(queues: list[str] | None = None, *, processes: int = 1, threads: int = 4,
              env: dict[str, str] | None = None, wait: bool = True) -> WorkerPool:
        log = tmp_path / f"worker-{len(pools)}.log"
        pool = WorkerPool(queues=queues, processes=processes, threads=threads, env=env, log_path=log)
        pools.append(pool)
        return pool.start(wait=wait)

    yield start
    for pool in pools:
        pool.stop(graceful=False)


@pytest.fixture
def traces(redis_client: redis.Redis) -> Traces:
    return Traces(redis_client)

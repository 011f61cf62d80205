"""Fixtures of the FACEIT area: a sandbox Data API for the session, and settings pointing at it.

``sandbox`` is the session's :class:`FaceitSandbox` (thread mode), counters and faults reset
for each test. ``faceit_env`` points the settings at it (rate limit relaxed unless a test sets
its own) and closes the test loop's FACEIT context afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.support.faceit_sandbox import FaceitSandbox


@pytest.fixture(scope="session")
def faceit_sandbox_server() -> Iterator[FaceitSandbox]:
    with FaceitSandbox() as server:
        yield server


@pytest.fixture
def sandbox(faceit_sandbox_server: FaceitSandbox) -> FaceitSandbox:
    faceit_sandbox_server.reset()
    return faceit_sandbox_server


@pytest.fixture
async def faceit_env(sandbox: FaceitSandbox, redis_url: str, env_override: Any) -> AsyncIterator[FaceitSandbox]:
    from faceit.context import close_faceit_context

    env_override(**sandbox.env(), FACEIT_RATE_LIMIT="1000", FACEIT_RATE_BURST="1000", FACEIT_REQUEST_TIMEOUT="5")
    yield sandbox
    await close_faceit_context()


class ProgressLog:
    """A progress callback that records every call (what an actor would pass)."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str, int | None, int | None]] = []

    async def __call__(self, percent: float, stage: str, done: int | None = None, total: int | None = None) -> None:
        self.calls.append((percent, stage, done, total))


@pytest.fixture
def progress() -> ProgressLog:
    return ProgressLog()

"""Polling for a condition in tests: the one way tests wait (no bare sleeps)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


def wait_until(predicate: Callable[[], Any], timeout: float = 20, interval: float = 0.05,
               what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (value := _held(predicate, deadline, timeout, what)):
        time.sleep(interval)
    return value


async def async_wait_until(predicate: Callable[[], Any], what: str = "condition", timeout: float = 10.0) -> Any:
    """:func:`wait_until` on the running event loop: other tasks run between the polls."""
    deadline = time.monotonic() + timeout
    while not (value := _held(predicate, deadline, timeout, what)):
        await asyncio.sleep(0.01)
    return value


def _held(predicate: Callable[[], Any], deadline: float, timeout: float, what: str) -> Any:
    """``predicate()``; past ``deadline`` a falsy answer fails the test."""
    value = predicate()
    if not value and time.monotonic() > deadline:
        raise AssertionError(f"{what} not met within {timeout} s")
    return value

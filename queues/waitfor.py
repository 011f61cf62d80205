"""``asyncio.wait_for`` as Python 3.12 has it: a cancellation is never lost.

Why: Python 3.11's ``wait_for`` runs its awaitable in a task of its own. When the waiting task is
cancelled just as that inner task finishes, ``wait_for`` returns the inner result and the
cancellation is gone (CPython gh-86296; 3.12 rebuilt ``wait_for`` on ``asyncio.timeout``).
redis-py's asyncio client sends every command through ``asyncio.wait_for(…, socket_timeout)``
(``socket_timeout`` is 10 s on our clients, 5 s by redis-py's default), so a cancel that landed
while a command was being sent was swallowed: a job's ``/cancel`` or time limit, a bot or worker
stopping, a test tearing a task down. The task went on as if never cancelled. Found as a test
that hung about once in thirty runs under load: a cancelled task kept taking rate-limiter slots
forever. Our own code waits with ``wait_for`` too (the bot's background work, a delivery's
sends).

:func:`keep_cancellations` puts :func:`wait_for` in place of ``asyncio.wait_for`` for the whole
process (redis-py looks it up on the ``asyncio`` module at each call). Every process of ours
calls it at start: the bot (``bot.app.init_process``), the workers (``actors.broker.build_broker``),
the scheduler and the dashboard (their ``main``), and the tests (``tests/conftest.py``). On
Python 3.12 and later it does nothing: the standard one is this one.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


async def wait_for(fut: Awaitable[T], timeout: float | None) -> T:
    """Wait for ``fut`` at most ``timeout`` seconds (None: no limit), then cancel it and raise
    ``TimeoutError``; cancelling the caller cancels ``fut``, and is never lost. Python 3.12's
    ``asyncio.wait_for``: a coroutine runs in the caller's task, under ``asyncio.timeout``."""
    if timeout is not None and timeout <= 0:  # no time at all: its result if it is done, else cancelled
        task = asyncio.ensure_future(fut)
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
        try:
            return task.result()
        except asyncio.CancelledError as exc:
            raise TimeoutError from exc
    async with asyncio.timeout(timeout):
        return await fut


def keep_cancellations() -> None:
    """Make ``asyncio.wait_for`` :func:`wait_for` in this process (Python before 3.12 only)."""
    if sys.version_info >= (3, 12):
        return
    patched: Any = wait_for
    asyncio.wait_for = patched
    asyncio.tasks.wait_for = patched

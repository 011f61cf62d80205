"""Work the bot does after a reply, kept out of the way of replies still owed.

After answering a job request the bot still has bookkeeping to do (turn the limit reservation
into the job, record which message shows the job). None of it is urgent: a progress edit before
it simply skips the user, and a finished job's delivery waits up to ``ATTACH_GRACE`` (3 s) for
it. Done at once, it ran interleaved with the other updates of a burst and pushed every later
reply back by its share of the CPU (about 0.5 ms per update).

So items wait in a single task until no update is being served, or until the oldest has waited
``max_delay`` seconds (1 s), so a steady stream of updates cannot starve them; then everything
queued by then runs together (up to :data:`MAX_TOGETHER` at a time). The
middleware :class:`bot.middlewares.inflight.InFlightMiddleware` reports updates in and out.
Failures are logged, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from queues.redaction import error_text

logger = logging.getLogger(__name__)

MAX_DELAY = 1.0
MAX_TOGETHER = 16


class BackgroundWork:
    """A queue of coroutines run after the updates in flight (or ``max_delay`` s at the latest)."""

    def __init__(self, max_delay: float = MAX_DELAY) -> None:
        self.max_delay = max_delay
        self.in_flight = 0
        # Both bind to the event loop on first use, not here.
        self._queue: asyncio.Queue[tuple[Coroutine[Any, Any, Any], str, float]] = asyncio.Queue()
        self._idle = asyncio.Event()
        self._together = asyncio.Semaphore(MAX_TOGETHER)  # each item may hold a pooled Redis connection
        self._task: asyncio.Task[None] | None = None
        self._draining = False

    # --- updates in and out ----------------------------------------------------------------

    def update_started(self) -> None:
        self.in_flight += 1

    def update_finished(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        if self.in_flight == 0:
            self._idle.set()

    # --- background items ------------------------------------------------------------------

    def add(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        """Run ``coro`` later (see the module docstring); ``what`` names it in a failure line."""
        self._queue.put_nowait((coro, what, asyncio.get_running_loop().time()))
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def _turn(self, queued_at: float) -> None:
        """Return when no update is being served, or once the item is ``max_delay`` s old."""
        loop = asyncio.get_running_loop()
        while self.in_flight > 0 and not self._draining:
            left = queued_at + self.max_delay - loop.time()
            if left <= 0:
                return
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), left)

    async def _run(self) -> None:
        queue = self._queue
        while True:
            first = await queue.get()
            try:
                await self._turn(first[2])
            except BaseException:
                queue.task_done()
                raise
            # Everything queued by now runs together: the items are independent, and their Redis
            # calls then share round trips (bot.scriptbatch) instead of one trip each.
            items = [first]
            while not queue.empty():
                items.append(queue.get_nowait())
            try:
                # return_exceptions: an item that was cancelled must not end the others, nor this runner
                await asyncio.gather(*(self._one(coro, what) for coro, what, _ in items), return_exceptions=True)
            finally:
                for _ in items:
                    queue.task_done()

    async def _one(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        async with self._together:
            try:
                await coro
            except Exception as exc:
                logger.warning("%s failed: %s: %s", what, type(exc).__name__, error_text(exc, 160))
            except asyncio.CancelledError:
                logger.warning("%s was cancelled", what)
                raise

    async def drain(self, timeout: float = 5.0, *, stop: bool = False) -> None:
        """Run what is queued now, without waiting for quiet (up to ``timeout`` s); with ``stop``
        end the runner too."""
        self._draining = True
        self._idle.set()
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            logger.warning("%d background items left undone", self._queue.qsize())
        finally:
            self._draining = False
        if stop and self._task is not None:
            self._task.cancel()
            self._task = None

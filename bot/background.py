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

An item added with :meth:`BackgroundWork.add_retrying` (recording which message shows a job) is
not dropped when Redis is unreachable, or refusing writes for a while, at that moment: it is
tried again, in a task of its own (the items queued after it do not wait), every
:data:`RETRY_PAUSE` s times the failed tries so far (at most :data:`MAX_RETRY_PAUSE`), for up to
:data:`RETRY_FOR` seconds, as the workers' bookkeeping waits for Redis
(:mod:`middleware.until_answered`). Lost, the message would stay "⏳ queued" with a Cancel button
for good: the job's delivery sends the result as a message of its own.

On shutdown :meth:`BackgroundWork.drain` runs what is queued and waits for the retries in progress
too, within its one ``timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from middleware.until_answered import passes
from queues.redaction import error_text

logger = logging.getLogger(__name__)

MAX_DELAY = 1.0
MAX_TOGETHER = 16
#: Seconds an item added with :meth:`BackgroundWork.add_retrying` keeps trying while Redis is
#: unreachable (or refusing writes), counted from its first failure.
RETRY_FOR = 45.0
#: Seconds between its tries, times the failed tries so far, at most :data:`MAX_RETRY_PAUSE`: short,
#: so the message is recorded within a second of Redis answering again (a finished job's delivery
#: then edits it, rather than sending the result beside it).
RETRY_PAUSE = 0.2
MAX_RETRY_PAUSE = 1.0

Make = Callable[[], Coroutine[Any, Any, Any]]


class BackgroundWork:
    """A queue of coroutines run after the updates in flight (or ``max_delay`` s at the latest)."""

    def __init__(self, max_delay: float = MAX_DELAY, retry_for: float = RETRY_FOR) -> None:
        self.max_delay = max_delay
        self.retry_for = retry_for
        self.in_flight = 0
        # Both bind to the event loop on first use, not here.
        # (the coroutine, what it is, when it was queued, how to make it again for a retry or None)
        self._queue: asyncio.Queue[tuple[Coroutine[Any, Any, Any], str, float, Make | None]] = asyncio.Queue()
        self._idle = asyncio.Event()
        self._together = asyncio.Semaphore(MAX_TOGETHER)  # each item may hold a pooled Redis connection
        self._task: asyncio.Task[None] | None = None
        self._retrying: set[asyncio.Task[None]] = set()
        self._draining = False

    # --- updates in and out ----------------------------------------------------------------

    def update_started(self) -> None:
        self.in_flight += 1

    def update_finished(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        if self.in_flight == 0:
            self._idle.set()

    async def wait_quiet(self, timeout: float) -> bool:
        """Wait until no update is being served (up to ``timeout`` s); whether none is."""
        return await self._wait_idle(asyncio.get_running_loop().time() + timeout, stop_when_draining=False)

    async def _wait_idle(self, deadline: float, stop_when_draining: bool) -> bool:
        """Wait until no update is being served, or (loop time) ``deadline``, or, with
        ``stop_when_draining``, the drain began; whether no update is being served."""
        loop = asyncio.get_running_loop()
        while self.in_flight > 0 and not (stop_when_draining and self._draining):
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), left)
        return self.in_flight == 0

    # --- background items ------------------------------------------------------------------

    def add(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        """Run ``coro`` later (see the module docstring); ``what`` names it in a failure line."""
        self._put(coro, what, None)

    def add_retrying(self, make: Make, what: str) -> None:
        """Run ``make()`` later, as :meth:`add` does; while it fails because Redis is unreachable
        (or refusing writes for a while), run ``make()`` again, for up to ``retry_for`` seconds.
        ``make()`` must be safe to run again after a try that may have reached Redis."""
        self._put(make(), what, make)

    def _put(self, coro: Coroutine[Any, Any, Any], what: str, again: Make | None) -> None:
        self._queue.put_nowait((coro, what, asyncio.get_running_loop().time(), again))
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def _turn(self, queued_at: float) -> None:
        """Return when no update is being served, or once the item is ``max_delay`` s old."""
        await self._wait_idle(queued_at + self.max_delay, stop_when_draining=True)

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
                await asyncio.gather(*(self._one(coro, what, again) for coro, what, _, again in items),
                                     return_exceptions=True)
            finally:
                for _ in items:
                    queue.task_done()

    async def _one(self, coro: Coroutine[Any, Any, Any], what: str, again: Make | None) -> None:
        try:
            async with self._together:
                try:
                    await coro
                    return
                except Exception as exc:
                    if again is None or not passes(exc):
                        logger.warning("%s failed: %s: %s", what, type(exc).__name__, error_text(exc, 160))
                        return
                    failure = exc
        except asyncio.CancelledError:
            logger.warning("%s was cancelled", what)
            raise
        finally:
            coro.close()  # (cancelled before its turn: closed, not left to warn that it never ran)
        # Its own task: the items queued after it must not wait behind its retries.
        task = asyncio.ensure_future(self._retry(again, what, failure))
        self._retrying.add(task)
        task.add_done_callback(self._retrying.discard)

    async def _retry(self, make: Make, what: str, failure: Exception) -> None:
        """Run ``make()`` again until it gets through, fails otherwise, or ``retry_for`` s passed."""
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.retry_for
        failures = 1
        logger.warning("%s: Redis not answering (%s: %s); trying again for up to %.0f s", what,
                       type(failure).__name__, error_text(failure, 160), self.retry_for)
        while True:
            pause = min(MAX_RETRY_PAUSE, RETRY_PAUSE * failures)
            if loop.time() + pause > give_up_at:
                logger.warning("%s failed: %s: %s (given up after %d tries in %.0f s)", what,
                               type(failure).__name__, error_text(failure, 160), failures, self.retry_for)
                return
            try:
                await asyncio.sleep(pause)
                async with self._together:
                    await make()
            except Exception as exc:
                if not passes(exc):
                    logger.warning("%s failed: %s: %s", what, type(exc).__name__, error_text(exc, 160))
                    return
                failure = exc
                failures += 1
                continue
            except asyncio.CancelledError:
                logger.warning("%s was cancelled after %d failed tries", what, failures)
                raise
            logger.warning("%s done after %d failed tries", what, failures)
            return

    async def drain(self, timeout: float = 5.0, *, stop: bool = False) -> None:
        """Run what is queued now, without waiting for quiet, and wait for the retries in progress
        (all within ``timeout`` s); with ``stop`` end the runner and any retry still going too."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._draining = True
        self._idle.set()
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
            # The queue's items are done: a retry of theirs is in _retrying by now.
            if self._retrying:
                await asyncio.wait(set(self._retrying), timeout=max(0.0, deadline - loop.time()))
        except TimeoutError:
            logger.warning("%d background items left undone", self._queue.qsize())
        finally:
            self._draining = False
        if self._retrying:
            logger.warning("%d background items still waiting for Redis after %.0f s", len(self._retrying), timeout)
        if stop:
            if self._task is not None:
                self._task.cancel()
                self._task = None
            while not self._queue.empty():  # never started: closed, each named in the log
                coro, what, _, _ = self._queue.get_nowait()
                coro.close()
                self._queue.task_done()
                logger.warning("%s not done: the bot stopped first", what)
            retrying = list(self._retrying)
            for task in retrying:
                task.cancel()
            await asyncio.gather(*retrying, return_exceptions=True)

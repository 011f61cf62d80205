"""One token bucket per API key, shared by every process through Redis.

The bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second, so one
analysis (31 calls) leaves at once while a flood of them is paced at ``rate``. Tokens are
*reserved*: the Lua script takes a token even when the bucket is empty (the count goes negative)
and answers how long the caller must wait for its slot. Each caller therefore sleeps exactly once
and the slots are spaced ``1/rate`` apart across all processes, without polling.

A 429 pushes the whole bucket back (:meth:`SharedRateLimiter.block`): no new slot starts before
``Retry-After`` has passed, and callers whose reserved slot falls inside the blocked window see
the block marker when they wake up and take a fresh slot behind it. The clock is Redis' ``TIME``,
so processes on different hosts agree on it.

Low-priority work (the FACEIT calls of low-queue jobs: bulk analyses, cache updates, analytics
reports) reserves nothing: it takes a token only while the bucket holds more than
:func:`low_reserve` of them, and otherwise waits for the refill, one caller per event loop asking
(the low lane). So a ``/bulk`` of live rooms, which wants 30 calls for each of its matches, never
queues ahead of a user's ``/analyze``: interactive work always finds half the burst in the bucket
and a queue of its own kind only. Low work alone still runs at ``rate`` (it gives up half the
burst, not the pace). A low call that finds no slot within ``max_wait`` gives up with
:class:`~faceit.errors.LowPriorityBudgetExhaustedError`: the low-priority budget is used up for
now, and the job's retry schedule tries again later.

Low-priority work is marked by a :class:`LowPriority` in :data:`LOW_PRIORITY_WORK`. A fetch that
low work leads and interactive work then joins (:class:`faceit.cache.SingleFlightCache`) is
*raised* (:meth:`LowPriority.promote`): its call leaves the low lane at once and takes a slot as
interactive work does, so a user never waits in the low lane behind a bulk. An interactive
caller of another process waiting on that fetch's lock raises it too (through Redis: see
:mod:`faceit.cache`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from contextvars import ContextVar

from redis.asyncio import Redis

from faceit.errors import LowPriorityBudgetExhaustedError, RateLimitedError
from faceit.keys import FaceitKeys

log = logging.getLogger(__name__)



class LowPriority:
    """The mark of low-priority work: a job of the low queue (``actors.base.job_actor`` sets a
    fresh one per job), or one fetch such a job leads (:class:`faceit.cache.SingleFlightCache`
    gives each its own). Its calls wait in the low lane until :meth:`promote` (an interactive
    caller now waits on that fetch) sets ``raised``: from then on they take slots as interactive
    work does, and a call waiting in the lane leaves it at once."""

    __slots__ = ("_wakers", "raised")

    def __init__(self) -> None:
        self.raised = False
        self._wakers: set[asyncio.Future[bool]] = set()

    def promote(self) -> None:
        """Serve this work as interactive from now on; wakes its calls waiting in the low lane."""
        self.raised = True
        wakers, self._wakers = self._wakers, set()
        for waker in wakers:
            _resolve(waker, False)

    async def wait(self, future: asyncio.Future[bool]) -> bool:
        """``future``'s result (True) unless this work is raised first: then False."""
        if self.raised:
            _resolve(future, False)
        self._wakers.add(future)
        try:
            return await future
        finally:
            self._wakers.discard(future)

    async def sleep(self, seconds: float) -> bool:
        """Sleep ``seconds``, or less when raised meanwhile; True when slept the whole time."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()
        timer = loop.call_later(seconds, _resolve, done, True)
        try:
            return await self.wait(done)
        finally:
            timer.cancel()


def _resolve(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)


#: The :class:`LowPriority` of the running task's FACEIT calls, None for interactive work:
#: ``actors.base.job_actor`` sets it in each job of the low queue (a job runs in a task of its own,
#: so the value is the job's); the cache sets a fetch's own while that fetch runs.
LOW_PRIORITY_WORK: ContextVar[LowPriority | None] = ContextVar("faceit_low_priority_work", default=None)


def low_priority_work() -> LowPriority | None:
    """The running task's :class:`LowPriority` unless its work is interactive (none, or raised)."""
    low = LOW_PRIORITY_WORK.get()
    return low if low is not None and not low.raised else None


class _LowLane:
    """The low-priority callers of one event loop, one asking Redis at a time, in turn. A caller
    whose work is raised while it waits leaves the queue at once."""

    def __init__(self) -> None:
        self.busy = False
        self.queue: deque[asyncio.Future[bool]] = deque()

    async def enter(self, low: LowPriority) -> bool:
        """Wait for this caller's turn: True once it holds the lane (:meth:`leave` it then),
        False when ``low`` was raised first (the lane is not held)."""
        if low.raised:
            return False
        if not self.busy:
            self.busy = True
            return True
        turn: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.queue.append(turn)
        try:
            return await low.wait(turn)
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled() and turn.result():
                self.leave()  # handed the lane as it was cancelled: pass it on
            raise

    def leave(self) -> None:
        while self.queue:
            turn = self.queue.popleft()
            if not turn.done():  # not gone (raised or cancelled) meanwhile
                turn.set_result(True)
                return
        self.busy = False


# KEYS: bucket hash, block marker. ARGV: rate per second, burst, mode ("take"|"take_low"|"block"),
# block ms, the tokens low-priority work leaves (take_low). Returns the milliseconds the caller
# must wait before its request may leave; for take_low, a negative number when no token was
# taken: minus the milliseconds until the bucket holds more than the reserve again (at least 1).
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local rate = tonumber(ARGV[1]) / 1000
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
local wait = 0
if ARGV[3] == 'take' then
  tokens = tokens - 1
  wait = ts - now
  if tokens < 0 then
    wait = wait + (-tokens) / rate
  end
elseif ARGV[3] == 'take_low' then
  local reserve = tonumber(ARGV[5])
  if ts <= now and tokens - 1 >= reserve then
    tokens = tokens - 1
  else
    wait = -(math.max(ts - now, 0) + math.max(reserve + 1 - tokens, 0) / rate) - 1
  end
else
  local block_ms = tonumber(ARGV[4])
  if ts < now + block_ms then
    ts = now + block_ms
  end
  if tokens > 1 then
    tokens = 1
  end
  if redis.call('PTTL', KEYS[2]) < block_ms then
    redis.call('SET', KEYS[2], '1', 'PX', math.ceil(block_ms))
  end
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts', string.format('%.3f', ts))
local idle = (ts - now) + (burst - tokens) / rate + 60000
redis.call('PEXPIRE', KEYS[1], math.ceil(idle))
return math.ceil(wait)
"""


class SharedRateLimiter:
    """Paces requests of one API key across processes (see the module docstring).

    ``rate`` requests per second, ``burst`` at once; ``max_wait`` seconds is the longest a caller
    will queue before giving up with :class:`RateLimitedError` (the job is then retried later);
    low-priority work, with :class:`LowPriorityBudgetExhaustedError`.
    """

    def __init__(
        self,
        redis: Redis,
        keys: FaceitKeys,
        key_id: str,
        *,
        rate: float,
        burst: int,
        max_wait: float = 120.0,
    ) -> None:
        self.redis = redis
        self.rate = float(rate)
        self.burst = int(burst)
        self.max_wait = max_wait
        self.bucket_key = keys.bucket(key_id)
        self.block_key = keys.bucket_block(key_id)
        self._script = redis.register_script(_SCRIPT)
        self._low_lane: _LowLane | None = None

    async def _call(self, mode: str, block_ms: float = 0.0) -> float:
        wait_ms = await self._script(
            keys=[self.bucket_key, self.block_key],
            args=[self.rate, self.burst, mode, block_ms, low_reserve(self.burst)],
        )
        return float(wait_ms) / 1000.0 if mode == "take_low" else max(0.0, float(wait_ms) / 1000.0)

    async def acquire(self) -> float:
        """Wait for this request's slot; returns the seconds waited. Low-priority work
        (:func:`low_priority_work`) waits in the low lane (:meth:`_acquire_low`)."""
        low = low_priority_work()
        if low is not None:
            return await self._acquire_low(low)
        return await self._take()

    async def _take(self) -> float:
        """Reserve the next slot and sleep until it (interactive work)."""
        waited = 0.0
        for _ in range(20):
            wait = await self._call("take")
            if waited + wait > self.max_wait:
                raise RateLimitedError(
                    f"FACEIT request queue is {waited + wait:.0f}s long", retry_after=round(wait, 1)
                )
            if wait <= 0:
                return waited
            await asyncio.sleep(wait)
            waited += wait
            # A 429 may have pushed the bucket back while we slept: if so, queue again behind it.
            blocked_ms = await self.redis.pttl(self.block_key)
            if blocked_ms is None or int(blocked_ms) <= 0:
                return waited
            await asyncio.sleep(int(blocked_ms) / 1000.0)
            waited += int(blocked_ms) / 1000.0
        return waited

    async def _acquire_low(self, low: LowPriority) -> float:
        """Take a token only while the bucket holds more than :func:`low_reserve`; until then,
        wait for the refill. The callers of one event loop ask one at a time (the others wait in
        the lane), so a bulk's hundreds of waiting calls make one Redis call per refill, not one
        each. Past ``max_wait`` in all: :class:`LowPriorityBudgetExhaustedError` (the job is
        retried later). Once ``low`` is raised (an interactive caller joined the fetch), the call
        leaves the lane, wherever it waits, and takes a slot as interactive work does."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        if self._low_lane is None:
            self._low_lane = _LowLane()
        lane = self._low_lane
        if await lane.enter(low):
            try:
                while not low.raised:
                    waited = loop.time() - started
                    wait = await self._call("take_low")
                    if wait >= 0:
                        return waited
                    if low.raised:  # raised while Redis answered: no give-up, go as interactive
                        break
                    if waited - wait > self.max_wait:
                        # No retry_after: the next low slot (under a second away) says nothing of
                        # when the budget is back, and as retry_after it would override the job's
                        # retry schedule (middleware.backoff) and requeue the job at once.
                        raise LowPriorityBudgetExhaustedError(
                            f"the low-priority FACEIT budget is exhausted: no request slot within "
                            f"{self.max_wait:g}s (the next in {-wait:.1f}s)", retry_after=None)
                    await low.sleep(-wait)
            finally:
                lane.leave()
        # Raised: interactive work waits on this call now (its own max_wait starts here).
        waited = loop.time() - started
        return waited + await self._take()

    async def block(self, seconds: float) -> None:
        """Push the bucket back: no request of this key leaves for ``seconds`` (after a 429)."""
        log.warning("FACEIT rate limit hit: pausing every client of this key for %.1fs", seconds)
        await self._call("block", max(0.0, seconds) * 1000.0)


def low_reserve(burst: int) -> int:
    """The tokens low-priority work leaves in the bucket for interactive work: half the burst."""
    return burst // 2

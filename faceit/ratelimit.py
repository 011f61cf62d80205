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

Low-priority work (jobs of the low queue: bulk analyses, cache updates) reserves nothing: it takes
a token only while the bucket holds more than :func:`low_reserve` of them, and otherwise waits
for the refill, one caller per event loop asking. So a ``/bulk`` of live rooms, which wants 30
calls for each of its matches, never queues ahead of a user's ``/analyze``: interactive work
always finds half the burst in the bucket and a queue of its own kind only. Low work alone still
runs at ``rate`` (it gives up half the burst, not the pace).
"""

from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar

from redis.asyncio import Redis

from faceit.errors import RateLimitedError
from faceit.keys import FaceitKeys

log = logging.getLogger(__name__)

#: Whether the FACEIT calls of the running task are low-priority work: ``actors.base.job_actor``
#: sets it in each job of the low queue (a job runs in a task of its own, so the value is the job's).
LOW_PRIORITY_WORK: ContextVar[bool] = ContextVar("faceit_low_priority_work", default=False)

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
    will queue before giving up with :class:`RateLimitedError` (the job is then retried later).
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
        self._low_lane: asyncio.Lock | None = None

    async def _call(self, mode: str, block_ms: float = 0.0) -> float:
        wait_ms = await self._script(
            keys=[self.bucket_key, self.block_key],
            args=[self.rate, self.burst, mode, block_ms, low_reserve(self.burst)],
        )
        return float(wait_ms) / 1000.0 if mode == "take_low" else max(0.0, float(wait_ms) / 1000.0)

    async def acquire(self) -> float:
        """Wait for this request's slot; returns the seconds waited. Low-priority work
        (:data:`LOW_PRIORITY_WORK`) waits in the low lane (:meth:`_acquire_low`)."""
        if LOW_PRIORITY_WORK.get():
            return await self._acquire_low()
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

    async def _acquire_low(self) -> float:
        """Take a token only while the bucket holds more than :func:`low_reserve`; until then,
        wait for the refill. The callers of one event loop ask one at a time (the others wait on
        the lane), so a bulk's hundreds of waiting calls make one Redis call per refill, not one
        each. Past ``max_wait`` in all: :class:`RateLimitedError` (the job is retried later)."""
        if self._low_lane is None:
            self._low_lane = asyncio.Lock()
        waited = 0.0
        started = asyncio.get_running_loop().time()
        async with self._low_lane:
            waited = asyncio.get_running_loop().time() - started
            while True:
                wait = await self._call("take_low")
                if wait >= 0:
                    return waited
                if waited - wait > self.max_wait:
                    raise RateLimitedError(f"FACEIT requests of low-priority work wait {waited - wait:.0f}s "
                                           "for interactive ones", retry_after=round(-wait, 1))
                await asyncio.sleep(-wait)
                waited -= wait

    async def block(self, seconds: float) -> None:
        """Push the bucket back: no request of this key leaves for ``seconds`` (after a 429)."""
        log.warning("FACEIT rate limit hit: pausing every client of this key for %.1fs", seconds)
        await self._call("block", max(0.0, seconds) * 1000.0)


def low_reserve(burst: int) -> int:
    """The tokens low-priority work leaves in the bucket for interactive work: half the burst."""
    return burst // 2

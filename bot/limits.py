"""Per-user limits on job requests, shared by every bot process through Redis.

Two limits (settings ``USER_JOBS_PER_MINUTE``, 5, and ``USER_MAX_ACTIVE_JOBS``, 3), checked and
reserved in ONE Lua call so two bot processes cannot both let the same user through:

* a sliding one-minute window of the user's job requests (``bot:rate:<uid>``);
* the user's unfinished jobs (``bot:active:<uid>``): job ids whose record is still queued,
  running or retrying. A request in flight holds a ``p:<token>`` reservation there until the
  enqueue returns (:meth:`UserLimits.commit` swaps in the job id, :meth:`UserLimits.release`
  gives both slots back when the enqueue failed). Reservations older than
  :data:`RESERVATION_TTL` seconds are dropped (a bot process that died mid-request).

Finished or expired jobs leave the active set on the next check, so nothing needs cleaning up.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from bot.keys import BotKeys

RESERVATION_TTL = 30
WINDOW_SECONDS = 60.0

# KEYS: rate, active. ARGV: now, window, per_minute, max_active, job key prefix, token,
# reservation ttl, active ttl.  → {"ok", 0} | {"active", count} | {"rate", seconds to wait}
_CHECK = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local members = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
local count = 0
for i = 1, #members, 2 do
  local member, score = members[i], tonumber(members[i + 1])
  local alive
  if string.sub(member, 1, 2) == 'p:' then
    alive = score > now - tonumber(ARGV[7])
  else
    local st = redis.call('HGET', ARGV[5] .. member, 'status')
    alive = st == 'queued' or st == 'started' or st == 'retrying'
  end
  if alive then count = count + 1 else redis.call('ZREM', KEYS[2], member) end
end
if count >= tonumber(ARGV[4]) then return {'active', count} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {'rate', tostring(tonumber(oldest[2]) + window - now)}
end
redis.call('ZADD', KEYS[1], now, ARGV[6])
redis.call('EXPIRE', KEYS[1], math.ceil(window) + 1)
redis.call('ZADD', KEYS[2], now, 'p:' .. ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[8])
return {'ok', '0'}
"""


@dataclass(frozen=True)
class LimitDecision:
    """``allowed``, or why not: ``rate`` (with ``retry_after`` seconds) or ``active`` (``count``)."""

    verdict: str
    token: str = ""
    retry_after: float = 0.0
    count: int = 0

    @property
    def allowed(self) -> bool:
        return self.verdict == "ok"


class UserLimits:
    """Checks and reserves a user's job slot (async Redis client, ``decode_responses=True``)."""

    def __init__(self, redis: Any, keys: BotKeys, *, per_minute: int, max_active: int, job_key_prefix: str,
                 active_ttl: int = 86400) -> None:
        self.redis = redis
        self.keys = keys
        self.per_minute = int(per_minute)
        self.max_active = int(max_active)
        self.job_key_prefix = job_key_prefix
        self.active_ttl = int(active_ttl)
        self._check = redis.register_script(_CHECK)

    async def acquire(self, user_id: int) -> LimitDecision:
        token = uuid.uuid4().hex
        verdict, value = await self._check(
            keys=[self.keys.user_rate(user_id), self.keys.user_active(user_id)],
            args=[repr(time.time()), WINDOW_SECONDS, self.per_minute, self.max_active, self.job_key_prefix,
                  token, RESERVATION_TTL, self.active_ttl],
        )
        if verdict == "ok":
            return LimitDecision("ok", token=token)
        if verdict == "rate":
            return LimitDecision("rate", retry_after=min(WINDOW_SECONDS, max(1.0, float(value))))
        return LimitDecision("active", count=int(value))

    async def commit(self, user_id: int, token: str, job_id: str) -> None:
        """The enqueue went through: the reservation becomes the job id."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(self.keys.user_active(user_id), f"p:{token}")
        pipe.zadd(self.keys.user_active(user_id), {job_id: time.time()})
        pipe.expire(self.keys.user_active(user_id), self.active_ttl)
        await pipe.execute()

    async def release(self, user_id: int, token: str) -> None:
        """The enqueue failed: give back both the minute slot and the active slot."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(self.keys.user_active(user_id), f"p:{token}")
        pipe.zrem(self.keys.user_rate(user_id), token)
        await pipe.execute()

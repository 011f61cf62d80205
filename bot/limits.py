"""Per-user limits on job requests, shared by every bot process through Redis.

Two limits (settings ``USER_JOBS_PER_MINUTE``, 5, and ``USER_MAX_ACTIVE_JOBS``, 3), checked and
reserved in ONE Lua call so two bot processes cannot both let the same user through:

* a sliding one-minute window of the user's job requests (``bot:rate:<uid>``);
* the user's unfinished jobs (``bot:active:<uid>``): job ids whose record is still queued,
  running or retrying. A request in flight holds a ``p:<token>`` reservation there until the
  enqueue returns (:meth:`UserLimits.commit` swaps in the job id, :meth:`UserLimits.release`
  gives both slots back when the enqueue failed or the request started no job of the user's).
  Reservations older than :data:`RESERVATION_TTL` seconds are dropped (a bot process that died
  mid-request).

A request the in-flight job of its subject already answers (the user asking again for a job of
theirs, or a group member pointed at the message that shows it) is not new work: the limits let
it through even when they refuse new work.

Finished or expired jobs leave the active set on the next check, so nothing needs cleaning up.

On the Redis broker the bot does not reserve: :mod:`bot.jobstart` runs these same checks, the
job's record and its message in one script, and puts the job id in the active set directly.
The reservation is for the general path (RabbitMQ), where the message leaves in another call.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from bot.keys import BotKeys
from queues.jobstore import CREATE_JOB_LUA

RESERVATION_TTL = 30
WINDOW_SECONDS = 60.0

# check_user_limits(K, A): K = {rate, active}; A = {now, window, per_minute, max_active, job key
# prefix, reservation ttl}. Drops finished jobs and stale reservations from the active set, then
# returns the refusal ({"active", count} or {"rate", seconds to wait}) or nil: the user may start one.
# record_request(K, now, window, request, active member, active ttl): counts the request in the
# minute window and puts ``active member`` (a reservation or a job id) in the active set.
# Functions, so the bot's one-round-trip job start (bot/jobstart.py) runs the very same checks.
LIMITS_LUA = """
local function check_user_limits(K, A)
  local now, window = tonumber(A[1]), tonumber(A[2])
  local members = redis.call('ZRANGE', K[2], 0, -1, 'WITHSCORES')
  local count = 0
  for i = 1, #members, 2 do
    local member, score = members[i], tonumber(members[i + 1])
    local alive
    if string.sub(member, 1, 2) == 'p:' then
      alive = score > now - tonumber(A[6])
    else
      local st = redis.call('HGET', A[5] .. member, 'status')
      alive = st == 'queued' or st == 'started' or st == 'retrying'
    end
    if alive then count = count + 1 else redis.call('ZREM', K[2], member) end
  end
  if count >= tonumber(A[4]) then return {'active', count} end
  redis.call('ZREMRANGEBYSCORE', K[1], '-inf', now - window)
  if redis.call('ZCARD', K[1]) >= tonumber(A[3]) then
    local oldest = redis.call('ZRANGE', K[1], 0, 0, 'WITHSCORES')
    return {'rate', tostring(tonumber(oldest[2]) + window - now)}
  end
  return nil
end
local function record_request(K, now, window, request, active_member, active_ttl)
  redis.call('ZADD', K[1], now, request)
  redis.call('EXPIRE', K[1], math.ceil(window) + 1)
  redis.call('ZADD', K[2], now, active_member)
  redis.call('EXPIRE', K[2], active_ttl)
end
"""

# KEYS: rate, active. ARGV: now, window, per_minute, max_active, job key prefix, reservation ttl,
# token, active ttl, create_job's A (or nothing).
# → {"ok", 0} | {"repeat", 0} | {"active", count} | {"rate", seconds}
# "repeat": refused, but the in-flight job of the request's subject already answers this user (they
# asked for it again, or a message in their group shows it: queues.jobstore's answered_already):
# not a new request, so nothing is reserved and the limits do not refuse it.
_CHECK = LIMITS_LUA + CREATE_JOB_LUA + """
local refusal = check_user_limits(KEYS, ARGV)
if refusal then
  if #ARGV > 8 and answered_already({unpack(ARGV, 9)}) then return {'repeat', '0'} end
  return refusal
end
record_request(KEYS, tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[7], 'p:' .. ARGV[7], ARGV[8])
return {'ok', '0'}
"""


# KEYS: rate, active. ARGV: now, window, request id, job id, active ttl. Counts a started job.
_RECORD = LIMITS_LUA + """
record_request(KEYS, tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5])
return 1
"""


@dataclass(frozen=True)
class LimitDecision:
    """``ok`` (with a reservation ``token``; none for a ``repeat``), or why not: ``rate`` (with
    ``retry_after`` seconds) or ``active`` (``count``)."""

    verdict: str
    token: str = ""
    retry_after: float = 0.0
    count: int = 0

    @property
    def allowed(self) -> bool:
        return self.verdict == "ok"

    @property
    def repeat(self) -> bool:
        """Let through without a reservation: a job of the request's subject already answers the
        user (theirs, asked again, or their group's), in flight or just succeeded."""
        return self.allowed and not self.token


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
        self._record = redis.register_script(_RECORD)

    def limit_keys(self, user_id: int) -> list[str]:
        """KEYS of ``check_user_limits`` and ``record_request`` (:data:`LIMITS_LUA`)."""
        return [self.keys.user_rate(user_id), self.keys.user_active(user_id)]

    def check_args(self, now: float) -> list[Any]:
        """The arguments of ``check_user_limits`` (:data:`LIMITS_LUA`)."""
        return [repr(now), WINDOW_SECONDS, self.per_minute, self.max_active, self.job_key_prefix, RESERVATION_TTL]

    @staticmethod
    def decision(verdict: str, value: Any, token: str = "") -> LimitDecision:
        """A script's ``{verdict, value}`` refusal (or ``ok``) as a :class:`LimitDecision`."""
        if verdict == "ok":
            return LimitDecision("ok", token=token)
        if verdict == "repeat":
            return LimitDecision("ok")
        if verdict == "rate":
            return LimitDecision("rate", retry_after=min(WINDOW_SECONDS, max(1.0, float(value))))
        return LimitDecision("active", count=int(value))

    async def acquire(self, user_id: int, create_args: list[Any] | None = None) -> LimitDecision:
        """Reserve a job slot for ``user_id``. Over the limits, a request the in-flight job of its
        subject already answers (``create_args``: its ``create_job`` arguments) is let through as
        a repeat, without a reservation."""
        token = uuid.uuid4().hex
        now = time.time()
        verdict, value = await self._check(keys=self.limit_keys(user_id),
                                           args=[*self.check_args(now), token, self.active_ttl, *(create_args or [])])
        return self.decision(verdict, value, token)

    async def commit(self, user_id: int, token: str, job_id: str) -> None:
        """The enqueue went through: the reservation becomes the job id."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(self.keys.user_active(user_id), f"p:{token}")
        pipe.zadd(self.keys.user_active(user_id), {job_id: time.time()})
        pipe.expire(self.keys.user_active(user_id), self.active_ttl)
        await pipe.execute()

    async def record_started(self, user_id: int, job_id: str) -> None:
        """A request let through as a repeat started a job after all (its job ended meanwhile):
        count it, as a reservation committed to it would have been."""
        await self._record(keys=self.limit_keys(user_id),
                           args=[repr(time.time()), WINDOW_SECONDS, uuid.uuid4().hex, job_id, self.active_ttl])

    async def release(self, user_id: int, token: str) -> None:
        """Give back both the minute slot and the active slot of a reservation that started no job
        of the user's: the enqueue failed, or the request was answered by a job already in flight."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(self.keys.user_active(user_id), f"p:{token}")
        pipe.zrem(self.keys.user_rate(user_id), token)
        await pipe.execute()

"""Telegram's send limits, shared by every process through Redis: ~1 message/s per chat, 30/s overall.

A GCRA (generic cell rate algorithm) per chat and one for the whole bot, in one Lua call that
uses Redis's clock, so worker processes on different hosts share one budget. Two modes:

* ``reserve`` — take the next free slot of both buckets and return how long to wait for it
  (deliveries: every part must go out, in order);
* ``try`` — take a slot only if one is free now, else take nothing and return None (progress
  edits: a skipped "players 6/10" costs nothing, a delayed one holds up the result).

``hold(chat_id, seconds)`` pushes a chat's next slot past a 429's ``retry_after``.

Parameters (settings): ``TELEGRAM_CHAT_RATE`` (1/s), ``TELEGRAM_GLOBAL_RATE`` (30/s), and
optionally ``TELEGRAM_CHAT_BURST`` (1) / ``TELEGRAM_GLOBAL_BURST`` (30): how many messages may
go out back to back before the rate applies.
"""

from __future__ import annotations

from typing import Any

from bot.keys import BotKeys

# KEYS: chat, global. ARGV: chat interval, chat burst, global interval, global burst, mode.
# Returns the wait in seconds as text, or "-1" when mode is "try" and no slot is free now.
_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ci, cb = tonumber(ARGV[1]), tonumber(ARGV[2])
local gi, gb = tonumber(ARGV[3]), tonumber(ARGV[4])
local ctat = tonumber(redis.call('GET', KEYS[1]) or '0')
local gtat = tonumber(redis.call('GET', KEYS[2]) or '0')
if ctat < now then ctat = now end
if gtat < now then gtat = now end
local start = now
local callow = ctat - (cb - 1) * ci
local gallow = gtat - (gb - 1) * gi
if callow > start then start = callow end
if gallow > start then start = gallow end
if ARGV[5] == 'try' and start > now then return '-1' end
local cnew = math.max(ctat, start) + ci
local gnew = math.max(gtat, start) + gi
redis.call('SET', KEYS[1], tostring(cnew), 'PX', math.ceil((cnew - now) * 1000) + 1000)
redis.call('SET', KEYS[2], tostring(gnew), 'PX', math.ceil((gnew - now) * 1000) + 1000)
return tostring(start - now)
"""

# KEYS: chat. ARGV: seconds.  The chat's next slot is no sooner than now + seconds.
_HOLD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local until_ = now + tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < until_ then
  redis.call('SET', KEYS[1], tostring(until_), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
end
return 1
"""


class SendLimiter:
    """Per-chat and overall send budgets (async Redis client)."""

    def __init__(self, redis: Any, keys: BotKeys, *, chat_rate: float = 1.0, global_rate: float = 30.0,
                 chat_burst: int = 1, global_burst: int = 30) -> None:
        self.redis = redis
        self.keys = keys
        self.chat_interval = 1.0 / float(chat_rate)
        self.global_interval = 1.0 / float(global_rate)
        self.chat_burst = max(1, int(chat_burst))
        self.global_burst = max(1, int(global_burst))
        self._slot = redis.register_script(_SLOT)
        self._hold = redis.register_script(_HOLD)

    @classmethod
    def from_settings(cls, redis: Any, keys: BotKeys, settings: Any) -> SendLimiter:
        return cls(redis, keys, chat_rate=settings.telegram_chat_rate, global_rate=settings.telegram_global_rate,
                   chat_burst=int(getattr(settings, "telegram_chat_burst", 1)),
                   global_burst=int(getattr(settings, "telegram_global_burst", settings.telegram_global_rate)))

    async def _take(self, chat_id: int, mode: str) -> float:
        wait = await self._slot(keys=[self.keys.chat_slot(chat_id), self.keys.global_slot()],
                                args=[self.chat_interval, self.chat_burst, self.global_interval,
                                      self.global_burst, mode])
        return float(wait)

    async def reserve(self, chat_id: int) -> float:
        """Take the next slot; returns the seconds to wait before sending (0 when free now)."""
        return max(0.0, await self._take(chat_id, "reserve"))

    async def try_now(self, chat_id: int) -> bool:
        """Take a slot only if one is free right now."""
        return await self._take(chat_id, "try") >= 0

    async def hold(self, chat_id: int, seconds: float) -> None:
        await self._hold(keys=[self.keys.chat_slot(chat_id)], args=[float(seconds)])

"""Telegram's send limits, shared by every process through Redis: ~1 message/s per chat, 20 a
minute per group, 30/s overall.

A GCRA (generic cell rate algorithm) per chat and one for the whole bot, in Lua on Redis's
clock, so worker processes on different hosts share one budget. Two modes:

* :meth:`SendLimiter.acquire` — wait for the chat's next slot, then for an overall one
  (deliveries: every part must go out, in order);
* :meth:`SendLimiter.try_now` — take a slot of both only if both are free now, else nothing
  (progress edits: a skipped "players 6/10" costs nothing, a delayed one holds up the result).

``hold(chat_id, seconds)`` pushes a chat's next slot past a 429's ``retry_after``.

Parameters (settings): ``TELEGRAM_CHAT_RATE`` (1/s), ``TELEGRAM_GROUP_RATE`` (20 a minute:
groups and channels, whose chat ids are negative), ``TELEGRAM_GLOBAL_RATE`` (30/s), and
optionally ``TELEGRAM_CHAT_BURST`` (1) / ``TELEGRAM_GROUP_BURST`` (1) / ``TELEGRAM_GLOBAL_BURST``
(30): how many messages may go out back to back before the rate applies.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bot.keys import BotKeys

# GCRA on one key. ARGV: interval, burst, mode, and the longest wait to book ("" or absent: any).
# Returns the wait in seconds as text (the slot is taken), "-1" when mode is "try" and no slot
# is free now, or "far:<seconds>" when the next slot is further off than allowed (nothing taken).
_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local start = tat - (burst - 1) * interval
if start < now then start = now end
if ARGV[3] == 'try' and start > now then return '-1' end
local most = tonumber(ARGV[4] or '')
if most and start - now > most then return 'far:' .. tostring(start - now) end
local new = math.max(tat, start) + interval
redis.call('SET', KEYS[1], tostring(new), 'PX', math.ceil((new - now) * 1000) + 1000)
return tostring(start - now)
"""

# KEYS: chat, global. ARGV: chat interval, chat burst, global interval, global burst.
# Takes a slot of both only if both are free now: "1", else "0" (nothing taken).
_TRY_BOTH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tats = {}
for i = 1, 2 do
  local interval, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  if tat - (burst - 1) * interval > now then return '0' end
  tats[i] = tat + interval
end
for i = 1, 2 do
  redis.call('SET', KEYS[i], tostring(tats[i]), 'PX', math.ceil((tats[i] - now) * 1000) + 1000)
end
return '1'
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


class SlotTooFar(Exception):
    """The chat's next free slot is ``wait`` seconds off, more than the caller would wait."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"the chat's next send slot is {wait:.1f} s off")
        self.wait = wait


class SendLimiter:
    """Per-chat and overall send budgets (async Redis client)."""

    def __init__(self, redis: Any, keys: BotKeys, *, chat_rate: float = 1.0, global_rate: float = 30.0,
                 chat_burst: int = 1, global_burst: int = 30, group_rate: float = 20 / 60,
                 group_burst: int = 1) -> None:
        self.redis = redis
        self.keys = keys
        self.chat_interval = 1.0 / float(chat_rate)
        self.group_interval = 1.0 / float(group_rate)
        self.global_interval = 1.0 / float(global_rate)
        self.chat_burst = max(1, int(chat_burst))
        self.group_burst = max(1, int(group_burst))
        self.global_burst = max(1, int(global_burst))
        self._slot = redis.register_script(_SLOT)
        self._try_both = redis.register_script(_TRY_BOTH)
        self._hold = redis.register_script(_HOLD)

    @classmethod
    def from_settings(cls, redis: Any, keys: BotKeys, settings: Any) -> SendLimiter:
        return cls(redis, keys, chat_rate=settings.telegram_chat_rate, global_rate=settings.telegram_global_rate,
                   chat_burst=settings.telegram_chat_burst, global_burst=settings.telegram_global_burst,
                   group_rate=settings.telegram_group_rate, group_burst=settings.telegram_group_burst)

    def chat_budget(self, chat_id: int) -> tuple[float, int]:
        """(interval, burst) of one chat: a group's (negative id) is Telegram's 20 a minute."""
        if int(chat_id) < 0:
            return self.group_interval, self.group_burst
        return self.chat_interval, self.chat_burst

    async def _slot_of(self, key: str, interval: float, burst: int, mode: str, most: float | None = None) -> float:
        reply = str(await self._slot(keys=[key], args=[interval, burst, mode, "" if most is None else most]))
        if reply.startswith("far:"):
            raise SlotTooFar(float(reply[4:]))
        return float(reply)

    async def acquire(self, chat_id: int, *, max_wait: float | None = None) -> float:
        """Wait for the chat's next slot, then for the bot's; returns the seconds waited.

        The chat slot is booked first (possibly seconds ahead, when a long result is going out
        to that chat) and the overall slot only when that moment has come, so one busy chat
        never holds back the others. With ``max_wait``, a chat slot further off than that is not
        booked: :class:`SlotTooFar` (a busy group: the caller comes back later rather than hold
        a slot minutes ahead that its time limit may never let it use).
        """
        waited = max(0.0, await self._slot_of(self.keys.chat_slot(chat_id), *self.chat_budget(chat_id), "reserve",
                                              max_wait))
        if waited:
            await asyncio.sleep(waited)
        overall = max(0.0, await self._slot_of(self.keys.global_slot(), self.global_interval, self.global_burst,
                                               "reserve"))
        if overall:
            await asyncio.sleep(overall)
        return waited + overall

    async def try_now(self, chat_id: int) -> bool:
        """Take a slot of both budgets only if both are free right now (never waits)."""
        taken = await self._try_both(keys=[self.keys.chat_slot(chat_id), self.keys.global_slot()],
                                     args=[*self.chat_budget(chat_id), self.global_interval, self.global_burst])
        return taken == "1"

    async def hold(self, chat_id: int, seconds: float) -> None:
        await self._hold(keys=[self.keys.chat_slot(chat_id)], args=[float(seconds)])

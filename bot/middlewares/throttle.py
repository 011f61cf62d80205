"""Drops a user's updates beyond a short burst, so one flooding user cannot tie up the bot.

Each user gets a token bucket in this process: ``burst`` updates at once, then ``rate`` per
second. An update over the budget is dropped (logged at debug): Telegram would not let us
answer faster than about one message a second per chat anyway, and every answer we tried to
force out would only wait on flood control while holding a slot other users need. Job
requests have their own, stricter limits across processes (:mod:`bot.limits`); this is only
the guard against floods of anything.

Parameters:
  rate: updates per second a user may keep sending (2).
  burst: how many may arrive at once (8).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User

logger = logging.getLogger(__name__)

MAX_TRACKED_USERS = 50_000


class ThrottleMiddleware(BaseMiddleware):
    """Outer update middleware: per-user token bucket, in process."""

    def __init__(self, rate: float = 2.0, burst: int = 8) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self._buckets: OrderedDict[int, tuple[float, float]] = OrderedDict()
        self.dropped = 0

    def allow(self, user_id: int, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, seen = self._buckets.pop(user_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - seen) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[user_id] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > MAX_TRACKED_USERS:
            self._buckets.popitem(last=False)  # the least recently seen user
        return allowed

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if user is not None and not self.allow(user.id):
            self.dropped += 1
            logger.debug("update from user %s dropped: over %s/s", user.id, self.rate)
            return None
        return await handler(event, data)

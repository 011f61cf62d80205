"""Holds back a user's updates beyond a short burst, so one flooding user cannot tie up the bot —
without losing a request in silence.

Each user gets a token bucket in this process: ``burst`` updates at once, then ``rate`` per
second. Telegram would not let us answer faster than about one message a second per chat
anyway, and every answer we tried to force out would only wait on flood control while holding
a slot other users need. Job requests have their own, stricter limits across processes
(:mod:`bot.limits`); this is only the guard against floods of anything.

What a user over the budget sees (chosen for a person who pasted or typed a few things fast,
not for the abuser, who must gain nothing from it):

* ``/start``, ``/help``, ``/lang`` and ``/tz`` are still served from a small second bucket
  (``light_burst`` at once, ``light_rate`` per second). They cost no job and no FACEIT call,
  and dropping them hurts most: a lost ``/lang ru`` silently leaves every later answer in the
  wrong language. The bucket is small, so a flood of ``/help`` is still held back.
* Anything else is skipped, and the first skipped update of an *episode* gets one short
  notice in the user's language: "Too many messages at once — I skipped some; send them again
  in N s" (N: until the burst is whole again). The episode lasts until the user has been quiet
  long enough for the bucket to refill completely, so a user who keeps flooding gets that one
  notice and nothing more — never one message of ours per message of theirs. Skipped updates
  after the notice are only counted (and logged at debug).
* The notice goes only where the skipped update would have been answered: a private chat, a
  command in a group, a button press. A group member's fast chatter is skipped quietly (the
  bot would not have answered it anyway), and does not use up the episode's notice.

The notice's language is looked up (one Redis round trip) only when a notice is sent, once per
episode; an ordinary update costs no more than the bucket arithmetic.

Parameters:
  rate: updates per second a user may keep sending (2).
  burst: how many may arrive at once (8).
  light_rate, light_burst: the same for ``/start``, ``/help``, ``/lang``, ``/tz`` beyond the above (0.5, 4).
  chosen_lang: ``async (user_id) -> "en" | "ru" | None``, the language chosen with ``/lang``
    (None: Telegram's language is used).
  exempt: user ids never held back (the admins: an operator's quick run of /queues, /alerts and
    /requeue is no flood).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import Message, TelegramObject, Update, User

from bot.middlewares.i18n import telegram_user_language
from bot.replies import answer
from bot.texts import t
from queues.redaction import error_text

logger = logging.getLogger(__name__)

MAX_TRACKED_USERS = 50_000
# Served from the light bucket: no job, no FACEIT call, a fixed answer (or a language choice)
LIGHT_COMMAND = re.compile(r"^/(?:start|help|lang|tz|timezone)(?:@\w+)?(?:\s|$)", re.IGNORECASE)


class Verdict(Enum):
    """What becomes of one update."""

    SERVE = "serve"
    NOTICE = "notice"  # skipped, and the user is told (the episode's first)
    SKIP = "skip"  # skipped quietly (told already, or nothing would have answered it)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    light: float
    seen: float
    noticed: bool = False


class ThrottleMiddleware(BaseMiddleware):
    """Outer update middleware: per-user token bucket, in process, with a notice per episode."""

    def __init__(self, rate: float = 2.0, burst: int = 8, light_rate: float = 0.5, light_burst: int = 4,
                 chosen_lang: Callable[[int], Awaitable[str | None]] | None = None,
                 exempt: frozenset[int] | set[int] = frozenset()) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self.light_rate = float(light_rate)
        self.light_burst = float(light_burst)
        self.chosen_lang = chosen_lang
        self.exempt = frozenset(exempt)
        self._buckets: OrderedDict[int, _Bucket] = OrderedDict()

    def check(self, user_id: int, light: bool = False, answerable: bool = True,
              now: float | None = None) -> Verdict:
        """Take one update of ``user_id`` from the budget. ``light``: a command of
        :data:`LIGHT_COMMAND`; ``answerable``: the bot would answer it (a notice may go out for it)."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.pop(user_id, None)
        if bucket is None:
            bucket = _Bucket(self.burst, self.light_burst, now)
        elapsed = max(0.0, now - bucket.seen)
        bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
        bucket.light = min(self.light_burst, bucket.light + elapsed * self.light_rate)
        bucket.seen = now
        if bucket.tokens >= self.burst:
            bucket.noticed = False  # quiet long enough: the episode is over
        self._buckets[user_id] = bucket
        if len(self._buckets) > MAX_TRACKED_USERS:
            self._buckets.popitem(last=False)  # the least recently seen user
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return Verdict.SERVE
        if light and bucket.light >= 1.0:
            bucket.light -= 1.0
            return Verdict.SERVE
        if answerable and not bucket.noticed:
            bucket.noticed = True
            return Verdict.NOTICE
        return Verdict.SKIP

    def retry_after(self, user_id: int) -> int:
        """Whole seconds until ``user_id``'s burst is whole again (what the notice tells them)."""
        bucket = self._buckets.get(user_id)
        missing = self.burst - (bucket.tokens if bucket is not None else self.burst)
        return max(1, math.ceil(missing / self.rate))

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None or user.id in self.exempt:  # admins: operators, who may type fast, not a threat
            return await handler(event, data)
        bucket = self._buckets.get(user.id)
        if bucket is None or bucket.tokens >= 1.0:  # the common case: within the budget, whatever it is
            self.check(user.id)
            return await handler(event, data)
        message = _message_of(event)
        light = message is not None and LIGHT_COMMAND.match(message.text or "") is not None
        verdict = self.check(user.id, light=light, answerable=_answerable(event, message))
        if verdict is Verdict.SERVE:
            return await handler(event, data)
        if verdict is Verdict.NOTICE:
            await self._notice(event, message, user)
            return None
        logger.debug("update from user %s skipped: over %s/s", user.id, self.rate)
        return None

    async def _notice(self, event: TelegramObject, message: Message | None, user: User) -> None:
        """Tell the user, once for this episode, that some of their messages were skipped."""
        seconds = self.retry_after(user.id)
        logger.info("user %s over %s updates/s: skipping, told to resend in %s s", user.id, self.rate, seconds)
        lang = await telegram_user_language(user, self.chosen_lang)
        text = t("throttled", lang, seconds=seconds)  # plain text: a message and a button's alert alike
        try:
            if isinstance(event, Update) and event.callback_query is not None:
                await event.callback_query.answer(text, show_alert=True)
            elif message is not None:
                await answer(message, text)
        except Exception as exc:  # Telegram refused or is down: the skip stands, logged
            logger.warning("could not send the throttle notice to user %s: %s: %s", user.id, type(exc).__name__,
                           error_text(exc, 160))


def _message_of(event: TelegramObject) -> Message | None:
    if isinstance(event, Update):
        return event.message or event.edited_message
    return None


def _answerable(event: TelegramObject, message: Message | None) -> bool:
    """Would the bot have answered this update? (Where it would not, no notice goes out.)"""
    if isinstance(event, Update) and event.callback_query is not None:
        return True
    if message is None:
        return False
    return message.chat.type == "private" or (message.text or "").startswith("/")

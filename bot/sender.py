"""The one way workers call Telegram: limits respected, flood control waited out, blocks final.

:meth:`Sender.call` runs one Bot API call for one chat:

* it first takes a slot of the shared :class:`~bot.sendlimit.SendLimiter` (waiting for it, or
  with ``best_effort`` giving up at once when none is free: progress edits); a slot further off
  than ``max_inline_wait`` (a busy group) is not booked: :class:`~faceit.errors.RateLimitedError`
  with that wait, so the delivery job comes back then;
* on flood control (429, :class:`~bot.botapi.FloodControl`) it holds the chat for
  ``retry_after`` seconds and tries again, up to ``max_inline_wait`` seconds in all; past that
  it raises :class:`~faceit.errors.RateLimitedError` so the pipeline retries the delivery job
  later (the worker thread is not held for minutes);
* 403 (:class:`~bot.botapi.Forbidden`: the user blocked the bot, or left) becomes
  :class:`UserBlocked`: final, the caller marks the user inactive and sends them nothing more;
* network trouble and Telegram 5xx become :class:`~faceit.errors.UpstreamError` (retried).

Other refusals (:class:`~bot.botapi.BadRequest`) reach the caller, which knows what they mean for it (an
edit of a message that is gone falls back to a new message).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bot.botapi import FloodControl, Forbidden, NetworkError
from bot.sendlimit import SendLimiter, SlotTooFar
from faceit.errors import RateLimitedError, UpstreamError

logger = logging.getLogger(__name__)

T = TypeVar("T")
SKIPPED = object()
MAX_INLINE_WAIT = 20.0


class UserBlocked(Exception):
    """Telegram answered 403: this user cannot be messaged (blocked the bot)."""

    def __init__(self, chat_id: int) -> None:
        super().__init__(f"chat {chat_id} blocked the bot")
        self.chat_id = chat_id


class Sender:
    """Rate-limited, flood-aware Bot API calls (one per process and event loop)."""

    def __init__(self, limiter: SendLimiter, *, max_inline_wait: float = MAX_INLINE_WAIT) -> None:
        self.limiter = limiter
        self.max_inline_wait = max_inline_wait
        self.flood_waits = 0

    async def call(self, chat_id: int, request: Callable[[], Awaitable[T]], *,
                   best_effort: bool = False, job_id: str = "") -> T | Any:
        """Run ``request()`` for ``chat_id`` within the limits; returns its result or :data:`SKIPPED`."""
        waited = 0.0
        if best_effort:
            if not await self.limiter.try_now(chat_id):
                return SKIPPED
        else:
            try:
                await self.limiter.acquire(chat_id, max_wait=self.max_inline_wait)
            except SlotTooFar as far:  # a busy group: come back when its turn is near
                logger.info("job %s: chat %s is busy for %.0f s more; the delivery will be retried", job_id,
                            chat_id, far.wait)
                raise RateLimitedError(f"chat {chat_id} busy for {far.wait:.0f} s", retry_after=far.wait) from None
        while True:  # the slot taken above is still ours after a 429: the call never went through
            try:
                return await request()
            except FloodControl as exc:
                self.flood_waits += 1
                retry_after = float(exc.retry_after)
                await self.limiter.hold(chat_id, retry_after)
                if best_effort:
                    return SKIPPED
                if waited + retry_after > self.max_inline_wait:
                    logger.warning("job %s: Telegram flood control for chat %s (retry after %s s): "
                                   "the delivery job will be retried", job_id, chat_id, retry_after)
                    raise RateLimitedError(f"Telegram flood control in chat {chat_id}",
                                           retry_after=retry_after) from None
                logger.info("job %s: Telegram flood control for chat %s: waiting %s s", job_id, chat_id,
                            retry_after)
                await asyncio.sleep(retry_after)
                waited += retry_after
            except Forbidden:
                raise UserBlocked(chat_id) from None
            except NetworkError as exc:
                raise UpstreamError(f"Telegram unreachable: {exc.description or exc.code}") from None

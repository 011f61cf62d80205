"""Building the aiogram ``Bot`` from settings, for the bot process and for workers alike.

This is the bot process's side; workers use the lighter :mod:`bot.botapi` (no aiogram import).

* The Bot API server is ``TELEGRAM_API_URL`` (``TelegramAPIServer.from_base``): the real one,
  or the sandbox in tests and local runs. With no ``TELEGRAM_BOT_TOKEN`` the sandbox's
  well-formed token is used, which only a sandbox accepts; against api.telegram.org an empty
  token is a configuration error (:class:`BotConfigError`, one line, no traceback).
* Telegram HTML is the default parse mode.
* The token never reaches a log line: :class:`TokenScrubFilter` masks it in every record (also
  cut short, and in tracebacks), and aiogram's loggers stay at INFO or above (its session would
  log URLs at DEBUG). A log line that quotes an exception cuts it with :func:`error_text`, which
  scrubs before it cuts. (Both live in :mod:`queues.redaction`, so processes without aiogram,
  the scheduler, install the same filter.)
* :class:`BotSession` takes a reply that is not JSON with a 5xx, 408 or 429 status (a proxy's
  "502 Bad Gateway" page while Telegram is unreachable) for the server trouble it is, not for a Bot API
  that is not one: the start-up waits for it and polling retries it.
* :class:`RetryAfterMiddleware` makes every call of the bot process wait out a 429
  (``TelegramRetryAfter``) and try again, within a bounded total wait: aiogram does not
  (:func:`wait_out_flood`, which :mod:`bot.fastsend` uses too). A waiting call holds one of the
  bot's update slots, so a chat gets few waiting calls at a time (a group one, for
  :data:`GROUP_MAX_WAIT` at most: its limit answers with long waits): a flooded chat cannot hold
  every slot and leave every other user unanswered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import ClientDecodeError, TelegramRetryAfter, TelegramServerError

from bot.config import BotConfigError, bot_token
from queues.redaction import install_token_scrubber

logger = logging.getLogger(__name__)

__all__ = ["BotConfigError", "BotSession", "RetryAfterMiddleware", "bot_token", "build_bot", "wait_out_flood"]

T = TypeVar("T")

REQUEST_TIMEOUT = 30
MAX_RETRY_AFTER_WAIT = 30.0
#: The longest a call to a group waits out flood control. Telegram holds a group to about 20
#: messages a minute and answers past it with waits of many seconds; a member sending commands
#: twice a second (which the bot's own flood guard lets through) would otherwise keep calls
#: waiting there, each holding an update slot, until no slot was left for anyone.
GROUP_MAX_WAIT = 10.0

#: How many calls to one chat may wait out flood control at once; the next that meets a 429
#: gives up at once instead of waiting beside them (each waiting call holds an update slot). A
#: group: one (its limit answers with long waits). A private chat: three, so three links pasted at
#: once still get three answers, while one person sending faster than their chat takes (the flood
#: guard lets 2 a second through; Telegram about 1) cannot fill every slot.
WAITERS_PER_GROUP = 1
WAITERS_PER_PRIVATE_CHAT = 3

#: Calls of this process waiting out flood control now, per chat.
_waiting_in: dict[int | str, int] = {}


async def wait_out_flood(call: Callable[[], Awaitable[T]], what: str,
                         max_wait: float = MAX_RETRY_AFTER_WAIT, chat_id: int | str | None = None) -> T:
    """``await call()``, waiting out Telegram's flood control (``TelegramRetryAfter``) and trying
    again, up to ``max_wait`` seconds of waiting in all; past that the 429 is raised.

    ``chat_id``, the chat the call writes to (None: none, as ``answerCallbackQuery``). At most
    :data:`WAITERS_PER_GROUP` calls to a group, or :data:`WAITERS_PER_PRIVATE_CHAT` to a private
    chat, wait at a time; another that meets a 429 meanwhile raises it at once (the chat takes
    nothing more for now anyway). A group's calls wait :data:`GROUP_MAX_WAIT` at most."""
    chat_id = _chat_key(chat_id)
    group = _is_group(chat_id)
    limit = min(max_wait, GROUP_MAX_WAIT) if group else max_wait
    waiters = WAITERS_PER_GROUP if group else WAITERS_PER_PRIVATE_CHAT
    waited = 0.0
    holding = False
    try:
        while True:
            try:
                return await call()
            except TelegramRetryAfter as exc:
                if waited + exc.retry_after > limit:
                    raise
                if chat_id is not None and not holding:
                    if _waiting_in.get(chat_id, 0) >= waiters:
                        logger.warning("Telegram flood control on %s to chat %s: %d call(s) there wait already; "
                                       "this one is given up", what, chat_id, waiters)
                        raise
                    _waiting_in[chat_id] = _waiting_in.get(chat_id, 0) + 1
                    holding = True
                logger.warning("Telegram flood control on %s: waiting %s s", what, exc.retry_after)
                await asyncio.sleep(exc.retry_after)
                waited += exc.retry_after
    finally:
        if holding and chat_id is not None:
            left = _waiting_in.get(chat_id, 1) - 1
            if left > 0:
                _waiting_in[chat_id] = left
            else:
                _waiting_in.pop(chat_id, None)


def _chat_key(chat_id: int | str | None) -> int | str | None:
    """``chat_id`` as one key per chat: a numeric string as the number it spells."""
    if isinstance(chat_id, str) and chat_id.lstrip("-").isdigit():
        return int(chat_id)
    return chat_id


def _is_group(chat_id: int | str | None) -> bool:
    """Whether ``chat_id`` (:func:`_chat_key`) is a group, supergroup or channel: a negative id,
    or a ``@username`` (only public groups and channels have one a bot can write to)."""
    return isinstance(chat_id, str) or (isinstance(chat_id, int) and chat_id < 0)


#: Statuses besides 5xx of a reply that is not JSON which say the trouble passes: a proxy's
#: timeout, or its own rate limit.
PASSING_STATUSES = frozenset({408, 429})


class BotSession(AiohttpSession):
    """aiogram's aiohttp session, but a reply that is not JSON with a 5xx status (or one of
    :data:`PASSING_STATUSES`) is a :class:`TelegramServerError`.

    aiogram decodes the body before it looks at the status, so a proxy's HTML error page raised
    ``ClientDecodeError``, which the start-up must take for a wrong ``TELEGRAM_API_URL`` (a web
    server that is no Bot API) and stop on for good. Those statuses say the server in front is in
    trouble, which passes: it is retried like Telegram's own 5xx. (Workers' deliveries read such
    pages in :mod:`bot.botapi`.)
    """

    def check_response(self, bot, method, status_code, content):  # type: ignore[no-untyped-def, override]
        try:
            return super().check_response(bot=bot, method=method, status_code=status_code, content=content)
        except ClientDecodeError:
            if status_code >= 500 or status_code in PASSING_STATUSES:
                raise TelegramServerError(method=method, message=f"HTTP {status_code}, not a Bot API reply") from None
            raise


class RetryAfterMiddleware(BaseRequestMiddleware):
    """Waits out Telegram's flood control and repeats the call (up to ``max_wait`` seconds in all)."""

    def __init__(self, max_wait: float = MAX_RETRY_AFTER_WAIT) -> None:
        self.max_wait = max_wait

    async def __call__(self, make_request, bot, method):  # type: ignore[override]
        return await wait_out_flood(lambda: make_request(bot, method), type(method).__name__, self.max_wait,
                                    getattr(method, "chat_id", None))


_PINNED: list[Any] = []


def pin_response_models() -> None:
    """Keep aiogram's ``Response[T]`` models alive.

    aiogram parametrises ``Response[method.__returning__]`` on every call; pydantic caches
    generic classes weakly, so once collected each one is rebuilt (tens of ms of schema work,
    measured as 10 % of the bot's CPU under load). Holding a reference to those of the methods
    we call keeps them cached for the life of the process.
    """
    if _PINNED:
        return
    from aiogram import methods
    from aiogram.methods import Response

    for name in ("SendMessage", "EditMessageText", "AnswerCallbackQuery", "GetMe", "GetUpdates", "SetMyCommands",
                 "DeleteWebhook", "SetWebhook", "SendPhoto", "DeleteMessage"):
        method = getattr(methods, name, None)
        if method is not None:
            _PINNED.append(Response[method.__returning__])


def build_bot(settings: Any, *, retry_after: bool = True, timeout: float = REQUEST_TIMEOUT) -> Bot:
    """A Bot on ``TELEGRAM_API_URL`` with HTML parse mode, link previews off (a usage line or an
    error that names a faceit.com link must not grow a site card under it), and 429 waits when
    ``retry_after``."""
    pin_response_models()
    token = bot_token(settings)
    install_token_scrubber(token)
    session = BotSession(api=TelegramAPIServer.from_base(settings.telegram_api_url), timeout=timeout)
    if retry_after:
        session.middleware(RetryAfterMiddleware())
    defaults = DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True)
    return Bot(token, session=session, default=defaults)

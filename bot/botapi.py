"""A small Bot API client for worker processes: the three calls delivery needs, on plain aiohttp.

Why not aiogram here: importing aiogram builds ~450 pydantic models, about 5 s of CPU, and
every worker process would pay it at boot whether or not it ever talks to a user. The bot
process uses aiogram (its dispatcher, filters, webhook); workers only send, edit and upload,
which this module does against the same ``TELEGRAM_API_URL`` with the same semantics:

* ``{"ok": false, "error_code": 429, "parameters": {"retry_after": n}}`` → :class:`FloodControl`
  (aiogram's ``TelegramRetryAfter``);
* 403 → :class:`Forbidden` (``TelegramForbiddenError``: the user blocked the bot);
* 400 with ``parameters.migrate_to_chat_id`` → :class:`ChatMigrated` (aiogram's
  ``TelegramMigrateToChat``: the group became a supergroup, with a new id), a :class:`BadRequest`;
* other 4xx → :class:`BadRequest` (``TelegramBadRequest``), with Telegram's description;
* 5xx, timeouts and connection errors → :class:`NetworkError`;
* a reply that is not Telegram's JSON (a proxy's error page) → :class:`NetworkError`, or
  :class:`FloodControl` for a 429: only Telegram's own reply can say a user blocked the bot.

The token is part of every request path, so no URL ever goes into an exception or a log line.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from bot.config import BotConfigError, bot_token
from faceit.models import to_float

DEFAULT_TIMEOUT = 30.0

__all__ = ["BadRequest", "BotAPI", "BotAPIError", "BotConfigError", "ChatMigrated", "FloodControl", "Forbidden",
           "NetworkError", "bot_token"]


class BotAPIError(Exception):
    """Telegram refused a call (``code`` and ``description`` as Telegram sent them)."""

    def __init__(self, method: str, code: int, description: str) -> None:
        super().__init__(f"{method}: {code} {description}")
        self.method = method
        self.code = code
        self.description = description


class FloodControl(BotAPIError):
    """429: wait ``retry_after`` seconds."""

    def __init__(self, method: str, description: str, retry_after: float) -> None:
        super().__init__(method, 429, description)
        self.retry_after = retry_after


class Forbidden(BotAPIError):
    """403: the user blocked the bot (or the chat is closed to it)."""


class BadRequest(BotAPIError):
    """400 and other 4xx: the call itself is wrong (bad HTML, message gone, not modified …)."""


class ChatMigrated(BadRequest):
    """400: the group was upgraded to a supergroup; it is ``migrate_to_chat_id`` now (the old id
    takes no more calls, and its messages cannot be edited from the new one)."""

    def __init__(self, method: str, code: int, description: str, migrate_to_chat_id: int) -> None:
        super().__init__(method, code, description)
        self.migrate_to_chat_id = migrate_to_chat_id


class NetworkError(BotAPIError):
    """No answer, a broken connection or a 5xx."""


class BotAPI:
    """``sendMessage``, ``editMessageText`` and ``sendPhoto`` against ``base_url`` (one aiohttp session)."""

    def __init__(self, base_url: str, token: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # never the token
        return f"BotAPI({self.base_url!r})"

    @classmethod
    def from_settings(cls, settings: Any) -> BotAPI:
        return cls(settings.telegram_api_url, bot_token(settings))

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, method: str, params: dict[str, Any], *, photo: bytes | None = None,
                   timeout: float | None = None) -> Any:
        """One Bot API call; returns ``result`` or raises one of this module's errors."""
        url = f"{self.base_url}/bot{self._token}/{method}"
        clean = {k: v for k, v in params.items() if v is not None}
        kwargs: dict[str, Any] = {}
        if timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout)
        if photo is None:
            kwargs["json"] = clean
        else:
            form = aiohttp.FormData()
            for key, value in clean.items():
                form.add_field(key, value if isinstance(value, str) else json.dumps(value))
            form.add_field("photo", photo, filename="chart.png", content_type="image/png")
            kwargs["data"] = form
        try:
            async with self._session_now().post(url, **kwargs) as response:
                try:
                    body = await response.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError):
                    body = None
        except TimeoutError:
            raise NetworkError(method, 0, "timed out") from None
        except aiohttp.ClientError as exc:
            raise NetworkError(method, 0, type(exc).__name__) from None
        if isinstance(body, dict) and body.get("ok"):
            return body.get("result")
        if not isinstance(body, dict):
            raise _unreadable(method, response)
        code = int(body.get("error_code") or response.status)
        description = str(body.get("description") or "")
        parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
        if code == 429:
            retry_after = (to_float(parameters.get("retry_after")) or to_float(response.headers.get("Retry-After"))
                           or 1.0)
            raise FloodControl(method, description, retry_after)
        if code == 403:
            raise Forbidden(method, code, description)
        if code >= 500:
            raise NetworkError(method, code, description)
        new_chat = parameters.get("migrate_to_chat_id")
        if isinstance(new_chat, int) and not isinstance(new_chat, bool):
            raise ChatMigrated(method, code, description, new_chat)
        raise BadRequest(method, code, description)

    async def send_message(self, chat_id: int, text: str, *, reply_markup: dict[str, Any] | None = None,
                           thread_id: int | None = None, reply_to: int | None = None) -> Any:
        """``thread_id``: the forum topic to post in (None: the chat itself, or a forum's General);
        ``reply_to``: a message of the chat this one answers (sent even if it is gone meanwhile)."""
        return await self.call("sendMessage", {"chat_id": chat_id, "text": text, "parse_mode": "HTML",
                                               "reply_markup": reply_markup, "message_thread_id": thread_id,
                                               "reply_parameters": reply_to_json(reply_to) if reply_to else None,
                                               "link_preview_options": NO_PREVIEW})

    async def edit_message_text(self, chat_id: int, message_id: int, text: str, *,
                                reply_markup: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        return await self.call("editMessageText", {"chat_id": chat_id, "message_id": message_id, "text": text,
                                                   "parse_mode": "HTML", "reply_markup": reply_markup,
                                                   "link_preview_options": NO_PREVIEW},
                               timeout=timeout)

    async def send_photo(self, chat_id: int, png: bytes, *, caption: str | None = None,
                         thread_id: int | None = None, reply_to: int | None = None, html: bool = True) -> Any:
        """``sendPhoto`` of a PNG; its caption is HTML unless ``html`` is False (plain text)."""
        return await self.call("sendPhoto", {"chat_id": str(chat_id), "caption": caption,
                                             "message_thread_id": None if thread_id is None else str(thread_id),
                                             "reply_parameters": reply_to_json(reply_to) if reply_to else None,
                                             "parse_mode": "HTML" if caption and html else None}, photo=png)


def _unreadable(method: str, response: aiohttp.ClientResponse) -> BotAPIError:
    """A reply that is not Telegram's JSON: a proxy's or a load balancer's error page. Never
    :class:`Forbidden` or :class:`BadRequest`, which only Telegram can say (a proxy's 403 page
    would mark an active user as having blocked the bot, and a 408 page drop a part): a 429 is
    waited out (``Retry-After``, else 1 s), anything else is a :class:`NetworkError`, retried."""
    if response.status == 429:
        retry_after = to_float(response.headers.get("Retry-After")) or 1.0
        return FloodControl(method, "unreadable reply", retry_after)
    return NetworkError(method, response.status, "unreadable reply")


#: No link preview under the bot's messages (a faceit.com link in a line must not grow a site card);
#: the bot process's aiogram defaults say the same (bot.telegram.build_bot).
NO_PREVIEW = {"is_disabled": True}


def reply_to_json(message_id: int) -> dict[str, Any]:
    """Bot API ``reply_parameters`` for a reply to ``message_id``, sent even if that message is
    gone meanwhile (a member deleted it): the answer still matters. (Here, not in
    :mod:`bot.replies`: workers import this module, and must not import aiogram, seconds of
    start-up for each worker process.)"""
    return {"message_id": int(message_id), "allow_sending_without_reply": True}

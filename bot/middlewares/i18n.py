"""Puts the user's language in every handler's data as ``lang`` (``en`` or ``ru``).

The language chosen with ``/lang`` wins; otherwise the one Telegram reports for the user
(``language_code``: Russian → ``ru``, anything else → ``en``). The lookup also marks the user
active again (someone who writes has not blocked the bot), in the same round trip. When Redis
is unreachable the Telegram language is used, so even the outage notice is in the right one.

Parameters:
  services: the process's :class:`~bot.services.BotServices`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User

from bot.services import BotServices
from bot.texts import LANGS, normalize_lang

logger = logging.getLogger(__name__)


class LanguageMiddleware(BaseMiddleware):
    """Outer update middleware: ``data["lang"]``."""

    def __init__(self, services: BotServices) -> None:
        self.services = services

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        lang = normalize_lang(user.language_code if user else None)
        data["lang"] = lang
        if user is not None and not user.is_bot:
            try:
                chosen = await self.services.seen_user(user.id)
            except Exception as exc:  # Redis down: Telegram's language; the handler will report the outage
                logger.debug("language of user %s unknown: %s", user.id, type(exc).__name__)
                chosen = None
            if chosen in LANGS:
                data["lang"] = chosen
        return await handler(event, data)

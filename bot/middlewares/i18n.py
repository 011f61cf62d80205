"""Puts the user's language in every handler's data as ``lang`` (``en`` or ``ru``).

The language chosen with ``/lang`` wins; otherwise the one Telegram reports for the user
(``language_code``: Russian → ``ru``, anything else → ``en``). For an update in the user's own
chat with the bot the lookup also marks them active again (someone who writes there has not
blocked the bot), in the same round trip; a group's updates do not. When Redis
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


async def telegram_user_language(user: User | None, chosen_of: Callable[[int], Awaitable[str | None]] | None) -> str:
    """The language of whoever sent an update: the one chosen with ``/lang`` (``chosen_of``), else
    the one Telegram reports; Telegram's when Redis cannot say."""
    lang = normalize_lang(user.language_code if user else None)
    if user is None or user.is_bot or chosen_of is None:
        return lang
    try:
        chosen = await chosen_of(user.id)
    except Exception as exc:  # Redis down: Telegram's language; the handler will report the outage
        logger.debug("language of user %s unknown: %s", user.id, type(exc).__name__)
        return lang
    return chosen if chosen in LANGS else lang


class LanguageMiddleware(BaseMiddleware):
    """Outer update middleware: ``data["lang"]``."""

    def __init__(self, services: BotServices) -> None:
        self.services = services

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        chat = data.get("event_chat")
        private = chat is None or chat.type == "private"  # (in a group they may still block the bot)
        data["lang"] = await telegram_user_language(
            data.get("event_from_user"), lambda user_id: self.services.seen_user(user_id, private=private))
        return await handler(event, data)

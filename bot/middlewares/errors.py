"""Turns whatever a handler raises into a short answer in the user's language — never silence,
never a traceback.

* :class:`~bot.services.UserFacingError` (limits, unknown job …) → its text;
* the FACEIT layer's errors (``BadInputError`` from ``faceit.links`` …) → ``faceit.i18n``'s text;
* Redis or broker unreachable → "briefly unavailable, try again in a few seconds" (and the
  next update simply tries Redis again: the bot recovers without a restart);
* anything else → "something went wrong on our side", with the traceback in the log only.

Messages get a reply; button presses get a callback answer (plain text, shown as an alert).
A failure to send the answer itself (Telegram down, user blocked) is logged and dropped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import redis
from aiogram import BaseMiddleware, Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import TelegramObject, Update
from dramatiq.errors import BrokerConnectionError

from bot.replies import answer
from bot.services import UserFacingError
from bot.texts import escape, t
from faceit.errors import FaceitBotError
from faceit.i18n import user_message
from queues.redaction import error_text

logger = logging.getLogger(__name__)

OUTAGE_ERRORS = (redis.RedisError, BrokerConnectionError, ConnectionError, TimeoutError)
_TAG = re.compile(r"<[^>]+>")


def answer_text(exc: BaseException, lang: str) -> str:
    """The HTML answer for an exception a handler raised."""
    if isinstance(exc, UserFacingError):
        return t(exc.key, lang, **exc.params)
    if isinstance(exc, FaceitBotError):
        return "❌ " + escape(user_message(exc, lang))
    if isinstance(exc, OUTAGE_ERRORS):
        return t("try_again_shortly", lang)
    return t("internal_error", lang)


class ErrorsMiddleware(BaseMiddleware):
    """Outer update middleware, registered fourth of the five (aiogram: the first registered is
    the outermost). It wraps the language lookup, the routers and their handlers; the in-flight
    count, the anonymous-sender check and the flood guard run outside it and handle their own
    failures (a notice they cannot send is logged there)."""

    def __init__(self) -> None:
        self.outages = 0
        self.failures = 0

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        try:
            return await handler(event, data)
        except (UserFacingError, FaceitBotError) as exc:
            await self._answer(event, data, answer_text(exc, data.get("lang", "en")))
        except OUTAGE_ERRORS as exc:
            self.outages += 1
            logger.warning("update not served, Redis or broker unreachable: %s: %s", type(exc).__name__,
                           error_text(exc, 160))
            await self._answer(event, data, answer_text(exc, self._lang(data)))
        except TelegramAPIError as exc:
            self.failures += 1
            logger.warning("Telegram refused a call while serving an update: %s", error_text(exc, 200))
        except Exception as exc:
            self.failures += 1
            logger.exception("update failed")
            await self._answer(event, data, answer_text(exc, self._lang(data)))
        return None

    @staticmethod
    def _lang(data: dict[str, Any]) -> str:
        return data.get("lang") or "en"

    async def _answer(self, event: TelegramObject, data: dict[str, Any], text: str) -> None:
        bot: Bot | None = data.get("bot")
        if bot is None or not isinstance(event, Update):
            return
        try:
            if event.callback_query is not None:
                plain = _TAG.sub("", text).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
                await event.callback_query.answer(plain[:190], show_alert=True)
            elif (event.message or event.edited_message) is not None:
                # in a group a reply; in the same topic (an edit: to the message the user fixed)
                await answer(event.message or event.edited_message, text)
        except Exception as exc:
            logger.warning("could not send the error answer: %s: %s", type(exc).__name__, error_text(exc, 160))

"""Messages that name no person: an anonymous group admin, a post on behalf of a channel, a
channel's post forwarded into its discussion group.

Telegram puts a stand-in user in their ``from`` (the same one in every group: @GroupAnonymousBot
for every anonymous admin, @Channel_Bot for everyone posting as a channel, 777000 for the
forwards) and the chat they speak for in ``sender_chat``. Served as that "user", they would share
one rate limit worldwide (a hostile group could use it up for all), one list of follows (group Y
could read and remove group X's), follow notices would go to a private chat nobody has, and
their own Cancel button would refuse them (a button press carries the real person). So none of
them starts anything: a command of this bot, or a room link, gets a short note to send it as
oneself; anything else (other bots' commands, chatter) and every automatic forward of a
channel's post pass in silence (a channel that posts room links must not get a note under each).

Registered right after the in-flight count, before the flood guard and the language lookup:
the stand-ins must not share one flood budget or be looked up as users. They carry no language,
so the note is in both.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import Message, TelegramObject, Update

from bot.replies import answer
from bot.routers.common import text_of
from bot.texts import t
from faceit.links import names_a_match
from queues.redaction import error_text

logger = logging.getLogger(__name__)

#: Telegram's stand-in senders: @GroupAnonymousBot, @Channel_Bot, and the service account that
#: forwards a channel's posts into its discussion group.
STAND_IN_USERS = frozenset({1087968824, 136817688, 777000})


def speaks_for_a_chat(message: Message) -> bool:
    """Whether ``message`` was sent in the name of a chat (a group, a channel), not a person's."""
    return message.sender_chat is not None or (message.from_user is not None
                                               and message.from_user.id in STAND_IN_USERS)


def asks_for_work(message: Message, username: str | None, commands: frozenset[str]) -> bool:
    """Whether ``message`` is something this bot (``@username``) would act on in a group: a command
    naming this bot, or one of its ``commands`` without a mention (``/ban`` is a moderation bot's:
    the group's admins type those anonymously all the time), or a room link."""
    text = text_of(message) or ""
    if text.startswith("/"):
        name, at, mention = text.split(maxsplit=1)[0][1:].partition("@")
        if at:
            return bool(username) and mention.lower() == (username or "").lower()
        return name.lower() in commands
    return names_a_match(text)


def anonymous_note() -> str:
    """The note, in both languages: the stand-ins carry none, and the group may read either."""
    return t("anonymous_sender", "en") + "\n" + t("anonymous_sender", "ru")


class AnonymousSenderMiddleware(BaseMiddleware):
    """Outer update middleware: a message in a chat's name reaches no handler (module docstring)."""

    def __init__(self, commands: frozenset[str]) -> None:
        self.commands = commands  # the bot's (bot.routers.command_names of the dispatcher's routers)

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        message = (event.message or event.edited_message) if isinstance(event, Update) else None
        if message is None or not speaks_for_a_chat(message):
            return await handler(event, data)
        if message.is_automatic_forward:
            return None
        bot: Bot | None = data.get("bot")
        username = (await bot.me()).username if bot is not None else None  # aiogram keeps it after the first call
        if not asks_for_work(message, username, self.commands):
            return None
        logger.info("update %s: sent in the name of chat %s, not a person's: not served", event.update_id,
                    message.sender_chat.id if message.sender_chat else message.chat.id)
        try:
            await answer(message, anonymous_note())
        except TelegramAPIError as exc:  # (outside the errors middleware: said here)
            logger.warning("the note to chat %s was not sent: %s", message.chat.id, error_text(exc, 200))
        return None

"""Messages that name no person: an anonymous group admin, a post on behalf of a channel, a
channel's post forwarded into its discussion group.

Telegram puts a stand-in user in their ``from`` (the same one in every group: @GroupAnonymousBot
for every anonymous admin, @Channel_Bot for everyone posting as a channel, 777000 for the
forwards) and the chat they speak for in ``sender_chat``. Served as that "user", they would share
one rate limit worldwide (a hostile group could use it up for all), one list of follows (group Y
could read and remove group X's), follow notices would go to a private chat nobody has, and
their own Cancel button would refuse them (a button press carries the real person). So none of
them starts anything: a command, or a room or profile link, gets a short note to send it as
oneself; other text, and every automatic forward of a channel's post, is passed over in silence
(a channel that posts room links must not get a note under each).

Registered innermost of the update middlewares, after the language one: the note is in the
language of the group's reader as Telegram reports it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import Message, TelegramObject, Update

from bot.replies import answer
from bot.texts import t
from faceit.links import names_a_match, names_a_profile

logger = logging.getLogger(__name__)

#: Telegram's stand-in senders: @GroupAnonymousBot, @Channel_Bot, and the service account that
#: forwards a channel's posts into its discussion group.
STAND_IN_USERS = frozenset({1087968824, 136817688, 777000})


def speaks_for_a_chat(message: Message) -> bool:
    """Whether ``message`` was sent in the name of a chat (a group, a channel), not a person's."""
    return message.sender_chat is not None or (message.from_user is not None
                                               and message.from_user.id in STAND_IN_USERS)


def asks_for_work(message: Message) -> bool:
    """Whether ``message`` is a command, or a room or profile link the bot would act on."""
    text = message.text or message.caption or ""
    return text.startswith("/") or names_a_match(text) or names_a_profile(text)


class AnonymousSenderMiddleware(BaseMiddleware):
    """Outer update middleware: a message in a chat's name reaches no handler (module docstring)."""

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        message = (event.message or event.edited_message) if isinstance(event, Update) else None
        if message is None or not speaks_for_a_chat(message):
            return await handler(event, data)
        if message.is_automatic_forward or not asks_for_work(message):
            return None
        logger.info("update %s: sent in the name of chat %s, not a person's: not served", event.update_id,
                    message.sender_chat.id if message.sender_chat else message.chat.id)
        await answer(message, t("anonymous_sender", data.get("lang", "en")))
        return None

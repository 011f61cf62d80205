"""Answering a user's message: in a private chat a plain message, in a group a reply to theirs.

In a group several members talk to the bot at once, and "you already have 3 jobs running"
must show whom it is for; a reply quotes their message. In a private chat it would only quote
the user's own words back, so answers there stay plain.
"""

from __future__ import annotations

from typing import Any

from aiogram.types import Message, ReplyParameters

from bot.botapi import reply_to_json


def in_group(message: Message) -> bool:
    return message.chat.type != "private"


def reply_parameters_json(message: Message) -> dict[str, Any] | None:
    """Bot API ``reply_parameters`` for an answer to ``message`` (None in a private chat)."""
    return reply_to_json(message.message_id) if in_group(message) else None


def reply_parameters(message: Message) -> ReplyParameters | None:
    """:func:`reply_parameters_json` as aiogram's model."""
    params = reply_parameters_json(message)
    return ReplyParameters(**params) if params else None


async def answer(message: Message, text: str, **kwargs: Any) -> Message:
    """``message.answer(text, ...)``, as a reply to ``message`` in a group."""
    return await message.answer(text, reply_parameters=reply_parameters(message), **kwargs)

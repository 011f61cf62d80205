"""Last in line: unknown commands (admin commands for non-admins too) and anything else.

Answered in private chats only. In a group the bot sees its members' talk (with privacy mode
off), commands for other bots and service messages ("X joined"): none of it is for us, and a
"not understood" under each would be noise for everyone there.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import Message

from bot.replies import answer
from bot.texts import t


async def unknown_command(message: Message, lang: str) -> None:
    await answer(message, t("unknown_command", lang))


async def not_understood(message: Message, lang: str) -> None:
    await answer(message, t("not_understood", lang))


def build() -> Router:
    """A fresh router (one per dispatcher: aiogram attaches a router to one parent only)."""
    router = Router(name="fallback")
    private = F.chat.type == "private"
    router.message.register(unknown_command, private, F.text.startswith("/"))
    router.message.register(not_understood, private)
    return router

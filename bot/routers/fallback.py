"""Last in line: unknown commands (admin commands for non-admins too) and anything else.

Answered in private chats, and in a group only an unknown command written to this bot by name
(``/stats@ThisBot``). In a group the bot sees its members' talk (with privacy mode off), commands
for other bots and service messages ("X joined"): none of it is for us, and a "not understood"
under each would be noise for everyone there.
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.types import Message

from bot.replies import answer
from bot.texts import t


async def named_this_bot(message: Message, bot: Bot) -> bool:
    """A command addressed to this bot by its username (``/stats@ThisBot``): meant for us even in
    a group, so it is answered there too."""
    command = (message.text or "").split(maxsplit=1)[0] if (message.text or "").startswith("/") else ""
    _, at, mention = command.partition("@")
    if not at:
        return False
    username = (await bot.me()).username  # aiogram keeps it after the first call
    return bool(username) and mention.lower() == username.lower()


async def unknown_command(message: Message, lang: str) -> None:
    await answer(message, t("unknown_command", lang))


async def not_understood(message: Message, lang: str) -> None:
    await answer(message, t("not_understood", lang))


def build() -> Router:
    """A fresh router (one per dispatcher: aiogram attaches a router to one parent only)."""
    router = Router(name="fallback")
    private = F.chat.type == "private"
    router.message.register(unknown_command, private, F.text.startswith("/"))
    router.message.register(unknown_command, named_this_bot)
    router.message.register(not_understood, private)
    return router

"""Last in line: unknown commands (admin commands for non-admins too) and anything else."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import Message

from bot.texts import t


async def unknown_command(message: Message, lang: str) -> None:
    await message.answer(t("unknown_command", lang))


async def not_understood(message: Message, lang: str) -> None:
    await message.answer(t("not_understood", lang))


def build() -> Router:
    """A fresh router (one per dispatcher: aiogram attaches a router to one parent only)."""
    router = Router(name="fallback")
    router.message.register(unknown_command, F.text.startswith("/"))
    router.message.register(not_understood)
    return router

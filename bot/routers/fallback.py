"""Last in line: unknown commands (admin commands for non-admins too) and anything else."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import Message

from bot.texts import t

router = Router(name="fallback")


@router.message(F.text.startswith("/"))
async def unknown_command(message: Message, lang: str) -> None:
    await message.answer(t("unknown_command", lang))


@router.message()
async def not_understood(message: Message, lang: str) -> None:
    await message.answer(t("not_understood", lang))

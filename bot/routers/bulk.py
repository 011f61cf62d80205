"""``/bulk <up to BULK_MAX_MATCHES links or ids>``: several matches in one job."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import CommandObject
from aiogram.types import Message

from bot.routers.common import command, reply_started, requester_of
from bot.services import BotServices
from bot.texts import t
from faceit.links import find_match_refs


async def bulk(message: Message, command: CommandObject, lang: str, services: BotServices) -> None:
    limit = services.settings.bulk_max_matches
    if not (command.args or "").strip():
        await message.answer(t("usage_bulk", lang, limit=limit))
        return
    refs = find_match_refs(command.args, limit=limit)
    job = await services.start_bulk_analysis(requester_of(message, lang), refs)
    await reply_started(message, job, lang, services)


def build() -> Router:
    """A fresh router (one per dispatcher: aiogram attaches a router to one parent only)."""
    router = Router(name="bulk")
    router.message.register(bulk, command("bulk"))
    return router

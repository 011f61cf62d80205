"""``/player <nickname or profile link>``: a player report with a chart."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import CommandObject
from aiogram.types import Message

from bot.replies import answer
from bot.routers.common import command, reply_started, requester_of
from bot.services import BotServices
from bot.texts import t
from faceit.links import parse_player_ref


async def player(message: Message, command: CommandObject, lang: str, services: BotServices) -> None:
    if not (command.args or "").strip():
        await answer(message, t("usage_player", lang))
        return
    ref = parse_player_ref(command.args)
    job = await services.start_player_report(requester_of(message, lang), ref)
    await reply_started(message, job, lang, services)


def build() -> Router:
    """A fresh router (one per dispatcher: aiogram attaches a router to one parent only)."""
    router = Router(name="players")
    router.message.register(player, command("player"))
    return router

"""``/player <nickname or profile link>``: a player report with a chart; also a profile link
pasted on its own in a private chat (in a group, members share profiles with each other)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import CommandObject
from aiogram.types import Message

from bot.replies import answer
from bot.routers.common import command, reply_started, requester_of, text_of
from bot.services import BotServices
from bot.texts import t
from faceit.links import names_a_profile, parse_player_ref


async def player(message: Message, command: CommandObject, lang: str, services: BotServices) -> None:
    if not (command.args or "").strip():
        await answer(message, t("usage_player", lang))
        return
    ref = parse_player_ref(command.args)
    job = await services.start_player_report(requester_of(message, lang), ref)
    await reply_started(message, job, lang, services)


def looks_like_profile(message: Message) -> bool:
    """A message (not a command) whose text or caption holds a FACEIT player profile link."""
    return names_a_profile(text_of(message))


async def pasted_profile(message: Message, lang: str, services: BotServices) -> None:
    ref = parse_player_ref(text_of(message) or "")
    job = await services.start_player_report(requester_of(message, lang), ref)
    await reply_started(message, job, lang, services)


def build() -> Router:
    """A fresh router (one per dispatcher: aiogram attaches a router to one parent only)."""
    router = Router(name="players")
    for observer in (router.message, router.edited_message):  # an edited message: served anew
        observer.register(player, command("player"))
        observer.register(pasted_profile, F.chat.type == "private", looks_like_profile)
    return router

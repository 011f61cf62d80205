"""``/analyze <room link or match id>``, and a room link pasted on its own."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import CommandObject
from aiogram.types import Message

from bot.replies import answer
from bot.routers.common import command, reply_started, requester_of, text_of
from bot.services import BotServices
from bot.texts import t
from faceit.links import names_a_match, parse_match_ref


async def analyze(message: Message, command: CommandObject, lang: str, services: BotServices) -> None:
    if not (command.args or "").strip():
        await answer(message, t("usage_analyze", lang))
        return
    ref = parse_match_ref(command.args)
    job = await services.start_match_analysis(requester_of(message, lang), ref)
    await reply_started(message, job, lang, services)


def pastes_a_match(message: Message) -> bool:
    """A message (not a command) whose text or caption names a match: served as /analyze."""
    return names_a_match(text_of(message))


async def pasted_link(message: Message, lang: str, services: BotServices) -> None:
    ref = parse_match_ref(text_of(message))
    job = await services.start_match_analysis(requester_of(message, lang), ref)
    await reply_started(message, job, lang, services)


def build() -> Router:
    """A fresh router (one per dispatcher: aiogram attaches a router to one parent only)."""
    router = Router(name="analysis")
    # A message the user edits (a link fixed after a typo) is served as a new one.
    for observer in (router.message, router.edited_message):
        observer.register(analyze, command("analyze", "analyse"))
        observer.register(pasted_link, pastes_a_match)
    return router

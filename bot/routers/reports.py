"""``/report weekly|monthly``: the user's summary (analyses, followed players' form)."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import CommandObject
from aiogram.types import Message

from bot.replies import answer
from bot.routers.common import command, reply_started, requester_of
from bot.services import REPORT_TYPES, BotServices
from bot.texts import t


async def report(message: Message, command: CommandObject, lang: str, services: BotServices) -> None:
    report_type = (command.args or "weekly").strip().lower()
    if report_type not in REPORT_TYPES:
        await answer(message, t("usage_report", lang))
        return
    job = await services.start_report(requester_of(message, lang), report_type)
    await reply_started(message, job, lang, services)


def build() -> Router:
    """A fresh router (one per dispatcher: aiogram attaches a router to one parent only)."""
    router = Router(name="reports")
    router.message.register(report, command("report"))
    return router

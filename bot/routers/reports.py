"""``/report weekly|monthly`` (``неделя|месяц`` too): the user's summary (analyses, followed players' form)."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import CommandObject
from aiogram.types import Message

from bot.replies import answer
from bot.routers.common import command, reply_started, requester_of
from bot.services import REPORT_TYPES, BotServices
from bot.texts import t

#: What a Russian speaker types for a report type (the Russian help shows ``/report неделя|месяц``),
#: short forms too; the English names stay valid in every language.
REPORT_ALIASES = {"неделя": "weekly", "нед": "weekly", "месяц": "monthly", "мес": "monthly"}


def report_type_of(args: str | None) -> str | None:
    """The report type a ``/report`` argument names (``weekly`` when there is none), or None."""
    typed = (args or "weekly").strip().lower()
    typed = REPORT_ALIASES.get(typed, typed)
    return typed if typed in REPORT_TYPES else None


async def report(message: Message, command: CommandObject, lang: str, services: BotServices) -> None:
    report_type = report_type_of(command.args)
    if report_type is None:
        await answer(message, t("usage_report", lang))
        return
    job = await services.start_report(requester_of(message, lang), report_type)
    await reply_started(message, job, lang, services)


def build() -> Router:
    """A fresh router (one per dispatcher: aiogram attaches a router to one parent only)."""
    router = Router(name="reports")
    router.message.register(report, command("report"))
    return router

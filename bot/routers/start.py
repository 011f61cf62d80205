"""``/start``, ``/help``, ``/lang ru|en`` and ``/tz <zone>``: a user's own choices."""

from __future__ import annotations

import asyncio

from aiogram import Router
from aiogram.filters import CommandObject, CommandStart
from aiogram.types import Message

from bot.replies import answer, in_group
from bot.routers.common import command
from bot.services import BotServices
from bot.texts import LANGS, t
from bot.timezones import describe, parse_timezone


async def start(message: Message, lang: str) -> None:
    name = message.from_user.first_name if message.from_user else ""
    await answer(message, t("start", lang, name=name or "👋"))


async def help_(message: Message, lang: str, services: BotServices) -> None:
    settings = services.settings
    text = t("help", lang, bulk=settings.bulk_max_matches, per_minute=settings.user_jobs_per_minute,
             active=settings.user_max_active_jobs)
    if message.from_user is not None and services.is_admin(message.from_user.id) and not in_group(message):
        # (their commands answer nobody else, and in their private chat only: listed there only)
        text += "\n\n" + t("help_admin", lang)
    await answer(message, text)


async def lang_(message: Message, command: CommandObject, lang: str, services: BotServices) -> None:
    chosen = (command.args or "").strip().lower()
    if chosen not in LANGS:
        await answer(message, t("usage_lang", lang))
        return
    await services.set_language(message.from_user.id, chosen)
    await answer(message, t("lang_set", chosen))


async def tz_(message: Message, command: CommandObject, lang: str, services: BotServices) -> None:
    """``/tz``: the zone the weekly summary goes by; ``/tz <city, zone or offset>`` chooses it."""
    typed = (command.args or "").strip()
    if not typed:
        chosen = await services.timezone_of(message.from_user.id)
        if not chosen:
            await answer(message, t("tz_unset", lang))
            return
        await answer(message, t("tz_current", lang, zone=describe(chosen)))
        return
    # In a thread: parsing a city or zone name scans the zone database once (15-25 ms).
    parsed = await asyncio.to_thread(_parse_and_describe, typed)
    if parsed is None:
        await answer(message, t("usage_tz", lang))
        return
    name, shown = parsed
    await services.set_timezone(message.from_user.id, name)
    await answer(message, t("tz_set", lang, zone=shown))


def _parse_and_describe(typed: str) -> tuple[str, str] | None:
    """The zone ``typed`` names and how it is shown, or None when it names none."""
    name = parse_timezone(typed)
    return None if name is None else (name, describe(name))


def build() -> Router:
    """A fresh router (one per dispatcher: aiogram attaches a router to one parent only)."""
    router = Router(name="start")
    router.message.register(start, CommandStart(ignore_case=True))
    router.message.register(help_, command("help"))
    router.message.register(lang_, command("lang"))
    router.message.register(tz_, command("tz", "timezone"))
    return router

"""``/bulk <up to BULK_MAX_MATCHES links or ids>``: several matches in one job."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import CommandObject
from aiogram.types import Message

from bot.replies import answer
from bot.routers.common import command, reply_started, requester_of
from bot.services import BotServices
from bot.texts import Markup, escape, t
from faceit.errors import BadInputError
from faceit.links import find_match_refs, unreadable_room_links

#: Skipped links listed in the answer, and the characters shown of each.
MAX_SKIPPED_SHOWN = 5
MAX_LINK_SHOWN = 120


async def bulk(message: Message, command: CommandObject, lang: str, services: BotServices) -> None:
    limit = services.settings.bulk_max_matches
    if not (command.args or "").strip():
        await answer(message, t("usage_bulk", lang, limit=limit))
        return
    skipped = unreadable_room_links(command.args)
    shown = Markup("\n".join(f"• <code>{escape(link[:MAX_LINK_SHOWN])}</code>" for link in skipped[:MAX_SKIPPED_SHOWN]))
    try:
        refs = find_match_refs(command.args, limit=limit)
    except BadInputError as exc:
        if getattr(exc, "key", None) != "no_match_refs" or not skipped:
            raise
        # Only links whose match id cannot be read: name them, rather than "no links found".
        await answer(message, t("bulk_none_readable", lang, count=len(skipped), links=shown))
        return
    job = await services.start_bulk_analysis(requester_of(message, lang), refs)
    await reply_started(message, job, lang, services)
    if skipped:  # analysed without them: say which, so nothing is lost without a word
        await answer(message, t("bulk_skipped", lang, count=len(skipped), links=shown))


def build() -> Router:
    """A fresh router (one per dispatcher: aiogram attaches a router to one parent only)."""
    router = Router(name="bulk")
    for observer in (router.message, router.edited_message):  # an edited message: served anew
        observer.register(bulk, command("bulk"))
    return router

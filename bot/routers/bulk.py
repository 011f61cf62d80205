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
from faceit.links import UnreadItem, find_match_refs, unread_list_items

#: Items of each kind listed in an answer, and the characters shown of each.
MAX_SKIPPED_SHOWN = 5
MAX_LINK_SHOWN = 120
#: The kinds of :class:`UnreadItem`, in the order the answer lists them.
UNREAD_KINDS = ("room_link", "cut_id", "not_a_match")


async def bulk(message: Message, command: CommandObject, lang: str, services: BotServices) -> None:
    """Start one job for every match link or id in the message, and name everything else it
    holds (cut links and ids, stray words): each item the user sent is either analysed or said
    to be not analysed, and why."""
    limit = services.settings.bulk_max_matches
    if not (command.args or "").strip():
        await answer(message, t("usage_bulk", lang, limit=limit))
        return
    unread = unread_list_items(command.args)
    try:
        refs = find_match_refs(command.args, limit=limit)
    except BadInputError as exc:
        if getattr(exc, "key", None) != "no_match_refs" or not unread:
            raise
        # Nothing readable: name what was sent, rather than only "no links found".
        await answer(message, t("bulk_none_readable", lang, count=len(unread), items=unread_listing(unread, lang)))
        return
    job = await services.start_bulk_analysis(requester_of(message, lang), refs)
    await reply_started(message, job, lang, services)
    if unread:  # analysed without them: say which, so nothing is lost without a word
        await answer(message, t("bulk_skipped", lang, count=len(unread), items=unread_listing(unread, lang)))


def unread_listing(unread: list[UnreadItem], lang: str) -> Markup:
    """What was not analysed, by kind: a line saying why, then up to :data:`MAX_SKIPPED_SHOWN`
    of them (and how many more)."""
    sections = []
    for kind in UNREAD_KINDS:
        items = [item.text for item in unread if item.kind == kind]
        if not items:
            continue
        lines = [t(f"bulk_unread_{kind}", lang, count=len(items))]
        lines += [f"• <code>{escape(text[:MAX_LINK_SHOWN])}</code>" for text in items[:MAX_SKIPPED_SHOWN]]
        if len(items) > MAX_SKIPPED_SHOWN:
            lines.append(t("bulk_unread_more", lang, count=len(items) - MAX_SKIPPED_SHOWN))
        sections.append("\n".join(lines))
    return Markup("\n".join(sections))


def build() -> Router:
    """A fresh router (one per dispatcher: aiogram attaches a router to one parent only)."""
    router = Router(name="bulk")
    for observer in (router.message, router.edited_message):  # an edited message: served anew
        observer.register(bulk, command("bulk"))
    return router

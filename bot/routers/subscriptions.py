"""``/subscribe <nickname>``, ``/unsubscribe <nickname>``, ``/subscriptions`` (match notifications)."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import CommandObject
from aiogram.types import Message

from bot.replies import answer
from bot.routers.common import command, reply_started, requester_of
from bot.services import BotServices
from bot.texts import Markup, escape, t
from faceit.i18n import ERROR_TEXTS
from faceit.links import parse_player_ref


async def subscribe(message: Message, command: CommandObject, lang: str, services: BotServices) -> None:
    if not (command.args or "").strip():
        await answer(message, t("usage_subscribe", lang))
        return
    ref = parse_player_ref(command.args)
    job = await services.start_subscription(requester_of(message, lang), ref)
    await reply_started(message, job, lang, services)


async def unsubscribe(message: Message, command: CommandObject, lang: str, services: BotServices) -> None:
    if not (command.args or "").strip():
        await answer(message, t("usage_unsubscribe", lang))
        return
    ref = parse_player_ref(command.args)
    if nickname := await services.unsubscribe(message.from_user.id, ref):
        await answer(message, t("unsubscribed", lang, nickname=nickname))
    else:
        await answer(message, "❌ " + escape(ERROR_TEXTS["not_subscribed"][lang].format(ref=ref.value)))


async def subscriptions(message: Message, lang: str, services: BotServices) -> None:
    subs = await services.subscriptions(message.from_user.id)
    if not subs:
        await answer(message, t("no_subscriptions", lang))
        return
    items = "\n".join(f"• {escape(sub['nickname'])}" for sub in subs)
    await answer(message, t("subscriptions", lang, count=len(subs), items=Markup(items)))


def build() -> Router:
    """A fresh router (one per dispatcher: aiogram attaches a router to one parent only)."""
    router = Router(name="subscriptions")
    for observer in (router.message, router.edited_message):  # an edited message: served anew
        observer.register(subscribe, command("subscribe"))
        observer.register(unsubscribe, command("unsubscribe"))
    router.message.register(subscriptions, command("subscriptions"))
    return router

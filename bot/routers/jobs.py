"""``/status <job id>``, ``/cancel <job id>`` and the Cancel button under every job message."""

from __future__ import annotations

import re

from aiogram import Bot, F, Router
from aiogram.filters import CommandObject
from aiogram.types import CallbackQuery, Message

from bot.replies import answer
from bot.routers.common import command
from bot.services import BotServices, CancelOutcome
from bot.texts import t
from bot.views import CANCEL_PREFIX, canceled_text, kind_name, status_text, status_word
from queues.jobids import job_ref, whole_job_id


async def _named_job(message: Message, command: CommandObject, lang: str, services: BotServices,
                     usage: str) -> str | None:
    """The full id of the job a /status or /cancel names (a unique start of one of the user's
    jobs is enough); None once the user was told why there is none: no argument (the usage line),
    or one that is not a job id. No job, or several, starting with it: the services say so."""
    args = (command.args or "").strip()
    if not args:
        await answer(message, t(usage, lang))
        return None
    ref = job_ref(args)
    if ref is None:
        await answer(message, t("not_a_job_id", lang))
        return None
    return await services.resolve_job_id(ref, message.from_user.id, message.chat.id)


async def status(message: Message, command: CommandObject, lang: str, services: BotServices) -> None:
    job_id = await _named_job(message, command, lang, services, "usage_status")
    if job_id is None:
        return
    record = await services.job_of_user(job_id, message.from_user.id, chat_id=message.chat.id)
    await answer(message, status_text(record, lang, left=message.from_user.id in record.left_user_ids))


def _cancel_answer(result: CancelOutcome, job_id: str, lang: str) -> str:
    if result.outcome == "canceled":
        return canceled_text(job_id, result.record.actor, lang)
    if result.outcome == "canceling":
        return t("canceling", lang, job_id=job_id)
    if result.outcome == "already_canceling":
        return t("canceling_already", lang, job_id=job_id)
    if result.outcome == "shared":
        return t("cancel_shared", lang, job_id=job_id)
    if result.outcome == "left":
        return t("cancel_left", lang, kind=kind_name(result.record.actor, lang), job_id=job_id)
    ended = {"ended": result.record.status, "already_canceled": "canceled"}.get(result.outcome, result.outcome)
    return t("cancel_too_late", lang, job_id=job_id, status=status_word(ended, lang))


async def _show_canceled(bot: Bot, result: CancelOutcome, user_id: int, job_id: str, lang: str) -> None:
    """A job canceled before it ran never reaches a worker, and one the user stopped waiting for
    no longer shows them anything: their message is updated here, in their language now."""
    for requester in result.record.requesters:
        if int(requester.get("user_id", 0)) == int(user_id) and requester.get("message_id"):
            # (called for "canceled" and "left": the answer is the message's new text)
            await bot.edit_message_text(text=_cancel_answer(result, job_id, lang),
                                        chat_id=int(requester.get("chat_id") or user_id),
                                        message_id=int(requester["message_id"]))


async def cancel(message: Message, command: CommandObject, lang: str, services: BotServices, bot: Bot) -> None:
    job_id = await _named_job(message, command, lang, services, "usage_cancel")
    if job_id is None:
        return
    result = await services.cancel(job_id, message.from_user.id, chat_id=message.chat.id)
    await answer(message, _cancel_answer(result, job_id, lang))
    if result.outcome in ("canceled", "left"):
        await _show_canceled(bot, result, message.from_user.id, job_id, lang)


async def cancel_button(query: CallbackQuery, lang: str, services: BotServices) -> None:
    job_id = whole_job_id(query.data.removeprefix(CANCEL_PREFIX))
    if job_id is None:
        await query.answer()
        return
    result = await services.cancel(job_id, query.from_user.id, not_theirs="not_your_job")
    short = {"canceled": "cancel_short", "canceling": "canceling_short", "already_canceling": "canceling_already_short",
             "left": "cancel_short"}.get(result.outcome)
    if short is None:
        await query.answer(re.sub(r"<[^>]+>", "", _cancel_answer(result, job_id, lang))[:190], show_alert=True)
        return
    await query.answer(t(short, lang))
    if query.message is not None and result.outcome in ("canceled", "left"):  # the message shows it no more
        await query.message.edit_text(_cancel_answer(result, job_id, lang))


def build() -> Router:
    """A fresh router (one per dispatcher: aiogram attaches a router to one parent only)."""
    router = Router(name="jobs")
    router.message.register(status, command("status"))
    router.message.register(cancel, command("cancel"))
    router.callback_query.register(cancel_button, F.data.startswith(CANCEL_PREFIX))
    return router

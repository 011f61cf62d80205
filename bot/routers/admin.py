"""Operators' commands for ``ADMIN_USER_IDS``: ``/queues``, ``/alerts [hours]``, ``/requeue [job id | queue | all]``.

Anyone else falls through to the unknown-command answer: the commands do not exist for them.
They answer in the admin's private chat with the bot only: in a group every member would read the
queues' health, the alerts (job ids, what failed) and what was requeued; there, an admin is told
where to ask.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

from aiogram import F, Router
from aiogram.filters import BaseFilter, CommandObject
from aiogram.types import Message

from bot.replies import answer
from bot.routers.common import command
from bot.services import BotServices
from bot.texts import escape, t
from bot.timezones import describe as describe_zone
from bot.timezones import zone_of
from bot.views import status_word
from faceit.htmltext import split_html
from faceit.render import day_label
from queues.health_texts import describe_or, level_word, tell_alert
from queues.jobids import job_ref
from queues.priorities import known_queue

MAX_ALERTS_SHOWN = 15


class IsAdmin(BaseFilter):
    """Admin commands exist only for ``ADMIN_USER_IDS``."""

    async def __call__(self, message: Message, services: BotServices) -> bool:
        return message.from_user is not None and services.is_admin(message.from_user.id)


def _n(value: object) -> str:
    return "—" if value is None else str(value)


async def queues(message: Message, lang: str, services: BotServices) -> None:
    await services.note_language(message.from_user.id, lang)  # alerts pushed to them use it
    data = await services.queue_overview()
    lines = [t("queues_title", lang)]
    for name, q in data["queues"].items():
        lines.append(t("queue_line", lang, name=name, waiting=q["waiting"], delayed=_n(q["delayed"]),
                       running=_n(q["in_progress"]), dead=_n(q["dead"]), workers=q["workers"]))
    health = data.get("health") or {}
    if health.get("health_score") is not None:
        lines.append("")
        lines.append(t("health_line", lang, score=health["health_score"]))
        lines += [f"• {escape(reason)}" for reason in health_reasons(health, lang)[:10]]
    await answer(message, "\n".join(lines))


def health_reasons(health: dict[str, Any], lang: str) -> list[str]:
    """Why the score is below 100, in the admin's language: each component's rule and details
    told again (:mod:`queues.health_texts`); its stored English reason when that cannot be done
    (a summary without details, from the dashboard's own estimate or an older monitor)."""
    reasons = [describe_or(str(c.get("reason", "")), c.get("rule"), c.get("subject"), c.get("details"), lang)
               for c in health.get("components") or []]
    return reasons or [str(reason) for reason in health.get("reasons") or []]


def alert_time(moment: float, lang: str, zone: tzinfo = UTC) -> str:
    """When an alert fired, in ``zone`` as the title says: "Dec 6 20:16" in English, "06.12 20:16"
    in Russian (the reports' day, :func:`faceit.render.day_label`, and the time)."""
    return f"{day_label(moment, lang, zone)} {datetime.fromtimestamp(moment, zone).strftime('%H:%M')}"


async def alerts(message: Message, command: CommandObject, lang: str, services: BotServices) -> None:
    await services.note_language(message.from_user.id, lang)  # alerts pushed to them use it
    try:
        hours = float((command.args or "24").strip())
    except ValueError:
        hours = -1
    longest = max(1, round(services.settings.queue_metrics_retention_days * 24))  # alerts are kept as long
    if not 0 < hours <= longest:
        await answer(message, t("usage_alerts", lang, max=longest))
        return
    shown = f"{hours:g}"
    found = await services.recent_alerts(hours)
    if not found:
        await answer(message, t("no_alerts", lang, hours=shown))
        return
    zone_name = await services.timezone_of(message.from_user.id)  # the admin's /tz; UTC until chosen
    zone = zone_of(zone_name)
    lines = [t("alerts_title", lang, hours=shown, count=len(found), zone=describe_zone(zone_name))]
    for alert in found[:MAX_ALERTS_SHOWN]:
        when = alert_time(alert.time, lang, zone)
        lines.append(f"• {when} <b>{level_word(alert.level, lang)}</b> {escape(alert.source)}: "
                     f"{escape(tell_alert(alert, lang)[:200])}")
    for part in split_html("\n".join(lines)):  # escaped messages can pass Telegram's limit: cut whole
        await answer(message, part)


async def requeue(message: Message, command: CommandObject, lang: str, services: BotServices) -> None:
    await services.note_language(message.from_user.id, lang)  # alerts pushed to them use it
    args = (command.args or "").strip()
    job_id = None
    queue = known_queue(args, services.settings) if args else None  # high, default, low: that queue's
    if queue is not None or args.lower() == "all":
        args = ""
    if args:  # a job id, whole or its start, as /status takes it
        ref = job_ref(args)
        if ref is None:
            await answer(message, t("not_a_job_id", lang))
            return
        job_id = await services.resolve_job_id(ref, message.from_user.id, message.chat.id)
    requeued = await services.requeue_failed(job_id, queue=queue)
    if job_id is not None and not requeued:  # say why the named job did not go
        record = await services.job_of_user(job_id, message.from_user.id)
        await answer(message, t("not_requeued", lang, job_id=job_id, status=status_word(record.status, lang)))
        return
    text = t("requeued", lang, count=len(requeued))
    if requeued.skipped:
        text += "\n" + t("requeue_skipped", lang, count=requeued.skipped)
    if requeued.superseded:
        text += "\n" + t("requeue_superseded", lang, count=requeued.superseded)
    await answer(message, text)


async def private_only(message: Message, lang: str) -> None:
    await answer(message, t("admin_private_only", lang))


def build() -> Router:
    """A fresh router (one per dispatcher: aiogram attaches a router to one parent only)."""
    router = Router(name="admin")
    router.message.filter(IsAdmin())
    private = F.chat.type == "private"
    router.message.register(queues, command("queues"), private)
    router.message.register(alerts, command("alerts"), private)
    router.message.register(requeue, command("requeue"), private)
    router.message.register(private_only, command("queues", "alerts", "requeue"))  # in a group
    return router

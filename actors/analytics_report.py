"""Weekly or monthly analytics for a user (low queue; a time limit of its own,
15 minutes, longer than the queue's)."""

from __future__ import annotations

from datetime import tzinfo

from actors.base import JobContext, job_actor
from queues.priorities import QueuePriority


async def user_zone(user_id: int) -> tzinfo:
    """The time zone ``user_id`` chose with the bot's ``/tz`` (UTC when none, or not one), read
    where the bot keeps it (``bot:tz``, as the scheduler reads it to know when their Monday 09:00
    is): the summary says its dates in it. Here, not in :mod:`faceit.services`: the FACEIT layer
    knows nothing of the bot's keys."""
    from bot.keys import BotKeys
    from bot.timezones import zone_of
    from faceit.context import get_faceit_context
    from queues.connection import as_text

    ctx = await get_faceit_context()
    name = await ctx.redis.hget(BotKeys(ctx.settings.redis_key_prefix).user_timezones(), str(int(user_id)))
    return zone_of(as_text(name))


@job_actor(priority=QueuePriority.LOW, time_limit=900)
async def analytics_report(ctx: JobContext, user_id: int | None = None, report_type: str = "weekly",
                           include_comparisons: bool = True, scheduled: bool = False,
                           period_end: float | None = None, period_start: float | None = None) -> dict:
    """Matches analysed, tracked players' form and Elo trend over the period (with
    ``include_comparisons``, each against the period before), its dates in each reader's own time
    zone (:func:`user_zone`). ``scheduled``: the scheduler's weekly run, not a request: nothing is
    said when there is nothing to report, nor when it fails (the scheduler tries again).
    ``period_end``: where the period ends (the scheduler's: the user's Monday 09:00 the summary is
    for, so each week starts where the last one ended, however late a run goes), and
    ``period_start`` where it starts (the Monday 09:00 before: said by the scheduler too, so a
    zone that cannot be read when the job runs moves nothing)."""
    from faceit import services

    return await services.build_analytics_report(user_id, report_type, ctx.progress, include_comparisons,
                                                 scheduled=scheduled, zone_of_user=user_zone,
                                                 period_end=period_end, period_start=period_start)

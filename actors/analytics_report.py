"""Weekly or monthly analytics for a user (low queue; a time limit of its own,
15 minutes, longer than the queue's)."""

from __future__ import annotations

from actors.base import JobContext, job_actor
from queues.priorities import QueuePriority


@job_actor(priority=QueuePriority.LOW, time_limit=900)
async def analytics_report(ctx: JobContext, user_id: int | None = None, report_type: str = "weekly",
                           include_comparisons: bool = True, scheduled: bool = False) -> dict:
    """Matches analysed, tracked players' form and Elo trend over the period (with
    ``include_comparisons``, each against the period before). ``scheduled``: the scheduler's
    weekly run, not a request: nothing is said when there is nothing to report, nor when it
    fails (the scheduler tries again)."""
    from faceit import services

    return await services.build_analytics_report(user_id, report_type, ctx.progress, include_comparisons,
                                                 scheduled=scheduled)

"""New finished matches of subscribed players, as notifications (default queue;
a time limit of its own, 10 minutes, longer than the queue's)."""

from __future__ import annotations

from actors.base import JobContext, job_actor
from queues.priorities import QueuePriority

#: The share of its time limit a run scans for; the rest is room for the scans under way to end and
#: the result to be stored. A run that does not reach every player tells what it found, and the
#: next one starts with the rest (:func:`faceit.services.monitor_matches`).
SCAN_SHARE = 0.75


@job_actor(priority=QueuePriority.DEFAULT, time_limit=600)
async def match_monitoring(ctx: JobContext, user_ids: list[int] | None = None) -> dict:
    """Check subscriptions (of ``user_ids``, or everyone's) and build notifications."""
    from faceit import services

    budget = ctx.time_limit * SCAN_SHARE if ctx.time_limit else None
    return await services.monitor_matches(user_ids, ctx.progress, budget=budget)

"""New finished matches of subscribed players, as notifications (default queue;
a time limit of its own, 10 minutes, longer than the queue's)."""

from __future__ import annotations

from actors.base import JobContext, job_actor
from queues.priorities import QueuePriority


@job_actor(priority=QueuePriority.DEFAULT, time_limit=600)
async def match_monitoring(ctx: JobContext, user_ids: list[int] | None = None) -> dict:
    """Check subscriptions (of ``user_ids``, or everyone's) and build notifications."""
    from faceit import services

    # A run that does not reach every player within its budget tells what it found, and the next
    # one starts with the rest (faceit.services.monitor_matches).
    return await services.monitor_matches(user_ids, ctx.progress, budget=ctx.budget())

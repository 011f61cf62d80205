"""A player's report with chart (default queue, 5 minutes)."""

from __future__ import annotations

from actors.base import JobContext, job_actor
from queues.priorities import QueuePriority


@job_actor(priority=QueuePriority.DEFAULT, time_limit=300)
async def player_report(ctx: JobContext, player_id: str, user_id: int | None = None) -> dict:
    """Profile, lifetime and recent stats, maps, form and a chart (faceit.services)."""
    from faceit import services

    result = await services.build_player_report(player_id, ctx.progress)
    return result

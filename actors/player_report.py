"""A player's report with chart (default queue).

Its time limit is the queue's: ``QUEUE_DEFAULT_TIMEOUT``, 5 minutes by default.
"""

from __future__ import annotations

from actors.base import JobContext, job_actor
from queues.priorities import QueuePriority


@job_actor(priority=QueuePriority.DEFAULT)
async def player_report(ctx: JobContext, player_id: str, user_id: int | None = None) -> dict:
    """Profile, lifetime and recent stats, maps, form and a chart (faceit.services)."""
    from faceit import services

    result = await services.build_player_report(player_id, ctx.progress)
    return result

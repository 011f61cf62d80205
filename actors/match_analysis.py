"""Pre-game analysis of one match room (high queue).

Its time limit is the queue's: ``QUEUE_HIGH_PRIORITY_TIMEOUT``, 3 minutes by default.
"""

from __future__ import annotations

from actors.base import JobContext, job_actor
from queues.priorities import QueuePriority


@job_actor(priority=QueuePriority.HIGH)
async def match_analysis(ctx: JobContext, match_url_or_id: str, user_id: int | None = None) -> dict:
    """Analyse the match: players, maps, win chance, Elo at stake (faceit.services)."""
    from faceit import services

    result = await services.analyze_match(match_url_or_id, ctx.progress)
    return result

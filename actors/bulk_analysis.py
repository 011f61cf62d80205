"""Up to 20 matches analysed as one batch (low queue; a time limit of its own, 30 minutes, longer than the queue's)."""

from __future__ import annotations

from actors.base import JobContext, job_actor
from queues.priorities import QueuePriority


@job_actor(priority=QueuePriority.LOW, time_limit=1800)
async def bulk_analysis(ctx: JobContext, match_ids: list[str], user_id: int | None = None) -> dict:
    """Analyse each match with bounded concurrency and a shared cache; one summary."""
    from faceit import services

    result = await services.analyze_bulk(list(match_ids), ctx.progress)
    return result

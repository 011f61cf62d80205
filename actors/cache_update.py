"""Refresh cached profiles and stats (low queue, 10 minutes)."""

from __future__ import annotations

from actors.base import JobContext, job_actor
from queues.priorities import QueuePriority


@job_actor(priority=QueuePriority.LOW, time_limit=600)
async def cache_update(ctx: JobContext, cache_type: str = "player", identifiers: list[str] | None = None) -> dict:
    """Refresh ``identifiers`` (or every subscribed player) of ``cache_type``."""
    from faceit import services

    return await services.update_cache(cache_type, identifiers, ctx.progress)

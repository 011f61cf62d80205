"""Refresh cached profiles and stats (low queue).

Its time limit is the queue's: ``QUEUE_LOW_PRIORITY_TIMEOUT``, 10 minutes by default. A sweep of
every followed player begins players for its budget (``JobContext.budget``), and the next sweep
starts with those it left (:class:`faceit.sweep.Sweep`).
"""

from __future__ import annotations

from actors.base import JobContext, job_actor
from queues.priorities import QueuePriority


@job_actor(priority=QueuePriority.LOW)
async def cache_update(ctx: JobContext, cache_type: str = "player", identifiers: list[str] | None = None) -> dict:
    """Refresh ``identifiers`` (or every subscribed player) of ``cache_type``."""
    from faceit import services

    return await services.update_cache(cache_type, identifiers, ctx.progress, budget=ctx.budget())

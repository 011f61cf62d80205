"""The no-op job of the throughput benchmark, through our full stack (loaded by workers)."""

from __future__ import annotations

from actors.base import JobContext, job_actor
from queues.priorities import QueuePriority


@job_actor(priority=QueuePriority.DEFAULT)
async def bench_noop(ctx: JobContext) -> None:
    """Does nothing: what is measured is the pipeline around it."""
    return None

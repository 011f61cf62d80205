"""Actors for the queue-clearing tests (loaded by workers as ``tests.pipeline.queue_clearing_actors``)."""

from __future__ import annotations

import asyncio

from actors.base import JobContext, job_actor
from queues.priorities import QueuePriority
from queues.runtime import get_redis


def held_key(job_id: str) -> str:
    """Set by :func:`t_clear_held` once it runs: the test knows its job is in progress."""
    return f"t:clear:held:{job_id}"


def release_key(job_id: str) -> str:
    """Set by the test to let :func:`t_clear_held` end."""
    return f"t:clear:release:{job_id}"


@job_actor(priority=QueuePriority.DEFAULT, max_retries=0, time_limit=60)
async def t_clear_held(ctx: JobContext, fail: bool = False) -> dict:
    """Runs until the test releases it, then succeeds, or fails (``fail``: an unexpected error,
    final at once since no retry is allowed, so its message is dead-lettered). A job in progress
    for as long as a test needs, to clear its queue meanwhile."""
    client = get_redis()
    await asyncio.to_thread(client.set, held_key(ctx.job_id), 1)
    while not await asyncio.to_thread(client.exists, release_key(ctx.job_id)):
        await asyncio.sleep(0.05)
    if fail:
        raise ValueError("failed after its queue was cleared")
    return {"released": True}

"""Delivers an ended job's result to each of its requesters (high queue).

Placeholder until the bot's delivery lands: it only logs. (The bot issue fills this in with
``bot.delivery``.)
"""

from __future__ import annotations

from actors.base import JobContext, job_actor
from queues.priorities import QueuePriority


@job_actor(priority=QueuePriority.HIGH, time_limit=120, max_retries=5)
async def deliver_result(ctx: JobContext, job_id: str) -> dict:
    """Send the result of ``job_id`` to every requester exactly once."""
    try:
        from bot.delivery import deliver_job
    except ImportError:
        ctx.log.info("no bot delivery available; job %s result stays in its record", job_id)
        return {"kind": "delivery", "delivered": 0, "placeholder": True}
    return await deliver_job(job_id)

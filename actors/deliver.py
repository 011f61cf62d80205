"""Delivers an ended job's result to each of its requesters (high queue: users are waiting).

``middleware.delivery_trigger`` enqueues ``deliver_result(job_id)`` when a job with requesters
(or a result with notifications) ends. The body is :func:`bot.delivery.deliver_job`: every
part to every user exactly once, Telegram's limits respected. Flood control that outlasts the
in-process wait raises ``RateLimitedError(retry_after=…)`` and Telegram network trouble an
``UpstreamError``, so this small job is retried, never the analysis; ``max_retries`` is higher
than the default because a 429 storm may take several rounds. A failed attempt keeps the
delivered job's record through the scheduler's redelivery window (``queues.jobstore.OWED_TTL``);
a record gone before anyone was served fails the delivery (``ResultLostError``: an error alert).

Importing this module (``actors/__init__.py`` does, in every worker) also registers the
progress editor, so running jobs edit their users' messages ("players 6/10").
"""

from __future__ import annotations

from actors.base import PROGRESS_LISTENERS, JobContext, job_actor
from bot.delivery import deliver_job, on_progress
from queues.priorities import QueuePriority

if on_progress not in PROGRESS_LISTENERS:
    PROGRESS_LISTENERS.append(on_progress)


@job_actor(priority=QueuePriority.HIGH, time_limit=120, max_retries=8, retry_on_timeout=True)
async def deliver_result(ctx: JobContext, job_id: str) -> dict:
    """Send the result of ``job_id`` to every requester exactly once."""
    # Recipients not begun within the budget go to a new delivery job (bot.delivery.deliver_job).
    return await deliver_job(job_id, budget=ctx.budget())

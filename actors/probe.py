"""A job that does nothing but answer: ``admin.py test`` sends one to each queue."""

from __future__ import annotations

import time

from actors.base import JobContext, job_actor
from queues.priorities import QueuePriority


def _probe_for(priority: QueuePriority):
    @job_actor(priority=priority, time_limit=30, max_retries=0, actor_name=f"probe_{priority.value}")
    async def probe(ctx: JobContext, sent_at: float) -> dict:
        """Return how long the probe waited in its queue."""
        return {"waited": time.time() - sent_at, "kind": "probe"}

    return probe


probe_high = _probe_for(QueuePriority.HIGH)
probe_default = _probe_for(QueuePriority.DEFAULT)
probe_low = _probe_for(QueuePriority.LOW)
PROBES = {QueuePriority.HIGH: probe_high, QueuePriority.DEFAULT: probe_default, QueuePriority.LOW: probe_low}

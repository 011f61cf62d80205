"""Helpers of the scale-out tests: a queue manager on a broker of our choosing, polling, traces.

The test process may already hold the global Dramatiq broker of another test area (built from
the session's settings when ``actors`` was first imported). :func:`manager_for` builds a second
broker with :func:`actors.broker.build_broker` from the settings a test wants (RabbitMQ, another
Redis, another queue prefix), puts the previous global broker back, and declares on it the same
actors with their queues renamed for those settings, so :class:`~queues.manager.QueueManager`
enqueues exactly what a bot process with those settings would.
"""

from __future__ import annotations

import dramatiq
import redis

from queues.priorities import QueuePriority, queue_name
from settings import Settings
from tests.support.waiting import wait_until  # noqa: F401  (re-exported for the tests here)


def _priority_of(name: str) -> QueuePriority:
    for priority in QueuePriority:
        if name == priority.value or name.endswith(priority.value):
            return priority
    return QueuePriority.DEFAULT


def broker_for(settings: Settings) -> dramatiq.Broker:
    """A broker built from ``settings`` by our own builder, without replacing the global one."""
    import actors  # noqa: F401  (the global broker and every actor of the product)
    import tests.support.job_actors  # noqa: F401
    from actors.broker import build_broker

    previous = dramatiq.get_broker()
    try:
        broker = build_broker(settings)
    finally:
        dramatiq.set_broker(previous)
    for actor in previous.actors.values():
        dramatiq.Actor(actor.fn, broker=broker, actor_name=actor.actor_name,
                       queue_name=queue_name(_priority_of(actor.queue_name), settings),
                       priority=actor.priority, options=dict(actor.options))
    return broker


def manager_for(settings: Settings):
    """A :class:`~queues.manager.QueueManager` on a broker built from ``settings``."""
    from queues.manager import QueueManager
    from queues.runtime import reset_runtime

    reset_runtime()  # the job store and worker registry follow these settings' Redis
    return QueueManager(settings, broker=broker_for(settings))


class Traces:
    """What the test actors recorded in Redis (``t:runs:<job id>`` and friends)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def runs(self, job_id: str, name: str = "runs") -> int:
        return int(self.client.get(f"t:{name}:{job_id}") or 0)

    def many_runs(self, job_ids: list[str]) -> dict[str, int]:
        values = self.client.mget([f"t:runs:{job_id}" for job_id in job_ids])
        return {job_id: int(v or 0) for job_id, v in zip(job_ids, values, strict=True)}

    def times(self, job_id: str) -> list[float]:
        return [float(x) for x in self.client.lrange(f"t:times:{job_id}", 0, -1)]

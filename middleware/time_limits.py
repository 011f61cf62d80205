"""Decides each job's time limit: the enqueue option, else the actor's, else its queue's.

Parameters:
  queue_limits: seconds per queue name (``QUEUE_HIGH_PRIORITY_TIMEOUT`` … 180/300/600).
  default_limit: seconds for a queue not listed.

Options ``time_limit`` are in seconds here. The limit is enforced by the async actor wrapper
(:mod:`actors.base`) with ``asyncio.timeout``: the coroutine is cancelled, the job is recorded
as failed with "time limit exceeded" and the worker thread goes on to its next job. Dramatiq's
``TimeLimit`` is not used: it raises into the worker thread, which cannot stop a coroutine
running on the shared event loop thread.
"""

from __future__ import annotations

from dramatiq import Middleware

from middleware.state import state_of


class QueueTimeLimit(Middleware):
    """Puts the job's time limit (seconds) on ``message.fb.time_limit``."""

    def __init__(self, *, queue_limits: dict[str, float], default_limit: float = 300) -> None:
        self.queue_limits = dict(queue_limits)
        self.default_limit = default_limit

    @property
    def actor_options(self) -> set[str]:
        return {"time_limit"}

    def limit_for(self, broker, message) -> float:
        if message.options.get("time_limit"):
            return float(message.options["time_limit"])
        actor = broker.actors.get(message.actor_name)
        if actor is not None and actor.options.get("time_limit"):
            return float(actor.options["time_limit"])
        queue = message.queue_name.removesuffix(".DQ")
        return float(self.queue_limits.get(queue, self.default_limit))

    def before_process_message(self, broker, message):
        state_of(message).time_limit = self.limit_for(broker, message)

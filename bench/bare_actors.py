"""The same no-op job on bare Dramatiq: a RedisBroker with Dramatiq's default middleware.

``BARE_ASYNC=1`` adds Dramatiq's AsyncIO middleware and makes the actor ``async def``, to
separate the cost of running coroutines from the cost of our middleware.
"""

from __future__ import annotations

import os

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AsyncIO

ASYNC = os.environ.get("BARE_ASYNC") == "1"
broker = RedisBroker(client=redis.Redis.from_url(os.environ["REDIS_URL"]), namespace="bare")
if ASYNC:
    broker.add_middleware(AsyncIO())
dramatiq.set_broker(broker)

if ASYNC:

    @dramatiq.actor(queue_name="default", max_retries=0)
    async def bare_noop() -> None:
        return None

else:

    @dramatiq.actor(queue_name="default", max_retries=0)
    def bare_noop() -> None:
        return None

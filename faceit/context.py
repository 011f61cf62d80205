"""The FACEIT layer's per-process, per-event-loop resources: Redis client, Data API client, store.

Workers run every async actor of a process on one event loop, so one aiohttp session and one
Redis pool per loop is right; tests run each test on its own loop, so contexts are keyed by the
running loop and must be closed (``await close_faceit_context()``) before their loop ends.
Settings are read when a loop's context is first built (``get_settings()``).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

from faceit.client import KEY_MISSING, FaceitClient
from faceit.keys import FaceitKeys
from faceit.store import FaceitStore

log = logging.getLogger(__name__)

REDIS_MAX_CONNECTIONS = 64  # per event loop (one loop per worker process)
REDIS_POOL_TIMEOUT = 20.0  # seconds a command may wait for a free connection


@dataclass(slots=True)
class FaceitContext:
    settings: Any
    redis: Redis
    keys: FaceitKeys
    client: FaceitClient
    store: FaceitStore

    async def close(self) -> None:
        await self.client.close()
        await self.redis.aclose()


_contexts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FaceitContext] = weakref.WeakKeyDictionary()


#: Set by the pipeline (``actors/broker.py``) to its Sentinel-aware client builder, which
#: follows a failover at once; ``faceit`` may not import ``queues``, so it is handed in.
sentinel_client_factory: Callable[[Any], Redis] | None = None
#: Set by the pipeline too: what it does to each of its own asyncio clients, done to ours
#: (``queues.connection.with_hiredis_packing``: commands packed by hiredis).
client_finish: Callable[[Redis], Redis] | None = None


def build_redis(settings: Any) -> Redis:
    """An async Redis client (decoded strings) from ``REDIS_URL``/``REDIS_PASSWORD``/Sentinel."""
    client = _build_redis(settings)
    return client_finish(client) if client_finish is not None else client


def _build_redis(settings: Any) -> Redis:
    password = settings.redis_password.get_secret_value() or None
    if settings.redis_sentinels and settings.redis_sentinel_master and sentinel_client_factory is not None:
        return sentinel_client_factory(settings)
    if settings.redis_sentinels and settings.redis_sentinel_master:
        from redis.asyncio.sentinel import Sentinel

        from settings import sentinel_address

        hosts = [sentinel_address(item) for item in settings.redis_sentinels]
        sentinel = Sentinel(hosts, password=password, decode_responses=True)
        return sentinel.master_for(settings.redis_sentinel_master, decode_responses=True, password=password)
    kwargs: dict[str, Any] = {"decode_responses": True, "max_connections": REDIS_MAX_CONNECTIONS,
                              "timeout": REDIS_POOL_TIMEOUT}
    if password and "@" not in settings.redis_url:
        kwargs["password"] = password
    # A blocking pool: a flood of concurrent cache reads waits for a connection instead of
    # failing with "Too many connections" (the default pool raises at 100).
    return Redis.from_pool(BlockingConnectionPool.from_url(settings.redis_url, **kwargs))


def build_context(settings: Any) -> FaceitContext:
    redis = build_redis(settings)
    keys = FaceitKeys(settings.redis_key_prefix)
    client = FaceitClient.from_settings(settings, redis)
    return FaceitContext(settings=settings, redis=redis, keys=keys, client=client,
                         store=FaceitStore(redis, keys))


async def get_faceit_context() -> FaceitContext:
    """The context of the running loop, built from the settings on first use."""
    loop = asyncio.get_running_loop()
    context = _contexts.get(loop)
    if context is None:
        from settings import get_settings

        context = build_context(get_settings())
        _contexts[loop] = context
        if context.client.key_missing:  # said once per process and loop; every FACEIT job fails
            log.warning("%s (FACEIT_API_URL is %s): FACEIT jobs fail until then",
                        KEY_MISSING, context.settings.faceit_api_url)
        elif context.settings.sandbox_faceit:
            log.info("FACEIT_API_KEY is empty: the client talks to %s (sandbox expected)",
                     context.settings.faceit_api_url)
    return context


async def close_faceit_context() -> None:
    """Close and forget the running loop's context (no-op when there is none)."""
    context = _contexts.pop(asyncio.get_running_loop(), None)
    if context is not None:
        await context.close()

"""Redis clients built from settings: the one place that knows about passwords and Sentinel.

Every process that talks to Redis (bot, workers, scheduler, dashboard, admin) gets its clients
here, so pointing them all at one Redis, or at a Sentinel group, is a matter of settings.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis
from redis.sentinel import Sentinel

from settings import Settings


def _sentinel_hosts(settings: Settings) -> list[tuple[str, int]]:
    hosts = []
    for item in settings.redis_sentinels:
        host, _, port = item.rpartition(":")
        hosts.append((host or item, int(port or 26379)))
    return hosts


def _password(settings: Settings) -> str | None:
    url_password = urlsplit(settings.redis_url).password
    return url_password or settings.redis_password.get_secret_value() or None


def redis_client(settings: Settings, *, decode: bool = True, **options: Any) -> redis.Redis:
    """A sync client; follows the Sentinel master when ``REDIS_SENTINELS`` is set."""
    options.setdefault("socket_timeout", 10)
    options.setdefault("socket_connect_timeout", 5)
    options.setdefault("health_check_interval", 30)
    if settings.redis_sentinels and settings.redis_sentinel_master:
        sentinel = Sentinel(_sentinel_hosts(settings), socket_timeout=options["socket_timeout"])
        return sentinel.master_for(
            settings.redis_sentinel_master, password=_password(settings), decode_responses=decode, **options
        )
    password = None if urlsplit(settings.redis_url).password else _password(settings)
    return redis.Redis.from_url(settings.redis_url, password=password, decode_responses=decode, **options)


def async_redis_client(settings: Settings, *, decode: bool = True, **options: Any) -> aioredis.Redis:
    """An asyncio client for code running on an event loop (bot, async actors, dashboard)."""
    options.setdefault("socket_timeout", 10)
    options.setdefault("socket_connect_timeout", 5)
    if settings.redis_sentinels and settings.redis_sentinel_master:
        from redis.asyncio.sentinel import Sentinel as AsyncSentinel

        sentinel = AsyncSentinel(_sentinel_hosts(settings), socket_timeout=options["socket_timeout"])
        return sentinel.master_for(
            settings.redis_sentinel_master, password=_password(settings), decode_responses=decode, **options
        )
    password = None if urlsplit(settings.redis_url).password else _password(settings)
    return aioredis.Redis.from_url(settings.redis_url, password=password, decode_responses=decode, **options)

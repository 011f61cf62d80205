"""The bot process's async Redis client: a pool that waits for a free connection instead of failing.

redis-py's default pool raises ``MaxConnectionsError`` once 100 connections are in use; a burst
of updates (aiogram handles each as its own task) would then answer "try again shortly" while
Redis is perfectly healthy. A blocking pool of ``max_connections`` makes the burst queue for a
connection instead (up to ``timeout`` seconds). Built on :func:`queues.connection.async_redis_client`
so passwords and Sentinel stay handled in one place; a Sentinel pool is kept as it is.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from queues.connection import async_redis_client

MAX_CONNECTIONS = 64
WAIT_FOR_CONNECTION = 10.0


def bot_redis_client(settings: Any, *, max_connections: int = MAX_CONNECTIONS,
                     timeout: float = WAIT_FOR_CONNECTION) -> aioredis.Redis:
    client = async_redis_client(settings, health_check_interval=10)
    pool = client.connection_pool
    if type(pool) is not aioredis.ConnectionPool:
        return client
    blocking = aioredis.BlockingConnectionPool(connection_class=pool.connection_class,
                                               max_connections=max_connections, timeout=timeout,
                                               **pool.connection_kwargs)
    return aioredis.Redis(connection_pool=blocking)

"""Tests use the same local ``redis-server`` runner as ``make run`` and the benchmarks."""

from queues.redis_server import RedisServer, free_port, redis_server_binary

__all__ = ["RedisServer", "free_port", "redis_server_binary"]

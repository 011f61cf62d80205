"""Lua scripts run on a connection of the calling thread's own, past redis-py's command layers.

Every job runs two scripts on a worker's hot path (the start and the end of its record). Through
``redis.Redis`` each call also pays for argument filtering, the retry wrapper and taking and
returning a pool connection: about as much client CPU as the round trip itself, which showed
in the throughput benchmark. Here each thread keeps one connection and talks to it directly.

What the pool would otherwise do, done here: a connection error or timeout closes the
connection (a reply may still be in flight) and is raised to the caller, which owns retrying
(:class:`~middleware.tracking.Tracking` retries until Redis answers); an unknown script is
loaded and run again. Only plain pools use this path: a Sentinel pool re-checks the master
when a connection is taken (:mod:`queues.connection`), which a kept connection would skip, so
:func:`direct_scripts_for` returns ``None`` there and callers use the client as usual.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError


class DirectScripts:
    """EVALSHA on one kept connection per thread, made like the pool's own connections."""

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self._pool = pool
        self._local = threading.local()

    def _connection(self) -> redis.Connection:
        conn = getattr(self._local, "conn", None)
        # A forked child inherits the parent's thread-local connection: never share its socket.
        if conn is None or self._local.pid != os.getpid():
            conn = self._local.conn = self._pool.connection_class(**self._pool.connection_kwargs)
            self._local.pid = os.getpid()
        return conn

    def run(self, script: Script, args: list[Any]) -> Any:
        """Run ``script`` with ``args`` (no keys: our scripts derive them from a prefix)."""
        conn = self._connection()
        try:
            try:
                conn.send_command("EVALSHA", script.sha, 0, *args)
                return conn.read_response()
            except NoScriptError:
                conn.send_command("SCRIPT", "LOAD", script.script)
                conn.read_response()
                conn.send_command("EVALSHA", script.sha, 0, *args)
                return conn.read_response()
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            conn.disconnect()
            raise


def direct_scripts_for(client: redis.Redis) -> DirectScripts | None:
    """The direct path for ``client``'s pool, or ``None`` when it must go through the pool."""
    pool = client.connection_pool
    if type(pool) is not redis.ConnectionPool:  # Sentinel and blocking pools keep their checks
        return None
    return DirectScripts(pool)

"""Per-process singletons: the sync Redis client, the job store and the alert store.

Built lazily from settings on first use, so importing a module never opens a connection, and
rebuilt after a fork (each Dramatiq worker process gets its own connections).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis

from queues.alerts import AlertSink, AlertStore
from queues.connection import redis_client
from queues.jobstore import JobStore
from settings import Settings, get_settings

_lock = threading.RLock()
_state: dict[str, Any] = {}


def _cached(name: str, build):
    pid = os.getpid()
    if _state.get("pid") != pid:
        _state.clear()
        _state["pid"] = pid
    if name not in _state:
        with _lock:
            if name not in _state:
                _state[name] = build()
    return _state[name]


def get_redis(settings: Settings | None = None) -> redis.Redis:
    """The process's sync client (decoded strings)."""
    return _cached("redis", lambda: redis_client(settings or get_settings()))


def get_job_store(settings: Settings | None = None) -> JobStore:
    settings = settings or get_settings()
    return _cached("jobs", lambda: JobStore.from_settings(get_redis(settings), settings))


def default_alert_sinks(settings: Settings) -> list[AlertSink]:
    """The log, plus Sentry when ``SENTRY_DSN`` is set."""
    from queues.alerts import LogSink

    sinks: list[AlertSink] = [LogSink()]
    if settings.sentry_dsn.get_secret_value():
        from queues.sentry import SentrySink

        sinks.append(SentrySink())
    return sinks


def get_alert_store(settings: Settings | None = None) -> AlertStore:
    settings = settings or get_settings()
    return _cached(
        "alerts",
        lambda: AlertStore.from_settings(get_redis(settings), settings, sinks=default_alert_sinks(settings)),
    )


def reset_runtime() -> None:
    """Forget every cached client (tests that change settings call this)."""
    with _lock:
        _state.clear()

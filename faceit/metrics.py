"""Per-minute outcome counters of Data API calls, for the ops monitor's alert rules.

Each call adds to a hash ``faceit:calls:<epoch minute>``: ``requests`` and one outcome field
(``ok``, ``not_found``, ``auth``, ``rate_limited``, ``upstream``, ``timeout``, ``connection``,
``bad_response``, ``client_error``), or ``no_key`` alone: a call not sent because
``FACEIT_API_KEY`` is not set (it counts among the auth errors, and says why). Hashes expire
after :data:`RETENTION_SECONDS`.

:func:`faceit_call_counts` reads the minutes overlapping the last ``window_seconds`` (so the
window is rounded up to whole minutes); ``queues/monitoring.py`` calls it for the
"FACEIT auth errors" and "429 storm" rules.
"""

from __future__ import annotations

import time
from typing import Any

from faceit.keys import FaceitKeys

RETENTION_SECONDS = 2 * 86400
OUTCOMES = ("ok", "not_found", "auth", "rate_limited", "upstream", "timeout", "connection",
            "bad_response", "client_error", "no_key")
NOT_SENT = "no_key"  # the outcome of a call that never went out: not a request


class CallCounter:
    """Writes the counters (async Redis client)."""

    def __init__(self, redis: Any, keys: FaceitKeys) -> None:
        self.redis = redis
        self.keys = keys

    async def record(self, outcome: str, now: float | None = None) -> None:
        key = self.keys.calls(int((now or time.time()) // 60))
        pipe = self.redis.pipeline(transaction=False)
        if outcome != NOT_SENT:
            pipe.hincrby(key, "requests", 1)
        pipe.hincrby(key, outcome, 1)
        pipe.expire(key, RETENTION_SECONDS)
        await pipe.execute()


def _minutes(window_seconds: float, now: float) -> list[int]:
    last = int(now // 60)
    first = int((now - max(1.0, window_seconds)) // 60)
    return list(range(first, last + 1))


def _summarise(minutes: list[int], rows: list[dict[str, Any]], window_seconds: float) -> dict[str, Any]:
    totals = {name: 0 for name in ("requests", *OUTCOMES)}
    per_minute = []
    for minute, row in zip(minutes, rows, strict=True):
        counts = {str(k): int(v) for k, v in (row or {}).items()}
        for name, value in counts.items():
            totals[name] = totals.get(name, 0) + value
        per_minute.append({"minute": minute * 60, **counts})
    # Errors of calls sent: a call never sent (no key) is not among them, as it is not a request.
    errors = {name: totals[name] for name in OUTCOMES if name not in ("ok", NOT_SENT) and totals.get(name)}
    return {
        "window_seconds": window_seconds,
        "requests": totals["requests"],
        "ok": totals["ok"],
        "errors": errors,
        "error_total": sum(errors.values()),
        "rate_limited": totals["rate_limited"],
        "auth_errors": totals["auth"] + totals[NOT_SENT],
        "key_missing": totals[NOT_SENT],
        "per_minute": per_minute,
    }


def faceit_call_counts(window_seconds: float, redis_client: Any = None) -> dict[str, Any]:
    """Data API outcome counts over the last ``window_seconds`` (synchronous, for the monitor).

    Returns ``{"requests", "ok", "errors": {outcome: n}, "error_total", "rate_limited",
    "auth_errors", "key_missing", "per_minute": [...], "window_seconds"}``; ``auth_errors``
    holds the ``key_missing`` calls (not sent: no ``FACEIT_API_KEY``) with FACEIT's refusals. ``redis_client`` is a sync
    ``redis.Redis``; without one a client is built from the settings.
    """
    from settings import get_settings

    settings = get_settings()
    own = redis_client is None
    if own:
        import redis

        password = settings.redis_password.get_secret_value() or None
        redis_client = redis.Redis.from_url(settings.redis_url, password=password)
    try:
        keys = FaceitKeys(settings.redis_key_prefix)
        minutes = _minutes(window_seconds, time.time())
        pipe = redis_client.pipeline(transaction=False)
        for minute in minutes:
            pipe.hgetall(keys.calls(minute))
        rows = [_decode(row) for row in pipe.execute()]
    finally:
        if own:
            redis_client.close()
    return _summarise(minutes, rows, window_seconds)


def _decode(row: dict[Any, Any]) -> dict[str, int]:
    out = {}
    for key, value in (row or {}).items():
        name = key.decode() if isinstance(key, bytes) else str(key)
        out[name] = int(value)
    return out

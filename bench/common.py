"""Shared pieces of the benchmarks: a private Redis, percentiles, result files."""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from queues.redis_server import RedisServer

RESULTS = Path(__file__).resolve().parent / "results"


def private_redis(appendonly: bool = False) -> RedisServer:
    """A fresh redis-server on a free port (benchmarks never touch another Redis)."""
    server = RedisServer(Path(tempfile.mkdtemp(prefix="bench-redis-")), appendonly=appendonly)
    server.start()
    os.environ["REDIS_URL"] = server.url
    return server


def compare_at_equal_priority() -> None:
    """Our workers keep the harness's CPU priority (``WORKER_NICE=0``) in the comparisons: the
    bare Dramatiq and RQ workers they are measured against do not lower theirs. The nice value is
    a choice for sharing a machine with the bot, measured by ``bench/bot_ack.py``; at 19 the
    full stack processed ~7% fewer jobs/s here, pre-empted by the harness polling Redis every 2 ms."""
    os.environ.setdefault("WORKER_NICE", "0")


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def write_results(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2))
    return path

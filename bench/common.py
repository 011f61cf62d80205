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

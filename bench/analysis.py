"""Benchmark of one match analysis against the sandbox FACEIT API (``python -m bench.analysis``).

1. Latency: the sandbox answers every call in 100 ms and the rate limit is set so it does not
   bind. Each of 20 pre-game lobbies is analysed cold (empty Redis) and then warm (everything
   cached); p50/p95 latency and the Data API calls made are reported.
   Targets: cold p50 < 1.5 s (the calls go out concurrently), warm p50 < 150 ms.
2. Flood: the default limit (``FACEIT_RATE_LIMIT``/``FACEIT_RATE_BURST`` from settings.toml)
   against a sandbox that answers 429 above 10 requests/s; 10 analyses start at once and must
   all finish with no 429 reaching a job (the client absorbs the few 429s the initial burst
   draws by waiting ``Retry-After`` once).

Private Redis and sandbox (a subprocess) are started and stopped here; nothing shared is
touched. Each figure is one line on stdout; all of them go to ``bench/results/analysis.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "analysis.json"


async def _noop(*_args: Any, **_kwargs: Any) -> None:
    return None


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _configure(env: dict[str, str]) -> None:
    from settings import get_settings

    os.environ.update(env)
    get_settings.cache_clear()


async def latency(sandbox: Any, redis_server: Any, matches: int) -> dict[str, Any]:
    from faceit import services
    from faceit.context import close_faceit_context

    _configure({**sandbox.env(), "FACEIT_RATE_LIMIT": "10000", "FACEIT_RATE_BURST": "10000"})
    world = sandbox.world()["matches"]
    ids = [mid for status in ("VOTING", "READY", "ONGOING", "CONFIGURING", "CHECK_IN") for mid in world.get(status, [])]
    ids = ids[:matches]
    sandbox.faults(latency_ms=100)
    cold, warm, cold_calls, warm_calls = [], [], [], []
    for mid in ids:
        redis_server.client().flushall()
        await close_faceit_context()
        sandbox.reset()
        sandbox.faults(latency_ms=100)
        started = time.perf_counter()
        await services.analyze_match(mid, _noop)
        cold.append(time.perf_counter() - started)
        cold_calls.append(sandbox.calls())
        sandbox.reset()
        sandbox.faults(latency_ms=100)
        started = time.perf_counter()
        await services.analyze_match(mid, _noop)
        warm.append(time.perf_counter() - started)
        warm_calls.append(sandbox.calls())
    await close_faceit_context()
    sandbox.faults()
    return {
        "matches": len(ids),
        "upstream_latency_ms": 100,
        "cold_p50_s": round(statistics.median(cold), 3),
        "cold_p95_s": round(_pct(cold, 0.95), 3),
        "warm_p50_ms": round(statistics.median(warm) * 1000, 1),
        "warm_p95_ms": round(_pct(warm, 0.95) * 1000, 1),
        "cold_calls_max": max(cold_calls),
        "cold_calls_mean": round(statistics.fmean(cold_calls), 1),
        "warm_calls_max": max(warm_calls),
    }


async def flood(sandbox: Any, redis_server: Any, analyses: int, upstream_limit: float) -> dict[str, Any]:
    from faceit import services
    from faceit.context import close_faceit_context
    from faceit.errors import FaceitBotError, RateLimitedError
    from settings import load_settings

    redis_server.client().flushall()
    for name in ("FACEIT_RATE_LIMIT", "FACEIT_RATE_BURST"):
        os.environ.pop(name, None)
    _configure(sandbox.env())
    defaults = load_settings()
    await close_faceit_context()
    sandbox.reset()
    sandbox.faults(rate_limit_per_s=upstream_limit, latency_ms=100)
    world = sandbox.world()["matches"]
    ids = [mid for status in ("ONGOING", "READY", "VOTING", "CONFIGURING", "CHECK_IN") for mid in world.get(status, [])]
    ids = ids[:analyses]
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(services.analyze_match(mid, _noop) for mid in ids), return_exceptions=True)
    elapsed = time.perf_counter() - started
    stats = sandbox.stats()
    await close_faceit_context()
    sandbox.faults()
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    return {
        "analyses": len(ids),
        "rate_limit_per_s": defaults.faceit_rate_limit,
        "rate_burst": defaults.faceit_rate_burst,
        "upstream_limit_per_s": upstream_limit,
        "succeeded": len(ids) - len(failures),
        "rate_limited_jobs": sum(1 for f in failures if isinstance(f, RateLimitedError)),
        "other_failures": [f"{type(f).__name__}: {f}" for f in failures if not isinstance(f, RateLimitedError)],
        "faceit_errors": [f.code for f in failures if isinstance(f, FaceitBotError)],
        "upstream_calls": stats["total"],
        "upstream_429s": stats["statuses"].get("429", 0),
        "elapsed_s": round(elapsed, 2),
        "effective_rate_per_s": round(stats["total"] / elapsed, 2) if elapsed else None,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.support.faceit_sandbox import FaceitSandbox
    from tests.support.redis_server import RedisServer

    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
        redis_server = RedisServer(Path(tmp))
        redis_server.start()
        os.environ["REDIS_URL"] = redis_server.url
        try:
            with FaceitSandbox(subprocess=True, lobbies=2) as sandbox:
                first = await latency(sandbox, redis_server, args.matches)
                second = await flood(sandbox, redis_server, args.analyses, args.upstream_limit)
        finally:
            redis_server.stop(flush_to_disk=False)
    return {"latency": first, "flood": second}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matches", type=int, default=20)
    parser.add_argument("--analyses", type=int, default=10)
    parser.add_argument("--upstream-limit", type=float, default=10.0)
    args = parser.parse_args()
    results = asyncio.run(run(args))
    lat, fl = results["latency"], results["flood"]
    print(f"cold analysis p50: {lat['cold_p50_s']:.3f} s (target < 1.5 s), p95: {lat['cold_p95_s']:.3f} s "
          f"over {lat['matches']} matches, upstream 100 ms per call")
    print(f"warm analysis p50: {lat['warm_p50_ms']:.1f} ms (target < 150 ms), p95: {lat['warm_p95_ms']:.1f} ms")
    print(f"calls per cold analysis: max {lat['cold_calls_max']}, mean {lat['cold_calls_mean']} (budget 31)")
    print(f"calls per warm analysis: max {lat['warm_calls_max']} (budget 1)")
    print(f"flood: {fl['succeeded']}/{fl['analyses']} analyses finished, {fl['rate_limited_jobs']} got a 429 "
          f"(limit {fl['rate_limit_per_s']}/s burst {fl['rate_burst']} vs upstream {fl['upstream_limit_per_s']}/s)")
    print(f"flood: {fl['upstream_calls']} upstream calls, {fl['upstream_429s']} answered 429 and absorbed, "
          f"{fl['elapsed_s']} s, {fl['effective_rate_per_s']} calls/s")
    if fl["other_failures"]:
        print(f"flood: other failures: {', '.join(fl['other_failures'])}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"results written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

"""Scaling: processing rate with 1, 2 and 4 worker processes, and per-job cost vs backlog size.

``python -m bench.scaling [--jobs N] [--processes 1,2,4] [--backlogs 1000,10000,100000] [--quick]``

Part 1, processes: N no-op jobs through the full stack (``bench.throughput``'s ``run_full``)
with P processes x T threads each; the figure is jobs/s from first job taken to last ack.

Part 2, backlog: for each size B, enqueue B jobs through the queue manager (the real path:
record + message) and time the per-job enqueue cost of the first and of the last
``--window`` jobs (i.e. at an empty queue and at a backlog of B); then start one worker process
and time the per-job dequeue-and-run cost of the first ``--window`` jobs taken off the B-job
backlog. Flat means the last-window cost stays within noise of the first and of the smallest
backlog's. Also reports Redis memory per queued job. Prints one line per figure; writes
``bench/results/scaling.json``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from bench.common import compare_at_equal_priority, private_redis, write_results
from bench.throughput import run_full

ROOT = Path(__file__).resolve().parents[1]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _timed_enqueue(manager, count: int) -> float:
    """Mean seconds per enqueue of ``count`` jobs (0 when there is nothing to enqueue)."""
    if count <= 0:
        return 0.0
    started = time.perf_counter()
    for _ in range(count):
        manager.enqueue_job("bench_noop")
    return (time.perf_counter() - started) / count


def backlog_costs(client: redis.Redis, manager, size: int, window: int, threads: int) -> dict[str, float]:
    """Per-job enqueue cost at an empty queue and at ``size`` queued; dequeue cost at ``size``."""
    client.flushall()
    base_memory = client.info("memory")["used_memory"]
    window = min(window, size // 2)
    first = _timed_enqueue(manager, window)
    _timed_enqueue(manager, size - 2 * window)
    last = _timed_enqueue(manager, window)
    queued = client.llen("dramatiq:default")
    if queued != size:
        raise RuntimeError(f"{queued} queued instead of {size}")
    memory_per_job = (client.info("memory")["used_memory"] - base_memory) / size
    proc = subprocess.Popen([sys.executable, "-m", "dramatiq", "actors", "bench.bench_actors", "--processes", "1",
                             "--threads", str(threads), "--queues", "default"], cwd=ROOT,
                            env={**os.environ, "LOG_LEVEL": "WARNING"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while client.llen("dramatiq:default") >= size:
            if time.monotonic() > deadline:
                raise RuntimeError("the worker never started")
            time.sleep(0.002)
        started = time.perf_counter()
        while client.zcard("fb:jobs:status:succeeded") < window:
            if time.monotonic() > deadline + 600:
                raise RuntimeError("dequeue timed out")
            time.sleep(0.002)
        dequeue = (time.perf_counter() - started) / window
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()
    return {"enqueue_first_us": first * 1e6, "enqueue_last_us": last * 1e6, "dequeue_us": dequeue * 1e6,
            "redis_bytes_per_job": memory_per_job}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--processes", type=_ints, default=[1, 2, 4])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--backlogs", type=_ints, default=[1000, 10_000, 100_000])
    parser.add_argument("--window", type=int, default=1000, help="jobs timed at each end of a backlog")
    parser.add_argument("--quick", action="store_true", help="1,000 jobs; backlogs 1k and 5k: a smoke test")
    args = parser.parse_args(argv)
    compare_at_equal_priority()
    if args.quick:
        args.jobs, args.backlogs, args.window = min(args.jobs, 1000), [1000, 5000], min(args.window, 300)

    server = private_redis()
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    client = redis.Redis.from_url(server.url)
    figures: dict[str, Any] = {"setup": {**vars(args), "cpus": os.cpu_count()}, "processes": {}, "backlog": {}}
    try:
        import bench.bench_actors  # noqa: F401  (after REDIS_URL: importing actors builds the broker)
        from queues.manager import get_queue_manager

        manager = get_queue_manager()
        for processes in args.processes:
            figures["processes"][processes] = run_full(client, args.jobs, processes, args.threads)["process"]
        for size in args.backlogs:
            figures["backlog"][size] = backlog_costs(client, manager, size, args.window, args.threads)
    finally:
        server.stop(flush_to_disk=False)

    print(f"setup: {args.jobs} no-op jobs, {args.threads} threads per process, {os.cpu_count()} CPUs; "
          f"backlog window {args.window} jobs")
    one = figures["processes"][args.processes[0]]
    for processes, rate in figures["processes"].items():
        print(f"scaling {processes} process(es): {rate:.0f} jobs/s (x{rate / one:.2f})")
    for size, costs in figures["backlog"].items():
        print(f"scaling backlog {size}: enqueue {costs['enqueue_first_us']:.0f} us/job at empty, "
              f"{costs['enqueue_last_us']:.0f} us/job at {size}; dequeue {costs['dequeue_us']:.0f} us/job; "
              f"{costs['redis_bytes_per_job']:.0f} B of Redis per queued job")
    sizes = list(figures["backlog"])
    small, big = figures["backlog"][sizes[0]], figures["backlog"][sizes[-1]]
    figures["ratios"] = {
        f"enqueue at {sizes[-1]} / at empty": big["enqueue_last_us"] / big["enqueue_first_us"],
        f"dequeue at {sizes[-1]} / at {sizes[0]}": big["dequeue_us"] / small["dequeue_us"],
    }
    for name, value in figures["ratios"].items():
        print(f"scaling ratio {name}: {value:.2f}")
    write_results("scaling", figures)
    return figures


if __name__ == "__main__":
    main()

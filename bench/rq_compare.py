"""No-op jobs per second: our full stack, bare Dramatiq, RQ (forking) and RQ SimpleWorker.

``python -m bench.rq_compare [--jobs N] [--processes P] [--threads T] [--rounds R] [--quick]``

One run, one private Redis, the same number of worker processes for every stack:

* ``full-stack`` and ``bare-dramatiq``: :mod:`bench.throughput`'s own functions (P processes x
  T threads; enqueue with no worker running, then the drain from first job taken to last ack);
* ``rq-fork``: P ``rq worker`` processes with RQ's default ``Worker``, which forks a child per
  job; ``rq-simple``: P ``rq worker -w rq.worker.SimpleWorker`` processes (no fork). RQ workers
  run one job at a time. Enqueue is ``Queue.enqueue`` in a loop; processing is timed from the
  first job taken off the queue to the last one in the finished registry (start-up excluded).

Also measures the physical limit: one Redis connection's PING round trip on loopback (redis-py
and ``redis-benchmark`` when installed), i.e. how many commands one connection does per second.
Prints one line per figure and the ratios; writes ``bench/results/rq_compare.json``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from bench.common import compare_at_equal_priority, median, private_redis, write_results
from bench.throughput import run_bare, run_full

ROOT = Path(__file__).resolve().parents[1]
RQ_QUEUE = "bench"


def redis_round_trip(url: str, port: int, pings: int = 20000) -> dict[str, float]:
    """PING round trips of one connection: redis-py in a loop, and redis-benchmark if present."""
    client = redis.Redis.from_url(url)
    client.ping()
    started = time.perf_counter()
    for _ in range(pings):
        client.ping()
    seconds = time.perf_counter() - started
    figures = {"redis_py_ping_us": seconds / pings * 1e6, "redis_py_pings_per_s": pings / seconds}
    tool = shutil.which("redis-benchmark")
    if tool:
        out = subprocess.run([tool, "-h", "127.0.0.1", "-p", str(port), "-c", "1", "-n", str(pings),
                              "-t", "ping", "-q"], capture_output=True, text=True, timeout=120).stdout
        rates = [float(x) for x in re.findall(r"([\d.]+) requests per second", out)]
        if rates:
            figures["redis_benchmark_pings_per_s"] = max(rates)  # PING_INLINE and PING_MBULK
            figures["redis_benchmark_ping_us"] = 1e6 / max(rates)
    return figures


def _rq_workers(url: str, processes: int, simple: bool) -> list[subprocess.Popen]:
    cmd = [sys.executable, "-m", "rq.cli", "worker", "--url", url, "--serializer", "json", "--quiet",
           "--disable-job-desc-logging", RQ_QUEUE]
    if simple:
        cmd[4:4] = ["--worker-class", "rq.worker.SimpleWorker"]
    return [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True) for _ in range(processes)]


def _stop_all(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass
    for proc in procs:
        proc.wait()


def run_rq(client: redis.Redis, url: str, jobs: int, processes: int, simple: bool,
           timeout: float = 900) -> dict[str, float]:
    """Enqueue ``jobs`` RQ no-ops, then time P RQ workers draining them."""
    from rq import Queue
    from rq.serializers import JSONSerializer

    from bench import rq_jobs

    client.flushall()
    queue = Queue(RQ_QUEUE, connection=client, serializer=JSONSerializer)
    started = time.perf_counter()
    for _ in range(jobs):
        queue.enqueue(rq_jobs.noop, result_ttl=3600)
    enqueue = jobs / (time.perf_counter() - started)
    finished_key = f"rq:finished:{RQ_QUEUE}"
    failed_key = f"rq:failed:{RQ_QUEUE}"
    procs = _rq_workers(url, processes, simple)
    deadline = time.monotonic() + timeout
    try:
        while client.llen(f"rq:queue:{RQ_QUEUE}") >= jobs:
            if time.monotonic() > deadline:
                raise RuntimeError("RQ workers never started")
            time.sleep(0.002)
        first = time.perf_counter()
        while client.zcard(finished_key) + client.zcard(failed_key) < jobs:
            if time.monotonic() > deadline:
                raise RuntimeError("RQ drain timed out")
            time.sleep(0.005)
        seconds = time.perf_counter() - first
    finally:
        _stop_all(procs)
    failed = client.zcard(failed_key)
    if failed:
        raise RuntimeError(f"RQ failed {failed} of {jobs} no-op jobs")
    return {"enqueue": enqueue, "process": jobs / seconds}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="300 jobs, 1 round: a smoke test")
    args = parser.parse_args(argv)
    compare_at_equal_priority()
    if args.quick:
        args.jobs, args.rounds = min(args.jobs, 300), 1

    server = private_redis()
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    client = redis.Redis.from_url(server.url)
    runs: dict[str, list[dict[str, float]]] = {"full-stack": [], "bare-dramatiq": [], "rq-fork": [],
                                               "rq-simple": []}
    try:
        rtt = redis_round_trip(server.url, server.port, pings=2000 if args.quick else 20000)
        for _ in range(args.rounds):  # interleaved: drift of the machine hits every stack alike
            runs["full-stack"].append(run_full(client, args.jobs, args.processes, args.threads))
            runs["bare-dramatiq"].append(run_bare(client, args.jobs, args.processes, args.threads, False))
            runs["rq-fork"].append(run_rq(client, server.url, args.jobs, args.processes, simple=False))
            runs["rq-simple"].append(run_rq(client, server.url, args.jobs, args.processes, simple=True))
    finally:
        server.stop(flush_to_disk=False)

    setup = {**vars(args), "cpus": os.cpu_count()}
    figures: dict[str, Any] = {"setup": setup, "redis_round_trip": rtt}
    print(f"setup: {args.jobs} no-op jobs, {args.processes} processes (dramatiq: x {args.threads} threads; "
          f"rq: one job at a time each), {args.rounds} round(s), medians")
    print(f"redis round trip (redis-py PING, 1 connection): {rtt['redis_py_ping_us']:.0f} us "
          f"= {rtt['redis_py_pings_per_s']:.0f} commands/s")
    if "redis_benchmark_pings_per_s" in rtt:
        print(f"redis round trip (redis-benchmark -c 1 -t ping): {rtt['redis_benchmark_ping_us']:.0f} us "
              f"= {rtt['redis_benchmark_pings_per_s']:.0f} commands/s")
    for name, results in runs.items():
        enqueue = median([r["enqueue"] for r in results])
        process = median([r["process"] for r in results])
        figures[name] = {"enqueue": enqueue, "process": process, "rounds": results}
        print(f"rq_compare {name} enqueue: {enqueue:.0f} jobs/s")
        print(f"rq_compare {name} process: {process:.0f} jobs/s")
    ratios = {}
    for other in ("bare-dramatiq", "rq-fork", "rq-simple"):
        for kind in ("process", "enqueue"):
            ratios[f"full/{other} {kind}"] = figures["full-stack"][kind] / figures[other][kind]
    figures["ratios"] = ratios
    for name, value in ratios.items():
        print(f"rq_compare ratio {name}: {value:.2f}")
    write_results("rq_compare", figures)
    return figures


if __name__ == "__main__":
    main()

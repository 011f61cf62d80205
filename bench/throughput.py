"""No-op jobs per second: our full stack against bare Dramatiq, same Redis, same processes.

``python -m bench.throughput [--jobs N] [--processes P] [--threads T] [--rounds R]``

For each stack and round: enqueue N jobs with no worker running (enqueue rate), then start a
worker pool and time the drain from the first job taken to the last one acked (processing
rate; pool start-up is not counted). The full stack writes a job record per job and runs every
middleware of ours; bare Dramatiq runs its default middleware (plus, for ``bare-async``, its
AsyncIO middleware with an ``async def`` actor, as ours are). Prints one line per figure and
the ratios; writes ``bench/results/throughput.json``.
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

from bench.common import compare_at_equal_priority, median, private_redis, write_results

ROOT = Path(__file__).resolve().parents[1]


def _drain(client: redis.Redis, namespace: str, queue: str, total: int, timeout: float = 600) -> float:
    """Seconds from the first message taken off ``queue`` to the last one acked."""
    qkey, msgs = f"{namespace}:{queue}", f"{namespace}:{queue}.msgs"
    deadline = time.monotonic() + timeout
    while client.llen(qkey) >= total:
        if time.monotonic() > deadline:
            raise RuntimeError("workers never started")
        time.sleep(0.002)
    started = time.perf_counter()
    while client.hlen(msgs) > 0:
        if time.monotonic() > deadline:
            raise RuntimeError("drain timed out")
        time.sleep(0.002)
    return time.perf_counter() - started


def _workers(modules: list[str], processes: int, threads: int, env: dict[str, str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "dramatiq", *modules, "--processes", str(processes), "--threads",
           str(threads), "--queues", "default"]
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, 9)
    proc.wait()


def run_full(client: redis.Redis, jobs: int, processes: int, threads: int) -> dict[str, float]:
    import bench.bench_actors  # noqa: F401  (declares bench_noop on our broker)
    from queues.manager import get_queue_manager

    manager = get_queue_manager()
    client.flushall()
    started = time.perf_counter()
    for _ in range(jobs):
        manager.enqueue_job("bench_noop")
    enqueue = jobs / (time.perf_counter() - started)
    proc = _workers(["actors", "bench.bench_actors"], processes, threads, {"LOG_LEVEL": "WARNING"})
    try:
        seconds = _drain(client, "dramatiq", "default", jobs)
    finally:
        _stop(proc)
    succeeded = client.zcard("fb:jobs:status:succeeded")
    if succeeded != jobs:
        raise RuntimeError(f"full stack recorded {succeeded} of {jobs} jobs as succeeded")
    return {"enqueue": enqueue, "process": jobs / seconds}


def run_bare(client: redis.Redis, jobs: int, processes: int, threads: int, use_async: bool) -> dict[str, float]:
    env = {"BARE_ASYNC": "1" if use_async else "0"}
    os.environ.update(env)
    code = (
        "import sys, time, bench.bare_actors as b\n"
        "n = int(sys.argv[1]); t = time.perf_counter()\n"
        "for _ in range(n): b.bare_noop.send()\n"
        "print(n / (time.perf_counter() - t))\n"
    )
    client.flushall()
    out = subprocess.run([sys.executable, "-c", code, str(jobs)], cwd=ROOT, env={**os.environ, **env},
                         capture_output=True, text=True, check=True)
    enqueue = float(out.stdout.strip().splitlines()[-1])
    proc = _workers(["bench.bare_actors"], processes, threads, env)
    try:
        seconds = _drain(client, "bare", "default", jobs)
    finally:
        _stop(proc)
    return {"enqueue": enqueue, "process": jobs / seconds}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    compare_at_equal_priority()

    server = private_redis()
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    client = redis.Redis.from_url(server.url)
    runs: dict[str, list[dict[str, float]]] = {"full-stack": [], "bare-dramatiq": [], "bare-dramatiq-async": []}
    try:
        for _ in range(args.rounds):  # interleaved, so drift of the machine hits every stack alike
            runs["full-stack"].append(run_full(client, args.jobs, args.processes, args.threads))
            runs["bare-dramatiq"].append(run_bare(client, args.jobs, args.processes, args.threads, False))
            runs["bare-dramatiq-async"].append(run_bare(client, args.jobs, args.processes, args.threads, True))
    finally:
        server.stop(flush_to_disk=False)

    figures: dict[str, Any] = {"setup": vars(args)}
    print(f"setup: {args.jobs} no-op jobs, {args.processes} processes x {args.threads} threads, "
          f"{args.rounds} rounds (medians)")
    for name, results in runs.items():
        enqueue = median([r["enqueue"] for r in results])
        process = median([r["process"] for r in results])
        figures[name] = {"enqueue": enqueue, "process": process, "rounds": results}
        print(f"throughput {name} enqueue: {enqueue:.0f} jobs/s")
        print(f"throughput {name} process: {process:.0f} jobs/s")
    full, bare, bare_async = figures["full-stack"], figures["bare-dramatiq"], figures["bare-dramatiq-async"]
    ratios = {
        "full/bare process": full["process"] / bare["process"],
        "full/bare-async process": full["process"] / bare_async["process"],
        "full/bare enqueue": full["enqueue"] / bare["enqueue"],
    }
    figures["ratios"] = ratios
    for name, value in ratios.items():
        print(f"throughput ratio {name}: {value:.2f}")
    met = ratios["full/bare process"] >= 0.70
    figures["target_met"] = met
    print(f"throughput target full/bare process >= 0.70: {'met' if met else 'NOT met'}")
    write_results("throughput", figures)
    return figures


if __name__ == "__main__":
    main()

"""Priority isolation: how long a high-priority job waits while a low-priority backlog runs.

``python -m bench.priority [--low N] [--high K] [--low-seconds S] [--gap G] [--quick]``

With N low-priority jobs of S seconds (default 5,000 x 50 ms) waiting, K high-priority jobs are
sent one every G seconds; the figure is the time from enqueue to start of each high job (p50,
p99), from the stacks' own records:

* ``ours``: the default worker layout of ``make run`` (supervisor.py): one ``--queues high``
  pool and one ``--queues default low`` pool, 1 process x 8 threads each; times from our job
  records (``enqueued_at`` → ``first_started_at``). ``ours-poll-100ms`` is the same with
  Dramatiq's idle poll shortened from 1 s to 100 ms (env ``dramatiq_worker_timeout=100``): an
  idle Redis consumer polls with backoff up to that timeout, which bounds an idle pool's wait.
* ``rq``: one ``rq worker high default low`` (RQ's forking worker; it looks at the queues in
  that order before each job); times from RQ's job records (``enqueued_at`` → ``started_at``).

Loads the actors below when imported by a worker (``dramatiq actors bench.priority``).
Prints one line per figure; writes ``bench/results/priority.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from bench.common import compare_at_equal_priority, median, percentile, private_redis, write_results

ROOT = Path(__file__).resolve().parents[1]

if __name__ != "__main__":
    # Declared when imported (by workers, and by main() once REDIS_URL points at the private
    # Redis): importing ``actors`` builds the broker from the environment of that moment.
    from actors.base import JobContext, job_actor
    from queues.priorities import QueuePriority

    @job_actor(priority=QueuePriority.LOW, max_retries=0)
    async def bench_low_sleep(ctx: JobContext, seconds: float = 0.05) -> None:
        """The low-priority load: keeps a worker thread busy for ``seconds``."""
        await asyncio.sleep(seconds)

    @job_actor(priority=QueuePriority.HIGH, max_retries=0)
    async def bench_high_mark(ctx: JobContext) -> None:
        """A high-priority job; what is measured is when it starts (from its record)."""
        return None


def use_only(port: int) -> None:
    """Declare the actors now that ``REDIS_URL`` is the private Redis, and check that the
    settings and the broker of this process both point there (never at another Redis)."""
    import importlib

    import dramatiq

    from queues.runtime import reset_runtime
    from settings import get_settings

    get_settings.cache_clear()
    reset_runtime()
    importlib.import_module("bench.priority")
    broker_port = dramatiq.get_broker().client.connection_pool.connection_kwargs.get("port")
    if f":{port}/" not in get_settings().redis_url or broker_port != port:
        raise RuntimeError("settings or broker do not point at the benchmark's private Redis")


def _popen(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _kill(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass
        proc.wait()


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _summary(waits: list[float]) -> dict[str, float]:
    return {"p50_ms": percentile(waits, 50) * 1000, "p99_ms": percentile(waits, 99) * 1000,
            "max_ms": max(waits) * 1000, "median_ms": median(waits) * 1000, "count": len(waits)}


def run_ours(client: redis.Redis, args: argparse.Namespace, poll_ms: int | None = None) -> dict[str, Any]:
    from queues.manager import get_queue_manager
    from queues.runtime import get_job_store

    manager = get_queue_manager()
    store = get_job_store()
    client.flushall()
    for _ in range(args.low):
        manager.enqueue_job("bench_low_sleep", seconds=args.low_seconds)
    env = {"LOG_LEVEL": "WARNING", **({"dramatiq_worker_timeout": str(poll_ms)} if poll_ms else {})}
    base = [sys.executable, "-m", "dramatiq", "actors", "bench.priority", "--processes", "1", "--threads", "8"]
    procs = [_popen([*base, "--queues", "high"], env), _popen([*base, "--queues", "default", "low"], env)]
    try:
        _wait(lambda: client.llen("dramatiq:low") < args.low - 50, 120, "the low pool to start")
        time.sleep(2.0)  # let the high pool fall idle: its poll backs off as a real idle pool's does
        ids = []
        for _ in range(args.high):
            ids.append(manager.enqueue_job("bench_high_mark").id)
            time.sleep(args.gap)
        _wait(lambda: all(store.status(i) == "succeeded" for i in ids), 60, "the high jobs")
        backlog_left = client.llen("dramatiq:low")
    finally:
        _kill(procs)
    records = [store.get(i) for i in ids]
    waits = [r.first_started_at - r.enqueued_at for r in records]
    if backlog_left == 0:
        raise RuntimeError("the low backlog ran out before the last high job: raise --low")
    return {**_summary(waits), "low_backlog_left": backlog_left}


def run_rq(client: redis.Redis, url: str, args: argparse.Namespace) -> dict[str, Any]:
    from rq import Queue
    from rq.job import Job
    from rq.serializers import JSONSerializer

    from bench import rq_jobs

    client.flushall()
    queues = {name: Queue(name, connection=client, serializer=JSONSerializer) for name in ("high", "default", "low")}
    pipe_size = 500
    for start in range(0, args.low, pipe_size):  # enqueue_many: the backlog itself is not measured
        batch = [Queue.prepare_data(rq_jobs.sleep_job, args=(args.low_seconds,), result_ttl=3600)
                 for _ in range(min(pipe_size, args.low - start))]
        queues["low"].enqueue_many(batch)
    proc = _popen([sys.executable, "-m", "rq.cli", "worker", "--url", url, "--serializer", "json", "--quiet",
                   "--disable-job-desc-logging", "high", "default", "low"])
    try:
        _wait(lambda: client.llen("rq:queue:low") < args.low - 5, 120, "the RQ worker to start")
        time.sleep(2.0)
        ids = []
        for _ in range(args.high):
            ids.append(queues["high"].enqueue(rq_jobs.mark_job, result_ttl=3600).id)
            time.sleep(args.gap)
        _wait(lambda: all(Job.fetch(i, connection=client, serializer=JSONSerializer).get_status() == "finished"
                          for i in ids), 60, "the RQ high jobs")
        backlog_left = client.llen("rq:queue:low")
    finally:
        _kill([proc])
    jobs = [Job.fetch(i, connection=client, serializer=JSONSerializer) for i in ids]
    waits = [(j.started_at - j.enqueued_at).total_seconds() for j in jobs]
    if backlog_left == 0:
        raise RuntimeError("the RQ low backlog ran out before the last high job: raise --low")
    return {**_summary(waits), "low_backlog_left": backlog_left}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--low", type=int, default=5000)
    parser.add_argument("--high", type=int, default=50)
    parser.add_argument("--low-seconds", type=float, default=0.05)
    parser.add_argument("--gap", type=float, default=0.15, help="seconds between high jobs")
    parser.add_argument("--quick", action="store_true", help="800 low, 10 high: a smoke test")
    args = parser.parse_args(argv)
    compare_at_equal_priority()
    if args.quick:
        args.low, args.high = min(args.low, 800), min(args.high, 10)

    server = private_redis()
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    use_only(server.port)
    client = redis.Redis.from_url(server.url)
    figures: dict[str, Any] = {"setup": {**vars(args), "cpus": os.cpu_count()}}
    try:
        figures["ours"] = run_ours(client, args)
        figures["ours-poll-100ms"] = run_ours(client, args, poll_ms=100)
        figures["rq"] = run_rq(client, server.url, args)
    finally:
        server.stop(flush_to_disk=False)
    print(f"setup: {args.low} low jobs of {args.low_seconds * 1000:.0f} ms waiting, {args.high} high jobs "
          f"one every {args.gap * 1000:.0f} ms; wait = enqueue to start")
    for name in ("ours", "ours-poll-100ms", "rq"):
        f = figures[name]
        print(f"priority {name} high wait p50: {f['p50_ms']:.1f} ms")
        print(f"priority {name} high wait p99: {f['p99_ms']:.1f} ms")
    figures["ratios"] = {"rq/ours p50": figures["rq"]["p50_ms"] / figures["ours"]["p50_ms"],
                         "rq/ours p99": figures["rq"]["p99_ms"] / figures["ours"]["p99_ms"]}
    for name, value in figures["ratios"].items():
        print(f"priority ratio {name}: {value:.2f}")
    write_results("priority", figures)
    return figures


if __name__ == "__main__":
    main()

"""Resident memory of a worker process, the bot and the scheduler: at rest and after 10,000 jobs.

``python -m bench.memory [--jobs N] [--messages M] [--quick]``

Starts, on a private Redis and the sandbox Telegram Bot API: one worker process
(``dramatiq actors bench.bench_actors --processes 1 --threads 8``), the bot (``python -m bot``)
and the scheduler (``python scheduler.py``, monitoring every second so it works during the run).
Samples each process's RSS (psutil) at rest, while N no-op jobs run through the full stack and
M ``/help`` messages reach the bot, and after a short settle. Growth beyond noise (more than
5 MB and 10 %) is reported as ``GROWS``. Prints one line per figure; writes
``bench/results/memory.json``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import redis

from bench.common import private_redis, write_results

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
SETTLE = 3.0


def _start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _worker_child(proc: subprocess.Popen, timeout: float = 60) -> psutil.Process:
    """The worker process the ``dramatiq`` supervisor forked (its RSS is what a worker costs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = [c for c in psutil.Process(proc.pid).children() if "dramatiq" in " ".join(c.cmdline())]
        if children:
            return children[0]
        time.sleep(0.1)
    raise RuntimeError("no dramatiq worker process appeared")


def _rss(processes: dict[str, psutil.Process]) -> dict[str, float]:
    return {name: p.memory_info().rss / MB for name, p in processes.items()}


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=2_000, help="/help messages sent to the bot")
    parser.add_argument("--samples", type=int, default=4, help="RSS samples taken during the run")
    parser.add_argument("--quick", action="store_true", help="1,000 jobs, 200 messages: a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.jobs, args.messages = min(args.jobs, 1000), min(args.messages, 200)

    from tests.support.telegram_sandbox import TelegramSandbox

    server = private_redis()
    client = redis.Redis.from_url(server.url)
    telegram = TelegramSandbox().start()
    env = {"LOG_LEVEL": "WARNING", "TELEGRAM_BOT_TOKEN": "123456:BENCH", "TELEGRAM_API_URL": telegram.base_url,
           "QUEUE_MONITORING_INTERVAL": "1"}
    os.environ.update(env)
    procs: list[subprocess.Popen] = []
    try:
        import bench.bench_actors  # noqa: F401  (after REDIS_URL: importing actors builds the broker)
        from queues.manager import get_queue_manager

        manager = get_queue_manager()
        worker = _start([sys.executable, "-m", "dramatiq", "actors", "bench.bench_actors", "--processes", "1",
                         "--threads", "8", "--queues", "default"], env)
        bot = _start([sys.executable, "-m", "bot"], env)
        scheduler = _start([sys.executable, "scheduler.py"], env)
        procs = [worker, bot, scheduler]
        watched = {"worker": _worker_child(worker), "bot": psutil.Process(bot.pid),
                   "scheduler": psutil.Process(scheduler.pid)}
        # Warm-up: one job through the worker, one message answered by the bot.
        manager.enqueue_job("bench_noop")
        _wait(lambda: client.zcard("fb:jobs:status:succeeded") >= 1, 60, "the worker's first job")
        telegram.inject(1, "/help")
        _wait(lambda: telegram.messages(1), 60, "the bot's first answer")
        time.sleep(SETTLE)
        for name, proc in zip(("worker", "bot", "scheduler"), procs, strict=True):
            if proc.poll() is not None:
                raise RuntimeError(f"the {name} exited with {proc.returncode}")
        rest = _rss(watched)

        samples: list[dict[str, float]] = []
        per_step = max(1, args.jobs // args.samples)
        messages_per_step = max(1, args.messages // args.samples)
        sent_jobs = sent_messages = 0
        for step in range(args.samples):
            for _ in range(per_step if step < args.samples - 1 else args.jobs - sent_jobs):
                manager.enqueue_job("bench_noop")
                sent_jobs += 1
            for i in range(messages_per_step if step < args.samples - 1 else args.messages - sent_messages):
                telegram.inject(1000 + (sent_messages + i) % 100, "/help")
            sent_messages += messages_per_step if step < args.samples - 1 else args.messages - sent_messages
            # Counted from the all-time totals: the status index is capped at QUEUE_INDEX_LIMIT (10,000).
            _wait(lambda n=sent_jobs: int(client.hget("fb:totals", "bench_noop|succeeded") or 0) >= n + 1, 600,
                  "the jobs")
            samples.append({"jobs": sent_jobs, "messages": sent_messages, **_rss(watched)})
        _wait(lambda: not telegram.pending_updates(), 300, "the bot to read every message")
        time.sleep(SETTLE)
        after = _rss(watched)
    finally:
        for proc in procs:
            try:
                os.killpg(proc.pid, 9)
            except ProcessLookupError:
                pass
            proc.wait()
        telegram.stop()
        server.stop(flush_to_disk=False)

    figures: dict[str, Any] = {"setup": {**vars(args), "cpus": os.cpu_count()}, "rest_mb": rest,
                               "after_mb": after, "samples": samples, "growth": {}}
    print(f"setup: {args.jobs} no-op jobs through 1 worker process x 8 threads, {args.messages} /help "
          f"messages to the bot; RSS in MB")
    for name in rest:
        delta = after[name] - rest[name]
        grows = delta > 5 and delta > 0.10 * rest[name]
        figures["growth"][name] = {"mb": delta, "grows": grows}
        print(f"memory {name} at rest: {rest[name]:.1f} MB")
        print(f"memory {name} after: {after[name]:.1f} MB ({delta:+.1f} MB, {'GROWS' if grows else 'flat'})")
    write_results("memory", figures)
    return figures


if __name__ == "__main__":
    main()

"""End to end: 100 users send ``/analyze`` for 20 matches through the real bot and workers.

``python -m bench.end_to_end [--users U] [--matches M] [--faceit-latency-ms L] [--quick]``

Runs the whole system on one private Redis: the sandbox Telegram Bot API and the sandbox FACEIT
Data API (each in its own process), the bot (``python -m bot``, polling) and the default worker
layout of ``make run`` (a ``--queues high`` pool and a ``--queues default low`` pool, 1 process x
8 threads each; the high pool polls an idle queue every 100 ms). Production settings apply
(FACEIT pacing ``FACEIT_RATE_LIMIT``/``BURST``, Telegram ``TELEGRAM_CHAT_RATE``/``GLOBAL_RATE``),
the sandbox FACEIT answers after L ms.

Two rounds, cold then warm (FACEIT cache filled by the first; the same matches, new users): U
users each send one ``/analyze <room link>`` over M matches, all at once. Per user, from the
sandbox's timeline: first-reply latency (send → the bot's "queued" message) and time to result
(send → the edit that shows the analysis), p50 and p95; FACEIT calls made per round. Prints
one line per figure; writes ``bench/results/end_to_end.json``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import percentile, private_redis, write_results


def _final(events: list[dict[str, Any]], message_id: int) -> dict[str, Any] | None:
    from tests.bot.conftest import is_final_text

    return next((e for e in events if e["message_id"] == message_id and e["kind"] == "edited"
                 and is_final_text(e["text"])), None)


def run_round(tg, faceit, users: list[int], matches: list[str], timeout: float) -> dict[str, Any]:
    """Every user sends one /analyze at once; waits for every result; returns the figures."""
    faceit.reset()  # counters only: the world and the injected latency stay
    sent_at: dict[int, float] = {}
    for i, user in enumerate(users):
        sent_at[user] = time.time()
        tg.inject(user, f"/analyze https://www.faceit.com/en/cs2/room/{matches[i % len(matches)]}")
    first: dict[int, float] = {}
    final: dict[int, float] = {}
    outcome: dict[int, str] = {}
    deadline = time.monotonic() + timeout
    while len(final) < len(users):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(users) - len(final)} user(s) got no result within {timeout} s")
        for user in users:
            if user in final:
                continue
            events = tg.messages(user)
            reply = next((e for e in events if e["kind"] in ("sent", "photo")), None)
            if reply is None:
                continue
            first.setdefault(user, reply["ts"] - sent_at[user])
            done = _final(events, reply["message_id"])
            if done is not None:
                final[user] = done["ts"] - sent_at[user]
                outcome[user] = "result" if "Match analysis" in (done["text"] or "") else "other"
        time.sleep(0.2)
    firsts, finals = list(first.values()), list(final.values())
    failed = [u for u, o in outcome.items() if o != "result"]
    if failed:
        raise RuntimeError(f"{len(failed)} user(s) got no analysis, e.g. {tg.messages(failed[0])[-1]['text']!r}")
    return {"first_reply_p50_ms": percentile(firsts, 50) * 1000, "first_reply_p95_ms": percentile(firsts, 95) * 1000,
            "result_p50_s": percentile(finals, 50), "result_p95_s": percentile(finals, 95),
            "result_max_s": max(finals), "faceit_calls": faceit.calls(), "users": len(users),
            "matches": len(matches)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--matches", type=int, default=20)
    parser.add_argument("--faceit-latency-ms", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=600, help="seconds a round may take")
    parser.add_argument("--quick", action="store_true", help="20 users, 4 matches: a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.users, args.matches = min(args.users, 20), min(args.matches, 4)

    from sandbox.telegram_api import SANDBOX_BOT_TOKEN
    from tests.bot.conftest import BotProcess, SandboxProcess
    from tests.support.faceit_sandbox import FaceitSandbox
    from tests.support.workers import WorkerPool

    logs = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    server = private_redis()
    os.environ["LOG_LEVEL"] = "WARNING"
    tg = SandboxProcess(logs / "telegram.log").start()
    faceit = FaceitSandbox(subprocess=True, lobbies=max(1, args.matches // 8)).start()
    running: list[Any] = []
    figures: dict[str, Any] = {"setup": {**vars(args), "cpus": os.cpu_count()}}
    try:
        faceit.faults(latency_ms=args.faceit_latency_ms)
        world = faceit.world()["matches"]
        matches = [m for s in ("VOTING", "CHECK_IN", "CONFIGURING", "READY", "ONGOING", "FINISHED")
                   for m in world.get(s, [])][: args.matches]
        if len(matches) < args.matches:
            raise RuntimeError(f"the sandbox world has only {len(matches)} matches")
        env = {**os.environ, **faceit.env(), "TELEGRAM_API_URL": tg.base_url,
               "TELEGRAM_BOT_TOKEN": SANDBOX_BOT_TOKEN, "BOT_MODE": "polling", "LOG_LEVEL": "INFO"}
        # The high pool polls an idle queue every 100 ms, as make run's supervisor starts it.
        high = WorkerPool(queues=["high"], processes=1, threads=8, modules=(),
                          env={**env, "dramatiq_worker_timeout": "100"},
                          log_path=logs / "worker-high.log").start(wait=False)
        low = WorkerPool(queues=["default", "low"], processes=1, threads=8, modules=(), env=env,
                         log_path=logs / "worker-default-low.log").start(wait=False)
        running += [high, low]
        bot = BotProcess(env, logs / "bot.log").start(timeout=60)
        running.append(bot)
        high.wait_ready(60)
        low.wait_ready(60)
        figures["cold"] = run_round(tg, faceit, list(range(10_001, 10_001 + args.users)), matches, args.timeout)
        figures["warm"] = run_round(tg, faceit, list(range(20_001, 20_001 + args.users)), matches, args.timeout)
    finally:
        for proc in reversed(running):
            proc.stop(graceful=False) if isinstance(proc, WorkerPool) else proc.stop()
        faceit.stop()
        tg.stop()
        server.stop(flush_to_disk=False)

    print(f"setup: {args.users} users, {args.matches} matches, FACEIT latency {args.faceit_latency_ms} ms, "
          f"production pacing; logs in {logs}")
    for name in ("cold", "warm"):
        f = figures[name]
        print(f"end_to_end {name} first reply p50: {f['first_reply_p50_ms']:.0f} ms")
        print(f"end_to_end {name} first reply p95: {f['first_reply_p95_ms']:.0f} ms")
        print(f"end_to_end {name} time to result p50: {f['result_p50_s']:.2f} s")
        print(f"end_to_end {name} time to result p95: {f['result_p95_s']:.2f} s")
        print(f"end_to_end {name} FACEIT calls: {f['faceit_calls']}")
    write_results("end_to_end", figures)
    return figures


if __name__ == "__main__":
    main()

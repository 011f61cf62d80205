"""``asyncio.wait_for`` never loses a cancellation, in every process of ours (:mod:`queues.waitfor`).

On Python 3.11 the standard one returns the result of work that finished just as its caller was
cancelled, and the cancellation is gone. redis-py sends every command through it, so a job's
cancel, a time limit or a shutdown landing then was swallowed (a test hung on it: a cancelled
task kept taking rate-limiter slots).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parents[1]


async def test_a_cancel_landing_as_the_awaited_work_finishes_is_not_lost() -> None:
    caller: asyncio.Task[str] | None = None
    went_on = False

    async def work() -> str:
        assert caller is not None
        caller.cancel()  # lands while wait_for waits, just as the work finishes
        return "done"

    async def call() -> str:
        nonlocal went_on
        result = await asyncio.wait_for(work(), timeout=5)
        await asyncio.sleep(0)  # the next await: where the cancel is delivered
        went_on = True  # the standard 3.11 one gets here: the cancel was swallowed
        return result

    caller = asyncio.ensure_future(call())
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert not went_on


async def test_a_cancel_sent_while_a_redis_command_is_on_its_way_ends_the_task(redis_url: str) -> None:
    """The path of the hung test: redis-py sends each command through ``asyncio.wait_for`` (its
    ``socket_timeout``). A task cancelled while its command is sent ends, instead of going on."""
    client = Redis.from_url(redis_url, socket_timeout=5)

    async def polls() -> None:
        while True:
            await client.ping()

    try:
        for attempt in range(50):  # a cancel at a different point of the command each time
            task = asyncio.ensure_future(polls())
            for _ in range(attempt % 7 + 1):
                await asyncio.sleep(0)
            task.cancel()
            done, _pending = await asyncio.wait({task}, timeout=2)
            assert done, "a cancelled task went on sending commands"
            assert task.cancelled()
    finally:
        await client.aclose()


async def test_work_done_in_time_gives_its_result_and_work_past_it_is_cancelled() -> None:
    assert await asyncio.wait_for(asyncio.sleep(0, "in time"), timeout=5) == "in time"
    assert await asyncio.wait_for(asyncio.sleep(0, "no limit"), timeout=None) == "no limit"
    stopped = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            stopped.set()

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(slow(), timeout=0.05)
    assert stopped.is_set()  # cancelled and finished before wait_for returned
    done = asyncio.get_running_loop().create_future()
    done.set_result("already")
    assert await asyncio.wait_for(done, timeout=0) == "already"  # no time at all: a finished one still counts


# Each process's start, then whether asyncio.wait_for is ours. The scheduler's is checked on its
# quickest way out (a bad --log-level, after the install); the dashboard's with the dashboard off.
STARTS = {
    "bot": "from bot.app import init_process; from settings import get_settings; init_process(get_settings())",
    "worker": "from actors.broker import build_broker; from settings import get_settings; build_broker(get_settings())",
    "scheduler": "import scheduler; scheduler.main(['--log-level', 'bogus'])",
    "dashboard": "import dashboard.__main__ as d; d.main([])",
}


@pytest.mark.parametrize("process", sorted(STARTS))
def test_every_process_installs_it_at_start(process: str, redis_url: str) -> None:
    code = (f"import asyncio, sys\n{STARTS[process]}\n"
            "sys.exit(0 if asyncio.wait_for.__module__ == 'queues.waitfor' else 3)")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": redis_url, "QUEUE_DASHBOARD_ENABLED": "false",
           "SENTRY_DSN": ""}
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, (run.returncode, run.stderr[-2000:])

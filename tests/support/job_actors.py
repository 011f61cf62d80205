"""Actors that exist only for pipeline tests: loaded by workers as ``tests.support.job_actors``.

Each leaves a trace in Redis (``t:*`` keys) so tests can count real executions.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from typing import Any

import redis

from actors.base import JobContext, job_actor
from faceit.errors import AuthError, NotFoundError, RateLimitedError, UpstreamError
from queues.priorities import QueuePriority
from queues.runtime import get_redis

# One run, counted once: redis-py resends a command whose reply was lost to a broken connection
# (a Redis restart mid-call), and a plain INCR would then count one run twice. The token makes
# the resent call a no-op.
_TRACE = """
if redis.call("SADD", ARGV[1] .. ":tokens", ARGV[3]) == 1 then
  redis.call("INCR", ARGV[1])
  redis.call("RPUSH", ARGV[2], ARGV[4])
end
return tonumber(redis.call("GET", ARGV[1]))
"""


_trace_scripts: dict[Any, Any] = {}  # keyed by the client itself (process-long)


async def _trace(name: str, job_id: str) -> int:
    """Count one run of ``job_id`` (in a thread: the worker's event loop, shared by every async
    job of the process, must not block on Redis, least of all while it waits out an outage)."""
    return await asyncio.to_thread(_trace_blocking, name, job_id)


def _trace_blocking(name: str, job_id: str) -> int:
    """Count one run of ``job_id``; resend until Redis answers.

    The trace is the tests' instrument, not the code under test: if it raised during a Redis
    restart, the job would fail and be retried, and the test would count a legitimate retry as
    a second delivery. The token keeps every resend of this one call to a single count.
    """
    client = get_redis()
    script = _trace_scripts.get(client)
    if script is None:
        script = _trace_scripts[client] = client.register_script(_TRACE)
    args = [f"t:{name}:{job_id}", f"t:times:{job_id}", uuid.uuid4().hex, repr(time.time())]
    deadline = time.monotonic() + 60
    while True:
        try:
            return int(script(args=args))
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@job_actor(priority=QueuePriority.DEFAULT)
async def t_noop(ctx: JobContext, value: int = 0) -> dict:
    await _trace("runs", ctx.job_id)
    return {"value": value}


@job_actor(priority=QueuePriority.DEFAULT)
async def t_time_limit(ctx: JobContext) -> dict:
    """The time limit its body is told (what match monitoring sizes its scan by)."""
    return {"time_limit": ctx.time_limit}


@job_actor(priority=QueuePriority.DEFAULT)
async def t_fail_times(ctx: JobContext, failures: int, kind: str = "transient",
                       retry_after: float | None = None, stop_redis: bool = False) -> dict:
    """Fails ``failures`` times with ``kind`` (transient|permanent|auth|rate|bug|quotes_secrets),
    then succeeds.

    ``permanent`` is a request error (an unknown player: the user's mistake); ``auth`` a permanent
    error that is the operator's to fix (FACEIT refused the key).

    With ``stop_redis`` the first failure also shuts Redis down (AOF flushed), so the retry's
    re-enqueue meets a broker outage.
    """
    runs = await _trace("runs", ctx.job_id)
    if stop_redis and runs == 1:
        try:
            get_redis().shutdown()
        except Exception:
            pass  # the connection drops as the server exits
    if runs <= failures:
        if kind == "permanent":
            raise NotFoundError("no such player")
        if kind == "auth":
            raise AuthError("FACEIT refused the API key")
        if kind == "rate":
            raise RateLimitedError("429", retry_after=retry_after)
        if kind == "bug":
            raise ValueError("unexpected")
        if kind == "quotes_secrets":  # an error quoting this worker's FACEIT key and bot token
            from settings import get_settings

            settings = get_settings()
            raise UpstreamError(f"GET https://api.example/v4?key={settings.faceit_api_key.get_secret_value()} and "
                                f"/bot{settings.telegram_bot_token.get_secret_value()}/getMe failed")
        raise UpstreamError("upstream 503")
    return {"runs": runs}


async def _sleep_in_steps(ctx: JobContext, seconds: float, steps: int) -> dict:
    """Trace the run, sleep ``seconds`` reporting progress ``steps`` times, trace the end."""
    await _trace("runs", ctx.job_id)
    for i in range(steps):
        await ctx.progress(100 * i / steps, "sleeping", i, steps)
        await asyncio.sleep(seconds / steps)
    await _trace("done", ctx.job_id)
    return {"slept": seconds}


@job_actor(priority=QueuePriority.DEFAULT, time_limit=1)
async def t_sleep(ctx: JobContext, seconds: float, steps: int = 1) -> dict:
    return await _sleep_in_steps(ctx, seconds, steps)


@job_actor(priority=QueuePriority.DEFAULT, time_limit=60)
async def t_slow(ctx: JobContext, seconds: float, steps: int = 10) -> dict:
    """Like t_sleep with a longer limit: for cancel and kill tests."""
    return await _sleep_in_steps(ctx, seconds, steps)


@job_actor(priority=QueuePriority.DEFAULT, max_retries=2)
async def t_crash(ctx: JobContext) -> dict:
    """Kills its own worker process on every delivery (a poison message)."""
    await _trace("runs", ctx.job_id)
    os.kill(os.getpid(), signal.SIGKILL)
    return {}


@job_actor(priority=QueuePriority.LOW)
async def t_low(ctx: JobContext, seconds: float = 0.0) -> dict:
    await _trace("runs", ctx.job_id)
    await asyncio.sleep(seconds)
    return {"queue": "low"}


@job_actor(priority=QueuePriority.HIGH)
async def t_high(ctx: JobContext) -> dict:
    await _trace("runs", ctx.job_id)
    return {"queue": "high"}

"""Run a job's bookkeeping write until Redis (or the broker) answers.

Middleware hooks write what a job did after it ran: its record, the delivery that tells its
requesters. Neither may be dropped during a short outage (Dramatiq only logs a hook's error and
acks the message anyway), so the hook waits and tries again, and the job's ack waits with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import dramatiq.errors
import redis

T = TypeVar("T")

#: The connection errors waited out (redis-py's, and Dramatiq's own for a broker call).
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, dramatiq.errors.ConnectionError)
#: Redis answering, but refusing writes for a while: out of memory under ``noeviction``, a
#: replica not yet promoted after a failover, a failed snapshot that stops writes, a script
#: running too long. They pass as an outage does; given up on, the job would run untracked and
#: its record stay "started" (holding a user's slot, joined by everyone asking the same).
REFUSING = (redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError, redis.exceptions.TryAgainError,
            redis.exceptions.ClusterDownError)
REFUSING_REPLIES = ("MISCONF", "BUSY", "NOREPLICAS", "MASTERDOWN", "LOADING", "OOM", "READONLY")
#: Seconds between tries, times the tries so far, at most :data:`MAX_PAUSE`.
PAUSE = 0.2
MAX_PAUSE = 5.0


def until_answered(call: Callable[[], T], *, job_id: str, doing: str, done: str, log: logging.Logger) -> T:
    """``call()``; while it meets a connection error or a refusal that passes, wait and try again.

    ``doing`` and ``done`` name the step in the log lines: "job J: cannot <doing> yet (...)"
    once when the outage is met, "job J: <done> after N failed tries" when it is over.
    """
    failures = 0
    while True:
        try:
            result = call()
        except (*UNREACHABLE, redis.ResponseError) as exc:
            if not passes(exc):
                raise
            failures += 1
            if failures == 1:
                log.warning("job %s: cannot %s yet (%s); retrying until Redis answers", job_id, doing,
                            _reason(exc))
            time.sleep(min(MAX_PAUSE, PAUSE * failures))
            continue
        if failures:
            log.warning("job %s: %s after %d failed tries", job_id, done, failures)
        return result


def pusher(broker: Any, message: Any, delay: int | None = None) -> Callable[[], Any]:
    """An enqueue of ``message`` that may be tried again until it is taken. On the Redis broker
    every try pushes the same Redis id (``TrackedRedisBroker.prepare_enqueue``), so a try that
    reached Redis without saying so and the next one enqueue it once; elsewhere a plain enqueue."""
    prepare = getattr(broker, "prepare_enqueue", None)
    return prepare(message, delay=delay) if prepare else (lambda: broker.enqueue(message, delay=delay))


def passes(exc: BaseException) -> bool:
    """Whether ``exc`` is Redis unreachable, or refusing writes for a while (:data:`REFUSING`,
    also as a script's error reply, which names it first)."""
    if isinstance(exc, UNREACHABLE + REFUSING):
        return True
    if isinstance(exc, redis.ResponseError):
        text = str(exc).lstrip("-")
        return text.startswith(REFUSING_REPLIES) or any(f" {word} " in f" {text} " for word in ("OOM", "MISCONF"))
    return False


def _reason(exc: BaseException) -> str:
    """The error's class, and for a refusal told by its reply alone the reply's first word (MISCONF…)."""
    if isinstance(exc, UNREACHABLE + REFUSING):
        return type(exc).__name__
    return f"{type(exc).__name__}: {str(exc).lstrip('-').split(' ', 1)[0]}"

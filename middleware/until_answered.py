"""Run a job's bookkeeping write until Redis (or the broker) answers.

Middleware hooks write what a job did after it ran: its record, the delivery that tells its
requesters. Neither may be dropped during a short outage (Dramatiq only logs a hook's error and
acks the message anyway), so the hook waits and tries again, and the job's ack waits with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import dramatiq.errors
import redis

T = TypeVar("T")

#: The connection errors waited out (redis-py's, and Dramatiq's own for a broker call).
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, dramatiq.errors.ConnectionError)
#: Seconds between tries, times the tries so far, at most :data:`MAX_PAUSE`.
PAUSE = 0.2
MAX_PAUSE = 5.0


def until_answered(call: Callable[[], T], *, job_id: str, doing: str, done: str, log: logging.Logger) -> T:
    """``call()``; while it meets a connection error, wait and try again.

    ``doing`` and ``done`` name the step in the log lines: "job J: cannot <doing> yet (...)"
    once when the outage is met, "job J: <done> after N failed tries" when it is over.
    """
    failures = 0
    while True:
        try:
            result = call()
        except UNREACHABLE as exc:
            failures += 1
            if failures == 1:
                log.warning("job %s: cannot %s yet (%s); retrying until Redis answers", job_id, doing,
                            type(exc).__name__)
            time.sleep(min(MAX_PAUSE, PAUSE * failures))
            continue
        if failures:
            log.warning("job %s: %s after %d failed tries", job_id, done, failures)
        return result

"""RQ job functions of the benchmarks (imported by ``rq worker`` processes by dotted name).

RQ is the queue of the bot's first version; these are the same jobs as ours, for side-by-side
figures. They run under RQ's JSON serializer (``-S json``): the project never uses pickle.
"""

from __future__ import annotations

import time


def noop() -> None:
    """Does nothing: what is measured is RQ around it."""
    return None


def sleep_job(seconds: float) -> None:
    """A job that keeps its worker busy for ``seconds`` (the low-priority load)."""
    time.sleep(seconds)


def mark_job() -> None:
    """A high-priority job: its start time is read from RQ's own job record."""
    return None

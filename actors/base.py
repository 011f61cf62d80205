"""``job_actor``: how every actor of ours is declared, and the context its body receives.

An actor body is ``async def body(ctx: JobContext, *args, **kwargs) -> dict``. The wrapper
around it:

* enforces the time limit that :class:`~middleware.time_limits.QueueTimeLimit` decided, with
  ``asyncio.timeout``: the coroutine is cancelled and :class:`JobTimeLimitExceeded` raised, so
  the worker thread is free for its next job;
* registers the running coroutine with the process's cancel watcher, which cancels it at its
  next await when someone cancels the job (:class:`JobCanceled`);
* gives the body ``ctx.progress(percent, stage, done, total)``, which writes the record's
  progress (throttled) and tells progress listeners (the bot edits the user's message).

Options are passed to Dramatiq as actor options: ``time_limit`` (seconds, read by
QueueTimeLimit), ``max_retries`` (Backoff and Tracking), ``retry_delays`` and
``retry_on_timeout`` (Backoff), ``secret_fields`` (kwargs the queue manager redacts in job
records). Which requests share a job is not an actor option: the ``QueueManager.prepare_*``
methods give :meth:`~queues.manager.QueueManager.prepare_job` the subject (``coalesce=``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from faceit.ratelimit import LOW_PRIORITY_WORK, LowPriority
from middleware.state import state_of
from queues.connection import async_redis_client
from queues.errors import JobCanceled, JobTimeLimitExceeded, PermanentError
from queues.jobstore import AsyncJobChannel
from queues.priorities import QueuePriority, queue_name
from settings import get_settings

logger = logging.getLogger(__name__)

ProgressListener = Callable[[str, dict[str, Any]], Awaitable[None]]
#: Called with (job_id, progress) after each progress write; the bot's delivery registers here.
PROGRESS_LISTENERS: list[ProgressListener] = []
PROGRESS_MIN_INTERVAL = 0.5

#: The share of its time limit a job that works through many items (players to scan, followers
#: to tell) begins new ones for; the rest is room for those under way and the result
#: (:meth:`JobContext.budget`).
BUDGET_SHARE = 0.75
CANCEL_POLL_INTERVAL = 0.5


class _LoopResources:
    """The async Redis channel and the cancel watcher of one event loop."""

    def __init__(self) -> None:
        settings = get_settings()
        self.channel = AsyncJobChannel(async_redis_client(settings), prefix=settings.redis_key_prefix)
        self.running: dict[str, tuple[asyncio.Task[Any], JobContext]] = {}
        self.watcher: asyncio.Task[None] | None = None

    def register(self, ctx: JobContext, task: asyncio.Task[Any]) -> None:
        self.running[ctx.job_id] = (task, ctx)
        if self.watcher is None or self.watcher.done():
            self.watcher = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(CANCEL_POLL_INTERVAL)
            if not self.running:
                continue
            try:
                canceled = await self.channel.cancel_requested(list(self.running))
            except Exception as exc:  # Redis trouble: try again next round
                logger.warning("cancel watcher: %s: %s", type(exc).__name__, exc)
                continue
            for job_id in canceled:
                task, ctx = self.running.get(job_id, (None, None))
                if task is not None and ctx is not None and not task.done():
                    logger.info("job %s: canceled while running", job_id)
                    ctx.cancel_requested = True
                    task.cancel()


# Keyed by the loop itself, weakly: an ``id()`` of a closed loop can be reused by a new one,
# which would then inherit a Redis channel bound to the dead loop.
_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopResources] = weakref.WeakKeyDictionary()


def _resources() -> _LoopResources:
    loop = asyncio.get_running_loop()
    res = _loops.get(loop)
    if res is None:
        res = _loops[loop] = _LoopResources()
    return res


@dataclass
class JobContext:
    """What an actor body gets: its job id, attempt and a way to report progress."""

    job_id: str
    actor: str
    attempt: int = 1
    cancel_requested: bool = False
    #: Seconds this attempt may run (its queue's or actor's time limit); None: no limit.
    time_limit: float | None = None

    def budget(self) -> float | None:
        """Seconds for beginning new items (:data:`BUDGET_SHARE` of the time limit; None: none):
        a job past its limit's reach tells what it did, and the next one goes on from there."""
        return self.time_limit * BUDGET_SHARE if self.time_limit else None
    _last_write: float = field(default=0.0, repr=False)
    _last_stage: str = field(default="", repr=False)

    @property
    def log(self) -> logging.LoggerAdapter:
        return logging.LoggerAdapter(logger, {"job_id": self.job_id})

    async def progress(self, percent: float, stage: str, done: int | None = None,
                       total: int | None = None) -> None:
        """Report progress (0–100 and a stage code such as ``players`` with done/total).

        Writes are throttled to one per half second, except stage changes and 100%.
        A failing write is logged, never raised: progress must not fail a job.
        """
        now = time.monotonic()
        if (now - self._last_write < PROGRESS_MIN_INTERVAL and stage == self._last_stage
                and percent < 100):
            return
        self._last_write, self._last_stage = now, stage
        progress = {"percent": round(float(percent), 1), "stage": stage, "done": done, "total": total,
                    "at": time.time()}
        await publish_progress(self.job_id, progress, attempt=self.attempt)


async def publish_progress(job_id: str, progress: dict[str, Any], *, status: str = "started",
                           attempt: int | None = None) -> bool:
    """Write ``progress`` to the job's record and tell the progress listeners (the bot edits the
    users' messages), only while the job is still in ``status`` at ``attempt`` and not canceled: a
    stale attempt (its job re-delivered meanwhile, or already done) must not overwrite the users'
    messages. True when written. Never raises: progress must not fail a job."""
    try:
        if not await _resources().channel.set_progress(job_id, progress, status=status, attempt=attempt):
            return False
    except Exception as exc:
        logger.warning("job %s: progress not recorded: %s", job_id, exc)
        return False
    for listener in PROGRESS_LISTENERS:
        try:
            await listener(job_id, progress)
        except Exception as exc:
            logger.warning("job %s: progress listener failed: %s", job_id, exc)
    return True


Body = Callable[..., Awaitable[Any]]


def job_actor(
    *,
    priority: QueuePriority,
    time_limit: float | None = None,
    max_retries: int | None = None,
    retry_delays: Sequence[float] | None = None,
    retry_on_timeout: bool = False,
    secret_fields: Sequence[str] = (),
    actor_name: str | None = None,
) -> Callable[[Body], dramatiq.Actor]:
    """Declare ``async def body(ctx, ...)`` as a Dramatiq actor on the queue of ``priority``."""
    settings = get_settings()
    # ``throws``: Dramatiq logs these without a traceback (they are expected outcomes).
    options: dict[str, Any] = {"retry_on_timeout": retry_on_timeout, "throws": (PermanentError,)}
    if time_limit is not None:
        options["time_limit"] = time_limit
    if max_retries is not None:
        options["max_retries"] = max_retries
    if retry_delays is not None:
        options["retry_delays"] = list(retry_delays)
    if secret_fields:
        options["secret_fields"] = list(secret_fields)

    def decorator(body: Body) -> dramatiq.Actor:
        name = actor_name or body.__name__

        async def run_job(*args: Any, **kwargs: Any) -> Any:
            message = CurrentMessage.get_current_message()
            state = state_of(message) if message is not None else None
            job_id = message.message_id if message is not None else "local"
            limit = state.time_limit if state and state.time_limit else None
            ctx = JobContext(job_id=job_id, actor=name, attempt=state.attempt if state else 1, time_limit=limit)
            resources = _resources()
            # The body runs in this very task (the one Dramatiq's event loop thread created):
            # the cancel watcher and the time limit both cancel it, with no second task to
            # schedule per job.
            task = asyncio.current_task()
            assert task is not None
            resources.register(ctx, task)
            # Bulk work asks FACEIT only for what interactive work leaves (:mod:`faceit.ratelimit`).
            LOW_PRIORITY_WORK.set(LowPriority() if QueuePriority(priority) is QueuePriority.LOW else None)
            expired: TimeoutError | None = None
            try:
                try:
                    async with asyncio.timeout(limit) as deadline:
                        value = await body(ctx, *args, **kwargs)
                except TimeoutError as exc:
                    if not deadline.expired():
                        raise  # the body's own TimeoutError (e.g. an HTTP call), not ours
                    expired = exc
                if expired is not None:
                    # (from the timeout: its traceback says where the body was when it was stopped)
                    raise JobTimeLimitExceeded(limit or 0) from expired
                if state is None:
                    return value
                # The result travels to Tracking on the delivery state, not through Dramatiq
                # (which would warn about a discarded result without its Results backend).
                state.result = value
                return None
            except asyncio.CancelledError:
                if ctx.cancel_requested:
                    task.uncancel()
                    raise JobCanceled("canceled while running") from None
                raise
            finally:
                resources.running.pop(job_id, None)

        run_job.__name__ = name
        run_job.__qualname__ = name
        run_job.__doc__ = body.__doc__
        return dramatiq.actor(run_job, actor_name=name, queue_name=queue_name(priority, settings), **options)

    return decorator

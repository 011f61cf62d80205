"""The scheduler: ``python scheduler.py`` (APScheduler 3, ``AsyncIOScheduler``, memory job store).

Start as many as you like: exactly one leads. Leadership is a Redis key holding the leader's
token, set with NX and a TTL (``SCHEDULER_LOCK_TTL``, 10 s) and renewed every third of it; a
standby polls at the same pace, so it takes over within TTL + TTL/3 (≈13 s) after the leader
is killed. A stopped leader releases the key, and a standby takes over at its next poll.

Only the leader runs an APScheduler, and every run is also guarded by a dedupe key (a run of
the same task within half its period is skipped), so a leader that has not yet noticed it lost
the lock cannot double a run. If the leader loses Redis entirely it keeps its scheduler (no
one else can take the lock meanwhile, and the monitor must keep reporting the outage); if it
finds someone else's token it steps down at once.

Tasks (times in UTC unless said otherwise):

=================  =========================  ===================================================
task               when                       what
=================  =========================  ===================================================
monitor            QUEUE_MONITORING_INTERVAL  ``get_queue_monitor().tick()`` (metrics, alerts)
alert_relay        QUEUE_MONITORING_INTERVAL  only with ``QUEUE_ENABLE_MONITORING=false``: the
                                              alerts workers fire, to the admins on Telegram
                                              (the monitor's tick does it otherwise)
match_monitoring   MATCH_MONITORING_INTERVAL  ``enqueue_match_monitoring()``
cache_update       hourly                     ``enqueue_cache_update("player", None)`` (joins
                                              a sweep still in flight)
weekly_reports     every 15 min               a weekly ``analytics_report`` per subscribed user,
                                              due at Monday 09:00 in the zone the user chose
                                              with /tz (else UTC), or at the next check when
                                              a move east put it behind; once per user and
                                              ISO week, tried again when it failed or a killed
                                              scheduler claimed it and never enqueued it (at
                                              most WEEKLY_TRIES runs a week)
redelivery         every 5 min                send again the deliveries that failed for want of
                                              Telegram (its network, or flood control past
                                              their retries) at least REDELIVERY_AFTER ago, of
                                              jobs younger than REDELIVERY_WINDOW
retention          daily 03:30                prune expired ids from job indexes, trim series
=================  =========================  ===================================================

Misfires: the last successful run of each task is kept in Redis (``scheduler:last_run``). A new
leader schedules each task from that record: a task whose next run is already past runs once,
now (coalesced: never zero times, never once per missed period), then keeps its schedule. A
task with no record starts on its schedule (the monitor and match monitoring run at once). A run
due while Redis does not answer is tried again within :data:`REDIS_SKIP_RETRY` (30 s), not a
period later; a run cut short because its leader stepped down or stopped lets its dedupe key go,
so the next leader makes it. A run that fails raises an ``error`` alert (rule
``scheduler_task``), which the task's next good run resolves.

Redis keys (under ``REDIS_KEY_PREFIX``): ``scheduler:leader``, ``scheduler:last_run`` (hash),
``scheduler:dedupe:<task>``, ``scheduler:history`` (newest 200 runs, JSON),
``scheduler:last_outcome`` (hash: each task's newest run, JSON),
``scheduler:weekly:<user>:<ISO week>`` (8 days, JSON: :class:`WeeklyMark`); it reads the bot's
``bot:tz`` and ``bot:tz:changed``. No job store is persisted: nothing is pickled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import redis
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.timezones import EAST_END, WEST_END, zone_of
from queues.jobstore import REDELIVERY_WINDOW as _OWED_WINDOW
from queues.redaction import error_text, install_token_scrubber
from queues.waitfor import keep_cancellations
from settings import Settings, load_settings_or_exit

logger = logging.getLogger("scheduler")

HISTORY_KEPT = 200
WEEKLY_MARK_TTL = 8 * 86400
WEEKLY_DAY, WEEKLY_HOUR = 0, 9  # Monday 09:00 local
#: The furthest a change of time zone moves a user's Monday 09:00: from UTC-12 to UTC+14 (26 h).
WEEKLY_ZONE_SHIFT = (EAST_END + WEST_END).total_seconds()
#: How far the bot's clock (which stamps a ``/tz`` choice) may lag the scheduler's (which stamps
#: its checks): a choice this much before a check still counts as after it. The week's mark
#: keeps a second look from sending twice.
CLOCK_SLACK = 60.0
#: Scheduled runs of one user's weekly summary in a week at most: the first, and the retries of
#: one that failed (FACEIT down at Monday 09:00), so a long outage does not lose the week.
WEEKLY_TRIES = 4
#: Seconds from a scheduled run's enqueue before a failed one is tried again, doubled for each
#: run before it (30 min, 1 h, 2 h: the retries span about 3.5 h of an outage).
WEEKLY_RETRY_AFTER = 1800.0


# --- keys and the lock ------------------------------------------------------------------------


class SchedulerKeys:
    """The scheduler's Redis keys (the only place they are spelled)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    @property
    def leader(self) -> str:
        return f"{self.prefix}scheduler:leader"

    @property
    def last_run(self) -> str:
        return f"{self.prefix}scheduler:last_run"

    @property
    def history(self) -> str:
        return f"{self.prefix}scheduler:history"

    @property
    def last_outcome(self) -> str:
        """Hash task → its newest run (JSON ``at``, ``outcome``): kept per task, as the history's
        newest runs are mostly the monitor's (a daily task's fell out of it within the hour)."""
        return f"{self.prefix}scheduler:last_outcome"

    def dedupe(self, task: str) -> str:
        return f"{self.prefix}scheduler:dedupe:{task}"

    def weekly_mark(self, user_id: int, week: str) -> str:
        return f"{self.prefix}scheduler:weekly:{int(user_id)}:{week}"


_RENEW = """
if redis.call("GET", KEYS[1]) == ARGV[1] then
  redis.call("PEXPIRE", KEYS[1], ARGV[2])
  return 1
end
if redis.call("SET", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then return 1 end
return 0
"""
_RELEASE = """
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0
"""


class LeaderLock:
    """A Redis lock with a TTL that its holder renews; ``token`` names the holder."""

    def __init__(self, client: redis.Redis, key: str, ttl: float, token: str) -> None:
        self.client = client
        self.key = key
        self.ttl = ttl
        self.token = token
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def acquire_or_renew(self) -> bool:
        """True when we hold the lock now (newly taken or renewed). Raises on Redis errors."""
        return bool(self._renew(keys=[self.key], args=[self.token, int(self.ttl * 1000)]))

    def release(self) -> bool:
        try:
            return bool(self._release(keys=[self.key], args=[self.token]))
        except redis.RedisError:
            return False

    def holder(self) -> str | None:
        return self.client.get(self.key)


# --- tasks ------------------------------------------------------------------------------------


@dataclass
class TaskContext:
    """What a task receives: its last successful run (None if never), the time, the service."""

    name: str
    now: float
    last_run: float | None
    service: SchedulerService


TaskFn = Callable[[TaskContext], Awaitable[Any]]


@dataclass
class Task:
    """One scheduled task: every ``interval`` seconds, or on a cron schedule (``cron`` kwargs)."""

    name: str
    fn: TaskFn
    interval: float | None = None
    cron: dict[str, Any] = field(default_factory=dict)
    run_at_start: bool = False

    def trigger(self) -> IntervalTrigger | CronTrigger:
        if self.interval is not None:
            return IntervalTrigger(seconds=self.interval, timezone=UTC)
        return CronTrigger(timezone=UTC, **self.cron)

    @property
    def period(self) -> float:
        """The shortest time between two runs (the dedupe key lives for half of it)."""
        if self.interval is not None:
            return self.interval
        now = datetime.now(UTC)
        trigger = self.trigger()
        first = trigger.get_next_fire_time(None, now)
        second = trigger.get_next_fire_time(first, first + timedelta(seconds=1))
        return (second - first).total_seconds() if first and second else 86400.0

    def first_run(self, last_run: float | None, now: float) -> datetime | None:
        """When a new leader should run this task first (now, when a run is overdue)."""
        now_dt = datetime.fromtimestamp(now, UTC)
        if last_run is None:
            if self.run_at_start:
                return now_dt
            if self.interval is not None:
                return now_dt + timedelta(seconds=self.interval)
            return self.trigger().get_next_fire_time(None, now_dt)
        last_dt = datetime.fromtimestamp(last_run, UTC)
        if self.interval is not None:
            due = last_dt + timedelta(seconds=self.interval)
        else:
            due = self.trigger().get_next_fire_time(None, last_dt + timedelta(seconds=1))
        return now_dt if due is None or due <= now_dt else due


async def task_monitor(ctx: TaskContext) -> dict[str, Any]:
    from queues.monitoring import get_queue_monitor

    snap = await asyncio.to_thread(get_queue_monitor().tick)
    return {"health_score": snap["health"]["health_score"], "redis": snap["redis"].get("reachable")}


async def task_alert_relay(ctx: TaskContext) -> dict[str, Any]:
    """The alerts other processes fired (a job failed, FACEIT refused the key), to the admins on
    Telegram, when the health monitor is off: its tick relays them otherwise, and without it
    ``ADMIN_USER_IDS`` would get nothing. The monitor's own relay, without its tick."""
    from queues.monitoring import get_queue_monitor

    return {"sent": await asyncio.to_thread(get_queue_monitor().relay_alerts)}


async def task_match_monitoring(ctx: TaskContext) -> dict[str, Any]:
    """A monitoring run, unless one is still in flight (the job store coalesces them): while no
    worker took the default queue, runs piled up behind each other, each to scan the same players."""
    from queues.manager import get_queue_manager

    handle = await asyncio.to_thread(get_queue_manager().enqueue_match_monitoring)
    if handle.coalesced:
        logger.info("match monitoring: run %s is still %s; none added", handle.id, handle.status)
        return {"waiting": handle.id}
    return {"job_id": handle.id}


async def task_cache_update(ctx: TaskContext) -> dict[str, Any]:
    """A refresh of every followed player, unless one is still in flight (coalesced, as match
    monitoring): while the low queue was not drained, one queued per hour, and when it was again
    they ran back to back, each spending three FACEIT calls per player of the shared rate limit."""
    from queues.manager import get_queue_manager

    handle = await asyncio.to_thread(get_queue_manager().enqueue_cache_update, "player", None)
    if handle.coalesced:
        logger.info("cache update: run %s is still %s; none added", handle.id, handle.status)
        return {"waiting": handle.id}
    return {"job_id": handle.id}


#: A delivery's own retries span about ten minutes (10 s, 30 s, then 90 s, 8 in all). A longer
#: Telegram outage failed it for good: the result, or a follower's notice, never came. Such a
#: delivery is sent again once it has failed this long ago (the outage may be over), while the
#: job it delivers is younger than :data:`REDELIVERY_WINDOW` (news older than that is stale, and
#: a delivery that keeps failing stops being tried). Sent again, it sends only what is still
#: due: each part goes once (bot/delivery.py). The window is the job store's: a failed delivery
#: keeps the record of the job it delivers at least that long (``queues.jobstore.OWED_TTL``),
#: else a succeeded job's record (``QUEUE_RESULT_TTL``, an hour) expired before it was sent again.
REDELIVERY_AFTER = 900.0
REDELIVERY_WINDOW = _OWED_WINDOW
#: The failures that were Telegram's, not the delivery's: its network, its flood control, or no
#: way to it from the worker that tried (no token: bot.delivery.TelegramNotConfigured).
REDELIVERABLE = ("upstream", "rate_limited", "not_configured")
REDELIVERY_INTERVAL = 300.0


def redeliver_failed(manager: Any, now: float) -> dict[str, int]:
    """Requeue each failed ``deliver_result`` job that failed for want of Telegram at least
    :data:`REDELIVERY_AFTER` before ``now``, of a job enqueued less than :data:`REDELIVERY_WINDOW`
    before it (the requeue keeps the enqueue time, so the window bounds the tries)."""
    from queues.errors import UnknownJobError
    from queues.manager import DELIVERY_ACTOR

    due = [job_id for job_id, code, finished in manager.jobs.failures_since(DELIVERY_ACTOR, now - REDELIVERY_WINDOW)
           if code in REDELIVERABLE and now - (finished or now) >= REDELIVERY_AFTER]
    requeued = 0
    for job_id in due:
        try:
            requeued += len(manager.requeue_failed(job_id=job_id))
        except UnknownJobError:  # its record expired since it was read: nothing to send, the others still go
            continue
    if requeued:
        logger.info("redelivery: %d failed deliveries sent again (Telegram was unreachable)", requeued)
    return {"requeued": requeued}


async def task_redelivery(ctx: TaskContext) -> dict[str, Any]:
    from queues.manager import get_queue_manager

    return await asyncio.to_thread(redeliver_failed, get_queue_manager(), ctx.now)


async def task_retention(ctx: TaskContext) -> dict[str, Any]:
    from queues.monitoring import get_queue_monitor

    return await asyncio.to_thread(get_queue_monitor().retention_cleanup)


def weekly_due(boundary: float, now: float, last_run: float, zone_changed: float | None) -> bool:
    """Whether the summary of the week that began at ``boundary`` (the user's latest Monday
    09:00, epoch seconds) goes at the check at ``now``, the previous one having run at ``last_run``.

    It goes when that moment came since the previous check. A user who chose a zone further east
    with ``/tz`` after that check (``zone_changed``) may find their new Monday 09:00 already
    behind it, though their old zone's had not come by that check: it goes then too. The old
    zone is not kept, but no move shifts 09:00 by more than :data:`WEEKLY_ZONE_SHIFT`, so only
    a previous check less than that after the new 09:00 can have missed it: a move west, to a
    zone whose 09:00 is days old, makes no summary out of season. The move is stamped by the
    bot's clock, the check by the scheduler's: :data:`CLOCK_SLACK` covers a bot host behind.
    The week's mark keeps it to one a week either way."""
    if boundary > now:
        return False
    if last_run < boundary:
        return True
    return (zone_changed is not None and zone_changed > last_run - CLOCK_SLACK
            and last_run < boundary + WEEKLY_ZONE_SHIFT)


def weekly_boundary(now: float, tz: tzinfo) -> datetime:
    """The latest Monday 09:00 in ``tz`` at or before ``now``."""
    local = datetime.fromtimestamp(now, tz)
    monday = (local - timedelta(days=(local.weekday() - WEEKLY_DAY) % 7)).replace(
        hour=WEEKLY_HOUR, minute=0, second=0, microsecond=0)
    if monday > local:
        monday -= timedelta(days=7)
    return monday


async def subscribed_users(settings: Settings) -> list[tuple[int, str | None, float | None]]:
    """``(user_id, time zone or None, when it was chosen or None)`` of every active user who
    follows a player: the zone each chose with the bot's ``/tz`` (None: never chosen, the summary
    goes by UTC)."""
    from bot.keys import BotKeys
    from faceit.keys import FaceitKeys
    from faceit.models import to_float
    from faceit.store import FaceitStore
    from queues.connection import async_redis_client

    client = async_redis_client(settings)
    try:
        store = FaceitStore(client, FaceitKeys(settings.redis_key_prefix))
        active = sorted(await store.all_subscribers() - await store.inactive_users())
        if not active:
            return []
        keys, fields = BotKeys(settings.redis_key_prefix), [str(uid) for uid in active]
        async with client.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.user_timezones(), fields)
            pipe.hmget(keys.user_timezone_changes(), fields)
            zones, changes = await pipe.execute()  # the client decodes: a zone's name, or None
        # a time missing (a zone chosen before it was kept) or unreadable: None
        return [(uid, zone, to_float(changed)) for uid, zone, changed in zip(active, zones, changes, strict=True)]
    finally:
        await client.aclose()


@dataclass(frozen=True)
class WeeklyMark:
    """What a user's ``scheduler:weekly:<user>:<ISO week>`` holds: when the week's latest scheduled
    run was claimed (``at``, just before its enqueue), how many runs there were (``tries``), that
    run's job (``job``: None once it ended any way but failed, and in a mark an older scheduler
    wrote, a bare time), and whether its enqueue is still unconfirmed (``pending``).

    The job is given its id before the claim (:meth:`QueueManager.prepare_analytics_report`), so
    the claim itself names it, ``pending``; the check that claimed drops ``pending`` once the
    enqueue returned. A scheduler killed in between leaves a pending mark: its job has a record
    if the enqueue happened (then it is watched like any run, and the next check confirms it),
    none if not (then the run is taken for failed: :meth:`failed`). Written with the job id only
    after the enqueue, a mark whose scheduler died in between said the summary went, with no job
    to watch: a run never enqueued, or one that then failed, was never tried again."""

    at: float
    tries: int = 1
    job: str | None = None
    pending: bool = False

    @classmethod
    def parse(cls, raw: str | None) -> WeeklyMark | None:
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):  # the bare time an older scheduler wrote: sent, nothing to watch
            return cls(at=0.0)
        return cls(at=float(data.get("at") or 0), tries=int(data.get("tries") or 1), job=data.get("job") or None,
                   pending=bool(data.get("pending")))

    def dump(self) -> str:
        return json.dumps({"at": self.at, "tries": self.tries, "job": self.job, "pending": self.pending})

    @property
    def watched(self) -> bool:
        """Whether its run may still fail and be tried again."""
        return self.job is not None and self.tries < WEEKLY_TRIES

    def failed(self, status: str | None) -> bool:
        """Whether the run failed, its job's record saying ``status`` (None: it has none). A pending
        mark whose job has no record was claimed by a scheduler that died before the enqueue: the
        run never came, and is tried again as a failed one is, at :meth:`retry_at` and under the
        same cap. That is the grace a check gives it: the claiming check may still be enqueueing
        (a slow broker, a RabbitMQ reconnect, a leader that has not yet noticed it lost the lock),
        and the delay of a retry, 30 minutes at least, is far past any enqueue, while the check
        every 15 minutes makes a shorter one gain little. A confirmed mark whose record is gone
        watched a run that ended (a succeeded record lives an hour): not failed."""
        return status == "failed" or (status is None and self.pending)

    def retry_at(self) -> float:
        """When a failed run may be followed by the next (:data:`WEEKLY_RETRY_AFTER`, doubled per try)."""
        return self.at + WEEKLY_RETRY_AFTER * 2 ** (self.tries - 1)


# KEYS: a weekly mark. ARGV: the value it must hold, the new one. Swapped, keeping its TTL, only
# if no one changed it since it was read (1), else left (0).
_SWAP_MARK = """
if redis.call("GET", KEYS[1]) ~= ARGV[1] then return 0 end
redis.call("SET", KEYS[1], ARGV[2], "KEEPTTL")
return 1
"""


#: Marks read per MGET: one reply per thousand users, not one of every user's at once.
MARKS_PER_READ = 1000


def _read_marks(client: Any, keys: list[str]) -> list[str | None]:
    """The weekly marks at ``keys``, in order, :data:`MARKS_PER_READ` per round trip."""
    return [raw for start in range(0, len(keys), MARKS_PER_READ)
            for raw in client.mget(keys[start:start + MARKS_PER_READ])]


async def task_weekly_reports(ctx: TaskContext) -> dict[str, Any]:
    """Send each subscribed user's weekly report once, when Monday 09:00 local has passed since
    the previous run (so a leader that was down at 09:00 sends it once when it is back), or had
    passed in a zone the user moved to since (:func:`weekly_due`).

    The week's mark records the run. A run that failed (its user is told nothing), or that a
    killed scheduler claimed and never enqueued (:meth:`WeeklyMark.failed`), is tried again at
    the first check from :meth:`WeeklyMark.retry_at`, up to :data:`WEEKLY_TRIES` runs in the
    user's week (their next Monday 09:00 starts a new one): the mark alone had kept the week from
    ever being tried again. Each check reads every user's mark in one round trip, and the status
    of the runs still watched in another.

    Each run is prepared first (its job id drawn, nothing written), claimed with a mark naming
    that job (:func:`_claim_weekly`), then enqueued; an enqueue that raises puts the mark back as
    it was, so the next check tries again."""
    if ctx.last_run is None:
        return {"sent": 0, "note": "first run: baseline recorded"}
    service = ctx.service
    from queues.manager import get_queue_manager

    manager = get_queue_manager()
    users = []
    for uid, tz_name, zone_changed in await subscribed_users(service.settings):
        boundary = weekly_boundary(ctx.now, zone_of(tz_name))
        year, week, _ = boundary.isocalendar()
        week_before = weekly_boundary(boundary.timestamp() - 1, zone_of(tz_name))
        users.append((uid, service.keys.weekly_mark(uid, f"{year}-W{week:02d}"), (week_before.timestamp(),
                      boundary.timestamp()), weekly_due(boundary.timestamp(), ctx.now, ctx.last_run, zone_changed)))
    if not users:
        return {"sent": 0}
    raws = await asyncio.to_thread(_read_marks, service.client, [key for _, key, _, _ in users])
    marks = [WeeklyMark.parse(raw) for raw in raws]
    watched = [mark.job for mark in marks if mark is not None and mark.watched]
    statuses = dict(zip(watched, await asyncio.to_thread(manager.jobs.statuses, watched), strict=True))
    # The first job prepared in this process imports the actors and builds the broker: in a
    # thread, so the loop (and the leader lock it renews) never waits on it; after that,
    # preparing a job is no I/O.
    await asyncio.to_thread(lambda: manager.broker)
    swap = service.swap_mark
    sent = retried = 0
    for (uid, key, (week_start, week_end), due), raw, mark in zip(users, raws, marks, strict=True):
        if mark is None:
            if not due:
                continue
            tries = 1
        elif mark.watched and mark.failed(statuses[mark.job]):
            if ctx.now < mark.retry_at():
                continue
            tries = mark.tries + 1
        else:
            if mark.watched:
                await _settle_weekly(swap, key, raw, mark, statuses[mark.job])
            continue
        job = manager.prepare_analytics_report(uid, "weekly", {"user_id": uid, "chat_id": uid},  # (no I/O)
                                               scheduled=True, period_start=week_start, period_end=week_end)
        claimed = WeeklyMark(at=ctx.now, tries=tries, job=job.job_id, pending=True)
        if not await _claim_weekly(service.client, swap, key, raw, claimed):
            continue
        if mark is not None:
            lost = statuses[mark.job] is None
            logger.log(logging.WARNING if lost else logging.INFO,
                       "weekly summary of user %s: run %d of the week, job %s (the last one, job %s, %s)", uid,
                       tries, job.job_id, mark.job, "was never enqueued: its scheduler stopped first" if lost
                       else "failed")
        try:
            handle = await asyncio.to_thread(manager.submit, job)
        except Exception:  # let the next check try this user again
            logger.warning("weekly summary of user %s: job %s not enqueued; the week's mark is put back",
                           uid, job.job_id)
            if raw is None:
                await asyncio.to_thread(service.client.delete, key)
            else:
                await asyncio.to_thread(swap, keys=[key], args=[claimed.dump(), raw])
            raise
        if handle.id != job.job_id:  # joined its subject's run in flight: that one is watched
            logger.info("weekly summary of user %s: job %s joined job %s", uid, job.job_id, handle.id)
        await asyncio.to_thread(swap, keys=[key], args=[claimed.dump(), WeeklyMark(ctx.now, tries, handle.id).dump()])
        if mark is None:
            sent += 1
        else:
            retried += 1
    return {"sent": sent, "retried": retried} if retried else {"sent": sent}


async def _claim_weekly(client: Any, swap: Any, key: str, raw: str | None, claimed: WeeklyMark) -> bool:
    """Take the week's next run at ``key``: write ``claimed`` (naming the run's job, ``pending``)
    if the mark still reads ``raw`` (None: no mark yet). False when another check took it first."""
    if raw is None:
        return bool(await asyncio.to_thread(client.set, key, claimed.dump(), nx=True, ex=WEEKLY_MARK_TTL))
    return bool(await asyncio.to_thread(swap, keys=[key], args=[raw, claimed.dump()]))


async def _settle_weekly(swap: Any, key: str, raw: str, mark: WeeklyMark, status: str | None) -> None:
    """Update the mark ``raw`` of a watched run that did not fail, its job's record saying ``status``.

    Still running: a pending mark is confirmed (its scheduler died after the enqueue), so its
    record expiring later does not pass for a run never enqueued. Ended without failing (or its
    record gone, the mark confirmed): nothing more to watch."""
    if status in ("queued", "started", "retrying"):
        if mark.pending:
            await asyncio.to_thread(swap, keys=[key], args=[raw, WeeklyMark(mark.at, mark.tries, mark.job).dump()])
        return
    await asyncio.to_thread(swap, keys=[key], args=[raw, WeeklyMark(mark.at, mark.tries).dump()])


def default_tasks(settings: Settings) -> list[Task]:
    """The tasks of the table above (the monitor when ``QUEUE_ENABLE_MONITORING``, else the alert
    relay)."""
    interval = float(settings.queue_monitoring_interval)
    monitor = [Task("monitor", task_monitor, interval=interval, run_at_start=True)
               if settings.queue_enable_monitoring else Task("alert_relay", task_alert_relay, interval=interval)]
    return [
        *monitor,
        Task("match_monitoring", task_match_monitoring, interval=float(settings.match_monitoring_interval),
             run_at_start=True),
        Task("cache_update", task_cache_update, interval=settings.cache_update_interval),
        Task("weekly_reports", task_weekly_reports,
             interval=settings.weekly_report_check_interval, run_at_start=True),
        Task("redelivery", task_redelivery, interval=REDELIVERY_INTERVAL),
        Task("retention", task_retention, cron={"hour": 3, "minute": 30}),
    ]


#: The longest wait before a run skipped because Redis did not answer is tried again (half the
#: task's period when that is shorter): an hourly task, or the 03:30 retention, otherwise waited
#: for its next period, a day for the retention.
REDIS_SKIP_RETRY = 30.0

#: Claims a run: its dedupe key (KEYS[1]) set to the run's claim (ARGV[1]) for ARGV[2] ms unless
#: another claim holds it, and the task's last good run (KEYS[2], field ARGV[3]) read. A key that
#: already holds this very claim is this run's: its first try reached Redis and only the reply was
#: lost (redis-py sends a command again after a connection error), or it is tried again after
#: Redis did not answer. Returns {1 or 0, last run or ""}.
_CLAIM_RUN = """
local fresh = 0
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then fresh = 1
elseif redis.call('get', KEYS[1]) == ARGV[1] then fresh = 1 end
return {fresh, redis.call('hget', KEYS[2], ARGV[3]) or ''}
"""


# --- the service ------------------------------------------------------------------------------


class SchedulerService:
    """Leader election plus the leader's APScheduler. See the module docstring."""

    def __init__(self, settings: Settings, *, client: redis.Redis | None = None,
                 tasks: list[Task] | None = None, lock_ttl: float | None = None,
                 redis_skip_retry: float = REDIS_SKIP_RETRY) -> None:
        from queues.runtime import get_redis

        self.settings = settings
        self.client = client or get_redis(settings)
        self.keys = SchedulerKeys(settings.redis_key_prefix)
        self.tasks = {t.name: t for t in (tasks if tasks is not None else default_tasks(settings))}
        self.lock_ttl = lock_ttl or settings.scheduler_lock_ttl
        #: The longest wait before a run skipped for Redis is tried again (:data:`REDIS_SKIP_RETRY`).
        self.redis_skip_retry = redis_skip_retry
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lock = LeaderLock(self.client, self.keys.leader, self.lock_ttl, self.token)
        #: The weekly marks' compare-and-swap (:data:`_SWAP_MARK`), registered once.
        self.swap_mark = self.client.register_script(_SWAP_MARK)
        #: A run's claim of its dedupe key (:data:`_CLAIM_RUN`), and its release (the lock's own
        #: compare-and-delete, :data:`_RELEASE`), registered once.
        self.claim_run = self.client.register_script(_CLAIM_RUN)
        self.release_claim = self.client.register_script(_RELEASE)
        #: Each task's claim held by its run under way (released if the run is cut short), and the
        #: claim of a run Redis did not answer (its next try makes the same claim: the first may
        #: have landed, its reply lost).
        self._claims: dict[str, str] = {}
        self._unanswered_claims: dict[str, str] = {}
        self.is_leader = False
        self._redis_failing = False
        self._take_over_failing = False
        self._stand_back_until = 0.0
        self._aps: AsyncIOScheduler | None = None
        self._stop = asyncio.Event()

    # leadership
    async def run(self) -> None:
        """Campaign, lead, step down, until :meth:`stop`."""
        logger.info("scheduler %s started (lock TTL %.1f s)", self.token, self.lock_ttl)
        try:
            while not self._stop.is_set():
                await self._campaign()
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=self.lock_ttl / 3)
                except TimeoutError:
                    pass
        finally:
            self._step_down("stopping")
            if self.lock.release():
                logger.info("scheduler %s released leadership", self.token)

    def stop(self) -> None:
        self._stop.set()

    async def _campaign(self) -> None:
        if time.monotonic() < self._stand_back_until:  # a take-over just failed: let another try
            return
        try:
            held = await asyncio.to_thread(self.lock.acquire_or_renew)
        except redis.RedisError as exc:
            if not self._redis_failing:
                logger.warning("scheduler: Redis unreachable (%s); %s", type(exc).__name__,
                               "keep leading until it is back" if self.is_leader else "standing by")
            self._redis_failing = True
            return
        if self._redis_failing:
            logger.info("scheduler: Redis is reachable again")
            self._redis_failing = False
        if held and not self.is_leader:
            try:
                await self._become_leader()
                self._take_over_failing = False
            except redis.RedisError as exc:
                await self._give_up_take_over(exc)
        elif not held and self.is_leader:
            try:
                holder = await asyncio.to_thread(self.lock.holder)
            except redis.RedisError:
                holder = "another scheduler"
            self._step_down(f"the lock is held by {holder}")

    async def _give_up_take_over(self, exc: redis.RedisError) -> None:
        """The lock is ours but the record of runs could not be read: let the lock go and stand
        back for one lock TTL, so another scheduler can lead meanwhile (one that holds the lock
        and runs nothing would stop every task, for as long as the error lasts); then try again.
        Said once per spell of failures."""
        if not self._take_over_failing:
            logger.warning("scheduler: Redis failed as this scheduler took the lead (%s); it lets the "
                           "lock go and tries again in %.1f s", type(exc).__name__, self.lock_ttl)
        self._take_over_failing = True
        self._stand_back_until = time.monotonic() + self.lock_ttl
        await asyncio.to_thread(self.lock.release)  # a Redis error: it expires within the TTL

    async def _become_leader(self) -> None:
        """Schedule every task from the record of its last run (a Redis error reading it: see
        :meth:`_give_up_take_over`)."""
        last_runs = await asyncio.to_thread(self.last_runs)
        self.is_leader = True
        logger.info("scheduler %s is the leader", self.token)
        now = time.time()
        aps = AsyncIOScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1,
                                                          "misfire_grace_time": None})
        for task in self.tasks.values():
            first = task.first_run(last_runs.get(task.name), now)
            aps.add_job(self.run_task, task.trigger(), args=[task.name], id=task.name, name=task.name,
                        next_run_time=first, replace_existing=True)
            logger.info("task %s: next run %s", task.name, first.isoformat() if first else "never")
        aps.start()
        self._aps = aps

    def _step_down(self, why: str) -> None:
        if self._aps is not None:
            self._aps.shutdown(wait=False)
            self._aps = None
        if self.is_leader:
            logger.warning("scheduler %s stepped down: %s", self.token, why)
        self.is_leader = False

    # runs
    def last_runs(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.client.hgetall(self.keys.last_run).items()}

    async def run_task(self, name: str) -> dict[str, Any] | None:
        """Run ``name`` once unless another run of it happened within half its period."""
        try:
            return await self._run_once(name)
        except asyncio.CancelledError:
            # This scheduler stepped down or is stopping (APScheduler's shutdown cancels running
            # jobs), maybe right after it set the run's dedupe key, which would have made the next
            # leader skip the run as "already run" though it never finished: let the key go, so the
            # run is made (at worst twice: every task is coalesced or idempotent). Ended here, not
            # raised: APScheduler logs a cancelled job as an ERROR with a traceback (a Sentry event).
            claim = self._claims.pop(name, None)
            if claim is not None:
                self._release_dedupe(name, claim)
            logger.info("task %s: stopped with this scheduler's lead; the next leader runs it", name)
            return None

    async def _run_once(self, name: str) -> dict[str, Any] | None:
        task = self.tasks[name]
        now = time.time()
        gap_ms = max(1, int(task.period * 500))
        claim = self._unanswered_claims.pop(name, None) or f"{self.token}:{uuid.uuid4().hex[:8]}"
        try:
            fresh, last = await asyncio.to_thread(self.claim_run, keys=[self.keys.dedupe(name), self.keys.last_run],
                                                  args=[claim, gap_ms, name])
        except redis.RedisError:
            if name != "monitor":
                self._unanswered_claims[name] = claim
                retry = self._try_again_soon(task)
                logger.warning("task %s skipped: Redis unreachable; trying again in %.0f s", name, retry)
                return None
            fresh, last = True, None  # the monitor must run to report the outage
        if not int(fresh):
            logger.info("task %s: skipped (already run within %.1f s)", name, gap_ms / 1000)
            return None
        self._claims[name] = claim
        ctx = TaskContext(name=name, now=now, last_run=float(last) if last else None, service=self)
        started = time.monotonic()
        outcome, result = "ok", None
        try:
            result = await task.fn(ctx)
        except Exception as exc:
            # kept in Redis (scheduler:history) and raised as an alert: the bot token scrubbed
            # before the text is cut
            outcome = f"error: {type(exc).__name__}: {error_text(exc, 200, _bot_token_of(self.settings))}"
            logger.exception("task %s failed", name)
        entry = {"task": name, "at": now, "leader": self.token, "outcome": outcome,
                 "seconds": round(time.monotonic() - started, 3), "result": result}
        try:
            pipe = self.client.pipeline(transaction=False)
            if outcome == "ok":
                pipe.hset(self.keys.last_run, name, repr(now))
            pipe.lpush(self.keys.history, json.dumps(entry, default=str))
            pipe.ltrim(self.keys.history, 0, HISTORY_KEPT - 1)
            pipe.hset(self.keys.last_outcome, name, json.dumps({"at": now, "outcome": outcome}))
            await asyncio.to_thread(pipe.execute)
        except redis.RedisError:
            pass
        self._claims.pop(name, None)
        await asyncio.to_thread(self._say_outcome, name, outcome)
        return entry

    def _say_outcome(self, name: str, outcome: str) -> None:
        """A failed run raises an ``error`` alert (rule ``scheduler_task``, one per task, once per
        window while it keeps failing), resolved by the task's next good run: a task that failed
        every time (the weekly summaries, the retention) showed only in the log. A Redis error
        here is logged: the monitor reports Redis itself."""
        from queues.runtime import get_alert_store

        try:
            alerts = get_alert_store(self.settings)
            if outcome == "ok":
                alerts.resolve("scheduler_task", name)
            else:
                error = outcome.removeprefix("error: ")
                alerts.fire("error", "scheduler", f"scheduled task {name} failed: {error}",
                            rule="scheduler_task", subject=name, details={"error": error})
        except redis.RedisError as exc:  # a good run's resolve is tried again at the next one
            if outcome != "ok":
                logger.warning("task %s: its alert could not be written (%s)", name, type(exc).__name__)

    def _release_dedupe(self, name: str, claim: str) -> None:
        """Let go of ``name``'s dedupe key if it still holds ``claim``, in the background (the run
        was cancelled: nothing may wait here)."""
        def release() -> None:
            try:
                self.release_claim(keys=[self.keys.dedupe(name)], args=[claim])
            except redis.RedisError as exc:  # it expires on its own, half a period later
                logger.warning("task %s: its dedupe key could not be released (%s)", name, type(exc).__name__)

        # Not a daemon: a scheduler stopping (a deploy) lets it finish, bounded by the socket timeout.
        threading.Thread(target=release, name=f"release-{name}").start()

    def _try_again_soon(self, task: Task) -> float:
        """Move ``task``'s next run to within :attr:`redis_skip_retry` (half its period when
        shorter), after a run skipped because Redis did not answer; the seconds until then."""
        delay = min(self.redis_skip_retry, task.period / 2)
        if self._aps is not None:
            try:
                self._aps.modify_job(task.name, next_run_time=datetime.now(UTC) + timedelta(seconds=delay))
            except JobLookupError:  # stepped down meanwhile
                pass
        return delay


def history(client: redis.Redis, prefix: str, limit: int = HISTORY_KEPT) -> list[dict[str, Any]]:
    """The newest task runs, newest first."""
    return [json.loads(x) for x in client.lrange(SchedulerKeys(prefix).history, 0, limit - 1)]


def scheduler_state(client: redis.Redis, prefix: str) -> dict[str, Any]:
    """What ``admin.py status`` shows of the scheduler: the leader's token (``host:pid:…``; None:
    no scheduler leads) and, per task, its last good run and its newest run's outcome."""
    keys = SchedulerKeys(prefix)
    leader = client.get(keys.leader)
    last_runs = {name: float(at) for name, at in client.hgetall(keys.last_run).items()}
    newest = {name: json.loads(raw) for name, raw in client.hgetall(keys.last_outcome).items()}
    tasks = {name: {"last_ok": last_runs.get(name), "last_at": newest.get(name, {}).get("at"),
                    "last_outcome": newest.get(name, {}).get("outcome")}
             for name in sorted(set(last_runs) | set(newest))}
    return {"leader": leader, "tasks": tasks}


def _bot_token_of(settings: Any) -> str:
    """``TELEGRAM_BOT_TOKEN`` (empty when unset), for scrubbing texts of this process."""
    secret = getattr(settings, "telegram_bot_token", None)
    return secret.get_secret_value() if secret is not None else ""


#: What ``--log-level`` accepts (in any case), as ``LOG_LEVEL`` does.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def main(argv: list[str] | None = None) -> int:
    keep_cancellations()  # a cancel landing while a Redis command is sent is not lost (queues.waitfor)
    parser = argparse.ArgumentParser(description="Run the FACEIT bot's scheduler (one leader at a time).")
    parser.add_argument("--log-level", default=None, help=f"{', '.join(LOG_LEVELS)} (default LOG_LEVEL)")
    args = parser.parse_args(argv)
    if args.log_level is not None and args.log_level.upper() not in LOG_LEVELS:
        # one line and status 2, as a refused setting: not logging's ValueError traceback
        print(f"scheduler: --log-level must be one of {', '.join(LOG_LEVELS)} (got {args.log_level!r})",
              file=sys.stderr)
        return 2
    settings = load_settings_or_exit()
    logging.basicConfig(level=(args.log_level or settings.log_level).upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # The admin alerts' sink holds the bot token in this process too (the monitor's tick, the
    # alert relay): no log line may show it, whole, cut short or in a traceback.
    install_token_scrubber(_bot_token_of(settings))
    from queues.sentry import init_sentry

    init_sentry(settings, "scheduler")
    service = SchedulerService(settings)

    async def runner() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, service.stop)
        await service.run()

    asyncio.run(runner())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

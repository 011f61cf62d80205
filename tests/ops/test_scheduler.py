"""The scheduler: one leader among several processes, takeover after a kill, runs guarded by a
dedupe key, overdue tasks run once after a restart, weekly reports per user and week."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis

from bot.timezones import zone_of
from scheduler import (
    CLOCK_SLACK,
    WEEKLY_ZONE_SHIFT,
    SchedulerKeys,
    SchedulerService,
    Task,
    TaskContext,
    default_tasks,
    history,
    task_weekly_reports,
    weekly_boundary,
    weekly_due,
)
from tests.ops.conftest import wait_until
from tests.support.reply_dropper import ReplyDroppingProxy
from tests.support.waiting import async_wait_until
from tests.support.workers import ROOT

LOCK_TTL = "1"
#: How soon a standby leads once the leader is killed: the lock's TTL, then the standby's next
#: poll (a third of the TTL), with room for a busy machine. A standby that went by the default
#: ``SCHEDULER_LOCK_TTL`` (10 s) instead of the one set would take 13 s.
TAKEOVER_WITHIN = float(LOCK_TTL) * 4 / 3 + 4.0


def start_scheduler(log: Path, **env: str) -> subprocess.Popen[bytes]:
    environment = {**os.environ, "SCHEDULER_LOCK_TTL": LOCK_TTL, "QUEUE_MONITORING_INTERVAL": "0.5",
                   "MATCH_MONITORING_INTERVAL": "600", **env}
    return subprocess.Popen([sys.executable, "scheduler.py"], cwd=ROOT, env=environment,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


def pid_of(token: str | None) -> int | None:
    return int(token.split(":")[1]) if token else None


def test_one_leader_and_a_standby_takes_over_within_seconds_when_the_leader_is_killed(
        redis_client, fresh, tmp_path):
    import actors  # noqa: F401

    keys = SchedulerKeys("fb:")
    procs = [start_scheduler(tmp_path / f"s{i}.log") for i in range(2)]
    try:
        leader = pid_of(wait_until(lambda: redis_client.get(keys.leader), timeout=30))
        assert leader in {p.pid for p in procs}
        def started_up() -> bool:
            tasks = [h["task"] for h in history(redis_client, "fb:")]
            return tasks.count("monitor") >= 3 and "match_monitoring" in tasks

        wait_until(started_up, timeout=40)
        runs = history(redis_client, "fb:")
        assert {pid_of(h["leader"]) for h in runs} == {leader}  # the standby ran nothing
        killed = next(p for p in procs if p.pid == leader)
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
        killed_at = time.monotonic()
        survivor = next(p for p in procs if p is not killed)
        wait_until(lambda: pid_of(redis_client.get(keys.leader)) == survivor.pid, timeout=60)
        takeover = time.monotonic() - killed_at
        assert takeover < TAKEOVER_WITHIN, takeover
        wait_until(lambda: any(pid_of(h["leader"]) == survivor.pid and h["task"] == "monitor"
                               for h in history(redis_client, "fb:")), timeout=10)
        runs = history(redis_client, "fb:")
        monitor_times = sorted(h["at"] for h in runs if h["task"] == "monitor")
        # Never two monitor runs within the dedupe gap (half the 0.5 s interval).
        assert all(b - a >= 0.24 for a, b in itertools.pairwise(monitor_times)), monitor_times
        # Match monitoring ran once at the first start; the new leader found it done recently.
        assert [h["task"] for h in runs].count("match_monitoring") == 1
        assert redis_client.get("fb:monitor:latest")  # the monitor records its snapshots
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    # A stopped leader releases the lock.
    assert redis_client.get(keys.leader) is None


def test_with_the_monitor_off_the_alerts_workers_fire_still_reach_the_admins(redis_client, fresh, tmp_path,
                                                                            telegram_sandbox):
    """``QUEUE_ENABLE_MONITORING=false`` turns off the health monitor, not the admins' alerts: the
    monitor's tick relayed them, so with it off a job's failure reached no admin."""
    from queues.alerts import AlertStore, LogSink
    from settings import get_settings

    admin = 7301
    scheduler = start_scheduler(tmp_path / "s.log", QUEUE_ENABLE_MONITORING="false", ADMIN_USER_IDS=str(admin),
                                TELEGRAM_API_URL=telegram_sandbox.base_url, TELEGRAM_BOT_TOKEN="",
                                ALERT_TELEGRAM_BATCH_SECONDS="0.2")
    try:
        wait_until(lambda: redis_client.get(SchedulerKeys("fb:").leader), timeout=30)
        worker_store = AlertStore.from_settings(redis_client, get_settings(), sinks=[LogSink()])
        worker_store.fire("error", "pipeline", "match_analysis job failed: UpstreamError: 503", job_id="job-77")
        sent = wait_until(lambda: [m for m in telegram_sandbox.messages(admin) if m["kind"] == "sent"], timeout=20)
        assert "match_analysis job failed" in sent[0]["text"] and "job-77" in sent[0]["text"]
        tasks = wait_until(lambda: (t := [h["task"] for h in history(redis_client, "fb:")]) and "alert_relay" in t
                           and t)  # its run is written to the history once it has sent
        assert "monitor" not in tasks  # the monitor stays off
        assert redis_client.get("fb:monitor:latest") is None
    finally:
        scheduler.send_signal(signal.SIGTERM)
        try:
            scheduler.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(scheduler.pid, signal.SIGKILL)


async def test_a_redis_error_as_it_takes_the_lead_lets_another_scheduler_lead(redis_server, redis_client, fresh):
    """Redis failing between taking the lock and reading the record of runs killed the scheduler
    (under systemd without ``Restart=`` it stayed down). Now it lives, and lets the lock go so a
    healthy replica leads meanwhile; once it may read the record, it can lead again. The failure
    is real: a Redis user that may take the lock but not read the record, until it may."""
    import redis as redis_lib

    from settings import get_settings

    redis_client.acl_setuser("scheduler_test", enabled=True, passwords=["+pw"], keys=["*"], channels=["*"],
                             commands=["+@all", "-hgetall"], reset=True)
    keys = SchedulerKeys("fb:")
    try:
        client = redis_lib.Redis(host="127.0.0.1", port=redis_server.port, username="scheduler_test",
                                 password="pw", decode_responses=True)
        broken_calls: list[str] = []
        broken = SchedulerService(get_settings(), client=client, lock_ttl=0.3,
                                  tasks=[counting_task("at_start", broken_calls, interval=60, run_at_start=True)])
        redis_client.acl_log_reset()
        running = asyncio.ensure_future(broken.run())

        def refused_reads() -> int:  # Redis's own count of the record reads it refused this user
            return sum(int(e["count"]) for e in redis_client.acl_log()
                       if e.get("username") == "scheduler_test" and e.get("object") == "hgetall")

        await async_wait_until(lambda: refused_reads() >= 2, "two tries, each refused the record")
        assert not running.done() and not broken.is_leader and broken_calls == []
        healthy_calls: list[str] = []
        healthy = SchedulerService(get_settings(), lock_ttl=0.3,
                                   tasks=[counting_task("at_start", healthy_calls, interval=60, run_at_start=True)])
        healthy_running = asyncio.ensure_future(healthy.run())
        await async_wait_until(lambda: healthy_calls, "the healthy scheduler to lead and run its task")
        assert healthy_calls == ["at_start"] and healthy.is_leader
        assert redis_client.get(keys.leader) == healthy.token and not broken.is_leader
        healthy.stop()
        await asyncio.wait_for(healthy_running, 10)
        redis_client.acl_setuser("scheduler_test", commands=["+hgetall"])  # Redis lets it read again
        await async_wait_until(lambda: broken.is_leader, "the once broken scheduler to lead")
        assert redis_client.get(keys.leader) == broken.token
        broken.stop()
        await asyncio.wait_for(running, 10)
    finally:
        redis_client.acl_deluser("scheduler_test")


def witness(name: str, calls: list[str]) -> Task:
    """A task run at a leader's start, after every other task due then: APScheduler runs the jobs
    due at one moment in the order of their names, and ``name`` (``zz_…``) sorts last. Its
    recorded run shows that the leader's first pass is over. (A name of its own per leader: a
    run of it within the hour is skipped by its dedupe key, and its record of the last run makes
    it not due at the next leader's start.)"""
    assert name.startswith("zz_")
    return counting_task(name, calls, interval=3600, run_at_start=True)


async def lead_until_witnessed(service: SchedulerService, witness_name: str, client: redis.Redis,
                               also: tuple[str, ...] = ()) -> None:
    """Run ``service`` until its witness's run, and those of the tasks ``also`` named, are in the
    record of runs (its first pass as leader is over: :func:`witness`; the runs begin in name
    order but may end in another), then stop it."""
    running = asyncio.ensure_future(service.run())
    wanted = {witness_name, *also}
    try:
        await async_wait_until(lambda: wanted <= {h["task"] for h in history(client, "fb:")
                                                  if h["leader"] == service.token},
                               what=f"{', '.join(sorted(wanted))} recorded by the leader", timeout=30)
    finally:
        service.stop()
        await asyncio.wait_for(running, 10)


def counting_task(name: str, calls: list[str], **options) -> Task:
    async def fn(ctx) -> dict:
        calls.append(name)
        return {"last_run": ctx.last_run}

    return Task(name, fn, **options)


async def test_overdue_tasks_run_once_after_a_restart_and_others_keep_their_schedule(fresh, redis_client):
    from settings import get_settings

    keys = SchedulerKeys("fb:")
    now = time.time()
    redis_client.hset(keys.last_run, mapping={
        "hourly": repr(now - 3 * 3600 - 5),     # three periods missed: runs once, not three times
        "recent": repr(now - 10),               # not due for another 50 minutes
        "daily": repr(now - 2 * 86400),         # missed its 03:30 twice: runs once
    })
    calls: list[str] = []
    tasks = [counting_task("hourly", calls, interval=3600), counting_task("recent", calls, interval=60),
             counting_task("daily", calls, cron={"hour": 3, "minute": 30}),
             counting_task("fresh_start", calls, interval=3600, run_at_start=True),
             counting_task("no_record", calls, interval=3600)]
    service = SchedulerService(get_settings(), tasks=[*tasks, witness("zz_first", calls)], lock_ttl=1)
    await lead_until_witnessed(service, "zz_first", redis_client, also=("daily", "fresh_start", "hourly"))
    assert sorted(calls) == ["daily", "fresh_start", "hourly", "zz_first"]
    last = service.last_runs()
    assert last["hourly"] > now and last["recent"] == pytest.approx(now - 10)
    # A second leader right after finds nothing overdue: its first pass runs its witness alone.
    calls.clear()
    second = SchedulerService(get_settings(), tasks=[*tasks, witness("zz_second", calls)], lock_ttl=1)
    await lead_until_witnessed(second, "zz_second", redis_client)
    assert calls == ["zz_second"]


async def test_each_run_is_guarded_by_a_dedupe_key(fresh):
    from settings import get_settings

    calls: list[str] = []
    tasks = [counting_task("once", calls, interval=60)]
    a = SchedulerService(get_settings(), tasks=tasks)
    b = SchedulerService(get_settings(), tasks=tasks)
    results = await asyncio.gather(a.run_task("once"), b.run_task("once"), a.run_task("once"))
    assert calls == ["once"]
    assert sum(r is not None for r in results) == 1


async def follow(follows: list[tuple[int, str]], inactive: tuple[int, ...] = ()) -> None:
    """Each (user, player) follows as ``/subscribe`` records it; ``inactive`` users blocked the bot."""
    from faceit.keys import FaceitKeys
    from faceit.store import FaceitStore
    from queues.connection import async_redis_client
    from settings import get_settings

    settings = get_settings()
    client = async_redis_client(settings)
    store = FaceitStore(client, FaceitKeys(settings.redis_key_prefix))
    try:
        for user, player in follows:
            await store.subscribe(user, player, player.removeprefix("player-"))
        for user in inactive:
            await store.set_user_inactive(user)
    finally:
        await client.aclose()


async def test_weekly_reports_go_once_per_subscribed_user_after_monday_nine(fresh, redis_client):
    import actors  # noqa: F401
    from queues.manager import get_queue_manager
    from settings import get_settings

    settings = get_settings()
    await follow([(501, "player-a"), (502, "player-a"), (502, "player-b"), (503, "player-b")],
                 inactive=(503,))  # 503 blocked the bot: no report

    service = SchedulerService(settings)
    keys = SchedulerKeys("fb:")
    boundary = weekly_boundary(time.time(), UTC).timestamp()
    redis_client.hset(keys.last_run, "weekly_reports", repr(boundary - 60))  # last check before 09:00
    entry = await service.run_task("weekly_reports")
    assert entry["outcome"] == "ok" and entry["result"] == {"sent": 2}
    jobs, total = get_queue_manager().jobs.list_jobs(actor="analytics_report")
    assert total == 2
    assert sorted(j.kwargs["user_id"] for j in jobs) == [501, 502]
    assert all(j.kwargs["report_type"] == "weekly" for j in jobs)
    assert sorted(j.requesters[0]["chat_id"] for j in jobs) == [501, 502]

    # The same week again (another leader, a rerun): nothing more is sent.
    redis_client.delete(keys.dedupe("weekly_reports"))
    redis_client.hset(keys.last_run, "weekly_reports", repr(boundary - 60))
    entry = await service.run_task("weekly_reports")
    assert entry["result"] == {"sent": 0}
    assert get_queue_manager().jobs.list_jobs(actor="analytics_report")[1] == 2


async def test_a_users_own_weekly_report_starts_while_the_scheduled_one_waits(fresh, redis_client):
    """The scheduled summary shared the coalescing subject of the user's own ``/report weekly``:
    asked while it waited (no worker here takes it), the bot answered "you already asked … in the
    message that answered you first", a message the scheduled run does not have, and started
    nothing. Now the user's request is a job of its own, which their next request joins."""
    import redis.asyncio as aioredis

    import actors  # noqa: F401
    from bot.services import BotServices, Requester
    from queues.manager import get_queue_manager
    from settings import get_settings

    settings = get_settings()
    await follow([(511, "player-a")])
    service = SchedulerService(settings)
    boundary = weekly_boundary(time.time(), UTC).timestamp()
    ctx = TaskContext(name="weekly_reports", now=boundary + 60, last_run=boundary - 60, service=service)
    assert await task_weekly_reports(ctx) == {"sent": 1}
    (scheduled,), _ = get_queue_manager().jobs.list_jobs(actor="analytics_report")
    assert scheduled.status == "queued"

    bot = BotServices(settings, aioredis.Redis.from_url(settings.redis_url, decode_responses=True))
    try:
        asker = Requester(user_id=511, chat_id=511, lang="en")
        own = await bot.start_report(asker, "weekly")
        assert not own.again and not own.coalesced and own.job_id != scheduled.id
        await bot.confirm(own, 511, 901)
        again = await bot.start_report(asker, "weekly")  # their own request is still shared with them
        assert again.again and again.job_id == own.job_id
    finally:
        await bot.drain(stop=True)
        await bot.redis.aclose()
    assert get_queue_manager().get_job(scheduled.id).requesters == [{"user_id": 511, "chat_id": 511}]


async def test_each_weekly_summary_goes_at_monday_nine_in_the_zone_its_user_chose(fresh, redis_client):
    """Followers whose Monday 09:00 fall at different moments (UTC+14 and UTC-12, as ``/tz``
    stores them, and UTC for one who chose none). A check sends the summaries whose moment came
    since its previous run: with the previous run just before the latest moment, only that one's;
    with it before all three, the others' too, and the first is not sent again."""
    import actors  # noqa: F401
    from bot.keys import BotKeys
    from bot.timezones import zone_of
    from queues.manager import get_queue_manager
    from settings import get_settings

    settings = get_settings()
    await follow([(601, "player-a"), (602, "player-a"), (603, "player-a")])
    zones = {601: "UTC+14:00", 602: "UTC-12:00", 603: None}  # 603 never chose one: UTC
    redis_client.hset(BotKeys("fb:").user_timezones(),
                      mapping={str(uid): zone for uid, zone in zones.items() if zone is not None})

    now = time.time()
    due = {uid: weekly_boundary(now, zone_of(zone)).timestamp() for uid, zone in zones.items()}
    later = max(due, key=due.get)
    assert len(set(due.values())) == 3  # three different moments of the week
    service = SchedulerService(settings)
    keys = SchedulerKeys("fb:")

    def sent_to() -> list[int]:
        jobs, _ = get_queue_manager().jobs.list_jobs(actor="analytics_report")
        return sorted(j.kwargs["user_id"] for j in jobs)

    redis_client.hset(keys.last_run, "weekly_reports", repr(due[later] - 60))  # between the two
    assert (await service.run_task("weekly_reports"))["result"] == {"sent": 1}
    assert sent_to() == [later]  # only the one whose 09:00 came since the last check
    redis_client.delete(keys.dedupe("weekly_reports"))
    redis_client.hset(keys.last_run, "weekly_reports", repr(min(due.values()) - 60))  # before all three
    assert (await service.run_task("weekly_reports"))["result"] == {"sent": 2}
    assert sent_to() == [601, 602, 603]
    # Each summary covers its user's week: up to the Monday 09:00 it goes for, in their zone.
    jobs, _ = get_queue_manager().jobs.list_jobs(actor="analytics_report")
    assert {j.kwargs["user_id"]: j.kwargs["period_end"] for j in jobs} == due
    assert {j.kwargs["user_id"]: j.kwargs["period_end"] - j.kwargs["period_start"] for j in jobs} == {
        uid: 7 * 86400 for uid in due}  # from the Monday 09:00 before (none of these zones changes its clock)


async def test_a_user_who_moved_east_past_monday_nine_still_gets_the_weeks_summary(fresh, redis_client):
    """Monday 06:00 UTC; the previous check ran at 05:45. At 05:50 a user in UTC (their 09:00
    still to come) chose UTC+14 with ``/tz``, where Monday 09:00 was Sunday 19:00 UTC, before that
    check: the summary goes at this check, not never. Beside them: a user in UTC+14 all along
    (theirs went on Sunday), one who moved west (their new 09:00 is days old), and one who moved
    east but had this week's already."""
    import actors  # noqa: F401
    from bot.keys import BotKeys
    from queues.manager import get_queue_manager
    from settings import get_settings

    settings = get_settings()
    moved_east, stayed, moved_west, had_it = 801, 802, 803, 804
    await follow([(uid, "player-a") for uid in (moved_east, stayed, moved_west, had_it)])
    zones = {moved_east: "UTC+14:00", stayed: "UTC+14:00", moved_west: "UTC-12:00", had_it: "UTC+14:00"}
    now = datetime(2026, 12, 7, 6, 0, tzinfo=UTC).timestamp()
    last_run, moved_at = now - 15 * 60, now - 10 * 60
    redis_client.hset(BotKeys("fb:").user_timezones(), mapping={str(uid): zone for uid, zone in zones.items()})
    redis_client.hset(BotKeys("fb:").user_timezone_changes(),
                      mapping={str(uid): repr(moved_at) for uid in (moved_east, moved_west, had_it)})
    service = SchedulerService(settings)
    year, week, _ = weekly_boundary(now, ZoneInfo("Etc/GMT-14")).isocalendar()
    redis_client.set(service.keys.weekly_mark(had_it, f"{year}-W{week:02d}"), last_run)

    def sent_to() -> list[int]:
        jobs, _ = get_queue_manager().jobs.list_jobs(actor="analytics_report")
        return sorted(j.kwargs["user_id"] for j in jobs)

    ctx = TaskContext(name="weekly_reports", now=now, last_run=last_run, service=service)
    assert await task_weekly_reports(ctx) == {"sent": 1}
    assert sent_to() == [moved_east]
    later = TaskContext(name="weekly_reports", now=now + 15 * 60, last_run=now, service=service)
    assert await task_weekly_reports(later) == {"sent": 0}  # once a week
    assert sent_to() == [moved_east]


def weekly_key(service: SchedulerService, user_id: int, now: float, tz: tzinfo = UTC) -> str:
    """The key of ``user_id``'s weekly mark in the week of ``now`` in ``tz`` (UTC: a user with no zone)."""
    year, week, _ = weekly_boundary(now, tz).isocalendar()
    return service.keys.weekly_mark(user_id, f"{year}-W{week:02d}")


def zone_whose_week_began_last(now: float) -> str:
    """The whole-hour offset (as ``/tz`` stores it) whose latest Monday 09:00 is the most recent at
    ``now``. Those moments fall from Sunday 19:00 UTC (UTC+14) to Monday 21:00 UTC (UTC-12), so
    that zone's next one is at least 26 hours after ``now``: checks given times up to a day after
    a run a real scheduler made at ``now`` stay in that run's week, whatever the day of the test."""
    offsets = [f"UTC{hours:+03d}:00" for hours in range(-12, 15)]
    return max(offsets, key=lambda name: weekly_boundary(now, zone_of(name)))


async def follow_in_a_zone(client: redis.Redis, users: list[int]) -> tuple[tzinfo, float]:
    """``users`` follow a player, all in the zone of :func:`zone_whose_week_began_last` (chosen with
    ``/tz``); returns that zone and their latest Monday 09:00."""
    from bot.keys import BotKeys

    await follow([(user, "player-a") for user in users])
    name = zone_whose_week_began_last(time.time())
    client.hset(BotKeys("fb:").user_timezones(), mapping={str(user): name for user in users})
    return zone_of(name), weekly_boundary(time.time(), zone_of(name)).timestamp()


def only_the_weekly_check_due(client: redis.Redis, weekly_last_run: float) -> None:
    """Record each of a scheduler's tasks as run just now, but the weekly check as run last at
    ``weekly_last_run``: a scheduler started now runs the weekly check at once, and nothing else
    meanwhile enqueues a job (the match monitoring would, at its first start)."""
    from settings import get_settings

    now = time.time()
    others = {task.name for task in default_tasks(get_settings())} | {"monitor", "alert_relay"}
    client.hset(SchedulerKeys("fb:").last_run, mapping={
        **{name: repr(now) for name in others}, "weekly_reports": repr(weekly_last_run)})


def set_command(key: str) -> bytes:
    """The bytes that open a ``SET`` of ``key`` as a client writes it (RESP): the claim of a week
    not yet claimed (``SET <key> <mark> EX … NX``). The marks are read with ``MGET``: not this."""
    return f"$3\r\nSET\r\n${len(key.encode())}\r\n{key}\r\n".encode()


#: In every enqueue of the Redis broker (the key of its enqueue-once marker), and in nothing else.
BROKER_PUSH = b"__enqueued__"


def scheduler_killed_once_redis_ran(proxy: ReplyDroppingProxy, marker: bytes, log: Path) -> None:
    """Start a real ``scheduler.py`` talking to Redis through ``proxy``, and SIGKILL it once the
    first command carrying ``marker`` has gone on to Redis. The proxy holds that command's reply
    back, so the process dies where it waits for it: Redis ran the command, the scheduler ran
    nothing after it (that is all a kill there leaves)."""
    proxy.hold_reply_to(marker, seconds=30)
    process = start_scheduler(log, REDIS_URL=f"redis://127.0.0.1:{proxy.port}/0",
                              QUEUE_ENABLE_MONITORING="false", WEEKLY_REPORT_CHECK_INTERVAL="1")
    try:
        wait_until(proxy.marker_seen.is_set, timeout=60, what=f"the scheduler's command with {marker!r}")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def broker_keys_refused(client: redis.Redis) -> Iterator[None]:
    """While the block runs, Redis refuses, for real, every command on Dramatiq's keys: the default
    user (every connection of this process, the broker's too) may use our own keys alone
    (``REDIS_KEY_PREFIX``). The broker's enqueue is refused (NOPERM) before it writes anything;
    the job records and the weekly marks, ours, are written as ever: the broker down while the
    rest of Redis answers (as a RabbitMQ broker is down, or the broker's connection lost)."""
    from settings import get_settings

    settings = get_settings()
    assert not settings.dramatiq_namespace.startswith(settings.redis_key_prefix)
    client.execute_command("ACL", "SETUSER", "default", "resetkeys", f"~{settings.redis_key_prefix}*")
    try:
        yield
    finally:
        client.execute_command("ACL", "SETUSER", "default", "resetkeys", "~*")


def weekly_check(service: SchedulerService, now: float, last_run: float) -> TaskContext:
    """A weekly check at ``now`` (injected: the retries are hours apart), the previous at ``last_run``."""
    return TaskContext(name="weekly_reports", now=now, last_run=last_run, service=service)


def fail_job(job_id: str) -> None:
    """End the job ``job_id`` as failed, as a worker records it (FACEIT down through its retries)."""
    from queues.manager import get_queue_manager

    store = get_queue_manager().jobs
    store.finish(job_id, attempt=store.begin(job_id, max_deliveries=9).attempt, status="failed",
                 error={"type": "UpstreamError", "code": "upstream", "message": "FACEIT answered 503"})


def analytics_jobs() -> list:
    from queues.manager import get_queue_manager

    jobs, _ = get_queue_manager().jobs.list_jobs(actor="analytics_report")
    return jobs


async def test_a_failed_weekly_summary_runs_at_most_four_times_in_the_week(fresh, redis_client, start_pool):
    """FACEIT down all Monday: real workers fail each run of a follower's summary (503 through its
    retries). The run is tried again at the first check from 30 min, 1 h, 2 h after the one before,
    and after the fourth failure no fifth is enqueued, however late in the week the check."""
    import actors  # noqa: F401
    from queues.manager import get_queue_manager
    from scheduler import WEEKLY_RETRY_AFTER, WEEKLY_TRIES, WeeklyMark
    from settings import get_settings
    from tests.support.faceit_sandbox import FaceitSandbox

    user = 521
    with FaceitSandbox() as faceit:
        faceit.faults(error_rate=1.0, status=503)
        start_pool(["low"], env=faceit.env())
        await follow([(user, faceit.world()["players"][0]["player_id"])])
        service, store = SchedulerService(get_settings()), get_queue_manager().jobs
        boundary = weekly_boundary(time.time(), UTC).timestamp()
        key = weekly_key(service, user, boundary)
        last_run, now = boundary - 60, boundary + 60
        runs: list[str] = []
        for run in range(1, WEEKLY_TRIES + 1):
            if run > 1:  # not before its time
                early = weekly_check(service, now - 1, last_run)
                assert await task_weekly_reports(early) == {"sent": 0}
            expected = {"sent": 1} if run == 1 else {"sent": 0, "retried": 1}
            assert await task_weekly_reports(weekly_check(service, now, last_run)) == expected
            mark = WeeklyMark.parse(redis_client.get(key))
            assert mark.tries == run and mark.job not in runs
            runs.append(mark.job)
            wait_until(lambda job=mark.job: store.status(job) == "failed", timeout=60, what=f"run {run} failed")
            last_run, now = now, now + WEEKLY_RETRY_AFTER * 2 ** (run - 1)
        for later in (now, now + 86400):  # the fourth failed too: the week is given up
            assert await task_weekly_reports(weekly_check(service, later, later - 900)) == {"sent": 0}
    jobs = analytics_jobs()
    assert sorted(j.id for j in jobs) == sorted(runs) and len(runs) == WEEKLY_TRIES
    assert {(j.status, j.error["code"], j.kwargs["user_id"]) for j in jobs} == {("failed", "upstream", user)}


async def test_a_weekly_summary_whose_enqueue_failed_is_tried_again_at_the_next_check(fresh, redis_client):
    """The broker refuses the run's message (here Redis refuses it, for real: see
    :func:`broker_keys_refused`): the week's mark goes back as it was, so the next check enqueues
    the run, a first one as a retry alike. Kept, the mark would say the run went (a first one) or
    is the failed one's retry (a retry), and the week were lost."""
    import actors  # noqa: F401
    from queues.manager import get_queue_manager
    from scheduler import WEEKLY_RETRY_AFTER, WeeklyMark
    from settings import get_settings

    user = 531
    await follow([(user, "player-a")])
    manager = get_queue_manager()
    service = SchedulerService(get_settings())
    boundary = weekly_boundary(time.time(), UTC).timestamp()
    key = weekly_key(service, user, boundary)
    last_run, now = boundary - 60, boundary + 60

    with broker_keys_refused(redis_client), pytest.raises(redis.exceptions.NoPermissionError):
        await task_weekly_reports(weekly_check(service, now, last_run))  # the first run's message refused
    assert redis_client.get(key) is None  # the week is not taken
    assert [j.status for j in analytics_jobs()] == ["canceled"]  # no record left queued without a message
    # A failed check records no last run: the next one has the same previous run.
    assert await task_weekly_reports(weekly_check(service, now + 900, last_run)) == {"sent": 1}
    first = WeeklyMark.parse(redis_client.get(key))
    assert first.tries == 1 and manager.get_job(first.job).status == "queued"

    fail_job(first.job)
    retry_at = now + 900 + WEEKLY_RETRY_AFTER
    with broker_keys_refused(redis_client), pytest.raises(redis.exceptions.NoPermissionError):
        await task_weekly_reports(weekly_check(service, retry_at, now + 900))  # the retry's message refused
    assert WeeklyMark.parse(redis_client.get(key)) == first  # the failed run's mark, as it was
    assert sorted(j.status for j in analytics_jobs()) == ["canceled", "canceled", "failed"]
    assert await task_weekly_reports(weekly_check(service, retry_at + 900, now + 900)) == {"sent": 0, "retried": 1}
    second = WeeklyMark.parse(redis_client.get(key))
    assert second.tries == 2 and manager.get_job(second.job).status == "queued"


async def test_a_scheduler_killed_between_claiming_the_week_and_enqueueing_leaves_the_run_watched(
        fresh, redis_client, redis_server, tmp_path):
    """The scheduler dies after writing the week's mark, before the run's message is queued. The
    mark names the run's job (given its id before the claim), and that job has no record: once a
    retry's delay has passed, the next check takes the run for failed and enqueues it again (the
    mark had said the summary went: the follower got nothing that week). A check within the delay
    leaves it: the claiming check may still be enqueueing it.

    The kill is real: a ``scheduler.py`` process, SIGKILLed once its claim (the ``SET`` of the
    mark) reached Redis, whose reply it never got. The next scheduler's checks run here, at the
    times given (the retry comes half an hour after the claim)."""
    import actors  # noqa: F401
    from scheduler import WEEKLY_RETRY_AFTER, WeeklyMark
    from settings import get_settings

    user = 541
    zone, boundary = await follow_in_a_zone(redis_client, [user])
    last_run = boundary - 60
    only_the_weekly_check_due(redis_client, weekly_last_run=last_run)
    service = SchedulerService(get_settings())  # the next scheduler
    key = weekly_key(service, user, boundary, zone)
    proxy = ReplyDroppingProxy(redis_server.port)
    try:
        scheduler_killed_once_redis_ran(proxy, set_command(key), tmp_path / "scheduler.log")
    finally:
        proxy.close()
    claim = wait_until(lambda: WeeklyMark.parse(redis_client.get(key)), what="the week's claim")
    assert claim.tries == 1 and claim.pending and claim.job
    assert analytics_jobs() == []  # the week claimed, nothing queued

    assert await task_weekly_reports(weekly_check(service, claim.at + 60, last_run)) == {"sent": 0}
    assert analytics_jobs() == []
    retried = await task_weekly_reports(weekly_check(service, claim.at + WEEKLY_RETRY_AFTER, claim.at + 60))
    assert retried == {"sent": 0, "retried": 1}
    (job,) = analytics_jobs()
    assert job.status == "queued" and job.kwargs == {"user_id": user, "report_type": "weekly", "scheduled": True,
                                                     "period_end": boundary,  # the same week, run later
                                                     "period_start": boundary - 7 * 86400}
    mark = WeeklyMark.parse(redis_client.get(key))
    assert (mark.tries, mark.job, mark.pending) == (2, job.id, False) and job.id != claim.job


async def test_a_run_queued_just_before_the_kill_is_watched_not_doubled(fresh, redis_client, redis_server,
                                                                       tmp_path):
    """The scheduler dies after the run's message went, before the mark said so (two followers,
    one scheduler each). Each run is running, not lost: the next checks enqueue no second one, and
    watch it still, so the one that fails is tried again (the mark had said the summary went).
    The other's record then expires unseen (an hour after it succeeded): once a check saw the run
    queued, a gone record is a run that ended, not one that never came, and is not run again.

    The kills are real: ``scheduler.py`` processes, each SIGKILLed once the push of a run's
    message reached Redis, whose reply it never got. The first dies at the first follower; the
    next finds that run queued, then dies at the second. The next scheduler's checks run here, at
    the times given (the retries come hours apart)."""
    import actors  # noqa: F401
    from actors.brokers import _ENQUEUE_ONCE
    from queues.manager import get_queue_manager
    from scheduler import WEEKLY_RETRY_AFTER, WeeklyMark
    from settings import get_settings

    fails, expires = 551, 552
    zone, boundary = await follow_in_a_zone(redis_client, [fails, expires])
    only_the_weekly_check_due(redis_client, weekly_last_run=boundary - 60)
    manager = get_queue_manager()
    service = SchedulerService(get_settings())  # the next scheduler
    keys = {user: weekly_key(service, user, boundary, zone) for user in (fails, expires)}
    # Redis knows the push's script, as after any earlier enqueue: the reply held is the push's,
    # not the NOSCRIPT that would come first (and then nothing pushed).
    redis_client.script_load(_ENQUEUE_ONCE)
    proxy = ReplyDroppingProxy(redis_server.port)
    try:
        for pushed in (1, 2):
            scheduler_killed_once_redis_ran(proxy, BROKER_PUSH, tmp_path / f"scheduler-{pushed}.log")
            wait_until(lambda n=pushed: manager.queue_stats_of("low").waiting == n,
                       what=f"message {pushed} queued")
    finally:
        proxy.close()
    jobs = {j.kwargs["user_id"]: j.id for j in analytics_jobs()}
    assert sorted(jobs) == [fails, expires] and {j.status for j in analytics_jobs()} == {"queued"}
    assert not WeeklyMark.parse(redis_client.get(keys[fails])).pending  # the next scheduler saw it queued
    assert WeeklyMark.parse(redis_client.get(keys[expires])).pending  # its scheduler died before saying so

    now = time.time()
    later = now + 2 * WEEKLY_RETRY_AFTER
    assert await task_weekly_reports(weekly_check(service, later, now)) == {"sent": 0}
    assert len(analytics_jobs()) == 2
    marks = {user: WeeklyMark.parse(redis_client.get(key)) for user, key in keys.items()}
    assert {user: mark.job for user, mark in marks.items()} == jobs  # still watched: they may fail

    fail_job(jobs[fails])
    redis_client.delete(manager.jobs.job_key(jobs[expires]))  # its record expired, unseen by any check
    assert await task_weekly_reports(weekly_check(service, later + 900, later)) == {"sent": 0, "retried": 1}
    assert await task_weekly_reports(weekly_check(service, later + 86400, later + 900)) == {"sent": 0}
    (retry,) = [j for j in analytics_jobs() if j.id not in jobs.values()]
    assert retry.kwargs["user_id"] == fails and retry.status == "queued"
    assert [j.id for j in analytics_jobs() if j.kwargs["user_id"] == expires] == []  # none again


def test_weekly_due_judges_a_moved_user_by_when_they_moved():
    monday_nine = datetime(2026, 12, 7, 9, 0, tzinfo=UTC).timestamp()  # the user's latest Monday 09:00
    hour = 3600.0
    # Came since the previous check: due, moved or not; still to come: not due.
    assert weekly_due(monday_nine, monday_nine + hour, monday_nine - 60, None)
    assert not weekly_due(monday_nine + hour, monday_nine, monday_nine - 60, None)
    # Came before the previous check: that check sent it, unless the user moved there after it.
    assert not weekly_due(monday_nine, monday_nine + 2 * hour, monday_nine + hour, None)
    assert not weekly_due(monday_nine, monday_nine + 2 * hour, monday_nine + hour,
                          monday_nine + hour - CLOCK_SLACK - 1)
    # A move stamped a little before the check by a bot host whose clock lags counts as after it.
    assert weekly_due(monday_nine, monday_nine + 2 * hour, monday_nine + hour, monday_nine + hour - 1)
    assert weekly_due(monday_nine, monday_nine + 2 * hour, monday_nine + hour, monday_nine + hour + 1)
    # No move shifts 09:00 further than WEEKLY_ZONE_SHIFT (UTC-12 to UTC+14): the old zone's
    # 09:00 can have been missed only by a previous check less than that after the new one. The
    # widest move, made just after that check:
    assert weekly_due(monday_nine, monday_nine + WEEKLY_ZONE_SHIFT + hour, monday_nine + WEEKLY_ZONE_SHIFT - 300,
                      monday_nine + WEEKLY_ZONE_SHIFT + 300)
    # A leader down from between the two 09:00s (the new zone's came first) until a day later,
    # the move made while it was down:
    assert weekly_due(monday_nine, monday_nine + 30 * hour, monday_nine + 3 * hour, monday_nine + 28 * hour)
    # A move west, to a zone whose 09:00 came days before the previous check:
    assert not weekly_due(monday_nine, monday_nine + 3 * 86400, monday_nine + 3 * 86400 - hour,
                          monday_nine + 3 * 86400 - 60)


def test_weekly_boundary_is_monday_nine_in_the_users_time_zone():
    # Wednesday 2024-05-15 12:00 UTC.
    now = datetime(2024, 5, 15, 12, 0, tzinfo=UTC).timestamp()
    assert weekly_boundary(now, UTC) == datetime(2024, 5, 13, 9, 0, tzinfo=UTC)
    tokyo = weekly_boundary(now, ZoneInfo("Asia/Tokyo"))
    assert tokyo.astimezone(UTC) == datetime(2024, 5, 13, 0, 0, tzinfo=UTC)
    # Monday 08:59 in New York: the boundary is still the previous Monday.
    early = datetime(2024, 5, 13, 12, 59, tzinfo=UTC).timestamp()  # 08:59 EDT
    assert weekly_boundary(early, ZoneInfo("America/New_York")).day == 6


async def test_the_leader_keeps_monitoring_while_redis_is_down(redis_server, fresh):
    from settings import get_settings

    calls: list[str] = []
    service = SchedulerService(get_settings(), tasks=[counting_task("monitor", calls, interval=0.3,
                                                                    run_at_start=True)], lock_ttl=1)
    runner = asyncio.ensure_future(service.run())
    await async_wait_until(lambda: service.is_leader and calls, what="the service leads and monitors")
    redis_server.stop()
    try:
        before = len(calls)
        # Down longer than the lock TTL (its key expires meanwhile, and nobody else can take it),
        # and until the monitor ran three more times (it reports the outage).
        outage_outlasts_the_lock = time.monotonic() + 1.5 * service.lock_ttl
        await async_wait_until(
            lambda: time.monotonic() > outage_outlasts_the_lock and len(calls) >= before + 3,
            what="three monitor runs during the outage", timeout=30)
        assert service.is_leader
    finally:
        redis_server.start()
    # Back, Redis holds the lock again, in this leader's name (its renewal took the expired key).
    client = redis_server.client()
    try:
        await async_wait_until(lambda: client.get("fb:scheduler:leader") == service.token.encode(),
                               what="the lock taken again by the leader", timeout=30)
    finally:
        client.close()
    assert service.is_leader
    service.stop()
    await asyncio.wait_for(runner, 10)


async def test_a_monitoring_run_is_not_added_while_one_still_waits(fresh):
    """With no worker on the default queue, each interval queued another run behind the last."""
    import actors  # noqa: F401
    from queues.manager import get_queue_manager
    from scheduler import TaskContext, task_match_monitoring
    from settings import get_settings

    service = SchedulerService(get_settings(), tasks=[])
    context = TaskContext(name="match_monitoring", now=time.time(), last_run=None, service=service)
    first = await task_match_monitoring(context)
    again = await task_match_monitoring(context)
    assert again == {"waiting": first["job_id"]}
    manager = get_queue_manager()
    assert manager.queue_stats()["default"].waiting == 1
    manager.cancel_job(first["job_id"])  # taken (here: gone): the next interval adds one again
    assert "job_id" in await task_match_monitoring(context)


def test_redelivery_sends_again_only_what_failed_for_want_of_telegram_within_its_window(fresh, redis_client):
    """Telegram's failures (its network, its flood control, no token in the worker that tried) of
    jobs younger than the window, and
    only once they failed long enough ago; a delivery that failed for another cause, or of a job
    older than the window, is left to the operator."""
    import actors  # noqa: F401
    from queues.manager import get_queue_manager
    from scheduler import REDELIVERY_AFTER, REDELIVERY_WINDOW, redeliver_failed

    manager = get_queue_manager()
    store = manager.jobs

    def failed_delivery(job_id: str, code: str, enqueued_ago: float = 0.0) -> None:
        store.create_from(store.create_args(job_id, actor="deliver_result", queue="high", args=["j"],
                                            now=time.time() - enqueued_ago))
        store.finish(job_id, attempt=store.begin(job_id, max_deliveries=9).attempt, status="failed",
                     error={"type": "UpstreamError", "code": code, "message": "Telegram unreachable"})

    failed_delivery("d-network", "upstream")
    failed_delivery("d-flood", "rate_limited")
    failed_delivery("d-no-token", "not_configured")
    failed_delivery("d-refused", "auth")
    failed_delivery("d-old", "upstream", enqueued_ago=REDELIVERY_WINDOW)
    assert redeliver_failed(manager, time.time() + 60) == {"requeued": 0}  # failed just now
    assert redeliver_failed(manager, time.time() + REDELIVERY_AFTER) == {"requeued": 3}
    assert {job_id: store.status(job_id) for job_id in ("d-network", "d-flood", "d-no-token", "d-refused", "d-old")} == {
        "d-network": "queued", "d-flood": "queued", "d-no-token": "queued", "d-refused": "failed", "d-old": "failed"}

"""What becomes of a scheduled run when things go wrong around it: the leader steps down while it
runs, Redis does not answer when it is due, it fails; and the hourly cache sweep not piling up.
In process, against the test Redis (stopped and started again for the outage)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from queues.health_texts import tell_alert
from scheduler import SchedulerKeys, SchedulerService, Task, TaskContext, history
from tests.support.waiting import async_wait_until


@pytest.fixture
def settings(fresh):
    from settings import get_settings

    return get_settings()


async def test_a_run_cut_short_when_its_leader_steps_down_is_made_by_the_next_leader(
        settings, redis_client, caplog):
    """Stepping down cancels the running tasks; their dedupe keys stayed, so the next leader
    skipped them as "already run" (an hourly task lost an hour, the 03:30 retention a day), and
    each cancel was an ERROR with a traceback."""
    keys = SchedulerKeys("fb:")
    started: list[str] = []
    finished: list[str] = []

    async def slow(ctx: TaskContext) -> dict:
        started.append(ctx.service.token)
        await asyncio.sleep(3600 if len(started) == 1 else 0)  # the first run is cut short
        finished.append(ctx.service.token)
        return {}

    tasks = [Task("sweep", slow, interval=3600, run_at_start=True)]
    first = SchedulerService(settings, tasks=tasks, lock_ttl=1)
    caplog.set_level(logging.INFO)
    running = asyncio.ensure_future(first.run())
    try:
        await async_wait_until(lambda: started, "the first leader's run to start")
        assert redis_client.get(keys.dedupe("sweep")).startswith(f"{first.token}:")  # this run's claim
        redis_client.set(keys.leader, "elsewhere:1:taken")  # another scheduler holds the lock now
        await async_wait_until(lambda: not first.is_leader, "the first leader to step down")
        await async_wait_until(lambda: redis_client.get(keys.dedupe("sweep")) is None,
                               "the cut run's dedupe key to be let go")
        assert "task sweep: stopped with this scheduler's lead" in caplog.text
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    finally:
        first.stop()
        await asyncio.wait_for(running, 10)

    redis_client.delete(keys.leader)
    second = SchedulerService(settings, tasks=tasks, lock_ttl=1)
    running = asyncio.ensure_future(second.run())
    try:
        await async_wait_until(lambda: finished, "the next leader to make the run")
        assert finished == [second.token] and "skipped (already run" not in caplog.text
    finally:
        second.stop()
        await asyncio.wait_for(running, 10)


async def test_a_run_skipped_while_redis_was_down_is_made_soon_after_it_is_back(
        settings, redis_server, redis_client, caplog):
    """A run due while Redis did not answer was skipped until its next period: an hour for the
    cache sweep, a day for the retention. It is now tried again within ``redis_skip_retry``."""
    keys = SchedulerKeys("fb:")
    calls: list[float] = []

    async def hourly(ctx: TaskContext) -> dict:
        calls.append(time.time())
        return {}

    redis_client.hset(keys.last_run, "hourly", repr(time.time() - 3600 + 2))  # due in 2 s
    service = SchedulerService(settings, tasks=[Task("hourly", hourly, interval=3600)], lock_ttl=1,
                               redis_skip_retry=0.3)
    caplog.set_level(logging.WARNING, logger="scheduler")
    running = asyncio.ensure_future(service.run())
    try:
        await async_wait_until(lambda: service.is_leader, "the service to lead")
        redis_server.stop()
        try:
            await async_wait_until(lambda: "task hourly skipped: Redis unreachable" in caplog.text,
                                   "the due run to meet the outage", timeout=15)
            assert calls == []
        finally:
            redis_server.start()
        await async_wait_until(lambda: calls, "the skipped run to be made", timeout=15)
        assert len(calls) == 1
    finally:
        service.stop()
        await asyncio.wait_for(running, 10)


async def test_a_run_whose_claim_reached_redis_but_whose_reply_was_lost_still_runs(
        settings, redis_server) -> None:
    """redis-py sends a command again after a connection error. The claim's SET NX had landed, so
    the second try found the key taken, by this very run, which was skipped as "already run": an
    hour of cache sweep, a day of retention, with no retry and nothing said."""
    import redis

    from tests.support.reply_dropper import ReplyDroppingProxy

    calls: list[str] = []

    async def hourly(ctx: TaskContext) -> dict:
        calls.append(ctx.name)
        return {}

    proxy = ReplyDroppingProxy(redis_server.port)
    client = redis.Redis(host="127.0.0.1", port=proxy.port, decode_responses=True)
    try:
        service = SchedulerService(settings, client=client, tasks=[Task("hourly", hourly, interval=3600)])
        proxy.drop_reply_to(b"scheduler:dedupe:hourly")
        entry = await service.run_task("hourly")
        assert proxy.dropped == 1  # the fault hit: Redis ran the claim, its reply never came
        assert entry is not None and entry["outcome"] == "ok" and calls == ["hourly"]
        assert await service.run_task("hourly") is None and calls == ["hourly"]  # a second run is still one too many
    finally:
        client.close()
        proxy.close()


async def test_a_failing_task_raises_an_alert_its_next_good_run_resolves(settings, redis_client) -> None:
    """A task that failed every run (the weekly summaries, the retention) showed only in the log."""
    from queues.runtime import get_alert_store

    outcomes = iter([RuntimeError("the summary broke"), None])

    async def flaky(ctx: TaskContext) -> dict:
        error = next(outcomes)
        if error:
            raise error
        return {}

    keys = SchedulerKeys("fb:")
    service = SchedulerService(settings, tasks=[Task("weekly", flaky, interval=900)])
    entry = await service.run_task("weekly")
    assert entry is not None and entry["outcome"].startswith("error: RuntimeError")
    alerts = get_alert_store(settings)
    [alert] = alerts.open_alerts()
    assert (alert.level, alert.source, alert.rule, alert.subject) == ("error", "scheduler", "scheduler_task", "weekly")
    assert alert.message == "scheduled task weekly failed: RuntimeError: the summary broke"
    assert tell_alert(alert, "ru") == "плановая задача weekly завершилась ошибкой: RuntimeError: the summary broke"

    redis_client.delete(keys.dedupe("weekly"))  # the next period
    assert (await service.run_task("weekly"))["outcome"] == "ok"
    assert alerts.open_alerts() == []
    assert [a.state for a in alerts.recent(1) if a.rule == "scheduler_task"] == ["resolved", "fired"]
    assert [h["outcome"][:5] for h in history(redis_client, "fb:")] == ["ok", "error"]


async def test_admin_status_shows_the_leader_and_each_tasks_last_run(settings, redis_client) -> None:
    """The runs' history was kept "for the admin tool", which never read it."""
    import json

    from click.testing import CliRunner

    from admin import cli
    from tests.ops.conftest import reset_singletons

    async def broken(ctx: TaskContext) -> dict:
        raise RuntimeError("no summaries this week")

    async def fine(ctx: TaskContext) -> dict:
        return {}

    service = SchedulerService(settings, tasks=[Task("weekly", broken, interval=900),
                                                Task("cache", fine, interval=3600),
                                                Task("monitor", fine, interval=0.001)])
    await service.run_task("weekly")
    await service.run_task("cache")
    for _ in range(210):  # the monitor's runs fill the history past what it keeps (200)
        redis_client.delete(SchedulerKeys("fb:").dedupe("monitor"))
        await service.run_task("monitor")
    assert {h["task"] for h in history(redis_client, "fb:")} == {"monitor"}
    reset_singletons()
    shown = await asyncio.to_thread(CliRunner().invoke, cli, ["status", "--json"])
    state = json.loads(shown.stdout)["scheduler"]
    assert state["leader"] is None
    assert state["tasks"]["weekly"]["last_outcome"] == "error: RuntimeError: no summaries this week"
    assert state["tasks"]["weekly"]["last_ok"] is None
    assert state["tasks"]["cache"]["last_outcome"] == "ok" and state["tasks"]["cache"]["last_ok"] > 0
    text = (await asyncio.to_thread(CliRunner().invoke, cli, ["status"])).stdout
    assert "scheduler: no leader (is python scheduler.py running?)" in text
    assert "no summaries this week" in text

    redis_client.set(SchedulerKeys("fb:").leader, service.token)
    text = (await asyncio.to_thread(CliRunner().invoke, cli, ["status"])).stdout
    assert f"scheduler: leader {service.token}" in text


async def test_the_hourly_cache_sweep_is_not_added_while_one_still_waits(settings) -> None:
    """With the low queue not drained, one sweep of every followed player queued per hour; when it
    moved again they ran back to back, each spending the shared FACEIT rate limit."""
    import actors  # noqa: F401
    from queues.manager import get_queue_manager
    from scheduler import task_cache_update

    service = SchedulerService(settings, tasks=[])
    context = TaskContext(name="cache_update", now=time.time(), last_run=None, service=service)
    first = await task_cache_update(context)
    assert await task_cache_update(context) == {"waiting": first["job_id"]}
    manager = get_queue_manager()
    assert manager.queue_stats()["low"].waiting == 1
    named = manager.enqueue_cache_update("player", ["p-1"])  # a refresh of named players is its own job
    assert not named.coalesced and manager.queue_stats()["low"].waiting == 2
    manager.cancel_job(first["job_id"])  # taken (here: gone): the next hour adds one again
    assert "job_id" in await task_cache_update(context)

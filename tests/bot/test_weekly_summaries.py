"""The scheduler's weekly summaries end to end: its check (``task_weekly_reports``, run here in
process with the times it is given) enqueues them, real workers build them against the FACEIT
sandbox, and the bot's delivery sends them through the Telegram sandbox.

A summary nobody asked for says nothing when there is nothing to report, and nothing when it
fails: the scheduler tries again at a later check instead.

The scheduler's redelivery (``task_redelivery``) is here too: a delivery that failed because
Telegram could not be reached is sent again once Telegram answers.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC
from typing import Any

import pytest

import scheduler
from scheduler import SchedulerService, TaskContext, task_weekly_reports, weekly_boundary
from tests.bot.conftest import Stack, is_final_text, new_user
from tests.support.waiting import wait_until

#: A followed player FACEIT knows no match of (none this week): their follower's week is empty.
IDLE_PLAYER = "00000000-0000-4000-8000-0000000000aa"


@pytest.fixture
def week(stack: Stack) -> float:
    """This week's Monday 09:00 UTC; no follower or weekly mark of an earlier test is left (each
    check here runs for every follower there is)."""
    for pattern in ("fb:faceit:subs:*", "fb:scheduler:*"):
        keys = list(stack.redis.scan_iter(pattern, count=1000))
        if keys:
            stack.redis.delete(*keys)
    return weekly_boundary(time.time(), UTC).timestamp()


def follow(user_id: int, player_id: str, nickname: str) -> None:
    """``user_id`` follows the player, as ``/subscribe`` records it (no message to the user)."""
    from faceit.keys import FaceitKeys
    from faceit.store import FaceitStore
    from queues.connection import async_redis_client
    from settings import get_settings

    async def run() -> None:
        settings = get_settings()
        client = async_redis_client(settings)
        try:
            await FaceitStore(client, FaceitKeys(settings.redis_key_prefix)).subscribe(user_id, player_id, nickname)
        finally:
            await client.aclose()

    asyncio.run(run())


def weekly_check(now: float, last_run: float) -> dict[str, Any]:
    """One run of the scheduler's weekly check at ``now``, the previous one at ``last_run``."""
    import actors  # noqa: F401
    from queues.runtime import reset_runtime
    from settings import get_settings

    reset_runtime()
    service = SchedulerService(get_settings())
    return asyncio.run(task_weekly_reports(TaskContext(name="weekly_reports", now=now, last_run=last_run,
                                                       service=service)))


def report_jobs(stack: Stack, user_id: int) -> list[dict[str, str]]:
    """The user's summary jobs, oldest first."""
    records = [stack.job(job_id) for job_id in stack.job_ids_of(user_id)]
    return [r for r in records if r.get("actor") == "analytics_report"]


def delivered(stack: Stack, job_id: str) -> dict[str, Any]:
    """The result of the job's delivery, once it ended."""
    ended = wait_until(lambda: [d for d in stack.deliveries_of(job_id) if d.get("status") == "succeeded"],
                       timeout=20, what="the delivery's end")
    return json.loads(ended[0]["result"])


def summaries(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The weekly summaries among a chat's messages."""
    return [e for e in events if e["kind"] in ("sent", "edited") and "📅" in (e["text"] or "")]


def test_a_scheduled_summary_with_nothing_to_report_is_not_sent(stack: Stack, week: float):
    """Every follower got a Monday summary, even of a week with no match of any player they
    follow and no analysis of theirs. Now only one with something in it goes; asked for with
    ``/report weekly``, the empty one still answers."""
    busy, idle = new_user(), new_user()
    player = stack.world["players"][4]  # plays every other day in the sandbox: matches this week
    follow(busy, player["player_id"], player["nickname"])
    follow(idle, IDLE_PLAYER, "idle_player")
    assert weekly_check(week + 60, week - 60) == {"sent": 2}
    (busy_job,), (idle_job,) = report_jobs(stack, busy), report_jobs(stack, idle)
    stack.wait_job(busy_job["id"], "succeeded")
    stack.wait_job(idle_job["id"], "succeeded")
    assert delivered(stack, busy_job["id"])["sent"] == 1
    assert delivered(stack, idle_job["id"])["sent"] == 0
    (summary,) = stack.wait(busy, summaries)
    assert player["nickname"] in summary["text"]
    assert stack.events(idle) == []
    stack.say(idle, "/report weekly")  # their own request: answered, zeros and all
    asked = stack.first_reply(idle)
    answer = stack.final_of(idle, asked["message_id"])
    assert "📅" in answer["text"] and "idle_player" in answer["text"]


def test_a_scheduled_summary_that_failed_says_nothing_and_is_tried_again(stack: Stack, week: float,
                                                                         faceit_faults):
    """FACEIT down at Monday 09:00: the summary failed, its user (who asked for nothing) got "❌
    Report failed: FACEIT is not answering…", and the week's mark kept it from ever being tried
    again. Now the failure says nothing, and a later check runs it again."""
    user = new_user()
    player = stack.world["players"][5]
    follow(user, player["player_id"], player["nickname"])
    faceit_faults(error_rate=1.0, status=503)
    stack.clear_faceit_cache()
    first_check = week + 60
    assert weekly_check(first_check, week - 60) == {"sent": 1}
    (failed,) = report_jobs(stack, user)
    stack.wait_job(failed["id"], "failed")
    assert delivered(stack, failed["id"])["sent"] == 0
    assert stack.events(user) == []  # no failure note for a summary they never asked for
    faceit_faults()  # FACEIT answers again
    assert weekly_check(first_check + 900, first_check) == {"sent": 0}  # too soon to try again
    retry_after = scheduler.WEEKLY_RETRY_AFTER
    assert weekly_check(first_check + retry_after, first_check + 900) == {"sent": 0, "retried": 1}
    retry = next(job for job in report_jobs(stack, user) if job["id"] != failed["id"])
    stack.wait_job(retry["id"], "succeeded")
    (summary,) = stack.wait(user, summaries)
    assert is_final_text(summary["text"]) and player["nickname"] in summary["text"]
    later = first_check + 2 * retry_after
    assert weekly_check(later, later - 900) == {"sent": 0}  # sent: once a week again
    assert len(report_jobs(stack, user)) == 2


def test_a_delivery_that_failed_while_telegram_was_unreachable_is_sent_again(stack: Stack, tmp_path):
    """A Telegram outage longer than a delivery's own retries (about 10 minutes) failed it for good:
    the user's message stayed at "queued" and the result never came. The scheduler's redelivery
    sends it again once it has failed 15 minutes ago, and only what is still due."""
    import actors  # noqa: F401
    from queues.runtime import reset_runtime
    from settings import get_settings
    from tests.bot.conftest import base_env
    from tests.support.redis_server import free_port
    from tests.support.workers import WorkerPool

    def redelivery(now: float) -> dict[str, Any]:
        reset_runtime()
        service = SchedulerService(get_settings())
        return asyncio.run(scheduler.task_redelivery(TaskContext(name="redelivery", now=now, last_run=now - 300,
                                                                 service=service)))

    def pool(log: str, **env: str) -> WorkerPool:
        return WorkerPool(queues=["high", "default", "low"], processes=1, threads=8, modules=(),
                          env=base_env(stack.tg, stack.faceit, **env), log_path=tmp_path / log).start()

    user, player = new_user(), stack.world["players"][6]
    stack.pool.stop(graceful=False)
    stack.pool = pool("cut-off.log", TELEGRAM_API_URL=f"http://127.0.0.1:{free_port()}")  # nobody listens
    stack.say(user, f"/player {player['nickname']}")
    asked = stack.first_reply(user)  # the bot itself reaches Telegram
    (job_id,) = stack.job_ids_of(user)
    stack.wait_job(job_id, "succeeded")
    failed = wait_until(lambda: [d for d in stack.deliveries_of(job_id) if d.get("status") == "failed"],
                        timeout=60, what="the delivery failed for good")
    assert json.loads(failed[0]["error"])["code"] == "upstream"
    assert not is_final_text(stack.events(user)[-1]["text"])  # the user still looks at "queued"
    assert redelivery(time.time()) == {"requeued": 0}  # too soon: the outage may go on

    stack.pool.stop(graceful=False)
    stack.pool = pool("back.log")  # Telegram answers again
    assert redelivery(time.time() + scheduler.REDELIVERY_AFTER) == {"requeued": 1}
    answer = stack.final_of(user, asked["message_id"])
    assert player["nickname"] in answer["text"]
    wait_until(lambda: [d for d in stack.deliveries_of(job_id) if d.get("status") == "succeeded"],
               timeout=30, what="the delivery sent again")
    assert redelivery(time.time() + scheduler.REDELIVERY_AFTER) == {"requeued": 0}  # nothing failed now

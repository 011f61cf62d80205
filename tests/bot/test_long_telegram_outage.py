"""A Telegram outage longer than a succeeded job's record lives (``QUEUE_RESULT_TTL``, an hour).

A delivery retries for about ten minutes, then the scheduler's redelivery sends it again for up
to three hours (``scheduler.REDELIVERY_WINDOW``). The result it sends is read from the job's
record, which expired an hour after the job: the redelivery found it gone, logged a warning and
passed for delivered, and the user's message stayed at its progress line for good.

Here the record lives ``RESULT_TTL`` seconds and the workers' delivery retries are a blink, so a
whole outage fits in seconds: real workers (first cut off from Telegram, then reaching the
sandbox Bot API), the real bot process, and the scheduler's redelivery run in process.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

import scheduler
from scheduler import SchedulerService, TaskContext
from tests.bot.conftest import Stack, base_env, is_final_text, new_user
from tests.support.redis_server import free_port
from tests.support.waiting import wait_until
from tests.support.workers import WorkerPool

#: Seconds a succeeded job's record lives in these workers (an hour in production).
RESULT_TTL = 3
#: The workers' delivery retries: eight of them in well under a second (about ten minutes in production).
FAST_RETRIES = "0.05"


def redelivery(now: float) -> dict[str, Any]:
    """One run of the scheduler's redelivery at ``now``."""
    import actors  # noqa: F401
    from queues.runtime import reset_runtime
    from settings import get_settings

    reset_runtime()
    service = SchedulerService(get_settings())
    return asyncio.run(scheduler.task_redelivery(TaskContext(name="redelivery", now=now, last_run=now - 300,
                                                             service=service)))


def restart_pool(stack: Stack, log: Path, **env: str) -> None:
    """Replace the module's workers with a pool of short-lived results and quick retries."""
    stack.pool.stop(graceful=False)
    stack.pool = WorkerPool(queues=["high", "default", "low"], processes=1, threads=8, modules=(),
                            env=base_env(stack.tg, stack.faceit, QUEUE_RESULT_TTL=str(RESULT_TTL),
                                         QUEUE_RETRY_DELAYS=FAST_RETRIES, **env),
                            log_path=log).start()


def failed_during_outage(stack: Stack, tmp_path: Path, player: dict[str, Any]) -> tuple[int, dict[str, Any], str,
                                                                                         dict[str, str]]:
    """A user asks for ``player`` while the workers cannot reach Telegram: the job succeeds, its
    delivery fails for good. (user, the bot's first answer, job id, the delivery's record)."""
    user = new_user()
    restart_pool(stack, tmp_path / "cut-off.log", TELEGRAM_API_URL=f"http://127.0.0.1:{free_port()}")  # nobody listens
    stack.say(user, f"/player {player['nickname']}")
    asked = stack.first_reply(user)  # the bot itself reaches Telegram
    (job_id,) = stack.job_ids_of(user)
    stack.wait_job(job_id, "succeeded")
    (delivery,) = wait_until(lambda: [d for d in stack.deliveries_of(job_id) if d.get("status") in ("failed", "succeeded")],
                             timeout=20, what="the delivery's end")
    assert delivery["status"] == "failed" and json.loads(delivery["error"])["code"] == "upstream"
    assert not is_final_text(stack.events(user)[-1]["text"])  # the user still looks at "queued"
    return user, asked, job_id, delivery


def test_a_result_still_owed_after_its_record_would_have_expired_is_delivered(stack: Stack, tmp_path):
    """Telegram came back after the record's lifetime, within the redelivery window: the result goes."""
    player = stack.world["players"][2]
    user, asked, job_id, _ = failed_during_outage(stack, tmp_path, player)
    finished = float(stack.job(job_id)["finished_at"])
    wait_until(lambda: time.time() > finished + RESULT_TTL + 1, timeout=RESULT_TTL + 5,
               what="the record's lifetime over")

    restart_pool(stack, tmp_path / "back.log")  # Telegram answers again
    assert redelivery(time.time() + scheduler.REDELIVERY_AFTER) == {"requeued": 1}
    answer = stack.final_of(user, asked["message_id"], timeout=15)
    assert player["nickname"] in answer["text"]
    (delivery,) = wait_until(lambda: [d for d in stack.deliveries_of(job_id) if d.get("status") == "succeeded"],
                             timeout=15, what="the delivery sent again")
    assert json.loads(delivery["result"])["sent"] >= 1
    # The failed delivery kept the record through the whole redelivery window (and no longer
    # than a few hours: not forever).
    left = stack.redis.ttl(f"fb:job:{job_id}")
    assert scheduler.REDELIVERY_WINDOW < left <= scheduler.REDELIVERY_WINDOW + 2 * 3600
    assert redelivery(time.time() + scheduler.REDELIVERY_AFTER) == {"requeued": 0}  # nothing failed now


def test_a_result_whose_record_is_gone_before_delivery_fails_the_delivery_with_an_alert(stack: Stack, tmp_path):
    """The record is gone all the same (evicted, a Redis that lost its data): the result cannot be
    sent, and nobody got it. That delivery passed for done, with a warning in a worker's log; now
    it fails with an error alert, and is not sent again."""
    from queues.runtime import get_alert_store, reset_runtime

    player = stack.world["players"][3]
    user, _asked, job_id, delivery = failed_during_outage(stack, tmp_path, player)
    stack.redis.delete(f"fb:job:{job_id}")

    restart_pool(stack, tmp_path / "back.log")
    assert redelivery(time.time() + scheduler.REDELIVERY_AFTER) == {"requeued": 1}

    def ended() -> dict[str, str] | None:
        record = stack.job(delivery["id"])
        if record.get("status") == "succeeded":
            return record
        if record.get("status") == "failed" and json.loads(record["error"])["code"] != "upstream":
            return record
        return None

    again = wait_until(ended, timeout=15, what="the redelivery's end")
    assert again["status"] == "failed", f"the lost result passed for delivered: {again.get('result')}"
    assert json.loads(again["error"])["code"] == "result_lost"
    reset_runtime()
    alerts = [a for a in get_alert_store().recent(1, level="error")
              if a.job_id == delivery["id"] and a.details.get("error_type") == "ResultLostError"]
    assert len(alerts) == 1
    assert not is_final_text(stack.events(user)[-1]["text"])
    assert redelivery(time.time() + scheduler.REDELIVERY_AFTER) == {"requeued": 0}  # nothing left to send


def test_keeping_an_owed_record_never_shortens_a_longer_lifetime_nor_makes_one(stack: Stack):
    """The store's keep (on real Redis): a record about to expire is kept the redelivery window
    and more, a longer or no TTL stays, and a record already gone is not brought back."""
    from queues.jobstore import KEEP_OWED, OWED_TTL

    keep = stack.redis.register_script(KEEP_OWED)
    short, long_, forever, gone = (f"fb:test:owed:{name}" for name in ("short", "long", "forever", "gone"))
    stack.redis.hset(short, "status", "succeeded")
    stack.redis.expire(short, RESULT_TTL)
    stack.redis.hset(long_, "status", "failed")
    stack.redis.expire(long_, OWED_TTL * 5)
    stack.redis.hset(forever, "status", "succeeded")
    assert keep(keys=[short, gone], args=[OWED_TTL]) == OWED_TTL
    assert OWED_TTL > scheduler.REDELIVERY_WINDOW + scheduler.REDELIVERY_AFTER
    assert OWED_TTL - 2 <= stack.redis.ttl(short) <= OWED_TTL
    assert keep(keys=[long_], args=[OWED_TTL]) > OWED_TTL * 4
    assert keep(keys=[forever], args=[OWED_TTL]) == -1
    assert keep(keys=[gone], args=[OWED_TTL]) == -2 and not stack.redis.exists(gone)
    # The owed mark: written (with the keep's TTL on a new markers hash) only while the record exists.
    marks, lost_marks = "fb:test:owed:marks", "fb:test:owed:lost-marks"
    keep(keys=[short, marks], args=[OWED_TTL, "owed"])
    assert stack.redis.hkeys(marks) == ["owed"] and OWED_TTL - 2 <= stack.redis.ttl(marks) <= OWED_TTL
    keep(keys=[gone, lost_marks], args=[OWED_TTL, "owed"])
    assert not stack.redis.exists(lost_marks)
    stack.redis.delete(short, long_, forever, marks)


def test_a_record_gone_after_its_delivery_served_someone_is_not_a_lost_result(stack: Stack):
    """Without the record nobody can tell whom else it owed: a marker of a first part sent (an
    earlier attempt got that far, then its worker died) keeps the old answer, a warning and
    "missing"; so does a record gone with no failed attempt before (a delivery that waited in a
    backlog past the record's hour, maybe with nothing to send: no alarm for it). A failed attempt
    that kept the record (its "owed" mark) and nobody served is a lost result."""
    from bot.delivery import ResultLostError, _record_gone, build_resources
    from settings import get_settings

    async def gone(job_id: str, *marks: str) -> dict[str, Any]:
        res = build_resources(get_settings())
        try:
            for mark in marks:
                await res.mark(job_id, mark)
            return await _record_gone(res, job_id)
        finally:
            await res.close()

    assert asyncio.run(gone("owed-b", "700901:0"))["missing"] is True
    assert asyncio.run(gone("owed-c", "700902:n0.0", "700902:n0.1"))["missing"] is True
    assert asyncio.run(gone("owed-d", "700903:blocked", "owed"))["missing"] is True
    assert asyncio.run(gone("owed-f"))["missing"] is True  # nothing says it was owed
    assert asyncio.run(gone("owed-g", "700904:p0"))["missing"] is True
    for job_id, marks in (("owed-a", ("_run", "700900:detached", "700900:p0", "owed")), ("owed-e", ("owed",))):
        with pytest.raises(ResultLostError):  # nobody was served: a chart alone is no result
            asyncio.run(gone(job_id, *marks))

"""A delivery to more people than it can serve within its time goes on in a new delivery job.

Run in this process against the real sandbox Bot API and the test's Redis, as the workers run
it, with Telegram's overall rate scaled down (10 messages a second) so that 40 recipients take
longer than the delivery's budget. Before, a notice to thousands of followers of one player hit
the 120 s limit at every attempt; past the retries the rest of them never got it.
"""

from __future__ import annotations

import json
import time

from tests.bot.conftest import new_user

TEXT = "<b>Match analysis</b>: the result"


async def _slow_telegram(monkeypatch):
    """The delivery's resources again, Telegram's overall rate at 10 messages a second (no burst):
    what they send within a short budget is known to be a handful."""
    from bot import delivery
    from settings import get_settings

    monkeypatch.setenv("TELEGRAM_GLOBAL_RATE", "10")
    monkeypatch.setenv("TELEGRAM_GLOBAL_BURST", "1")
    get_settings.cache_clear()
    await delivery.close_resources()
    return await delivery.get_resources()


async def _ended_job(res, name: str, users: list[int]) -> str:
    """The record of a match analysis that succeeded, each of ``users`` waiting for its one part."""
    job_id = f"{name}-{users[0]}"
    now = time.time()
    await res.redis.hset(res.job_key(job_id), mapping={
        "status": "succeeded", "actor": "match_analysis", "queue": "high",
        "requesters": json.dumps([{"user_id": u, "chat_id": u, "lang": "en"} for u in users]),
        "result": json.dumps({"kind": "match_analysis", "texts": {"en": [TEXT]}}),
        "enqueued_at": str(now - 30), "finished_at": str(now)})
    await res.redis.expire(res.job_key(job_id), 3600)  # a succeeded job's record: QUEUE_RESULT_TTL
    return job_id


async def test_recipients_past_the_budget_get_their_result_from_a_new_delivery_once(
        delivery_env, telegram_sandbox, redis_client, monkeypatch) -> None:
    from bot import delivery
    from queues.manager import DELIVERY_ACTOR

    res = await _slow_telegram(monkeypatch)
    users = [new_user() for _ in range(40)]
    job_id = await _ended_job(res, "continues", users)

    first = await delivery.deliver_job(job_id, budget=0.5)  # at 10/s, 40 sends take 4 s
    assert first["sent"] > 0 and first["left"] > 0 and first["sent"] + first["left"] == 40
    # Kept as a failed delivery's record is: a chain of continuations outlived the hour it had.
    assert redis_client.ttl(res.job_key(job_id)) > 3600
    [queued] = redis_client.lrange("dramatiq:high", 0, -1)  # the continuation, as the trigger sends it
    message = json.loads(redis_client.hget("dramatiq:high.msgs", queued))
    assert (message["actor_name"], message["args"]) == (DELIVERY_ACTOR, [job_id])

    rest = await delivery.deliver_job(job_id)  # what the continuation runs
    assert (rest["sent"], rest["already_sent"], rest.get("left", 0)) == (first["left"], first["sent"], 0)
    for user in users:
        assert [e.get("text") for e in await telegram_sandbox.messages_async(user)] == [TEXT]


async def test_a_delivery_that_began_nobody_within_its_budget_is_retried_not_continued(
        delivery_env, redis_client) -> None:
    """With nothing sent, a new delivery would only loop; the retry schedule takes it on."""
    import pytest

    from bot import delivery
    from faceit.errors import UpstreamError

    res, user = delivery_env, new_user()
    job_id = await _ended_job(res, "continues-none", [user])
    with pytest.raises(UpstreamError, match="1 left"):
        await delivery.deliver_job(job_id, budget=-1.0)
    assert redis_client.llen("dramatiq:high") == 0


async def test_the_budget_counts_the_wait_for_another_deliverys_lease(delivery_env, telegram_sandbox) -> None:
    """The budget started once the lease was held: a delivery that first waited out another one's
    lease (up to 22.5 s) began recipients well past its share of the time limit."""
    import asyncio

    import pytest

    from bot import delivery
    from faceit.errors import UpstreamError

    res, user = delivery_env, new_user()
    job_id = await _ended_job(res, "continues-lease", [user])
    held = asyncio.Event()

    async def other_delivery() -> None:  # holds the job's lease for 1 s
        async with res.leases.hold(res.keys.delivering(job_id), job_id):
            held.set()
            await asyncio.sleep(1.0)

    holder = asyncio.create_task(other_delivery())
    await held.wait()
    with pytest.raises(UpstreamError, match="1 left"):  # its 0.5 s went on the wait: nobody begun
        await delivery.deliver_job(job_id, budget=0.5)
    await holder
    assert await telegram_sandbox.messages_async(user) == []
    assert (await delivery.deliver_job(job_id))["sent"] == 1  # the retry sends it


async def test_a_continuation_passes_over_the_followers_already_told_without_asking_redis(
        delivery_env, telegram_sandbox, redis_client, monkeypatch) -> None:
    """Each continuation asked Redis four times about every follower an earlier one had told
    (language, still following, the told claim twice) before skipping them: with tens of
    thousands served, a continuation spent its whole time on them and sent nothing."""
    from bot import delivery
    from faceit import store

    res = await _slow_telegram(monkeypatch)
    followers = [new_user() for _ in range(30)]
    for user in followers:
        await store.subscribe(user, "p-popular", "Popular")
    notes = [{"user_id": u, "player_id": "p-popular", "match_id": "1-match", "texts": {"en": ["won"], "ru": ["победа"]}}
             for u in followers]
    job_id = f"continues-notes-{followers[0]}"
    now = time.time()
    await res.redis.hset(res.job_key(job_id), mapping={
        "status": "succeeded", "actor": "match_monitoring", "queue": "default", "requesters": "[]",
        "result": json.dumps({"kind": "match_monitoring", "texts": {"en": ["run"]}, "notifications": notes,
                              "marks": {}}),
        "enqueued_at": str(now - 30), "finished_at": str(now)})
    first = await delivery.deliver_job(job_id, budget=0.5)
    assert first["sent"] > 0 and first["left"] > 0
    redis_client.config_resetstat()
    rest = await delivery.deliver_job(job_id)
    asked = {name: int(v["calls"]) for name, v in redis_client.info("commandstats").items()
             if name == "cmdstat_hexists"}
    assert (rest["sent"], rest["already_sent"]) == (first["left"], first["sent"])
    assert asked.get("cmdstat_hexists", 0) == first["left"]  # "still following?": only those left
    for user in followers:
        assert [e.get("text") for e in await telegram_sandbox.messages_async(user)] == ["won"]

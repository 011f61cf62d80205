"""What a delivery does when Telegram refuses a part, and the progress edits' end.

Run in this process against the real sandbox Bot API and the test's Redis, as the workers run
them: a group that became a supergroup while its job ran gets the result there; a part Telegram
refuses for good is dropped and counted as refused, not as sent; a delivery finished by its
retry counts the analysis once; an edit of a job's progress never outlives the progress call
that made it; a chart whose caption markup Telegram cannot read goes with a plain caption.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from aiohttp import web

from bot.botapi import BadRequest, BotAPI, ChatMigrated, FloodControl
from sandbox.telegram_api import SANDBOX_BOT_TOKEN
from tests.bot.conftest import new_user
from tests.support.png import make_png
from tests.support.redis_server import free_port

RESULT_TEXTS = ["<b>Match analysis</b>: first part", "second part of the analysis"]


async def _succeeded_job(res: Any, requesters: list[dict[str, Any]], photo: bytes | None = None) -> str:
    job_id = f"refusals-{new_user()}"
    photo = make_png(1, 1) if photo is None else photo
    result = {"kind": "match_analysis", "texts": {"en": RESULT_TEXTS},
              "photos": [{"png_b64": base64.b64encode(photo).decode(), "caption": {"en": "the chart"}}]}
    now = time.time()
    await res.redis.hset(res.job_key(job_id), mapping={
        "status": "succeeded", "actor": "match_analysis", "queue": "default",
        "requesters": json.dumps(requesters), "result": json.dumps(result),
        "enqueued_at": str(now - 30), "finished_at": str(now)})
    return job_id


async def test_a_group_upgraded_to_a_supergroup_while_its_job_ran_gets_the_result_there(delivery_env,
                                                                                       telegram_sandbox):
    """Making a member an admin or turning on topics upgrades a group, with a new chat id: the old
    one refuses every call. The result used to be refused there, dropped, and counted as sent."""
    from bot.delivery import deliver_job

    res, user = delivery_env, new_user()
    group = -(500_000 + user)  # a basic group (a supergroup's id starts with -100)
    asked = await telegram_sandbox.inject_async(user, "/analyze 1-abc", chat_id=group)
    queued = await res.api.send_message(group, "⏳ queued", reply_to=asked["message_id"])
    job_id = await _succeeded_job(res, [{"user_id": user, "chat_id": group, "message_id": queued["message_id"],
                                         "reply_to": asked["message_id"], "lang": "en"}])
    supergroup = telegram_sandbox.migrate(group, user)

    summary = await deliver_job(job_id)

    moved = await telegram_sandbox.messages_async(supergroup)
    assert [(e["kind"], e.get("text") or e.get("caption")) for e in moved] == [
        ("sent", RESULT_TEXTS[0]), ("sent", "second part of the analysis"), ("photo", "the chart")]
    assert [e["kind"] for e in await telegram_sandbox.messages_async(group)] == ["sent"]  # the job message only
    assert (summary["sent"], summary["refused"], summary["chats_gone"]) == (3, 0, [])
    again = await deliver_job(job_id)  # a retried delivery sends none of it again
    assert (again["sent"], again["already_sent"]) == (0, 3)
    assert len(await telegram_sandbox.messages_async(supergroup)) == 3


async def test_a_result_whose_job_message_was_deleted_in_a_group_answers_the_members_command(delivery_env,
                                                                                             telegram_sandbox):
    """The result comes as a new message then; it used to answer nobody, lost among the group's."""
    from bot.delivery import deliver_job

    res, user = delivery_env, new_user()
    group = -1_000_000_000_000 - user
    asked = await telegram_sandbox.inject_async(user, "/analyze 1-abc", chat_id=group)
    queued = await res.api.send_message(group, "⏳ queued", reply_to=asked["message_id"])
    await res.api.call("deleteMessage", {"chat_id": group, "message_id": queued["message_id"]})
    job_id = await _succeeded_job(res, [{"user_id": user, "chat_id": group, "message_id": queued["message_id"],
                                         "reply_to": asked["message_id"], "lang": "en"}])

    await deliver_job(job_id)

    sent = [e for e in await telegram_sandbox.messages_async(group) if e["kind"] == "sent"][1:]
    assert sent[0]["text"] == RESULT_TEXTS[0]
    assert sent[0]["message"]["reply_to_message"]["message_id"] == asked["message_id"]


async def test_a_part_telegram_refuses_for_good_is_counted_as_refused_and_the_others_go(delivery_env,
                                                                                     telegram_sandbox):
    from bot.delivery import deliver_job

    res, user = delivery_env, new_user()
    queued = await res.api.send_message(user, "⏳ queued")
    job_id = await _succeeded_job(res, [{"user_id": user, "chat_id": user, "message_id": queued["message_id"],
                                         "lang": "en"}], photo=b"not an image")

    summary = await deliver_job(job_id)

    assert (summary["sent"], summary["refused"]) == (2, 1)
    events = await telegram_sandbox.messages_async(user)
    assert [e["kind"] for e in events] == ["sent", "edited", "sent"]  # no photo
    assert (await deliver_job(job_id))["already_sent"] == 3  # marked: not tried again


async def test_a_result_whose_markup_telegram_cannot_read_replaces_the_job_message_as_plain_text(
        delivery_env, telegram_sandbox):
    """Broken HTML (a renderer's bug) is refused whole; the text still goes, as plain text, into the
    job message: a new message beside it left the job on its progress line with a Cancel button."""
    from bot.delivery import deliver_job
    from bot.views import cancel_keyboard

    res, user = delivery_env, new_user()
    queued = await res.api.send_message(user, "⏳ queued", reply_markup=cancel_keyboard("x", "en"))
    job_id = await _succeeded_job(res, [{"user_id": user, "chat_id": user, "message_id": queued["message_id"],
                                         "lang": "en"}])
    result = json.loads(await res.redis.hget(res.job_key(job_id), "result"))
    result["texts"]["en"][0] = "<b>Match analysis</b>: 3 <i>dangerous &amp; unclosed"
    await res.redis.hset(res.job_key(job_id), "result", json.dumps(result))

    summary = await deliver_job(job_id)

    events = await telegram_sandbox.messages_async(user)
    assert [e["kind"] for e in events] == ["sent", "edited", "sent", "photo"]
    assert events[1]["message_id"] == queued["message_id"]
    assert events[1]["text"] == "Match analysis: 3 dangerous & unclosed"
    assert not events[1]["reply_markup"]  # no Cancel button under a finished job
    assert (summary["sent"], summary["refused"]) == (3, 0)
    # A worker that died after Telegram took the plain edit, before marking it: the retry finds
    # the job message already showing it ("not modified"), and sends no second copy.
    await res.redis.hdel(res.keys.delivered(job_id), f"{user}:0")
    again = await deliver_job(job_id)
    assert [e["kind"] for e in await telegram_sandbox.messages_async(user)] == ["sent", "edited", "sent", "photo"]
    assert (again["sent"], again["already_sent"]) == (1, 2)


async def test_a_chart_whose_caption_markup_telegram_cannot_read_still_goes_with_a_plain_caption(
        delivery_env, telegram_sandbox):
    """A caption's broken HTML used to drop the whole chart as refused; the chart goes, its caption
    as plain text."""
    from bot.delivery import deliver_job

    res, user = delivery_env, new_user()
    queued = await res.api.send_message(user, "⏳ queued")
    job_id = await _succeeded_job(res, [{"user_id": user, "chat_id": user, "message_id": queued["message_id"],
                                         "lang": "en"}])
    result = json.loads(await res.redis.hget(res.job_key(job_id), "result"))
    result["photos"][0]["caption"]["en"] = "Elo <b>over 30 days &amp; <i>unclosed"
    await res.redis.hset(res.job_key(job_id), "result", json.dumps(result))

    summary = await deliver_job(job_id)

    events = await telegram_sandbox.messages_async(user)
    assert [e["kind"] for e in events] == ["sent", "edited", "sent", "photo"]
    assert events[3]["caption"] == "Elo over 30 days & unclosed"
    assert (summary["sent"], summary["refused"]) == (3, 0)


async def test_a_delivery_finished_by_its_retry_counts_the_analysis_once(delivery_env, telegram_sandbox):
    """Flood control on the chart fails the delivery after the text went out; the retry sends the
    chart. The analysis used to be counted only by the attempt that sent the first part, which
    had failed before counting: the user's weekly report missed it."""
    from bot.delivery import deliver_job
    from faceit.errors import RateLimitedError

    res, user = delivery_env, new_user()
    queued = await res.api.send_message(user, "⏳ queued")
    job_id = await _succeeded_job(res, [{"user_id": user, "chat_id": user, "message_id": queued["message_id"],
                                         "lang": "en"}])
    since = time.time() - 60
    telegram_sandbox.flood(1, retry_after=60, methods=["sendPhoto"])  # longer than a delivery waits inline
    with pytest.raises(RateLimitedError):
        await deliver_job(job_id)
    assert await res.store.activity(user, since) == {}
    await res.redis.delete(res.keys.chat_slot(user), res.keys.global_slot())  # the minute has passed

    summary = await deliver_job(job_id)

    assert (summary["sent"], summary["already_sent"]) == (1, 2)
    assert [e["kind"] for e in await telegram_sandbox.messages_async(user)] == ["sent", "edited", "sent", "photo"]
    assert await res.store.activity(user, since) == {"match": 1}
    await deliver_job(job_id)  # once more, with nothing left to send: not counted again
    assert await res.store.activity(user, since) == {"match": 1}


async def test_a_progress_call_returns_only_when_every_requesters_edit_has_ended(delivery_env, telegram_sandbox):
    """One requester's edit fails at once (Redis refuses their chat's send slot); the other's
    waits for its chat's turn. The progress call used to return with the first failure and leave
    the other edit running, free to land after the job's result and replace it."""
    from bot.delivery import on_progress

    res, first, second = delivery_env, new_user(), new_user()
    messages = [await res.api.send_message(user, "⏳ queued") for user in (first, second)]
    job_id = await _succeeded_job(res, [
        {"user_id": user, "chat_id": user, "message_id": sent["message_id"], "lang": "en"}
        for user, sent in zip((first, second), messages, strict=True)])
    await res.redis.hset(res.job_key(job_id), "status", "running")
    await res.redis.delete(res.keys.chat_slot(first))
    await res.redis.hset(res.keys.chat_slot(first), "not", "a slot")  # its limiter call fails: WRONGTYPE
    await res.sender.limiter.acquire(second)  # the second chat's slot is taken: its edit waits for the next

    await on_progress(job_id, {"stage": "retrying", "percent": 10, "attempt": 2, "attempts": 4,
                               "retry_in": 10, "code": "upstream"})

    edits = [e for e in await telegram_sandbox.messages_async(second) if e["kind"] == "edited"]
    assert len(edits) == 1, "the second requester's edit was still running when the progress call returned"
    assert [e["kind"] for e in await telegram_sandbox.messages_async(first)] == ["sent"]


async def _telegram_stand_in(answer: web.Response) -> tuple[web.AppRunner, str]:
    """A server answering every call with ``answer``: replies the sandbox has no reason to give."""
    async def handle(request: web.Request) -> web.Response:
        return answer

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("header", ["Wed, 21 Oct 2026 07:28:00 GMT", "soon", None])
async def test_a_429_whose_retry_after_is_no_number_is_still_flood_control(header):
    """A 429 without ``parameters.retry_after``, its ``Retry-After`` header a date (HTTP allows
    one) or junk, used to raise ValueError from ``float()``; it is waited out as any 429 (1 s)."""
    body = json.dumps({"ok": False, "error_code": 429, "description": "Too Many Requests"})
    answer = web.Response(text=body, status=429, content_type="application/json",
                          headers={"Retry-After": header} if header else None)
    runner, url = await _telegram_stand_in(answer)
    api = BotAPI(url, "123:secret")
    try:
        with pytest.raises(FloodControl) as flood:
            await api.send_message(1, "hi")
        assert flood.value.retry_after == 1.0
    finally:
        await api.close()
        await runner.cleanup()


async def test_a_refusal_naming_no_new_chat_stays_a_bad_request(telegram_sandbox):
    """Only a 400 that names the supergroup's id is a migration; the sandbox's ordinary refusals
    are not."""
    api = BotAPI(telegram_sandbox.base_url, SANDBOX_BOT_TOKEN)
    try:
        with pytest.raises(BadRequest) as refused:
            await api.edit_message_text(new_user(), 999_999, "nothing to edit")
        assert not isinstance(refused.value, ChatMigrated) and "message to edit not found" in str(refused.value)
    finally:
        await api.close()

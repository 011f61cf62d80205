"""The pieces under the bot's guarantees, on real Redis and the real sandbox Bot API:

* per-user limits hold across bot processes (several clients racing on one Redis);
* the shared send limiter spaces messages per chat and overall, and ``try`` never waits;
* the sender waits out flood control, hands long floods back to the pipeline, and reports a
  blocked user as final;
* failure texts say what happened and whether to try again, in both languages.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from bot.botapi import BotAPI
from bot.keys import BotKeys
from bot.limits import UserLimits
from bot.sender import SKIPPED, Sender, UserBlocked
from bot.sendlimit import SendLimiter, SlotTooFar
from bot.views import failure_text, progress_text
from faceit.errors import RateLimitedError, UpstreamError
from sandbox.telegram_api import SANDBOX_BOT_TOKEN


@pytest.fixture
async def clients(redis_url):
    """Three async clients: three bot processes sharing one Redis."""
    made = [aioredis.Redis.from_url(redis_url, decode_responses=True) for _ in range(3)]
    yield made
    for client in made:
        await client.aclose()


def limits_on(client, per_minute: int = 5, max_active: int = 3) -> UserLimits:
    return UserLimits(client, BotKeys("fb:"), per_minute=per_minute, max_active=max_active, job_key_prefix="fb:job:")


async def test_active_jobs_are_capped_across_processes(clients):
    processes = [limits_on(c, per_minute=100) for c in clients]
    decisions = await asyncio.gather(*(processes[i % 3].acquire(42) for i in range(12)))
    assert sum(d.allowed for d in decisions) == 3
    assert {d.verdict for d in decisions if not d.allowed} == {"active"}


async def test_requests_per_minute_are_capped_across_processes(clients, redis_client):
    processes = [limits_on(c, per_minute=5, max_active=100) for c in clients]
    decisions = await asyncio.gather(*(processes[i % 3].acquire(7) for i in range(9)))
    allowed = [d for d in decisions if d.allowed]
    assert len(allowed) == 5
    refused = [d for d in decisions if not d.allowed]
    assert all(d.verdict == "rate" and 55 <= d.retry_after <= 60 for d in refused), refused


async def test_a_finished_job_frees_its_slot_and_a_failed_enqueue_gives_both_back(clients, redis_client):
    limits = limits_on(clients[0], per_minute=3, max_active=1)
    first = await limits.acquire(9)
    await limits.commit(9, first.token, "job-a")
    redis_client.hset("fb:job:job-a", "status", "started")
    assert (await limits.acquire(9)).verdict == "active"
    redis_client.hset("fb:job:job-a", "status", "succeeded")
    second = await limits.acquire(9)
    assert second.allowed
    await limits.release(9, second.token)  # e.g. the broker was unreachable
    assert redis_client.zcard("fb:bot:rate:9") == 1 and redis_client.zcard("fb:bot:active:9") == 0
    assert (await limits.acquire(9)).allowed


async def test_the_send_limiter_spaces_one_chat_and_never_lets_it_hold_back_others(clients):
    limiter = SendLimiter(clients[0], BotKeys("fb:"), chat_rate=10, global_rate=1000, chat_burst=1)
    chat1 = asyncio.gather(*(limiter.acquire(1) for _ in range(5)))
    await asyncio.sleep(0.02)
    chat2 = await limiter.acquire(2)
    waits = sorted(await chat1)
    assert waits == pytest.approx([0, 0.1, 0.2, 0.3, 0.4], abs=0.04)  # 10/s in one chat, booked in turn
    assert chat2 < 0.02  # another chat goes at once
    await limiter.acquire(3)
    assert not await limiter.try_now(3)  # booked: try takes nothing and does not wait
    assert await limiter.try_now(4)


async def test_a_group_gets_its_own_slower_budget(clients):
    limiter = SendLimiter(clients[0], BotKeys("g:"), chat_rate=100, group_rate=5, global_rate=1000)
    group = -1001234567
    waits = sorted(await asyncio.gather(*(limiter.acquire(group) for _ in range(3))))
    assert waits == pytest.approx([0, 0.2, 0.4], abs=0.04)  # Telegram's 20 a minute, scaled to 5/s
    private = sorted(await asyncio.gather(*(limiter.acquire(42) for _ in range(3))))
    assert private[-1] < 0.05  # a private chat keeps its own rate
    assert not await limiter.try_now(group)  # a progress edit there waits for nothing either


async def test_a_busy_groups_slot_too_far_off_is_not_booked_and_the_delivery_comes_back_then(clients):
    limiter = SendLimiter(clients[1], BotKeys("far:"), group_rate=10, global_rate=1000)  # 0.1 s apart
    group = -1009876
    await limiter.hold(group, 0.3)  # the next free slot is 0.3 s off (busy)
    with pytest.raises(SlotTooFar) as far:
        await limiter.acquire(group, max_wait=0.15)
    assert far.value.wait == pytest.approx(0.3, abs=0.05)
    sender = Sender(limiter, max_inline_wait=0.15)
    with pytest.raises(RateLimitedError) as busy:  # the pipeline retries the delivery after the wait
        await sender.call(group, lambda: asyncio.sleep(0), job_id="j")
    assert busy.value.retry_after == pytest.approx(0.3, abs=0.05)
    assert await limiter.acquire(group) == pytest.approx(0.3, abs=0.05)  # nothing was booked meanwhile


async def test_the_send_limiter_caps_the_whole_bot(clients):
    limiter = SendLimiter(clients[1], BotKeys("t:"), chat_rate=1000, global_rate=20, global_burst=1)
    waits = sorted(await asyncio.gather(*(limiter.acquire(chat) for chat in range(10))))
    assert waits == pytest.approx([i * 0.05 for i in range(10)], abs=0.03)  # 10 chats at 20/s overall


@pytest.fixture
async def api(telegram_sandbox):
    client = BotAPI(telegram_sandbox.base_url, SANDBOX_BOT_TOKEN)
    yield client
    await client.close()


async def test_the_sender_waits_out_flood_control(telegram_sandbox, api, clients):
    """One 429: the sender waits its ``retry_after`` (the lower bound) and sends again, once."""
    sender = Sender(SendLimiter(clients[0], BotKeys("fb:"), chat_rate=100, global_rate=100), max_inline_wait=5)
    telegram_sandbox.flood(1, retry_after=1)
    started = time.monotonic()
    result = await sender.call(501, lambda: api.send_message(501, "<b>hi</b>"))
    assert result["text"] == "hi" and time.monotonic() - started >= 0.95
    assert sender.flood_waits == 1
    stats = telegram_sandbox.stats()  # the refused try and the one that went through, no more
    assert stats["methods"]["sendMessage"] == 2 and stats["errors"] == {"sendMessage:429": 1}
    assert [e["text"] for e in telegram_sandbox.messages(501)] == ["<b>hi</b>"]


async def test_a_long_flood_goes_back_to_the_pipeline_and_progress_never_waits(telegram_sandbox, api, clients):
    """A flood longer than ``max_inline_wait`` goes back to the pipeline with Telegram's wait. A
    best-effort call (a progress edit) never waits one out: met by a 429 it gives up at once,
    and while its chat is held it does not even ask Telegram. Telegram's wait here is 60 s, so
    a call that waited it out would run into the generous 30 s bound, not pass it by a margin."""
    sender = Sender(SendLimiter(clients[0], BotKeys("fb:"), chat_rate=100, global_rate=100), max_inline_wait=2)
    telegram_sandbox.flood(5, retry_after=60)
    with pytest.raises(RateLimitedError) as caught:
        await sender.call(502, lambda: api.send_message(502, "x"))
    assert caught.value.retry_after == 60
    progress = await asyncio.wait_for(
        sender.call(503, lambda: api.send_message(503, "y"), best_effort=True), timeout=30)
    assert progress is SKIPPED
    stats = telegram_sandbox.stats()  # one try per chat, each refused: neither was sent again
    assert stats["methods"]["sendMessage"] == 2 and stats["errors"] == {"sendMessage:429": 2}
    assert stats["flood_remaining"] == 3 and sender.flood_waits == 2
    # The 429 held chat 503 for Telegram's 60 s: the next progress edit there is skipped unasked.
    assert await sender.call(503, lambda: api.send_message(503, "z"), best_effort=True) is SKIPPED
    assert telegram_sandbox.stats()["methods"]["sendMessage"] == 2
    assert telegram_sandbox.messages(503) == []


async def test_a_blocked_user_is_reported_as_final(telegram_sandbox, api, clients):
    sender = Sender(SendLimiter(clients[0], BotKeys("fb:"), chat_rate=100, global_rate=100))
    telegram_sandbox.block(504)
    with pytest.raises(UserBlocked):
        await sender.call(504, lambda: api.send_message(504, "z"))


async def test_a_proxys_error_pages_are_never_taken_for_telegram_refusing(clients):
    """A proxy in front of the Bot API answers with its own HTML pages. The workers' client took
    a 403 page for Telegram's "blocked by the user", so an active follower was marked inactive and
    heard nothing more; a 408 page was a bad request, and the part was dropped."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from bot.botapi import FloodControl, NetworkError

    async def page(request: web.Request) -> web.Response:
        status = int(request.query["status"])
        return web.Response(status=status, text=f"<h1>{status}</h1>", content_type="text/html",
                            headers={"Retry-After": "7"} if status == 429 else None)

    app = web.Application()
    app.router.add_post("/bot{token}/{method}", page)
    async with TestServer(app, host="127.0.0.1") as server:
        errors = {}
        for status in (403, 408, 400, 502, 429):
            api = BotAPI(f"http://127.0.0.1:{server.port}", SANDBOX_BOT_TOKEN)
            try:
                with pytest.raises(Exception) as caught:  # (the page's status rides in the query)
                    await api.call(f"sendMessage?status={status}", {"chat_id": 505, "text": "x"})
                errors[status] = caught.value
            finally:
                await api.close()
    assert all(type(errors[s]) is NetworkError for s in (403, 408, 400, 502)), errors
    assert type(errors[429]) is FloodControl and errors[429].retry_after == 7.0
    sender = Sender(SendLimiter(clients[0], BotKeys("fb:"), chat_rate=100, global_rate=100))
    with pytest.raises(UpstreamError) as caught:  # retried later, not UserBlocked: the follower stays active
        await sender.call(505, lambda: _raise(errors[403]))
    assert not isinstance(caught.value, UserBlocked)


async def _raise(error: Exception) -> None:
    raise error


@pytest.mark.parametrize(("code", "actor", "kwargs", "english", "russian"), [
    ("not_found", "player_report", {"player_id": "ghost_x"}, "No FACEIT CS2 player “ghost_x”", "«ghost_x»"),
    ("not_found", "match_analysis", {"match_url_or_id": "1-" + "a" * 8 + "-aaaa-4aaa-8aaa-" + "a" * 12},
     "FACEIT has no match", "не найден"),
    ("upstream", "match_analysis", {}, "FACEIT did not answer", "FACEIT не ответил"),
    ("time_limit", "bulk_analysis", {}, "took too long", "слишком долго"),
    ("crash_loop", "player_report", {}, "kept crashing", "падала"),
    ("match_not_analysable", "match_analysis", {}, "cancelled", "отменён"),
    ("error", "match_analysis", {}, "Something broke on our side", "Что-то сломалось"),
    ("unknown_code", "player_lookup", {}, "Something broke on our side", "Что-то сломалось"),
])
def test_failure_texts_say_what_happened_and_whether_to_retry(code, actor, kwargs, english, russian):
    error = {"type": "X", "code": code, "message": "match 1-x is cancelled", "retryable": code != "not_found"}
    en = failure_text("j", actor, error, kwargs, "en")
    ru = failure_text("j", actor, error, kwargs, "ru")
    assert english in en and russian in ru
    retry = code in ("upstream", "time_limit", "crash_loop", "error", "unknown_code")
    assert ("Send it again in a few minutes." in en) is retry
    assert "Traceback" not in en and len(en) < 300


def test_progress_reads_players_6_of_10_in_both_languages():
    progress = {"percent": 47.5, "stage": "players", "done": 6, "total": 10}
    assert "players 6/10 · 48%" in progress_text("job-1", "match_analysis", progress, "en")
    assert "загружаю игроков 6/10 · 48%" in progress_text("job-1", "match_analysis", progress, "ru")


def test_the_flood_guard_lets_a_burst_through_then_a_steady_rate():
    from bot.middlewares.throttle import ThrottleMiddleware, Verdict

    guard = ThrottleMiddleware(rate=2, burst=8)

    def allow(user_id: int, now: float) -> bool:  # an ordinary update within the budget (it takes from it)
        return guard.check(user_id, now=now) is Verdict.SERVE

    assert [allow(1, now=100.0) for _ in range(10)] == [True] * 8 + [False] * 2
    assert allow(2, now=100.0)  # other users are not affected
    assert allow(1, now=100.5) and not allow(1, now=100.6)  # 2 a second afterwards
    assert [allow(1, now=110.0) for _ in range(9)].count(True) == 8  # refilled to the burst


@pytest.mark.parametrize(("text", "light"), [
    ("/start", True), ("/help", True), ("/lang ru", True), ("/tz Moscow", True), ("/TZ@faceit_bot +3", True),
    ("/timezone", True), ("/tzx", False), ("/analyze 1-abc", False), ("tz Moscow", False), ("/language", False),
])
def test_the_light_commands_are_those_without_a_job(text, light):
    """What the flood guard still serves beyond a user's budget (``/tz`` among them: a lost zone
    choice would move every later summary)."""
    from bot.middlewares.throttle import LIGHT_COMMAND

    assert (LIGHT_COMMAND.match(text) is not None) is light


def test_the_flood_guard_tells_a_flooding_user_once_per_episode_and_lets_light_commands_through():
    from bot.middlewares.throttle import ThrottleMiddleware, Verdict

    guard = ThrottleMiddleware(rate=2, burst=8, light_rate=0.5, light_burst=4)
    verdicts = [guard.check(1, now=100.0 + i / 10) for i in range(600)]  # 10 a second for a minute
    assert verdicts.count(Verdict.NOTICE) == 1  # one notice, however long the flood lasts
    assert verdicts.count(Verdict.SERVE) <= 8 + 2 * 60 + 1
    assert guard.check(1, now=160.0, light=True) is Verdict.SERVE  # /lang, /help beyond the budget
    assert guard.check(1, now=170.0) is Verdict.SERVE  # quiet long enough: the episode is over …
    assert [guard.check(1, now=170.0) for _ in range(8)][-1] is Verdict.NOTICE  # … and a new one is told
    assert guard.check(2, now=100.0, answerable=False) is Verdict.SERVE
    assert [guard.check(2, now=100.0, answerable=False) for _ in range(8)][-1] is Verdict.SKIP
    assert guard.check(2, now=100.0) is Verdict.NOTICE  # group chatter did not use the notice up


def test_a_chart_caption_reads_as_rendered_and_is_cut_with_its_tags_balanced():
    import base64

    from bot.delivery import CAPTION_LIMIT, _photos_of
    from faceit.render import chart_caption
    from sandbox.telegram_text import format_text

    png = base64.b64encode(b"\x89PNG").decode()
    caption = {"en": chart_caption({"nickname": "Tom&Jerry<3", "chart": {"kd": [1.0, 2.0]}}, "en")}
    (part,) = _photos_of({"photos": [{"png_b64": png, "caption": caption}]}, "ru")
    assert format_text(part.text, "HTML").text == "Tom&Jerry<3: last 2 matches, oldest on the left"  # escaped once
    long = "<b>" + "&amp;" * 400 + "</b>"
    (part,) = _photos_of({"photos": [{"png_b64": png, "caption": {"en": long}}]}, "en")
    assert len(part.text) <= CAPTION_LIMIT and part.text.endswith("</b>")
    assert set(format_text(part.text, "HTML").text) == {"&"}  # parses: no entity or tag cut in two

"""The first reply to a job request, and the bookkeeping the bot does after it.

1. :func:`bot.fastsend.send_reply` (the queued line, sent as a JSON body without aiogram's
   models) reaches the sandbox Bot API exactly as ``message.answer`` would: same text, parse
   mode and Cancel button; it waits out a 429 and fails like aiogram (a blocked user is 403).
2. A burst of users through the real dispatcher (``bot.app.build_dispatcher``, in-process, real
   Redis and queue manager, no workers): every user gets the queued line with their own job's id,
   and afterwards, without anyone draining anything, each job learns the message that shows it
   and each limit reservation becomes the job.
3. :class:`bot.background.BackgroundWork` on its own: items wait for the updates in flight, never
   longer than ``max_delay``; ``drain`` runs them at once; a failing item does not stop the next.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from typing import Any

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramForbiddenError, TelegramRetryAfter
from aiogram.types import InlineKeyboardMarkup, Message, Update

from bot.background import BackgroundWork
from bot.fastsend import send_reply
from bot.views import cancel_keyboard
from tests.bot.conftest import new_user
from tests.support.waiting import async_wait_until

TEXT = "⏳ <b>Match analysis</b> queued: job <code>abc</code>, place 1 & more"


def _settings(tg: Any) -> Any:
    from settings import get_settings

    return get_settings().model_copy(update={"telegram_api_url": tg.base_url})


def _message(bot: Bot, user_id: int, text: str = "/analyze x") -> Message:
    """A user's message as aiogram hands it to a handler (bound to ``bot``)."""
    return Message.model_validate({
        "message_id": 1, "date": int(time.time()), "text": text,
        "chat": {"id": user_id, "type": "private", "first_name": "U"},
        "from": {"id": user_id, "is_bot": False, "first_name": "U", "language_code": "en"},
    }, context={"bot": bot})


@pytest.fixture
async def bot(telegram_sandbox):
    from bot.telegram import build_bot

    built = build_bot(_settings(telegram_sandbox))
    yield built
    await built.session.close()


# 1. send_reply --------------------------------------------------------------------------------------


async def test_send_reply_sends_what_message_answer_sends_and_returns_the_new_message_id(telegram_sandbox, bot):
    tg = telegram_sandbox
    fast_user, aiogram_user = new_user(), new_user()
    markup = cancel_keyboard("abc", "en")
    message_id = await send_reply(bot, _message(bot, fast_user), TEXT, markup)
    sent = await _message(bot, aiogram_user).answer(TEXT, reply_markup=InlineKeyboardMarkup.model_validate(markup))

    fast, = [e for e in tg.messages(fast_user) if e["kind"] == "sent"]
    slow, = [e for e in tg.messages(aiogram_user) if e["kind"] == "sent"]
    assert fast["message_id"] == message_id
    for key in ("text", "parse_mode", "reply_markup"):
        assert fast[key] == slow[key], key
    assert fast["message"]["entities"] == slow["message"]["entities"]  # the HTML was parsed the same way
    # No link preview card under the bot's own lines, on both paths.
    assert fast["message"]["link_preview_options"] == slow["message"]["link_preview_options"] == {"is_disabled": True}
    assert json.loads(json.dumps(fast["reply_markup"]))["inline_keyboard"][0][0]["callback_data"] == "cancel:abc"
    assert sent.message_id != message_id


async def test_send_reply_waits_out_flood_control_and_sends_once(telegram_sandbox, bot):
    tg = telegram_sandbox
    user = new_user()
    tg.flood(1, retry_after=1, methods=["sendMessage"])
    started = time.monotonic()
    await send_reply(bot, _message(bot, user), TEXT, cancel_keyboard("abc", "en"))
    assert time.monotonic() - started >= 0.9
    assert [e["kind"] for e in tg.messages(user)] == ["sent"]


async def test_send_reply_fails_like_aiogram(telegram_sandbox, bot):
    tg = telegram_sandbox
    blocked, flooded = new_user(), new_user()
    tg.block(blocked)
    with pytest.raises(TelegramForbiddenError):
        await send_reply(bot, _message(bot, blocked), TEXT)
    tg.flood(1, retry_after=31, methods=["sendMessage"])  # longer than the bot waits in all
    with pytest.raises(TelegramRetryAfter):
        await send_reply(bot, _message(bot, flooded), TEXT)
    assert tg.messages(flooded) == []


# 2. A burst through the real dispatcher --------------------------------------------------------------


JOB_ID = re.compile(r"<code>([0-9a-f-]{36})</code>")


async def test_a_burst_gets_its_queued_lines_then_every_job_learns_its_message(telegram_sandbox, redis_url,
                                                                                redis_client):
    from bot.app import build_dispatcher
    from bot.redisclient import bot_redis_client
    from bot.services import BotServices
    from bot.telegram import build_bot
    from queues.runtime import reset_runtime

    reset_runtime()
    tg = telegram_sandbox
    settings = _settings(tg)
    bot = build_bot(settings)
    client = bot_redis_client(settings)
    services = BotServices(settings, client)
    await asyncio.to_thread(lambda: services.manager.broker)
    dp = build_dispatcher(services)
    update_ids = itertools.count(50_000_000)
    users = [new_user() for _ in range(30)]

    def update(user: int, n: int) -> Update:
        text = f"/analyze 1-{n:08d}-aaaa-4bbb-8ccc-{n:012d}"
        return Update.model_validate({"update_id": next(update_ids), "message": {
            "message_id": 1, "date": int(time.time()), "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": 8}],
            "chat": {"id": user, "type": "private", "first_name": "U"},
            "from": {"id": user, "is_bot": False, "first_name": "U", "language_code": "en"}}}, context={"bot": bot})

    slots = asyncio.Semaphore(8)  # as polling does (BOT_UPDATE_CONCURRENCY)

    async def one(user: int, n: int) -> None:
        async with slots:
            await dp.feed_update(bot, update(user, n))

    try:
        await asyncio.gather(*(one(user, n) for n, user in enumerate(users)))
        replies = {}
        for user in users:
            sent, = [e for e in tg.messages(user) if e["kind"] == "sent"]
            job_id, = JOB_ID.findall(sent["text"])
            assert sent["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == f"cancel:{job_id}"
            replies[user] = (job_id, sent["message_id"])

        # Nobody drains: the background work runs by itself once the burst is served.
        deadline = time.monotonic() + 5
        waiting = dict(replies)
        while waiting:
            for user, (job_id, message_id) in list(waiting.items()):
                requesters = json.loads(redis_client.hget(f"fb:job:{job_id}", "requesters") or "[]")
                mine = [r for r in requesters if r["user_id"] == user]
                active = redis_client.zrange(f"fb:bot:active:{user}", 0, -1)
                if mine and mine[0].get("message_id") == message_id and active == [job_id]:
                    del waiting[user]
            assert time.monotonic() < deadline, f"never attached: {list(waiting)[:3]}"
            await asyncio.sleep(0.05)
        assert services.background.in_flight == 0
    finally:
        await services.drain(stop=True)
        await bot.session.close()
        await client.aclose()


# 3. BackgroundWork -------------------------------------------------------------------------------
# No sleeps to let things happen: an item that is due runs within a few turns of the event loop
# (_until waits for it), one that is not due stays put however many turns pass (_turns).


async def _turns(count: int = 20) -> None:
    """Let the event loop run everything that is ready, ``count`` times over."""
    for _ in range(count):
        await asyncio.sleep(0)


async def test_background_work_waits_for_the_updates_in_flight():
    work = BackgroundWork(max_delay=60.0)
    ran: list[str] = []

    async def item(name: str) -> None:
        ran.append(name)

    work.update_started()
    work.update_started()
    work.add(item("a"), "a")
    work.add(item("b"), "b")
    await _turns()
    assert ran == []
    work.update_finished()
    await _turns()
    assert ran == []  # one update still being served
    work.update_finished()
    await async_wait_until(lambda: ran == ["a", "b"])
    await work.drain(stop=True)


async def test_background_work_never_waits_longer_than_max_delay():
    work = BackgroundWork(max_delay=0.3)
    loop = asyncio.get_running_loop()
    ran: list[float] = []
    work.update_started()  # an update that never ends: a steady stream of users
    started = loop.time()

    async def item() -> None:
        ran.append(loop.time() - started)

    work.add(item(), "item")
    await _turns()
    assert ran == []
    await async_wait_until(lambda: ran)  # ran although the update is still being served
    assert ran[0] >= 0.29  # not before max_delay
    await work.drain(stop=True)


async def test_drain_runs_queued_work_at_once_and_a_failure_does_not_stop_the_next(caplog):
    work = BackgroundWork(max_delay=60.0)
    ran: list[str] = []

    async def broken() -> None:
        raise RuntimeError("boom")

    async def fine() -> None:
        ran.append("fine")

    work.update_started()
    work.add(broken(), "job x: attach")
    work.add(fine(), "fine")
    await asyncio.wait_for(work.drain(timeout=30), 10)  # not max_delay's 60 s, nor drain's own 30
    assert ran == ["fine"]
    assert "job x: attach failed: RuntimeError: boom" in caplog.text
    # After the drain, new work waits for quiet again.
    work.add(fine(), "fine")
    await _turns()
    assert ran == ["fine"]
    work.update_finished()
    await async_wait_until(lambda: ran == ["fine", "fine"])
    await work.drain(stop=True)


async def test_work_queued_while_updates_were_served_runs_together():
    """Run together, the attaches of a burst share Redis round trips; one by one they would not.
    Here the first item can only finish once the second has started."""
    work = BackgroundWork(max_delay=60.0)
    second_started = asyncio.Event()
    ran: list[str] = []

    async def first() -> None:
        await asyncio.wait_for(second_started.wait(), 2)
        ran.append("first")

    async def second() -> None:
        second_started.set()
        ran.append("second")

    work.update_started()
    work.add(first(), "first")
    work.add(second(), "second")
    work.update_finished()
    await async_wait_until(lambda: len(ran) == 2, timeout=3)  # one at a time, "first" times out after 2 s
    assert sorted(ran) == ["first", "second"]
    await work.drain(stop=True)


async def test_an_item_cancelled_on_its_own_stops_neither_the_others_nor_the_runner(caplog):
    work = BackgroundWork(max_delay=60.0)
    ran: list[str] = []

    async def cancelled() -> None:
        raise asyncio.CancelledError  # as an item whose Redis call was cancelled under it

    async def slower() -> None:
        await asyncio.sleep(0.1)
        ran.append("slower")

    work.add(cancelled(), "job y: attach")
    work.add(slower(), "slower")
    await work.drain(timeout=5)
    assert ran == ["slower"]  # drain waited for it
    assert "job y: attach was cancelled" in caplog.text
    work.add(slower(), "later")  # the runner still runs
    await work.drain(timeout=5)
    assert ran == ["slower", "slower"]
    await work.drain(stop=True)


async def test_a_stop_closes_what_it_did_not_run_and_names_each_item(caplog, recwarn):
    """A stop within the drain's timeout cancels what runs; what waited for its turn, or was still
    queued, used to be left as coroutines never awaited (a RuntimeWarning each, no word of which)."""
    import gc

    from bot.background import MAX_TOGETHER

    work = BackgroundWork(max_delay=0.0)
    started: list[int] = []

    async def long(index: int) -> None:
        started.append(index)
        await asyncio.Event().wait()

    for index in range(MAX_TOGETHER + 2):  # two more than run at once: they wait for a turn
        work.add(long(index), f"item {index}")
    await async_wait_until(lambda: len(started) == MAX_TOGETHER)
    work.add(long(99), "late item")  # queued behind the batch that runs
    await work.drain(timeout=0.1, stop=True)
    await _turns()
    gc.collect()
    assert not [w for w in recwarn if "never awaited" in str(w.message)]
    assert len(started) == MAX_TOGETHER
    assert "late item not done: the bot stopped first" in caplog.text
    assert f"item {MAX_TOGETHER + 1} was cancelled" in caplog.text


def _update(update_id: int, user_id: int, text: str):
    from aiogram.types import Chat, Message, Update, User

    sender = User(id=user_id, is_bot=False, first_name="u")
    return Update(update_id=update_id, message=Message(message_id=update_id, date=0, text=text, from_user=sender,
                                                      chat=Chat(id=user_id, type="private")))


async def test_a_lang_waits_for_the_users_earlier_updates_and_their_later_ones_wait_for_it():
    """Only /lang orders a user's updates: their other updates, and other users', run side by side
    (each holds an update slot while it waits), and nothing is kept once they were served."""
    from bot.middlewares.ordering import LanguageOrderMiddleware

    order = LanguageOrderMiddleware()
    release = {text: asyncio.Event() for text in ("/help", "/start", "/lang ru", "/subscriptions", "/status x")}
    running: list[str] = []

    async def handler(event, data) -> None:
        running.append(event.message.text)
        await release[event.message.text].wait()

    def serve(update_id: int, user_id: int, text: str) -> asyncio.Task:
        update = _update(update_id, user_id, text)
        return asyncio.ensure_future(order(handler, update, {"event_from_user": update.message.from_user}))

    tasks = [serve(1, 5, "/help"), serve(2, 5, "/start"), serve(3, 5, "/lang ru"), serve(4, 5, "/subscriptions"),
             serve(5, 6, "/status x")]
    await _turns()
    assert running == ["/help", "/start", "/status x"]  # the /lang waits; what follows it too
    release["/help"].set()
    await _turns()
    assert running == ["/help", "/start", "/status x"]
    release["/start"].set()
    await _turns()
    assert running[-1] == "/lang ru"
    release["/lang ru"].set()
    await _turns()
    assert running[-1] == "/subscriptions"
    release["/subscriptions"].set()
    release["/status x"].set()
    await asyncio.gather(*tasks)
    assert order.users_served() == 0

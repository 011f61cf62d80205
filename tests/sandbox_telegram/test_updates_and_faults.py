"""getUpdates long polling, callback queries, blocked users, flood control, tokens and bodies."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters

from tests.sandbox_telegram.conftest import BOT_TOKEN, make_bot
from tests.support.telegram_sandbox import SandboxControlError, TelegramSandbox

USER = 7001


async def test_long_poll_wakes_at_once_when_an_update_is_injected(
    tg_bot: Bot, telegram_sandbox: TelegramSandbox
) -> None:
    # A poll of 50 s (the longest the sandbox takes): one that did not wake at the update would
    # answer only then, far past the generous 25 s it is given here.
    poll = asyncio.create_task(tg_bot.get_updates(timeout=50))
    await asyncio.sleep(0.3)
    assert not poll.done()  # really waiting, not answering empty
    await telegram_sandbox.inject_async(USER, "/start", language_code="de", first_name="Ana")
    updates = await asyncio.wait_for(poll, 25)
    [update] = updates
    message = update.message
    assert message.text == "/start" and message.chat.id == USER and message.chat.type == "private"
    assert message.from_user.id == USER and message.from_user.language_code == "de"
    assert message.from_user.first_name == "Ana" and not message.from_user.is_bot
    assert message.entities[0].type == "bot_command"


async def test_a_user_edits_their_message(tg_bot: Bot, telegram_sandbox: TelegramSandbox) -> None:
    sent = telegram_sandbox.inject(USER, "/analyze 1-typo")
    telegram_sandbox.inject(USER, "/analyze 1-fixed", edit_message_id=sent["message_id"])
    first, edit = await tg_bot.get_updates(timeout=0, allowed_updates=["message", "edited_message"])
    assert first.message.text == "/analyze 1-typo"
    assert edit.edited_message.message_id == sent["message_id"] and edit.edited_message.text == "/analyze 1-fixed"
    assert edit.edited_message.edit_date is not None and edit.edited_message.entities[0].type == "bot_command"
    with pytest.raises(SandboxControlError):  # only their own message, and only one that exists
        telegram_sandbox.inject(USER + 1, "x", edit_message_id=sent["message_id"])
    with pytest.raises(SandboxControlError):
        telegram_sandbox.inject(USER, "x", edit_message_id=10**9)


async def test_offsets_confirm_updates_and_ids_increase(
    tg_bot: Bot, telegram_sandbox: TelegramSandbox
) -> None:
    for text in ("one", "two", "three"):
        telegram_sandbox.inject(USER, text)
    first = await tg_bot.get_updates(timeout=0, limit=2)
    assert [u.message.text for u in first] == ["one", "two"]
    assert first[0].update_id < first[1].update_id
    # Without an offset nothing is confirmed: the same updates come again.
    assert [u.update_id for u in await tg_bot.get_updates(limit=2)] == [u.update_id for u in first]
    rest = await tg_bot.get_updates(offset=first[-1].update_id + 1, timeout=0)
    assert [u.message.text for u in rest] == ["three"]
    assert await tg_bot.get_updates(offset=rest[-1].update_id + 1, timeout=0) == []
    assert telegram_sandbox.stats()["pending_updates"] == 0

    # A reset empties everything but never restarts update ids (a running bot's offset stays valid).
    telegram_sandbox.reset()
    telegram_sandbox.inject(USER, "after reset")
    [later] = await tg_bot.get_updates(offset=rest[-1].update_id + 1)
    assert later.update_id > rest[-1].update_id and later.message.text == "after reset"


async def test_allowed_updates_filter_and_timeout_returns_empty(
    tg_bot: Bot, telegram_sandbox: TelegramSandbox
) -> None:
    telegram_sandbox.inject(USER, "text message")
    started = time.monotonic()
    # It waits out its timeout (the lower bound); the upper one only catches a hang (the
    # session's own request timeout is 60 s), not a slow answer.
    polled = await asyncio.wait_for(tg_bot.get_updates(timeout=1, allowed_updates=["callback_query"]), 30)
    assert polled == [] and time.monotonic() - started >= 0.9


async def test_second_poller_ends_the_first_with_conflict(
    tg_bot: Bot, telegram_sandbox: TelegramSandbox
) -> None:
    first = asyncio.create_task(tg_bot.get_updates(timeout=20))
    await asyncio.sleep(0.2)
    second = asyncio.create_task(tg_bot.get_updates(timeout=20))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await asyncio.wait_for(first, 3)
    telegram_sandbox.inject(USER, "hi")
    assert [u.message.text for u in await asyncio.wait_for(second, 3)] == ["hi"]


async def test_click_carries_the_current_message_and_answer_is_recorded(
    tg_bot: Bot, telegram_sandbox: TelegramSandbox
) -> None:
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Details", callback_data="details:42")]]
    )
    sent = await tg_bot.send_message(USER, "<b>Result</b>", parse_mode="HTML", reply_markup=markup)
    await tg_bot.edit_message_text(
        "<b>Result</b> (updated)",
        chat_id=USER,
        message_id=sent.message_id,
        parse_mode="HTML",
        reply_markup=markup,
    )
    clicked = telegram_sandbox.click(USER, sent.message_id, "details:42")

    [update] = await tg_bot.get_updates()
    query = update.callback_query
    assert query.id == clicked["callback_query_id"] and query.data == "details:42"
    assert query.from_user.id == USER and query.message.message_id == sent.message_id
    assert query.message.text == "Result (updated)"  # the message as it is now
    assert query.message.reply_markup.inline_keyboard[0][0].callback_data == "details:42"

    assert await tg_bot.answer_callback_query(query.id, text="Loading…") is True
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await tg_bot.answer_callback_query(query.id)
    [recorded] = telegram_sandbox.callbacks()
    assert recorded["answer"] == {"text": "Loading…", "show_alert": False, "url": None}

    # Users can only press buttons that exist.
    with pytest.raises(SandboxControlError, match="no button"):
        telegram_sandbox.click(USER, sent.message_id, "other")
    # Without a message id the newest message showing the button is used.
    assert telegram_sandbox.click(USER, None, "details:42")["message_id"] == sent.message_id


async def test_blocked_user_gives_forbidden_until_they_write_again(
    tg_bot: Bot, telegram_sandbox: TelegramSandbox
) -> None:
    sent = await tg_bot.send_message(USER, "hello")
    telegram_sandbox.block(USER)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await tg_bot.send_message(USER, "are you there?")
    with pytest.raises(TelegramForbiddenError):
        await tg_bot.edit_message_text("edit", chat_id=USER, message_id=sent.message_id)
    await tg_bot.send_message(USER + 1, "others still get messages")

    [update] = await tg_bot.get_updates()
    member = update.my_chat_member
    assert member.chat.id == USER and member.new_chat_member.status == "kicked"
    assert telegram_sandbox.stats()["blocked"] == [USER]

    telegram_sandbox.inject(USER, "/start")  # writing again unblocks, as in Telegram
    await tg_bot.send_message(USER, "welcome back")
    assert [e["text"] for e in telegram_sandbox.messages(USER)] == ["hello", "welcome back"]


async def test_a_group_message_names_its_author_and_a_bot_removed_from_the_group_gets_forbidden_there_only(
    tg_bot: Bot, telegram_sandbox: TelegramSandbox
) -> None:
    group = -1001234
    await tg_bot.get_updates()  # nothing from earlier tests in the way
    telegram_sandbox.inject(USER, "/analyze x", chat_id=group)
    [update] = await tg_bot.get_updates()
    assert update.message.chat.id == group and update.message.chat.type == "supergroup"
    assert update.message.from_user.id == USER
    await tg_bot.send_message(group, "queued")

    telegram_sandbox.block(USER, chat_id=group)  # the user removes the bot from the group
    with pytest.raises(TelegramForbiddenError, match="bot was kicked from the supergroup chat"):
        await tg_bot.send_message(group, "result")
    await tg_bot.send_message(USER, "the user's private chat still works")
    [update] = await tg_bot.get_updates(offset=update.update_id + 1)
    member = update.my_chat_member
    assert member.chat.id == group and member.from_user.id == USER and member.new_chat_member.status == "kicked"
    with pytest.raises(SandboxControlError, match="not in group"):
        telegram_sandbox.inject(USER, "hello?", chat_id=group)
    with pytest.raises(SandboxControlError, match="negative"):
        telegram_sandbox.inject(USER, "hello?", chat_id=5)


async def test_a_group_upgraded_to_a_supergroup_answers_the_old_id_with_the_new_one(
    tg_bot: Bot, telegram_sandbox: TelegramSandbox
) -> None:
    """As in Telegram: the old id takes no more calls (400 with ``migrate_to_chat_id``, which
    aiogram reads as ``TelegramMigrateToChat``), the bot gets both service messages, and the
    members write in the supergroup from then on."""
    group = -4321
    await tg_bot.get_updates()
    telegram_sandbox.inject(USER, "/analyze x", chat_id=group)
    [asked] = await tg_bot.get_updates()
    assert asked.message.chat.type == "group"
    queued = await tg_bot.send_message(group, "queued")

    supergroup = telegram_sandbox.migrate(group, USER)
    assert supergroup == -1004321
    with pytest.raises(TelegramMigrateToChat) as refused:
        await tg_bot.edit_message_text("result", chat_id=group, message_id=queued.message_id)
    assert refused.value.migrate_to_chat_id == supergroup
    with pytest.raises(TelegramMigrateToChat):
        await tg_bot.send_message(group, "result")
    moved_from, moved_to = [u.message for u in await tg_bot.get_updates(offset=asked.update_id + 1)]
    assert (moved_from.chat.id, moved_from.migrate_to_chat_id, moved_from.from_user.id) == (group, supergroup, USER)
    assert (moved_to.chat.id, moved_to.chat.type, moved_to.migrate_from_chat_id) == (supergroup, "supergroup", group)
    await tg_bot.send_message(supergroup, "result")
    assert [e["text"] for e in telegram_sandbox.messages(supergroup)] == ["result"]
    assert telegram_sandbox.migrate(group, USER) == supergroup  # once only
    with pytest.raises(SandboxControlError, match="supergroup -1004321"):
        telegram_sandbox.inject(USER, "hello?", chat_id=group)
    with pytest.raises(SandboxControlError, match="basic group"):
        telegram_sandbox.migrate(supergroup, USER)


async def test_a_message_sent_in_a_chats_name_carries_that_chat(tg_bot: Bot, telegram_sandbox: TelegramSandbox) -> None:
    """An anonymous admin writes as the group itself, someone posting as a channel as the channel;
    a channel's post forwarded into its discussion group is marked so, as Telegram marks them."""
    group, channel = -1005678, -1008765
    await tg_bot.get_updates()
    telegram_sandbox.inject(1087968824, "/subscriptions", chat_id=group, sender_chat_id=group)
    telegram_sandbox.inject(777000, "a post", chat_id=group, sender_chat_id=channel, automatic_forward=True)
    anonymous, forwarded = [u.message for u in await tg_bot.get_updates()]
    assert (anonymous.sender_chat.id, anonymous.sender_chat.type, anonymous.is_automatic_forward) == \
        (group, "supergroup", None)
    assert (forwarded.sender_chat.id, forwarded.sender_chat.type, forwarded.is_automatic_forward) == \
        (channel, "channel", True)
    assert (anonymous.from_user.is_bot, anonymous.from_user.username, anonymous.from_user.language_code) == \
        (True, "GroupAnonymousBot", None)  # Telegram's stand-in, without a language
    with pytest.raises(SandboxControlError, match="in a group"):
        telegram_sandbox.inject(USER, "in a private chat", sender_chat_id=group)
    with pytest.raises(SandboxControlError, match="negative"):
        telegram_sandbox.inject(USER, "x", chat_id=group, sender_chat_id=5)


async def test_a_forum_topic_keeps_its_messages_and_refuses_replies_across_topics(
    tg_bot: Bot, telegram_sandbox: TelegramSandbox
) -> None:
    forum = -1004321
    await tg_bot.get_updates()
    telegram_sandbox.inject(USER, "/player x", chat_id=forum, thread_id=5)
    [update] = await tg_bot.get_updates()
    asked = update.message
    assert asked.is_topic_message and asked.message_thread_id == 5 and asked.chat.is_forum
    in_topic = await tg_bot.send_message(forum, "queued", message_thread_id=5)
    replied = await tg_bot.send_message(forum, "a reply", reply_parameters=ReplyParameters(message_id=asked.message_id))
    general = await tg_bot.send_message(forum, "no topic named")
    assert (in_topic.message_thread_id, replied.message_thread_id, general.message_thread_id) == (5, 5, None)
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):  # another topic's message
        await tg_bot.send_message(forum, "x", message_thread_id=6, reply_parameters=ReplyParameters(
            message_id=asked.message_id, allow_sending_without_reply=True))
    with pytest.raises(SandboxControlError, match="thread_id"):
        telegram_sandbox.inject(USER, "in a private chat there are no topics", thread_id=5)


async def test_flood_answers_429_with_retry_after_to_the_next_calls(
    tg_bot: Bot, telegram_sandbox: TelegramSandbox
) -> None:
    telegram_sandbox.flood(2, retry_after=7)
    assert await tg_bot.get_updates() == []  # polling does not use up the flood budget
    with pytest.raises(TelegramRetryAfter) as first:
        await tg_bot.send_message(USER, "one")
    assert first.value.retry_after == 7
    with pytest.raises(TelegramRetryAfter):
        await tg_bot.get_me()
    await tg_bot.send_message(USER, "through")
    assert [e["text"] for e in telegram_sandbox.messages(USER)] == ["through"]

    # Real HTTP: status 429, the Retry-After header and Telegram's body.
    telegram_sandbox.flood(1, retry_after=3, methods=["sendMessage"])
    async with aiohttp.ClientSession() as http:
        url = f"{telegram_sandbox.base_url}/bot{BOT_TOKEN}/sendMessage"
        async with http.post(url, json={"chat_id": USER, "text": "x"}) as resp:
            assert resp.status == 429 and resp.headers["Retry-After"] == "3"
            body = await resp.json()
    assert body == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 3",
        "parameters": {"retry_after": 3},
    }
    stats = telegram_sandbox.stats()
    assert stats["errors"]["sendMessage:429"] == 2 and stats["flood_remaining"] == 0


async def test_real_limits_and_rate_accounting(tg_bot: Bot, telegram_sandbox: TelegramSandbox) -> None:
    for n in range(3):
        await tg_bot.send_message(USER, f"burst {n}")
    await tg_bot.send_message(USER + 1, "other chat")
    rate = telegram_sandbox.stats()["rate"]
    assert rate["sends"]["max_per_chat"] == 3 and rate["sends"]["max_overall"] == 4
    assert rate["sends"]["per_chat"] == {str(USER): 3, str(USER + 1): 1}

    telegram_sandbox.limits(chat_per_second=1, chat_burst=2)
    await tg_bot.send_message(USER, "a")
    await tg_bot.send_message(USER, "b")
    with pytest.raises(TelegramRetryAfter) as limited:
        await tg_bot.send_message(USER, "c")
    assert limited.value.retry_after == 1
    await tg_bot.send_message(USER + 1, "another chat has its own budget")
    telegram_sandbox.limits(enabled=False)
    await tg_bot.send_message(USER, "c")


async def test_fixed_token_rejects_others_with_401() -> None:
    with TelegramSandbox(token=BOT_TOKEN) as sandbox:
        good, bad = make_bot(sandbox.base_url), make_bot(sandbox.base_url, token="42:wrong-token")
        try:
            assert (await good.get_me()).id == 123456789
            with pytest.raises(TelegramUnauthorizedError, match="Unauthorized"):
                await bad.get_me()
            async with aiohttp.ClientSession() as http, http.get(f"{sandbox.base_url}/bot42:x/getMe") as resp:
                assert resp.status == 401
                assert await resp.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
        finally:
            await good.session.close()
            await bad.session.close()


async def test_json_urlencoded_and_query_bodies_and_unknown_methods(
    telegram_sandbox: TelegramSandbox,
) -> None:
    base = f"{telegram_sandbox.base_url}/bot{BOT_TOKEN}"
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/sendMessage",
            json={
                "chat_id": USER,
                "text": "json",
                "reply_markup": {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]},
            },
        ) as resp:
            body = await resp.json()
            assert resp.status == 200 and body["ok"] and body["result"]["text"] == "json"
        async with http.post(f"{base}/sendmessage", data={"chat_id": str(USER), "text": "form"}) as resp:
            assert (await resp.json())["result"]["text"] == "form"  # method names are case-insensitive
        async with http.get(f"{base}/getMe") as resp:
            assert (await resp.json())["result"]["username"] == "faceit_sandbox_bot"
        async with http.post(f"{base}/sendMessage", data={"chat_id": "@channel", "text": "x"}) as resp:
            assert resp.status == 400 and (await resp.json())["description"] == "Bad Request: chat not found"
        async with http.post(
            f"{base}/sendMessage", data={"chat_id": str(USER), "text": "x", "reply_markup": "{broken"}
        ) as resp:
            assert resp.status == 400 and "reply keyboard markup" in (await resp.json())["description"]
        async with http.post(f"{base}/noSuchMethod", json={}) as resp:
            assert resp.status == 404
            assert await resp.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    assert [e["text"] for e in telegram_sandbox.messages(USER)] == ["json", "form"]


async def test_webhook_mode_delivers_updates_with_the_secret(
    tg_bot: Bot, telegram_sandbox: TelegramSandbox
) -> None:
    from aiohttp import web

    from tests.support.local_http import serving

    received: list[tuple[str | None, dict]] = []
    got_one = asyncio.Event()
    fail_first = [True]

    async def hook(request: web.Request) -> web.Response:
        if fail_first.pop() if fail_first else False:
            return web.Response(status=500)
        received.append((request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json()))
        got_one.set()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    async with serving(app) as port:
        await tg_bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="s3cret")
        with pytest.raises(TelegramConflictError, match="webhook is active"):
            await tg_bot.get_updates()
        await telegram_sandbox.inject_async(USER, "via webhook")
        await asyncio.wait_for(got_one.wait(), 5)
        [(secret, update)] = received
        assert secret == "s3cret" and update["message"]["text"] == "via webhook"
        info = await tg_bot.get_webhook_info()
        assert info.url.endswith("/hook") and info.last_error_message  # the first try failed and was retried
        assert telegram_sandbox.bot_info()["webhook"]["has_secret_token"] is True
        assert "s3cret" not in str(telegram_sandbox.bot_info())
        await tg_bot.delete_webhook()
        telegram_sandbox.inject(USER, "polling again")
        assert [u.message.text for u in await tg_bot.get_updates()] == ["polling again"]

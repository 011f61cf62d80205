"""The /chat page and its JSON feed: what a person sees of the conversation."""

from __future__ import annotations

import asyncio
import re

import aiohttp
from aiogram import Bot
from aiogram.types import BufferedInputFile

from tests.sandbox_telegram.conftest import BOT_TOKEN
from tests.support.png import make_png
from tests.support.telegram_sandbox import TelegramSandbox

USER = 9001


async def test_chat_page_is_self_contained_and_locked_down(telegram_sandbox: TelegramSandbox) -> None:
    async with aiohttp.ClientSession() as http, http.get(telegram_sandbox.chat_url) as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
        page = await resp.text()
        csp = resp.headers["Content-Security-Policy"]
    nonce = re.search(r"script-src 'nonce-([^']+)'", csp).group(1)
    assert f'<script nonce="{nonce}">' in page and "{{nonce}}" not in page
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    # No CDN or other outside resource, and bot/user text is never injected as HTML.
    assert not re.search(r"""(src|href)=["']https?://""", page)
    assert "innerHTML" not in page and "insertAdjacentHTML" not in page and "document.write" not in page
    assert "/_sandbox/feed" in page and "/_sandbox/updates" in page
    # The page's nonce changes per request.
    async with aiohttp.ClientSession() as http, http.get(telegram_sandbox.chat_url) as resp:
        assert nonce not in await resp.text()


async def test_feed_shows_the_conversation_in_order(tg_bot: Bot, telegram_sandbox: TelegramSandbox) -> None:
    await tg_bot.get_me()  # the bot connects
    telegram_sandbox.inject(USER, "/start")
    sent = await tg_bot.send_message(
        USER, "<b>Welcome</b> &lt;script&gt;alert(1)&lt;/script&gt;", parse_mode="HTML"
    )
    photo = await tg_bot.send_photo(USER, BufferedInputFile(make_png(), "p.png"), caption="chart")
    await tg_bot.edit_message_text(
        "<b>Welcome</b> back", chat_id=USER, message_id=sent.message_id, parse_mode="HTML"
    )
    await tg_bot.delete_message(USER, photo.message_id)

    feed = telegram_sandbox.feed(USER)
    kinds = [(e["kind"], e["message_id"]) for e in feed["events"]]
    assert kinds == [
        ("user_message", sent.message_id - 1),
        ("sent", sent.message_id),
        ("photo", photo.message_id),
        ("edited", sent.message_id),
        ("deleted", photo.message_id),
    ]
    welcome = feed["events"][1]["message"]
    assert welcome["text"] == "Welcome <script>alert(1)</script>"  # plain text, rendered with textContent
    assert welcome["entities"] == [{"type": "bold", "offset": 0, "length": 7}]
    assert feed["events"][3]["message"]["text"] == "Welcome back"
    assert feed["events"][2]["photo"]["url"].startswith("/_sandbox/photo/")
    assert feed["bot"]["id"] == int(BOT_TOKEN.split(":")[0]) and feed["bot"]["online"] is True
    assert BOT_TOKEN not in str(feed)

    # Incremental reads return only what is new.
    assert telegram_sandbox.feed(USER, after=feed["last_seq"])["events"] == []


async def test_feed_long_poll_wakes_when_the_bot_sends(
    tg_bot: Bot, telegram_sandbox: TelegramSandbox
) -> None:
    last = telegram_sandbox.feed(USER)["last_seq"]
    # A wait of 25 s (the longest the feed takes): a feed that did not wake at the message would
    # answer only then, past the generous 15 s it is given here.
    waiting = asyncio.create_task(asyncio.to_thread(telegram_sandbox.feed, USER, last, 25))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await tg_bot.send_message(USER, "live")
    feed = await asyncio.wait_for(waiting, 15)
    assert [e["message"]["text"] for e in feed["events"]] == ["live"]


async def test_chat_page_actions_go_through_the_same_control_api(
    tg_bot: Bot, telegram_sandbox: TelegramSandbox
) -> None:
    """What the page's JavaScript posts (JSON with user_id/text/language_code) reaches the bot."""
    async with aiohttp.ClientSession() as http:
        async with http.post(
            telegram_sandbox.base_url + "/_sandbox/updates",
            json={"user_id": USER, "text": "hi from the page", "language_code": "ru"},
        ) as resp:
            assert resp.status == 200 and (await resp.json())["ok"] is True
        async with http.post(telegram_sandbox.base_url + "/_sandbox/updates", json={"user_id": USER}) as resp:
            assert resp.status == 400 and "text" in (await resp.json())["error"]
        async with http.get(telegram_sandbox.base_url + "/_sandbox/photo/nope") as resp:
            assert resp.status == 404
        async with http.get(telegram_sandbox.base_url + "/_sandbox/health") as resp:
            assert resp.status == 200 and (await resp.json())["ok"] is True
        async with http.get(telegram_sandbox.base_url + "/", allow_redirects=False) as resp:
            assert resp.status == 302 and resp.headers["Location"] == "/chat"
    [update] = await tg_bot.get_updates()
    assert update.message.text == "hi from the page" and update.message.from_user.language_code == "ru"

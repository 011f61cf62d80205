"""The test helper (wait_for, errors) with a real aiogram Dispatcher, and the command line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from aiogram import Dispatcher, F, Router
from aiogram.filters import CommandStart
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from tests.sandbox_telegram.conftest import make_bot
from tests.support.redis_server import free_port
from tests.support.telegram_sandbox import SandboxControlError, TelegramSandbox

ROOT = Path(__file__).resolve().parents[2]
USER = 4242


def echo_router() -> Router:
    """A tiny bot: greets with a button, edits its message when the button is pressed."""
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        lang = message.from_user.language_code
        markup = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="Ping", callback_data="ping")]]
        )
        await message.answer(f"hello ({lang})", reply_markup=markup)

    @router.callback_query(F.data == "ping")
    async def ping(query: CallbackQuery) -> None:
        await query.message.edit_text("pong")
        await query.answer("done")

    return router


async def test_real_dispatcher_polls_the_sandbox_end_to_end(telegram_sandbox: TelegramSandbox) -> None:
    bot = make_bot(telegram_sandbox.base_url)
    dp = Dispatcher()
    dp.include_router(echo_router())
    # Injected before the bot starts polling: it finds the update waiting.
    await telegram_sandbox.inject_async(USER, "/start", language_code="pt")
    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=5))
    try:
        hello = await telegram_sandbox.wait_for_async(
            lambda ms: next((m for m in ms if m["kind"] == "sent"), None), timeout=10, chat_id=USER
        )
        assert hello["text"] == "hello (pt)"
        await telegram_sandbox.click_async(USER, hello["message_id"], "ping")
        edited = await telegram_sandbox.wait_for_async(
            lambda ms: next((m for m in ms if m["kind"] == "edited"), None), timeout=10, chat_id=USER
        )
        assert edited["message_id"] == hello["message_id"] and edited["text"] == "pong"
        assert edited["reply_markup"] is None
        await telegram_sandbox.wait_for_async(lambda _: telegram_sandbox.callbacks()[0]["answer"], timeout=5)
        assert telegram_sandbox.stats()["callback_queries"] == {"total": 1, "answered": 1}
    finally:
        await dp.stop_polling()
        await asyncio.wait_for(polling, 10)
        await bot.session.close()


async def test_each_token_is_its_own_bot_and_the_first_takes_the_default() -> None:
    with TelegramSandbox() as sandbox:
        sandbox.inject(USER, "before any bot connected")
        first, second = make_bot(sandbox.base_url, "777:first"), make_bot(sandbox.base_url, "888:second")
        try:
            [update] = await first.get_updates()
            assert update.message.text == "before any bot connected"
            assert update.message.chat.id == USER
            assert (await second.get_me()).id == 888
            assert await second.get_updates() == []
            sandbox.request(
                "POST", "/_sandbox/updates", {"bot": 888, "user_id": USER, "text": "to the second"}
            )
            assert [u.message.text for u in await second.get_updates()] == ["to the second"]
            await second.send_message(USER, "from the second")
            assert sandbox.messages(USER) == []  # the default bot (777) sent nothing
            events = sandbox.request("GET", "/_sandbox/messages", query={"bot": 888})["messages"]
            assert [e["text"] for e in events] == ["from the second"]
        finally:
            await first.session.close()
            await second.session.close()


def test_wait_for_times_out_with_what_the_bot_did(telegram_sandbox: TelegramSandbox) -> None:
    with pytest.raises(TimeoutError, match="none"):
        telegram_sandbox.wait_for(lambda ms: ms, timeout=0.2, chat_id=USER)
    with pytest.raises(SandboxControlError, match="HTTP 400"):
        telegram_sandbox.click(USER, 999_999, "nothing")
    with pytest.raises(SandboxControlError, match="HTTP 404: no bot with id 5"):
        telegram_sandbox.request("GET", "/_sandbox/messages", query={"bot": 5})


def test_command_line_serves_and_prints_the_chat_url() -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.telegram_api", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = [process.stdout.readline(), process.stdout.readline()]
        assert any(f"http://127.0.0.1:{port}/chat" in line for line in lines), lines
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/bot1:abc/getMe", timeout=5) as response:
            assert json.loads(response.read())["result"]["id"] == 1
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/chat", timeout=5) as response:
            assert b"Sandbox chat" in response.read()
    finally:
        process.terminate()
        process.wait(10)


async def test_the_access_log_is_written_only_at_debug_and_never_shows_the_token(caplog) -> None:
    import logging

    import aiohttp
    from aiohttp import web

    from sandbox.telegram_api import create_app, make_runner

    runner = make_runner(create_app())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    token = "123456:not-a-real-token-but-secret-looking"

    async def call() -> None:
        # A new connection each time: aiohttp reads the logger's switch once per connection.
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/bot{token}/getMe") as resp:
            assert resp.status == 200

    try:
        caplog.set_level(logging.DEBUG, logger="aiohttp.access")
        await call()
        lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
        assert any("GET /bot<token>/getMe -> 200" in line for line in lines), lines
        assert token not in caplog.text and "secret" not in caplog.text

        caplog.clear()
        caplog.set_level(logging.INFO, logger="aiohttp.access")
        await call()
        assert [r for r in caplog.records if r.name == "aiohttp.access"] == []
    finally:
        await runner.cleanup()

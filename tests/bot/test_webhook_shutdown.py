"""Webhook mode, stopping: no update Telegram was told we have is lost, and none is taken after.

Telegram keeps its webhook connections alive. Closing the port alone left them served: an update
posted on one after the stop began was answered 200, then cancelled with the application. And
aiogram serves each update in a task of its own after the 200, which the stop did not wait for.
Here the real webhook application (``bot.app.build_webhook_app``) runs in this process with a
handler that takes a while; ``bot.app.stop_webhook`` is what ``run_webhook`` does on SIGTERM.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiogram import Dispatcher, Router
from aiogram.types import Message
from aiohttp import web

from bot.app import build_webhook_app, stop_webhook
from bot.background import BackgroundWork
from bot.telegram import build_bot
from settings import load_settings
from tests.support.redis_server import free_port

SECRET = "webhook-secret-for-shutdown-0123"


def update(update_id: int, text: str) -> dict:
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": 1700000000, "text": text,
        "chat": {"id": 6161, "type": "private", "first_name": "Ann"},
        "from": {"id": 6161, "is_bot": False, "first_name": "Ann"}}}


async def test_a_stopping_webhook_serves_what_it_answered_and_takes_nothing_more():
    settings = load_settings(bot_mode="webhook", telegram_api_url=f"http://127.0.0.1:{free_port()}",
                             webhook_url="https://bot.example/tg/updates", webhook_secret=SECRET)
    served: list[str] = []
    dp = Dispatcher(disable_fsm=True)
    router = Router()

    @router.message()
    async def slow(message: Message) -> None:
        await asyncio.sleep(0.5)  # still being served when the stop begins
        served.append(message.text or "")

    dp.include_router(router)
    bot = build_bot(settings)
    app, path = build_webhook_app(bot, dp, settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}{path}"
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    try:
        async with aiohttp.ClientSession() as telegram:  # one kept-alive connection, as Telegram's
            async with telegram.post(url, json=update(1, "answered before the stop"), headers=headers) as first:
                assert first.status == 200
            await stop_webhook(site, runner, BackgroundWork())
            assert served == ["answered before the stop"]  # its task was waited for
            with pytest.raises(aiohttp.ClientError):
                async with telegram.post(url, json=update(2, "after the stop"), headers=headers) as late:
                    raise AssertionError(f"an update was taken after the stop: HTTP {late.status}")
    finally:
        await runner.cleanup()
        await bot.session.close()
    assert served == ["answered before the stop"]  # the refused update was never served either

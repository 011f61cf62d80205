"""The bot's start-up waits (bot.startup): Redis and the Bot API are retried alike, and what
ends each wait is what the module promises."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from bot.startup import retry_until, wait_for_redis
from tests.support.redis_server import free_port


async def test_redis_that_never_answers_is_waited_for_then_the_bot_starts_anyway(caplog):
    port = free_port()  # nothing listens there
    client = redis.asyncio.Redis(port=port, retry=Retry(NoBackoff(), 0))  # each ping fails at once
    settings = SimpleNamespace(bot_redis_wait=1.0, redis_url=f"redis://:hunter2@127.0.0.1:{port}/0")
    with caplog.at_level(logging.WARNING, logger="bot"):
        assert await wait_for_redis(client, settings) is False
    await client.aclose()
    tries = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert tries == [f"Redis at redis://:***@127.0.0.1:{port}/0 is unreachable (ConnectionError); retrying in 0.5 s"]
    final = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(final) == 1 and "still unreachable after 1 s" in final[0] and "starting anyway" in final[0]
    assert "hunter2" not in caplog.text


async def test_redis_that_answers_is_not_waited_for(redis_server, caplog):
    client = redis.asyncio.Redis(port=redis_server.port)
    settings = SimpleNamespace(bot_redis_wait=60.0, redis_url=redis_server.url)
    with caplog.at_level(logging.WARNING, logger="bot"):
        assert await wait_for_redis(client, settings) is True
    await client.aclose()
    assert caplog.records == []


async def test_an_error_that_is_not_transient_ends_the_wait_at_once():
    calls = []

    async def refused() -> None:
        calls.append(1)
        raise PermissionError("refused")

    with pytest.raises(PermissionError):
        await retry_until(refused, 60.0, (ConnectionError,), lambda exc: "down")
    assert len(calls) == 1


async def test_a_transient_error_is_tried_again_until_the_call_returns(caplog):
    calls = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("blip")
        return "up"

    with caplog.at_level(logging.WARNING, logger="bot"):
        assert await retry_until(flaky, 60.0, (ConnectionError,), lambda exc: f"down ({exc})") == "up"
    assert [r.getMessage() for r in caplog.records] == ["down (blip); retrying in 0.5 s", "down (blip); retrying in 1.0 s"]


async def test_flood_control_longer_than_the_clients_own_wait_is_waited_out_at_start(telegram_sandbox_server, caplog):
    """The Bot's request middleware waits out up to 30 s of flood control; a longer hold (a quick
    restart's setWebhook) reached the start-up as a 429, which stopped the bot as a configuration
    error, and a restart loop kept the flood going. (Here the client waits out none itself.)"""
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    from bot.startup import check_telegram
    from sandbox.telegram_api import SANDBOX_BOT_TOKEN

    tg = telegram_sandbox_server
    tg.reset()
    bot = Bot(SANDBOX_BOT_TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(tg.base_url)))
    settings = SimpleNamespace(telegram_api_url=tg.base_url, bot_telegram_wait=10.0)
    tg.flood(2, retry_after=1, methods=["getme"])
    try:
        with caplog.at_level(logging.WARNING, logger="bot"):
            await check_telegram(bot, settings)
    finally:
        await bot.session.close()
    waits = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(waits) == 2 and all("retrying in 1.0 s" in w and "Too Many Requests" in w for w in waits)


async def test_a_server_that_is_no_bot_api_is_one_line_not_a_traceback():
    """A wrong TELEGRAM_API_URL (another service, a proxy's 404 page) answered with text, and the
    bot stopped with a 66-line ``ClientDecodeError`` traceback."""
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiohttp import web
    from aiohttp.test_utils import TestServer
    from pydantic import SecretStr

    from bot.config import BotConfigError
    from bot.startup import check_telegram
    from bot.telegram import build_bot
    from sandbox.telegram_api import SANDBOX_BOT_TOKEN

    async def not_found(request: web.Request) -> web.Response:
        return web.Response(status=404, text="404: Not Found")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", not_found)
    async with TestServer(app, host="127.0.0.1") as server:
        base = f"http://127.0.0.1:{server.port}"
        settings = SimpleNamespace(telegram_api_url=base, telegram_bot_token=SecretStr(""), bot_telegram_wait=5.0)
        said = []
        # aiogram's own session, and ours (bot.telegram.BotSession: a 5xx page is waited out, not a 404)
        for bot in (Bot(SANDBOX_BOT_TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(base))),
                    build_bot(settings)):
            try:
                with pytest.raises(BotConfigError) as info:
                    await check_telegram(bot, settings)
            finally:
                await bot.session.close()
            said.append(str(info.value))
    assert said == [f"the server at {base} does not answer as a Telegram Bot API (its reply to getMe: "
                    "'404: Not Found'); check TELEGRAM_API_URL"] * 2


def _gateway(failures: int | None, status: int = 502):
    """An aiohttp app in front of a Bot API that answers ``getMe`` with a proxy's HTML error page
    ("502 Bad Gateway") ``failures`` times (None: always), then as Telegram does. Returns the app
    and the list of statuses it sent."""
    from aiohttp import web

    sent: list[int] = []

    async def get_me(request: web.Request) -> web.Response:
        if failures is None or len(sent) < failures:
            sent.append(status)
            return web.Response(status=status, content_type="text/html",
                                text=f"<html><body><h1>{status} Proxy Error</h1></body></html>")
        sent.append(200)
        return web.json_response({"ok": True, "result": {"id": 1, "is_bot": True, "first_name": "Bot",
                                                         "username": "sandbox_bot"}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", get_me)
    return app, sent


@pytest.mark.parametrize("status", [502, 429])
async def test_a_proxys_bad_gateway_page_at_start_up_is_waited_out(caplog, status):
    """A proxy in front of the Bot API answers 502 with an HTML page while Telegram is out of its
    reach. aiogram cannot decode it, and the start-up took it for a wrong TELEGRAM_API_URL: the bot
    stopped as misconfigured (exit 2), and the supervisor left it stopped."""
    from aiohttp.test_utils import TestServer
    from pydantic import SecretStr

    from bot.startup import check_telegram
    from bot.telegram import build_bot

    app, sent = _gateway(failures=2, status=status)
    async with TestServer(app, host="127.0.0.1") as server:
        base = f"http://127.0.0.1:{server.port}"
        settings = SimpleNamespace(telegram_api_url=base, telegram_bot_token=SecretStr(""), bot_telegram_wait=10.0)
        bot = build_bot(settings)
        try:
            with caplog.at_level(logging.WARNING, logger="bot"):
                await check_telegram(bot, settings)
        finally:
            await bot.session.close()
    assert sent == [status, status, 200]
    waits = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert waits == [f"the Telegram Bot API at {base} does not answer (HTTP {status}, not a Bot API reply); "
                     f"retrying in {pause} s" for pause in ("0.5", "1.0")]


async def test_a_bad_gateway_that_lasts_stops_the_bot_to_be_restarted_not_as_misconfigured():
    from aiohttp.test_utils import TestServer
    from pydantic import SecretStr

    from bot.startup import TelegramUnavailable, check_telegram
    from bot.telegram import build_bot

    app, sent = _gateway(failures=None)
    async with TestServer(app, host="127.0.0.1") as server:
        base = f"http://127.0.0.1:{server.port}"
        settings = SimpleNamespace(telegram_api_url=base, telegram_bot_token=SecretStr(""), bot_telegram_wait=1.0)
        bot = build_bot(settings)
        try:
            with pytest.raises(TelegramUnavailable) as info:
                await check_telegram(bot, settings)
        finally:
            await bot.session.close()
    assert sent and set(sent) == {502}  # as many tries as fit in the second (one on a slow first connection)
    assert str(info.value) == (f"the Telegram Bot API at {base} does not answer (HTTP 502, not a Bot API reply); "
                               "check TELEGRAM_API_URL and the network")

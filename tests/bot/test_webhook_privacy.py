"""Webhook mode and Sentry: an error while serving an update reaches Sentry without the user's words.

Sentry's aiohttp integration (enabled by itself when aiohttp is installed) attaches the request to
every event raised while serving it: for the webhook that is the raw body, a Telegram update with
the user's message, name and button data in it, plus the query string and cookies. Here the real
webhook application (``bot.app.build_webhook_app``, as ``run_webhook`` serves it) runs in this
process with Sentry initialised by ``init_sentry`` on a collecting transport, and a handler that
fails; the event must arrive, and none of the user's texts with it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from aiogram import Dispatcher, Router
from aiogram.types import Message
from aiohttp import ClientSession, web
from sentry_sdk.transport import Transport

import queues.sentry
from bot.app import build_webhook_app
from bot.middlewares.errors import ErrorsMiddleware
from bot.telegram import build_bot
from queues.sentry import init_sentry
from settings import load_settings
from tests.support.redis_server import free_port
from tests.support.waiting import async_wait_until

SECRET = "webhook-secret-for-privacy-0123"
PRIVATE = ("private-note-xyz", "Eve-private-name", "private-query-abc", "private-cookie-abc", "eve_private_login")


class CollectingTransport(Transport):
    """Keeps every event Sentry would send, instead of sending it."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Any) -> None:
        self.events.extend(item.payload.json for item in envelope.items if item.type == "event")


@pytest.fixture
def sentry_events() -> Iterator[tuple[Any, CollectingTransport]]:
    """Settings for webhook mode with a DSN, Sentry initialised on a collecting transport; Sentry
    is switched off again (and the module's state put back) after the test."""
    kept = (dict(queues.sentry._initialized), dict(queues.sentry._scrubbers))
    settings = load_settings(sentry_dsn="http://publickey@127.0.0.1:9/1", bot_mode="webhook",
                             telegram_api_url=f"http://127.0.0.1:{free_port()}",  # nothing listens
                             webhook_url="https://bot.example/tg/updates", webhook_secret=SECRET)
    transport = CollectingTransport()
    assert init_sentry(settings, "bot", transport=transport)
    try:
        yield settings, transport
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init(dsn="")  # no DSN (not even SENTRY_DSN from the environment): nothing is sent
        for state, saved in zip((queues.sentry._initialized, queues.sentry._scrubbers), kept, strict=True):
            state.clear()
            state.update(saved)


def failing_dispatcher() -> Dispatcher:
    """The bot's errors middleware around a handler that fails on every message."""
    dp = Dispatcher(disable_fsm=True)
    dp.update.outer_middleware(ErrorsMiddleware())
    router = Router()

    @router.message()
    async def fail(message: Message) -> None:
        raise RuntimeError("the handler failed")

    dp.include_router(router)
    return dp


async def test_an_error_while_serving_a_webhook_update_reaches_sentry_without_the_users_words(sentry_events):
    settings, transport = sentry_events
    bot = build_bot(settings)
    app, path = build_webhook_app(bot, failing_dispatcher(), settings)
    assert path == "/tg/updates"
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    update = {"update_id": 424242, "message": {
        "message_id": 7, "date": 1700000000, "text": "private-note-xyz",
        "chat": {"id": 5151, "type": "private", "first_name": "Eve-private-name"},
        "from": {"id": 5151, "is_bot": False, "first_name": "Eve-private-name", "username": "eve_private_login"}}}
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}{path}?note=private-query-abc"
        async with ClientSession() as client, client.post(
                url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET,
                                           "Cookie": "session=private-cookie-abc"}) as response:
            assert response.status == 200
        # the update is served after the answer (in the background)
        await async_wait_until(lambda: transport.events, "an event reaching Sentry", timeout=20)
    finally:
        await runner.cleanup()
        await bot.session.close()
    events = transport.events
    assert events, "no event reached Sentry"
    text = json.dumps(events)
    leaked = [word for word in PRIVATE if word in text]
    assert not leaked, text
    assert SECRET not in text
    [event] = [e for e in events if (e.get("logentry") or {}).get("message") == "update failed"]
    assert event["exception"]["values"][-1]["value"] == "the handler failed"
    request = event["request"]  # the request is still said: where, and the update's shape
    assert request["url"].endswith("/tg/updates") and request["query_string"] == "[scrubbed]"
    assert request["data"]["update_id"] == 424242 and request["data"]["message"]["chat"]["type"] == "private"
    assert request["data"]["message"]["text"] == "[scrubbed]"

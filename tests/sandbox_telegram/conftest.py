"""Fixtures for the Telegram sandbox tests.

``telegram_sandbox`` (from ``tests/support/telegram_sandbox.py``, reusable by other areas) is
one server for the whole session, emptied before each test. ``tg_bot`` is a real aiogram
``Bot`` pointed at it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from tests.support.telegram_sandbox import (  # noqa: F401  (fixtures used by the tests here)
    TelegramSandbox,
    telegram_sandbox,
    telegram_sandbox_server,
)

BOT_TOKEN = "123456789:SANDBOX-test-token"


def make_bot(base_url: str, token: str = BOT_TOKEN) -> Bot:
    return Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(base_url)))


@pytest.fixture
async def tg_bot(telegram_sandbox: TelegramSandbox) -> AsyncIterator[Bot]:  # noqa: F811
    bot = make_bot(telegram_sandbox.base_url)
    yield bot
    await bot.session.close()



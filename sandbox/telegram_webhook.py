"""Webhook delivery: when a bot has set a webhook, POST its pending updates there, like Telegram.

Updates go one at a time, in order, with the ``X-Telegram-Bot-Api-Secret-Token`` header when
the bot set a secret. A failed delivery is recorded (``getWebhookInfo`` shows
``last_error_date``/``last_error_message``) and retried after a short pause, so a bot in
webhook mode can be tested end to end against the sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import aiohttp

from sandbox.telegram_state import SandboxBot, SandboxRegistry

log = logging.getLogger(__name__)

IDLE_PAUSE = 0.05
RETRY_PAUSE = 1.0


class WebhookDelivery:
    """A background task that pushes pending updates to every bot's webhook."""

    def __init__(self, registry: SandboxRegistry, retry_pause: float = RETRY_PAUSE) -> None:
        self.registry = registry
        self.retry_pause = retry_pause
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._next_try: dict[int, float] = {}

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._task = asyncio.create_task(self._run(), name="telegram-sandbox-webhook")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session:
            await self._session.close()

    async def _run(self) -> None:
        while True:
            delivered = False
            for bot in self.registry.all_bots():
                if (
                    bot.webhook.get("url")
                    and bot.updates
                    and time.monotonic() >= self._next_try.get(id(bot), 0)
                ):
                    delivered = await self._deliver_one(bot) or delivered
            if not delivered:
                await asyncio.sleep(IDLE_PAUSE)

    async def _deliver_one(self, bot: SandboxBot) -> bool:
        assert self._session is not None
        pending = bot.take_allowed(1)
        if not pending:
            return False
        update = pending[0]
        url = bot.webhook["url"]
        headers: dict[str, Any] = {}
        if bot.webhook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = bot.webhook["secret_token"]
        try:
            async with self._session.post(url, json=update, headers=headers) as response:
                ok = 200 <= response.status < 300
                error = f"Wrong response from the webhook: {response.status} {response.reason}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            ok = False
            error = f"Connection error: {type(exc).__name__}"
        if ok:
            if bot.updates and bot.updates[0] is update:
                bot.updates.pop(0)
            return True
        log.warning("webhook delivery for bot %s failed: %s", bot.bot_id, error)
        bot.webhook["last_error_date"] = int(time.time())
        bot.webhook["last_error_message"] = error
        self._next_try[id(bot)] = time.monotonic() + self.retry_pause
        return False

"""The webhook's request handler: aiogram's, with the secret compared as bytes and a body that
is not an update refused with 400.

Why: aiogram compares the ``X-Telegram-Bot-Api-Secret-Token`` header with
``secrets.compare_digest`` on text, which raises ``TypeError`` for a non-ASCII value. Anyone
could send one: each answered 500 and wrote a traceback (and a Sentry event), where a wrong
secret must be a plain 401. A body that is not a JSON object with an ``update_id``, with the
right secret, raised in the same way (aiogram validates the rest).
"""

from __future__ import annotations

import hmac
from typing import Any

from aiogram import Bot
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class CheckedRequestHandler(SimpleRequestHandler):
    """:class:`SimpleRequestHandler` that answers a wrong secret of any characters with 401 and a
    body that is not a JSON object with an ``update_id`` with 400, without an error in the log."""

    def verify_secret(self, telegram_secret_token: str, bot: Bot) -> bool:
        if not self.secret_token:
            return True
        # aiohttp gives undecodable header bytes as surrogates: encoded back, they compare as sent.
        given = telegram_secret_token.encode("utf-8", "surrogateescape")
        return hmac.compare_digest(given, self.secret_token.encode("utf-8"))

    async def handle(self, request: web.Request) -> web.Response:
        bot = await self.resolve_bot(request)
        if not self.verify_secret(request.headers.get(SECRET_HEADER, ""), bot):
            return web.Response(body="Unauthorized", status=401)
        try:
            update: Any = await request.json(loads=bot.session.json_loads)
        except (ValueError, LookupError):  # (bad JSON, bytes or charset)
            update = None
        if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
            return web.Response(body="Bad Request: the body is not an update", status=400)
        return await super().handle(request)  # (the body is read once: aiohttp keeps it)

    __call__ = handle


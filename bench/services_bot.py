"""Our services' work for ``/analyze`` without aiogram: ``bench.bot_ack --services`` runs this.

Not our bot, and not for use: a yardstick between :mod:`bench.floor_bot` (the least any bot must
do) and ``python -m bot``. It long-polls ``getUpdates`` as raw JSON and, for each ``/analyze``
in it, does what the bot's handler does through :class:`bot.services.BotServices`, the very code
the bot runs: the user's language (``seen_user``), the job start (``start_match_analysis``: the
limits, the record, the Dramatiq message and the place in the queue in one script call, batched
by the bot's ``ScriptBatcher``), the queued line with its Cancel button as one JSON
``sendMessage``, the answer recorded in the background (``confirm``), one log line per job.

What it leaves out is aiogram: the ``Update`` models, the dispatch, the middlewares (flood
guard, errors, updates in flight, messages in a chat's name), and every other kind of message.
Every update of a ``getUpdates`` batch starts at once, so the starts of a burst share as few
pipelines as they can; the replies go out ``BOT_UPDATE_CONCURRENCY`` at a time. So what it
measures is the best a first reply outside aiogram could do with our job model: if it misses
the target, no rewrite of the dispatch alone will meet it.

``TELEGRAM_API_URL``, ``TELEGRAM_BOT_TOKEN`` and ``REDIS_URL`` as for the bot.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp

from bench.floor_bot import analyze_messages, run
from bot.app import freeze_startup_heap
from bot.botapi import NO_PREVIEW
from bot.redisclient import bot_redis_client
from bot.services import BotServices, Requester
from bot.texts import LANGS, normalize_lang
from bot.views import cancel_keyboard, queued_text
from faceit.links import parse_match_ref
from settings import get_settings

logger = logging.getLogger("bench.services_bot")

_JSON = {"Content-Type": "application/json"}


async def serve(api: str) -> None:
    """Answer every ``/analyze <match>`` message until cancelled."""
    settings = get_settings()
    services = BotServices(settings, bot_redis_client(settings))
    await asyncio.to_thread(lambda: services.manager.broker)  # the actors declared, as the bot does at start
    freeze_startup_heap()  # as the bot
    replies = asyncio.Semaphore(settings.bot_update_concurrency)
    pending: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession() as http:

        async def answer(message: dict[str, Any]) -> None:
            services.background.update_started()  # as the bot's InFlightMiddleware: background work
            try:  # (recording the answers) waits until the burst's updates are served
                await serve_one(message)
            finally:
                services.background.update_finished()

        async def serve_one(message: dict[str, Any]) -> None:
            user, chat_id = message["from"], message["chat"]["id"]
            chosen = await services.seen_user(user["id"], private=message["chat"]["type"] == "private")
            lang = chosen if chosen in LANGS else normalize_lang(user.get("language_code"))
            requester = Requester(user_id=user["id"], chat_id=chat_id, lang=lang)
            job = await services.start_match_analysis(requester, parse_match_ref(message["text"].split(None, 1)[1]))
            params = {"chat_id": chat_id, "parse_mode": "HTML", "link_preview_options": NO_PREVIEW,
                      "text": queued_text(job.job_id, job.actor, job.position, job.coalesced, lang),
                      "reply_markup": cancel_keyboard(job.job_id, lang)}
            async with replies, http.post(f"{api}/sendMessage", data=json.dumps(params, ensure_ascii=False).encode(),
                                          headers=_JSON) as resp:
                message_id = json.loads(await resp.text())["result"]["message_id"]
            services.in_background(lambda: services.confirm(job, chat_id, message_id), f"job {job.job_id}: attach")
            logger.info("job %s: queued, message %s", job.job_id, message_id)

        async for messages in analyze_messages(http, api):
            for message in messages:
                task = asyncio.ensure_future(answer(message))
                pending.add(task)
                task.add_done_callback(pending.discard)


def main() -> None:
    run(serve)


if __name__ == "__main__":
    main()

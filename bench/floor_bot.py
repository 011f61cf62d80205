"""The least any bot must do to give a burst its first replies: ``bench.bot_ack --floor`` runs this.

Not our bot, and not for use: a yardstick for the machine. It long-polls ``getUpdates``, writes
one small record per ``/analyze`` in a single Lua call per batch (a record, a rate counter, a
queue push and the queue's length, as our job start does, with none of its checks), and
answers each with one JSON ``sendMessage`` carrying a Cancel button, as many at once as the
bot's ``BOT_UPDATE_CONCURRENCY``, with one log line per job. No aiogram, no middlewares, no languages, no limits, no Dramatiq message, so no
worker ever has anything to do.

Why: the first-reply target of ``bench/bot_ack.py`` is measured with the sandbox Bot API and
the simulated users on the same two cores as the bot. What this bot measures is how much of
the target those leave, whatever a bot does; what ``python -m bot`` measures beyond it is ours.

``TELEGRAM_API_URL``, ``TELEGRAM_BOT_TOKEN`` and ``REDIS_URL`` as for the bot; every key it
writes starts with ``bench-floor:``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from queues.waitfor import keep_cancellations
from settings import get_settings

logger = logging.getLogger("bench.floor_bot")

CONCURRENCY = get_settings().bot_update_concurrency  # answers in flight at once, as the bot's updates

# ARGV: job id, user id, job id, user id, ...  → each job's place in the queue.
_START_JOBS = """
local places = {}
for i = 1, #ARGV, 2 do
  local key = 'bench-floor:job:' .. ARGV[i]
  redis.call('HSET', key, 'user', ARGV[i + 1], 'status', 'queued', 'actor', 'match_analysis')
  redis.call('EXPIRE', key, 3600)
  redis.call('INCR', 'bench-floor:rate:' .. ARGV[i + 1])
  redis.call('RPUSH', 'bench-floor:queue', ARGV[i])
  places[#places + 1] = redis.call('LLEN', 'bench-floor:queue')
end
return places
"""


async def serve(api: str, redis_url: str) -> None:
    """Answer every ``/analyze`` message until cancelled."""
    client = aioredis.from_url(redis_url, decode_responses=True)
    start_jobs = client.register_script(_START_JOBS)
    slots = asyncio.Semaphore(CONCURRENCY)
    pending: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession() as http:

        async def answer(message: dict[str, Any], job_id: str, place: int) -> None:
            params = {"chat_id": message["chat"]["id"], "parse_mode": "HTML",
                      "text": f"⏳ Match analysis queued: job <code>{job_id[:8]}</code>, place {place}",
                      "reply_markup": {"inline_keyboard": [[{"text": "Cancel", "callback_data": f"cancel:{job_id}"}]]}}
            async with slots, http.post(f"{api}/sendMessage", json=params) as resp:
                sent = await resp.json()
            logger.info("job %s: queued, message %s", job_id, sent["result"]["message_id"])

        async for messages in analyze_messages(http, api):
            job_ids = [str(uuid.uuid4()) for _ in messages]
            args = [value for job_id, message in zip(job_ids, messages, strict=True)
                    for value in (job_id, message["from"]["id"])]
            places = await start_jobs(keys=[], args=args)
            for message, job_id, place in zip(messages, job_ids, places, strict=True):
                task = asyncio.ensure_future(answer(message, job_id, place))
                pending.add(task)
                task.add_done_callback(pending.discard)


async def analyze_messages(http: aiohttp.ClientSession, api: str) -> AsyncIterator[list[dict[str, Any]]]:
    """Long-poll ``getUpdates`` as raw JSON; each batch's ``/analyze <match>`` messages (batches with
    none are skipped). Logs "Run polling" first, the line ``bench.bot_ack`` waits for."""
    offset = 0
    logger.info("Run polling")
    while True:
        async with http.post(f"{api}/getUpdates", json={"offset": offset, "timeout": 30}) as resp:
            updates = (await resp.json())["result"]
        if not updates:
            continue
        offset = updates[-1]["update_id"] + 1
        messages = [u["message"] for u in updates if (u.get("message") or {}).get("text", "").startswith("/analyze ")]
        if messages:
            yield messages


def run(serve_api: Callable[[str], Awaitable[None]]) -> None:
    """Log as the bot does and send Redis commands as it does, then ``serve_api(<Bot API base>)``
    (``TELEGRAM_API_URL``, ``TELEGRAM_BOT_TOKEN``) until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    keep_cancellations()  # as the bot's start (bot.app.init_process): Redis commands sent the same way
    api = f"{os.environ['TELEGRAM_API_URL'].rstrip('/')}/bot{os.environ['TELEGRAM_BOT_TOKEN']}"
    try:
        asyncio.run(serve_api(api))
    except KeyboardInterrupt:
        pass


def main() -> None:
    run(lambda api: serve(api, os.environ["REDIS_URL"]))


if __name__ == "__main__":
    main()

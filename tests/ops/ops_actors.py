"""Actors for the operations tests (loaded by workers as ``tests.ops.ops_actors``)."""

from __future__ import annotations

import os

from actors.base import JobContext, job_actor
from queues.priorities import QueuePriority


@job_actor(priority=QueuePriority.DEFAULT, max_retries=0)
async def ops_leaky_failure(ctx: JobContext, text: str = "", api_key: str = "") -> dict:
    """Fails with the FACEIT key and the bot token in its message and locals (Sentry must scrub)."""
    faceit_key = os.environ.get("FACEIT_API_KEY", "")
    bot_token = os.environ.get("TELEGRAM_BOT_TOKEN", "")
    chat_message = text
    assert chat_message  # held in a local: Sentry must not ship local variables
    raise RuntimeError(f"upstream refused key={faceit_key} token={bot_token}")

"""Resolve a nickname or profile link to a player (high queue: a user waits on /subscribe)."""

from __future__ import annotations

from actors.base import JobContext, job_actor
from queues.priorities import QueuePriority


@job_actor(priority=QueuePriority.HIGH, time_limit=30)
async def player_lookup(ctx: JobContext, player_ref: str, user_id: int | None = None,
                        subscribe: bool = False) -> dict:
    """Find the player. ``subscribe`` is carried to the delivery, which adds the subscription
    and sends its confirmation once (so a retried lookup never subscribes twice), with where
    monitoring starts (``baseline``: the match they finish next is the first one notified, even
    before the next monitoring scan)."""
    from faceit import services

    player = await services.resolve_player(player_ref)
    result = {"kind": "player_lookup", "data": player, "subscribe": subscribe, "user_id": user_id}
    if subscribe:  # without it (FACEIT trouble) the next monitoring scan takes the baseline
        result["baseline"] = await services.monitoring_baseline(player["player_id"])
    return result

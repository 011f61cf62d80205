"""Progress is written, and its listeners told, only while the job is at the attempt (and in the
status) that reports it: a stale attempt must not overwrite the users' messages."""

from __future__ import annotations

import asyncio
import time

from actors import base
from bot.views import status_text
from queues.runtime import get_job_store


def _job_at_attempt_two(job_id: str) -> None:
    """A record whose first attempt was lost (its worker stalled) and whose second runs now."""
    store = get_job_store()
    store.create(job_id, actor="t_noop", queue="default", max_retries=3)
    store.begin(job_id, max_deliveries=4)
    store.begin(job_id, max_deliveries=4)


def test_a_stale_attempt_and_a_notice_for_a_job_that_moved_on_tell_nobody(redis_url):
    told: list[tuple[str, dict]] = []

    async def listener(job_id: str, progress: dict) -> None:
        told.append((job_id, progress))

    base.PROGRESS_LISTENERS.append(listener)
    try:
        _job_at_attempt_two("guard-1")

        async def run() -> list[bool]:
            return [
                await base.publish_progress("guard-1", {"stage": "players"}, attempt=1),  # the stalled one
                await base.publish_progress("guard-1", {"stage": "retrying"}, status="retrying", attempt=2),
                await base.publish_progress("guard-1", {"stage": "players"}, attempt=2),  # the live one
            ]

        assert asyncio.run(run()) == [False, False, True]
        assert told == [("guard-1", {"stage": "players"})]
        store = get_job_store()
        attempt = store.get("guard-1").attempts
        store.finish("guard-1", attempt=attempt, status="succeeded", result={"ok": 1})
        assert not asyncio.run(base.publish_progress("guard-1", {"stage": "retrying"}, status="retrying",
                                                     attempt=attempt))
        assert len(told) == 1
    finally:
        base.PROGRESS_LISTENERS.remove(listener)


def test_a_run_that_begins_drops_the_progress_of_the_run_before(redis_url):
    """A job told "retrying" (or whose worker died at "players 6/10") and begun again showed that
    progress in /status, on the dashboard and in admin.py for the whole run when the run reported
    none of its own (a player lookup reports none): "выполняется · retrying · 0%"."""
    store = get_job_store()
    store.create("again-1", actor="player_lookup", queue="default", max_retries=3)
    store.begin("again-1", max_deliveries=4)
    store.finish("again-1", attempt=1, status="retrying", retry_at=time.time() + 10)
    notice = {"stage": "retrying", "code": "upstream", "retry_in": 10, "attempt": 1, "attempts": 4, "percent": 0}
    assert asyncio.run(base.publish_progress("again-1", notice, status="retrying", attempt=1))
    assert store.get("again-1").progress == notice  # shown while it waits to retry
    store.begin("again-1", max_deliveries=4)
    record = store.get("again-1")
    assert record.status == "started" and record.attempts == 2 and record.progress is None
    for lang in ("en", "ru"):
        assert "retrying" not in status_text(record, lang) and "0%" not in status_text(record, lang)

    store.create("lost-1", actor="match_analysis", queue="high", max_retries=3)
    store.begin("lost-1", max_deliveries=4)
    assert asyncio.run(base.publish_progress("lost-1", {"stage": "players", "done": 6, "total": 10,
                                                        "percent": 45}, attempt=1))
    assert "6/10 · 45%" in status_text(store.get("lost-1"), "en")
    store.begin("lost-1", max_deliveries=4)  # its worker died: delivered again
    assert store.get("lost-1").progress is None

"""Progress is written, and its listeners told, only while the job is at the attempt (and in the
status) that reports it: a stale attempt must not overwrite the users' messages."""

from __future__ import annotations

import asyncio

from actors import base
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

"""Workers whose Redis replies are lost: Redis ran the write, the worker never heard, and its
loop sent the write again. The job must go on as if the reply had come (a lost reply is what a
worker sees when the network drops, Redis fails over, or a stalled Redis passes the socket timeout).

The workers talk to Redis through :class:`ReplyDroppingProxy`; the test's manager and reads go
straight to Redis.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.reply_dropper import ReplyDroppingProxy


@pytest.fixture
def proxy(redis_server) -> Iterator[ReplyDroppingProxy]:
    proxy = ReplyDroppingProxy(redis_server.port)
    yield proxy
    proxy.close()


def _scripts_loaded() -> None:
    """Have Redis know the start and finish scripts (one job's record through them): a script it
    has not seen answers NOSCRIPT first, and the lost reply would be that error, not the write's."""
    from queues.runtime import get_job_store

    store = get_job_store()
    store.create("warm-up", actor="t_noop", queue="default")
    store.finish("warm-up", attempt=store.begin("warm-up", max_deliveries=1).attempt, status="succeeded")


def _through(proxy: ReplyDroppingProxy, redis_server) -> dict[str, str]:
    """The workers' environment: their Redis is the proxy."""
    return {"REDIS_URL": redis_server.url.replace(f":{redis_server.port}/", f":{proxy.port}/")}


def test_a_retry_whose_recording_reply_was_lost_is_still_pushed(start_pool, proxy, redis_server, manager, traces):
    """The "retrying" write, sent again, answered "stale" (its own write): the retry was never
    pushed, and the job sat "retrying" for a day, holding its users' slots and its match."""
    pool = start_pool(["default"], env=_through(proxy, redis_server))
    _scripts_loaded()
    # The finish of attempt 1 as "retrying": the status, the attempt, then an empty result (the
    # retry notice's progress write also names "retrying" and the attempt, and ends there).
    proxy.drop_reply_to(b"\r\n$8\r\nretrying\r\n$1\r\n1\r\n$0\r\n\r\n")
    handle = manager.enqueue_job("t_fail_times", failures=1)
    record = manager.wait_for(handle.id, timeout=30)
    assert proxy.dropped == 1
    assert record.status == "succeeded" and record.result == {"runs": 2}, (record.status, pool.log_path.read_text()[-2000:])
    assert [t["outcome"] for t in record.timeline] == ["retrying", "succeeded"]
    assert traces.runs(handle.id) == 2


def test_a_start_whose_reply_was_lost_is_not_taken_for_a_lost_worker(start_pool, proxy, redis_server, manager):
    """The start, sent again, found its own open attempt and recorded "worker_lost"."""
    _scripts_loaded()
    handle = manager.enqueue_job("t_noop", value=3)
    proxy.drop_reply_to(handle.id.encode())  # the workers' first call naming the job: its start
    start_pool(["default"], env=_through(proxy, redis_server))
    record = manager.wait_for(handle.id, timeout=30)
    assert proxy.dropped == 1
    assert record.status == "succeeded" and record.attempts == 1
    assert [t["outcome"] for t in record.timeline] == ["succeeded"] and record.raw.get("lost") == "0"

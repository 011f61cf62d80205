"""Workers whose Redis replies are lost: Redis ran the write, the worker never heard, and its
loop sent the write again. The job must go on as if the reply had come (a lost reply is what a
worker sees when the network drops, Redis fails over, or a stalled Redis passes the socket timeout).

The workers talk to Redis through :class:`ReplyDroppingProxy`; the test's manager and reads go
straight to Redis.
"""

from __future__ import annotations

import hashlib
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


def _start_of(job_id: str) -> bytes:
    """The bytes that open the start script's call for ``job_id`` (its SHA, no keys, the prefix,
    the id), whichever call of the workers comes first."""
    from queues.jobstore import _BEGIN

    sha = hashlib.sha1(_BEGIN.encode()).hexdigest()
    return f"{sha}\r\n$1\r\n0\r\n$3\r\nfb:\r\n${len(job_id)}\r\n{job_id}\r\n".encode()


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
    proxy.drop_reply_to(_start_of(handle.id))
    start_pool(["default"], env=_through(proxy, redis_server))
    record = manager.wait_for(handle.id, timeout=30)
    assert proxy.dropped == 1
    assert record.status == "succeeded" and record.attempts == 1
    assert [t["outcome"] for t in record.timeline] == ["succeeded"] and record.raw.get("lost") == "0"


def _store_through(proxy: ReplyDroppingProxy, redis_server):
    """A job store whose Redis is the proxy (the test's own reads go straight to Redis)."""
    import redis

    from queues.jobstore import JobStore

    client = redis.Redis.from_url(_through(proxy, redis_server)["REDIS_URL"], decode_responses=True)
    return JobStore(client, prefix="fb:", result_ttl=60, failure_ttl=600, index_limit=100)


def test_a_start_that_ended_a_crash_loop_answers_so_when_sent_again(proxy, redis_server, redis_url):
    """Sent again, the start that failed a crash-looping job answered "final": the message was
    acked instead of dead-lettered, and no crash-loop alert went out."""
    import redis

    from queues.runtime import get_job_store

    _scripts_loaded()
    get_job_store().create("looping", actor="t_noop", queue="default")
    for _ in range(2):
        get_job_store().begin("looping", max_deliveries=2)  # two deliveries whose workers died
    store = _store_through(proxy, redis_server)
    proxy.drop_reply_to(b"looping")
    with pytest.raises(redis.ConnectionError):  # the worker's kept connection: its caller tries again
        store.begin("looping", max_deliveries=2, token="third")
    again = store.begin("looping", max_deliveries=2, token="third")
    assert proxy.dropped == 1
    assert (again.verdict, again.attempt) == ("crash_loop", 2)
    assert get_job_store().get("looping").error["code"] == "crash_loop"

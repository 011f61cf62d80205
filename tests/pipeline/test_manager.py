"""The queue manager: coalescing, place in queue, cancel, requeue, clear, unknown names."""

from __future__ import annotations

import threading

import dramatiq
import pytest
from dramatiq.middleware import MiddlewareError

from queues.errors import UnknownActorError, UnknownJobError
from queues.runtime import get_job_store
from tests.pipeline.conftest import wait_until

ROOM = "https://www.faceit.com/en/cs2/room/1-0b9a4c1e-5b5e-4c8e-9f51-3a1b2c3d4e5f"
SAME_ROOM_OTHER_FORM = "https://www.faceit.com/ru/cs2/room/1-0b9a4c1e-5b5e-4c8e-9f51-3a1b2c3d4e5f/scoreboard"


def test_a_second_request_for_a_queued_match_joins_the_job(manager):
    first = manager.enqueue_match_analysis(ROOM, user_id=1)
    second = manager.enqueue_match_analysis(SAME_ROOM_OTHER_FORM, user_id=2)
    again = manager.enqueue_match_analysis(ROOM, user_id=1)
    assert not first.coalesced and second.coalesced and again.coalesced
    assert again.again  # a repeat, even before a message of theirs shows the job (tests/bot/test_jobstart.py)
    assert second.id == first.id == again.id
    record = manager.get_job(first.id)
    assert record.user_ids == [1, 2]  # the same user twice is one requester
    assert manager.queue_stats()["high"].waiting == 1  # one message, not three
    other = manager.enqueue_match_analysis(ROOM.replace("1-0b9a", "1-1b9a"), user_id=3)
    assert other.id != first.id and not other.coalesced


def test_requests_join_a_running_job_but_not_a_finished_one(shared_pool, manager):
    first = manager.enqueue_job("t_slow", seconds=1.5, steps=6, coalesce="m1", requester={"user_id": 1})
    wait_until(lambda: manager.get_job_status(first.id) == "started")
    joined = manager.enqueue_job("t_slow", seconds=1.5, steps=6, coalesce="m1", requester={"user_id": 2})
    assert joined.id == first.id and joined.status == "started"
    record = manager.wait_for(first.id, timeout=20)
    assert record.status == "succeeded" and record.user_ids == [1, 2]
    later = manager.enqueue_job("t_slow", seconds=0.1, steps=1, coalesce="m1", requester={"user_id": 3})
    assert later.id != first.id


def test_place_in_queue_counts_waiting_messages(manager):
    handles = [manager.enqueue_job("t_low") for _ in range(3)]
    assert [h.position for h in handles] == [1, 2, 3]


def test_cancel_a_queued_job_it_never_runs(manager, start_pool, traces):
    handle = manager.enqueue_job("t_noop")
    assert manager.cancel_job(handle.id) == "canceled"
    assert manager.get_job_status(handle.id) == "canceled"
    start_pool(["default"])
    marker = manager.enqueue_job("t_noop")  # runs after the canceled one was taken and skipped
    assert manager.wait_for(marker.id, timeout=20).status == "succeeded"
    assert traces.runs(handle.id) == 0
    assert manager.queue_stats()["default"].waiting == 0


def test_cancel_a_running_job_stops_it_at_its_next_await(shared_pool, manager, traces):
    handle = manager.enqueue_job("t_slow", seconds=20, steps=40)
    wait_until(lambda: traces.runs(handle.id) == 1)
    assert manager.cancel_job(handle.id) == "canceling"
    record = manager.wait_for(handle.id, timeout=10)
    assert record.status == "canceled"
    assert traces.runs(handle.id, "done") == 0
    assert record.finished_at - record.started_at < 5  # not the 20 s the body wanted
    assert manager.cancel_job(handle.id) == "already_canceled"  # asking again says what it is, and did nothing


def test_a_job_canceled_while_it_ran_still_tells_its_requesters_when_it_comes_back(manager, start_pool):
    """Its worker died (or it was retrying) after the cancel: the redelivery only drops it, and
    that must still send the requesters their note."""
    handle = manager.enqueue_job("t_noop", requester={"user_id": 42, "chat_id": 42})
    manager.jobs.begin(handle.id, max_deliveries=4)  # a worker took it ...
    assert manager.cancel_job(handle.id) == "canceling"  # ... the user canceled, and the worker died
    start_pool(["default", "high"])
    assert manager.wait_for(handle.id, timeout=20).status == "canceled"
    deliveries = wait_until(lambda: [r for r in manager.jobs.list_jobs(actor="deliver_result")[0]
                                     if r.args == [handle.id]], timeout=20)
    assert len(deliveries) == 1


def test_a_worker_without_telegram_settings_says_so_and_a_worker_with_them_delivers(manager, start_pool):
    """People wait for the result, and this worker has no token for Telegram: an operator must
    hear of it (an error alert with the reason). Its delivery fails as an outage of Telegram's
    does, so a worker that has the token sends the result on a retry; it used to end the
    delivery as done, and the result never came."""
    from queues.runtime import get_alert_store
    from sandbox.telegram_api import SANDBOX_BOT_TOKEN
    from tests.support.telegram_sandbox import TelegramSandbox

    unconfigured = start_pool(["default", "high"], env={
        "TELEGRAM_API_URL": "https://api.telegram.org", "TELEGRAM_BOT_TOKEN": "",
        "QUEUE_RETRY_DELAYS": "4"})  # (its retry waits long enough to be another worker's)
    handle = manager.enqueue_job("t_noop", requester={"user_id": 43, "chat_id": 43})
    assert manager.wait_for(handle.id, timeout=20).status == "succeeded"

    def deliveries() -> list:
        return [r for r in manager.jobs.list_jobs(actor="deliver_result")[0] if r.args == [handle.id]]

    (failed,) = wait_until(lambda: [r for r in deliveries() if r.status == "retrying"], timeout=20)
    assert failed.error["code"] == "not_configured"
    alerts = [a for a in get_alert_store().recent(1) if a.rule == "telegram_not_configured"]
    assert alerts and all(a.level == "error" and "TELEGRAM_BOT_TOKEN is empty" in a.message for a in alerts)
    unconfigured.stop(graceful=False)

    with TelegramSandbox() as telegram:
        start_pool(["default", "high"], env={"TELEGRAM_API_URL": telegram.base_url,
                                             "TELEGRAM_BOT_TOKEN": SANDBOX_BOT_TOKEN})
        (delivered,) = wait_until(lambda: [r for r in deliveries() if r.is_final], timeout=30)
        assert delivered.status == "succeeded" and delivered.result["sent"] == 1
        assert [e["kind"] for e in telegram.messages(43)] == ["sent"]
    assert manager.get_job(handle.id).result == {"value": 0}  # kept for /status


def test_deliveries_failing_for_want_of_a_token_raise_no_alert_of_their_own(manager, start_pool):
    """The host's ``telegram_not_configured`` alert says it once; each delivery's final failure
    (retried, then redelivered for hours) used to add an error alert of its own."""
    from queues.runtime import get_alert_store

    pool = start_pool(["default", "high"], env={"TELEGRAM_API_URL": "https://api.telegram.org",
                                                "TELEGRAM_BOT_TOKEN": "", "LOG_LEVEL": "INFO"})
    handles = [manager.enqueue_job("t_noop", requester={"user_id": user, "chat_id": user}) for user in (51, 52)]
    for handle in handles:
        wait_until(lambda h=handle: [r for r in manager.jobs.list_jobs(actor="deliver_result")[0]
                                     if r.args == [h.id] and r.status == "failed"], timeout=30)
    alerts = get_alert_store().recent(1)
    assert {a.rule for a in alerts} == {"telegram_not_configured"}
    assert not [a for a in alerts if a.source == "pipeline"]
    # Nor an ERROR log line (a Sentry event) per attempt: one per worker process, then warnings.
    pool.stop(graceful=True)
    said = [line for line in pool.log_path.read_text().splitlines() if "Telegram is not configured" in line]
    assert [line for line in said if "[ERROR]" in line] and len([line for line in said if "[ERROR]" in line]) == 1
    assert len([line for line in said if "[WARNING]" in line]) >= 7  # 2 deliveries x 4 attempts, less the first


def test_a_job_canceled_while_queued_then_requeued_runs_once(manager, start_pool, traces):
    """The cancel leaves the job's message in the queue; the requeue sends one of its own. Both
    ran the job: the first as a stale attempt, all of its work done twice."""
    handle = manager.enqueue_job("t_noop")
    assert manager.cancel_job(handle.id) == "canceled"
    assert manager.requeue_failed(job_id=handle.id) == [handle.id]
    assert manager.queue_stats()["default"].waiting == 2  # the old message and the requeue's
    start_pool(["default"], threads=1)  # the old message first
    assert manager.wait_for(handle.id, timeout=20).status == "succeeded"
    marker = manager.enqueue_job("t_noop")  # runs after both messages were taken
    assert manager.wait_for(marker.id, timeout=20).status == "succeeded"
    assert traces.runs(handle.id) == 1
    record = manager.get_job(handle.id)
    assert record.attempts == 1 and len(record.timeline) == 1
    assert manager.queue_stats()["high"].waiting == 0  # the old message's skip asked for no delivery


def test_cancel_an_unknown_job_is_a_clear_error(manager):
    with pytest.raises(UnknownJobError):
        manager.cancel_job("no-such-job")


def test_requeue_a_failed_job_with_fresh_counters(shared_pool, manager, traces, redis_client):
    handle = manager.enqueue_job("t_fail_times", retry=0, failures=1)
    assert manager.wait_for(handle.id, timeout=20).status == "failed"
    # The record says failed a moment before Dramatiq's nack moves the message to the dead letters.
    wait_until(lambda: manager.queue_stats()["default"].dead == 1)
    assert manager.requeue_failed(job_id=handle.id) == [handle.id]
    record = manager.wait_for(handle.id, timeout=20)
    assert record.status == "succeeded" and traces.runs(handle.id) == 2
    assert manager.queue_stats()["default"].dead == 0  # the dead-letter copy is gone
    assert manager.requeue_failed(job_id=handle.id) == []  # nothing to requeue any more


def test_requeue_all_failed_jobs_of_a_queue(shared_pool, manager):
    failed = [manager.enqueue_job("t_fail_times", retry=0, failures=1) for _ in range(3)]
    for h in failed:
        assert manager.wait_for(h.id, timeout=20).status == "failed"
    assert sorted(manager.requeue_failed(queue="default")) == sorted(h.id for h in failed)
    for h in failed:
        assert manager.wait_for(h.id, timeout=20).status == "succeeded"


def test_a_bulk_requeue_leaves_jobs_refused_for_their_request_and_a_named_one_goes(shared_pool, manager):
    transient = manager.enqueue_job("t_fail_times", retry=0, failures=1)
    refused = manager.enqueue_job("t_fail_times", retry=0, failures=1, kind="permanent")  # "no such player"
    for handle in (transient, refused):
        assert manager.wait_for(handle.id, timeout=20).status == "failed"
    assert manager.get_job(refused.id).error["code"] == "not_found"
    bulk = manager.requeue_failed(queue="default")
    assert bulk == [transient.id] and bulk.skipped == 1  # said, not silent
    assert manager.get_job(refused.id).status == "failed"
    assert manager.requeue_failed(job_id=refused.id) == [refused.id]  # an operator's explicit choice
    assert manager.wait_for(refused.id, timeout=20).status == "succeeded"


def test_a_bulk_requeue_leaves_a_job_whose_users_asked_again_and_were_answered(start_pool, manager):
    """A user whose job failed asked again and got the answer: an operator's bulk requeue would
    send it to them twice. A failed job someone still waits for goes again."""
    failed = manager.enqueue_job("t_fail_times", retry=0, failures=1, coalesce="player:x", requester={"user_id": 71})
    waiting = manager.enqueue_job("t_fail_times", retry=0, failures=1, coalesce="player:y", requester={"user_id": 71})
    shared = manager.enqueue_job("t_fail_times", retry=0, failures=1, coalesce="player:z",
                                 requester={"user_id": 72})
    joined = manager.enqueue_job("t_fail_times", failures=1, coalesce="player:z", requester={"user_id": 73})
    assert joined.id == shared.id  # no worker yet: user 73 joins the job in flight
    start_pool(["default"])
    for handle in (failed, waiting, shared):
        assert manager.wait_for(handle.id, timeout=20).status == "failed"
    again = manager.enqueue_job("t_fail_times", failures=0, coalesce="player:x", requester={"user_id": 71})
    assert again.id != failed.id and manager.wait_for(again.id, timeout=20).status == "succeeded"
    # User 72 asked again too; user 73, who joined the failed job, did not.
    manager.wait_for(manager.enqueue_job("t_fail_times", failures=0, coalesce="player:z",
                                         requester={"user_id": 72}).id, timeout=20)
    bulk = manager.requeue_failed(queue="default")
    assert sorted(bulk) == sorted([waiting.id, shared.id]) and bulk.superseded == 1
    assert manager.get_job(failed.id).status == "failed"
    assert manager.requeue_failed(job_id=failed.id) == [failed.id]  # named: the operator's choice


def test_clear_queues_drops_waiting_messages(manager):
    for _ in range(4):
        manager.enqueue_job("t_low")
    manager.enqueue_job("t_high")
    assert manager.clear_queues("low") == {"low": 4}
    stats = manager.queue_stats()
    assert stats["low"].waiting == 0 and stats["high"].waiting == 1
    with pytest.raises(ValueError):
        manager.clear_queues("nope")


def test_unknown_actor_is_refused_and_writes_nothing(manager, redis_client):
    with pytest.raises(UnknownActorError):
        manager.enqueue_job("no_such_actor", x=1)
    assert get_job_store().list_jobs()[1] == 0


def test_indexes_are_bounded_and_pruned(manager_with, redis_client):
    manager = manager_with(QUEUE_INDEX_LIMIT="10")  # the least the setting takes
    store = manager.jobs
    assert store.index_limit == 10
    ids = [manager.enqueue_job("t_low").id for _ in range(15)]
    assert redis_client.zcard(store.index_key("all")) == 10
    page, total = store.list_jobs(limit=5)
    assert [r.id for r in page] == ids[::-1][:5] and total == 10
    redis_client.delete(store.job_key(ids[-1]))  # expired record
    page, total = store.list_jobs(limit=5)
    assert ids[-1] not in [r.id for r in page] and total == 9


def test_a_message_sent_past_the_manager_gets_a_record_on_its_first_delivery(shared_pool, manager):
    message = manager.broker.get_actor("t_noop").send(value=3)  # plain Dramatiq: no record yet
    record = wait_until(lambda: (r := manager.get_job(message.message_id)) and r.is_final and r, timeout=20)
    assert record.status == "succeeded" and record.result == {"value": 3}
    assert record.actor == "t_noop" and record.attempts == 1


class _EnqueueRefused(MiddlewareError):
    """What the broker raised for the requeue's message (a dropped connection, say)."""


class _BrokerDown(dramatiq.Middleware):
    """The broker refusing every enqueue (Dramatiq lets a middleware's own error through)."""

    def before_enqueue(self, broker, message, delay):
        raise _EnqueueRefused("connection dropped")


def test_a_requeue_whose_message_is_not_sent_leaves_the_job_as_it_was(shared_pool, manager):
    handle = manager.enqueue_job("t_fail_times", retry=0, failures=1, coalesce="requeue-undo")
    failed = manager.wait_for(handle.id, timeout=20)
    assert failed.status == "failed"
    wait_until(lambda: manager.queue_stats()["default"].dead == 1)
    down = _BrokerDown()
    manager.broker.middleware.append(down)
    try:
        with pytest.raises(_EnqueueRefused):
            manager.requeue_failed(job_id=handle.id)
    finally:
        manager.broker.middleware.remove(down)
    record = manager.get_job(handle.id)
    assert record.status == "failed" and record.error == failed.error  # not "queued" for a message that never came
    assert manager.queue_stats()["default"].dead == 1  # its dead letter is still there
    assert manager.requeue_failed(job_id=handle.id) == [handle.id]  # and it can be requeued again
    # In flight again, it is what a request for the same subject joins.
    joined = manager.enqueue_job("t_fail_times", retry=0, failures=1, coalesce="requeue-undo")
    assert joined.id == handle.id and joined.coalesced
    assert manager.wait_for(handle.id, timeout=20).status == "succeeded"
    assert manager.queue_stats()["default"].dead == 0


class _RedisGoesAway(dramatiq.Middleware):
    """Redis stops as the requeue's message is sent (and is back a second later)."""

    def __init__(self, server) -> None:
        self.server = server

    def before_enqueue(self, broker, message, delay):
        self.server.stop()
        threading.Timer(1.0, self.server.start).start()
        raise _EnqueueRefused("Redis went away")


def test_a_requeue_cut_off_by_a_redis_outage_is_undone_once_redis_is_back(manager, redis_server):
    """Redis holds the queues and the records: the send fails because Redis is away, and so
    does the first try to put the record back. It left the job "queued" with no message for a
    day, and every request for the same subject joined it."""
    store = get_job_store()
    job_id = "requeue-outage-1"
    store.create(job_id, actor="t_noop", queue="default", coalesce="requeue-outage")
    store.finish(job_id, attempt=store.begin(job_id, max_deliveries=1).attempt, status="failed",
                 error={"type": "UpstreamError", "code": "upstream", "message": "upstream 503"})
    away = _RedisGoesAway(redis_server)
    manager.broker.middleware.append(away)
    try:
        with pytest.raises(_EnqueueRefused):
            manager.requeue_failed(job_id=job_id)
    finally:
        manager.broker.middleware.remove(away)
    record = manager.get_job(job_id)
    assert record.status == "failed" and record.error["code"] == "upstream"
    assert not redis_server.client().exists("fb:coalesce:t_noop:requeue-outage")  # nobody joins it


def test_jobs_dropped_from_their_queue_are_told_to_whoever_waits(manager, start_pool):
    """An operator emptying a queue (dashboard, admin.py clear) cancels its jobs' records: their
    users are told now, as after /cancel; nothing else would tell them (the messages are gone)."""
    waited = manager.enqueue_job("t_noop", requester={"user_id": 5551, "chat_id": 5551, "lang": "en"})
    alone = manager.enqueue_job("t_noop")  # nobody to tell
    manager.clear_queues("default")
    assert manager.cancel_dropped([waited.id, alone.id, "no-such-job"]) == 2
    assert {manager.get_job(h.id).status for h in (waited, alone)} == {"canceled"}
    assert manager.queue_stats()["high"].waiting == 1  # one delivery: for the job someone waits for


def test_a_job_canceled_before_is_not_canceled_again(manager):
    """A second cancel (a clear after a /cancel, a race of two) was counted as a cancel and told
    its users again: the cancel script answered "canceled" for a job canceled long before."""
    waited = manager.enqueue_job("t_noop", requester={"user_id": 5552, "chat_id": 5552, "lang": "en"})
    assert manager.cancel_job(waited.id) == "canceled"
    assert manager.queue_stats()["high"].waiting == 1  # its users told once
    assert manager.cancel_job(waited.id) == "already_canceled"
    assert manager.cancel_dropped([waited.id]) == 0
    assert manager.queue_stats()["high"].waiting == 1  # and not again


def test_a_users_own_cancel_sends_no_delivery_the_bot_tells_them_itself(manager):
    """The bot answers a user's /cancel (and edits their message) itself: the delivery queued
    for them on top only edited the same message with the same text."""
    own = manager.enqueue_job("t_noop", requester={"user_id": 5553, "chat_id": 5553, "lang": "en"})
    assert manager.cancel_job(own.id, tell=False) == "canceled"
    assert manager.queue_stats()["high"].waiting == 0
    nobody = manager.enqueue_job("t_noop")  # an operator's cancel of a job nobody waits for
    assert manager.cancel_job(nobody.id) == "canceled"
    assert manager.queue_stats()["high"].waiting == 0

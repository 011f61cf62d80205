"""Retries, permanent failures, retry_after, time limits, statuses and TTLs — on real workers.

Timing runs on the scaled schedule QUEUE_RETRY_DELAYS=0.1,0.3,0.9 (set by tests/conftest.py).
"""

from __future__ import annotations

import itertools
import json

import pytest

from queues.dramatiq_keys import dead_messages_key, messages_key, queue_key
from queues.health_texts import tell_alert
from queues.runtime import get_alert_store, get_job_store
from tests.pipeline.conftest import wait_until


def _gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


def test_transient_errors_retry_on_the_fixed_schedule(shared_pool, manager, traces):
    handle = manager.enqueue_job("t_fail_times", failures=3)
    record = manager.wait_for(handle.id, timeout=30)
    assert record.status == "succeeded"
    assert record.result == {"runs": 4}
    assert record.attempts == 4
    assert [t["outcome"] for t in record.timeline] == ["retrying", "retrying", "retrying", "succeeded"]
    gaps = _gaps(traces.times(handle.id))
    # Each retry waits at least its scheduled delay; the upper bound rules out Dramatiq's own backoff.
    for gap, delay in zip(gaps, (0.1, 0.3, 0.9), strict=True):
        assert delay - 0.02 <= gap < delay + 2.5, (gaps, delay)


def test_exhausted_retries_fail_once_with_one_alert_and_a_dead_letter(shared_pool, manager, traces):
    handle = manager.enqueue_job("t_fail_times", failures=99)
    record = manager.wait_for(handle.id, timeout=30)
    assert record.status == "failed"
    assert traces.runs(handle.id) == 4  # first try + QUEUE_MAX_RETRIES
    assert record.error["type"] == "UpstreamError" and "Traceback" in record.error["traceback"]
    # The alert is written just after the record's final status (after_* hooks run in reverse).
    alerts = wait_until(lambda: [a for a in get_alert_store().recent(1) if a.job_id == handle.id])
    assert len(alerts) == 1 and alerts[0].level == "error"
    # An admin reading it in Russian (/alerts, the Telegram push) gets it in Russian; the error's
    # own text stays as the exception wrote it.
    assert tell_alert(alerts[0], "en") == alerts[0].message
    assert alerts[0].message.startswith("t_fail_times job failed: UpstreamError: ")  # what Sentry and admin.py show
    assert tell_alert(alerts[0], "ru").startswith("задача t_fail_times завершилась ошибкой: UpstreamError: ")
    wait_until(lambda: manager.queue_stats()["default"].dead == 1)  # nacked just after the record


def test_last_delay_repeats_when_more_retries_are_allowed(shared_pool, manager, traces):
    handle = manager.enqueue_job("t_fail_times", retry=5, failures=5)
    record = manager.wait_for(handle.id, timeout=30)
    assert record.status == "succeeded" and traces.runs(handle.id) == 6
    gaps = _gaps(traces.times(handle.id))
    assert all(g >= 0.88 for g in gaps[2:]), gaps  # 0.9, 0.9, 0.9 after 0.1 and 0.3


def _stored(redis_client, key: str, job_id: str) -> bool:
    """Whether a Dramatiq message hash (``key``) still holds the message of ``job_id``."""
    return any(job_id in raw for _, raw in redis_client.hscan_iter(key, count=500))


def test_a_request_error_fails_at_once_without_alert_or_dead_letter(shared_pool, manager, traces,
                                                                    redis_client):
    ns = manager.settings.dramatiq_namespace
    dead_before = manager.queue_stats()["default"].dead
    handle = manager.enqueue_job("t_fail_times", failures=1, kind="permanent")
    record = manager.wait_for(handle.id, timeout=20)
    assert record.status == "failed" and record.attempts == 1
    assert traces.runs(handle.id) == 1
    assert record.error["code"] == "not_found" and record.error["retryable"] is False
    # Acked, not nacked: the user's mistake is recorded on the job, not left for an operator.
    wait_until(lambda: not _stored(redis_client, messages_key(ns, "default"), handle.id))
    assert not _stored(redis_client, dead_messages_key(ns, "default"), handle.id)
    assert manager.queue_stats()["default"].dead == dead_before
    assert not [a for a in get_alert_store().recent(1) if a.job_id == handle.id]


def test_a_permanent_error_of_ours_fails_at_once_with_a_dead_letter(shared_pool, manager, traces,
                                                                   redis_client):
    ns = manager.settings.dramatiq_namespace
    handle = manager.enqueue_job("t_fail_times", failures=1, kind="auth")
    record = manager.wait_for(handle.id, timeout=20)
    assert record.status == "failed" and record.attempts == 1 and traces.runs(handle.id) == 1
    assert record.error["code"] == "auth"
    wait_until(lambda: _stored(redis_client, dead_messages_key(ns, "default"), handle.id))
    alerts = wait_until(lambda: [a for a in get_alert_store().recent(1) if a.job_id == handle.id])
    assert [a.level for a in alerts] == ["critical"]


def test_unclassified_errors_are_retried(shared_pool, manager, traces):
    handle = manager.enqueue_job("t_fail_times", failures=1, kind="bug")
    assert manager.wait_for(handle.id, timeout=20).status == "succeeded"
    assert traces.runs(handle.id) == 2


def test_retry_after_wins_over_the_schedule(start_pool, manager, traces):
    start_pool(["default"], env={"QUEUE_RETRY_DELAYS": "5"})
    handle = manager.enqueue_job("t_fail_times", failures=1, kind="rate", retry_after=0.4)
    record = manager.wait_for(handle.id, timeout=20)
    assert record.status == "succeeded"
    (gap,) = _gaps(traces.times(handle.id))
    assert 0.38 <= gap < 3, gap  # retry_after 0.4 s, not the 5 s schedule


def test_retrying_status_is_visible_between_attempts(start_pool, manager):
    start_pool(["default"], env={"QUEUE_RETRY_DELAYS": "1.5"})
    handle = manager.enqueue_job("t_fail_times", failures=1)
    record = wait_until(lambda: (r := manager.get_job(handle.id)) and r.status == "retrying" and r)
    assert record.retry_at is not None and record.error["type"] == "UpstreamError"
    assert manager.wait_for(handle.id, timeout=20).status == "succeeded"


def test_time_limit_cancels_the_coroutine_and_the_worker_goes_on(start_pool, manager, traces):
    start_pool(["default"], threads=1)
    slow = manager.enqueue_job("t_sleep", seconds=30, steps=30)
    after = manager.enqueue_job("t_noop", value=1)
    record = manager.wait_for(slow.id, timeout=20)
    assert record.status == "failed"
    assert record.error["message"] == "time limit exceeded (1 s)"
    assert traces.runs(slow.id, "done") == 0  # the body never finished
    # One worker thread: the next job ran after the limit freed it.
    assert manager.wait_for(after.id, timeout=20).status == "succeeded"
    # The alert is written just after the record's final status (after_* hooks run in reverse).
    alerts = wait_until(lambda: [a for a in get_alert_store().recent(1) if a.job_id == slow.id])
    assert [a.level for a in alerts] == ["warning"]
    assert tell_alert(alerts[0], "ru").startswith("задача t_sleep прервана по лимиту времени: ")


def test_enqueue_timeout_overrides_the_actor_limit(shared_pool, manager):
    handle = manager.enqueue_job("t_sleep", timeout=5, seconds=1.5, steps=3)
    assert manager.wait_for(handle.id, timeout=20).status == "succeeded"


def test_a_job_body_is_told_its_time_limit(shared_pool, manager):
    """Match monitoring stops starting scans at three quarters of it, so a run too big for its
    limit still tells what it found (faceit.services.monitor_matches)."""
    told = manager.wait_for(manager.enqueue_job("t_time_limit", timeout=7).id, timeout=20)
    assert told.status == "succeeded" and told.result == {"time_limit": 7.0}
    default = manager.wait_for(manager.enqueue_job("t_time_limit").id, timeout=20)
    assert default.result == {"time_limit": float(manager.settings.queue_default_timeout)}


def test_statuses_progress_and_record_lifetimes(shared_pool, manager, redis_client):
    ok = manager.enqueue_job("t_slow", seconds=1.0, steps=4, requester={"user_id": 5})
    assert manager.get_job_status(ok.id) == "queued"
    running = wait_until(lambda: (r := manager.get_job(ok.id)) and r.status == "started" and r.progress and r)
    assert running.progress["stage"] == "sleeping" and running.progress["total"] == 4
    done = manager.wait_for(ok.id, timeout=20)
    assert done.status == "succeeded" and manager.get_job_result(ok.id) == {"slept": 1.0}
    assert done.enqueued_at <= done.started_at <= done.finished_at
    store = get_job_store()
    assert 3500 < redis_client.ttl(store.job_key(ok.id)) <= 3600

    bad = manager.enqueue_job("t_fail_times", retry=0, failures=1)
    assert manager.wait_for(bad.id, timeout=20).status == "failed"
    assert 86000 < redis_client.ttl(store.job_key(bad.id)) <= 86400
    # Indexes list each job under its final status only.
    assert [r.id for r in store.list_jobs(status="succeeded", actor="t_slow")[0]] == [ok.id]
    assert [r.id for r in store.list_jobs(status="failed")[0]] == [bad.id]
    # The requester's delivery ran as its own small job on the high queue.
    wait_until(lambda: store.list_jobs(actor="deliver_result")[1] == 1)
    assert store.list_jobs(status="started", actor="t_slow")[0] == []  # (its delivery job may be running)
    assert [r.id for r in store.list_jobs(user_id=5)[0]] == [ok.id]


def test_secret_fields_are_redacted_in_records(manager, redis_client):
    from actors.base import job_actor
    from queues.priorities import QueuePriority

    @job_actor(priority=QueuePriority.LOW, secret_fields=("api_key",), actor_name="t_secretive")
    async def t_secretive(ctx, api_key: str, nickname: str) -> dict:
        return {}

    handle = manager.enqueue_job("t_secretive", api_key="sk-live-123456", nickname="s1mple")
    raw = json.dumps(redis_client.hgetall(get_job_store().job_key(handle.id)))
    assert "sk-live-123456" not in raw
    assert manager.get_job(handle.id).kwargs == {"api_key": "***", "nickname": "s1mple"}


def test_no_secret_reaches_a_job_record_an_alert_or_the_admin_tool(start_pool, manager, redis_client, env_override):
    """An error quoting the worker's FACEIT key and bot token (a URL in an exception) is kept
    without them; an argument that happens to hold the key is masked by ``admin.py job``, as on
    the dashboard."""
    from click.testing import CliRunner

    from admin import cli

    key, token = "faceit-key-7d1f0c9e55", "123456789:AAH-secret-token-value-abcdef"
    secrets = {"FACEIT_API_KEY": key, "TELEGRAM_BOT_TOKEN": token}
    start_pool(["default"], env=secrets)
    handle = manager.enqueue_job("t_fail_times", failures=99, kind="quotes_secrets")
    record = manager.wait_for(handle.id, timeout=30)
    assert record.status == "failed" and "key=*** and /bot***/getMe" in record.error["message"], record.error
    alerts = wait_until(lambda: [a for a in get_alert_store().recent(1) if a.job_id == handle.id])
    stored = json.dumps([redis_client.hgetall(get_job_store().job_key(handle.id)), [a.to_dict() for a in alerts]])
    assert "UpstreamError" in stored and key not in stored and token not in stored

    env_override(**secrets)
    typed = manager.enqueue_job("t_fail_times", failures=0, kind=f"x {key}")  # someone typed it
    manager.wait_for(typed.id, timeout=30)
    # An argument named as a secret (an actor that forgot its secret_fields): masked by its name.
    named = {"failures": 0, "api_key": "not-a-known-value-42"}
    redis_client.hset(get_job_store().job_key(typed.id), "kwargs", json.dumps(named))
    for args in (["job", typed.id], ["job", typed.id, "--json"], ["job", handle.id]):
        shown = CliRunner().invoke(cli, args, catch_exceptions=False).stdout
        assert typed.id[:8] in shown or handle.id[:8] in shown
        assert key not in shown and token not in shown and "***" in shown, shown
        assert "not-a-known-value-42" not in shown, shown


def test_a_secret_at_the_cut_of_a_long_error_is_scrubbed_whole(env_override):
    """Errors are kept cut to 2,000 characters (tracebacks to their last 8,000): a key that ran
    across the cut lost its end and no longer matched the scrubber, so its start was kept."""
    from queues.errors import error_summary

    key = "faceit-key-0123456789abcdef"
    env_override(FACEIT_API_KEY=key)
    message = "x" * 1980 + f"?key={key}"  # the cut leaves the key's first 15 characters
    traceback_text = f"Traceback: GET ?key={key}" + "y" * (8000 - 15)  # and here its last 15
    kept = error_summary(RuntimeError(message), traceback_text)
    assert key[:8] not in kept["message"] and key[-8:] not in kept["traceback"]
    assert len(kept["message"]) <= 2000 and len(kept["traceback"]) <= 8000


def test_a_stale_attempt_that_fails_leaves_no_dead_letter_and_no_alert(start_pool, manager, traces):
    """The job was delivered again while an attempt ran (the dead-worker sweep took its worker
    for dead): when that attempt then fails, the job has not failed — the other delivery runs it.
    It was dead-lettered and alerted on all the same, for a job that may well succeed."""
    pool = start_pool(processes=1)
    handle = manager.enqueue_job("t_sleep", retry=0, seconds=3, steps=30)  # its 1 s limit ends it
    wait_until(lambda: traces.runs(handle.id) == 1)
    assert get_job_store().begin(handle.id, max_deliveries=2).verdict == "run"  # the other delivery's attempt
    # The stale attempt meets its time limit (1 s) and says so in the worker's log.
    wait_until(lambda: "attempt 1 is stale" in pool.log_path.read_text(errors="replace"), timeout=10)
    wait_until(lambda: manager.queue_stats()["default"].in_progress == 0)  # acked (or nacked): hooks done
    assert manager.queue_stats()["default"].dead == 0
    assert not [a for a in get_alert_store().recent(1) if a.job_id == handle.id]
    record = manager.get_job(handle.id)
    assert record.status == "started" and record.attempts == 2  # the other attempt's, untouched


def test_a_job_whose_record_is_gone_still_fails_into_the_dead_letters(start_pool, manager, traces, redis_client):
    """No other delivery runs it (unlike a stale attempt): Backoff's verdict stands."""
    pool = start_pool(processes=1)
    handle = manager.enqueue_job("t_sleep", retry=0, seconds=3, steps=30)  # its 1 s limit ends it
    wait_until(lambda: traces.runs(handle.id) == 1)
    redis_client.delete(f"fb:job:{handle.id}")  # evicted, or lost in a failover
    wait_until(lambda: "its record is gone" in pool.log_path.read_text(errors="replace"), timeout=10)
    wait_until(lambda: manager.queue_stats()["default"].dead == 1)


@pytest.mark.parametrize("someone_waits", [False, True])
def test_a_redelivered_message_of_an_ended_job_is_delivered_only_to_someone(start_pool, manager, traces,
                                                                           redis_client, someone_waits):
    """A message of a job that already ended (its worker's ack was lost to a Redis restart) is
    skipped, with a delivery in case the worker died before sending one. For a job nobody asked
    for (a probe, one an operator sent) that delivery told nobody and sat on the high queue."""
    from dramatiq import Message

    pool = start_pool(["default"], processes=1)  # no worker on the high queue: a delivery stays there
    requester = {"user_id": 4242, "chat_id": 4242} if someone_waits else None
    handle = manager.enqueue_job("t_noop", requester=requester)
    wait_until(lambda: manager.get_job(handle.id).status == "succeeded")
    high = queue_key(manager.settings.dramatiq_namespace, "high")
    redis_client.delete(high, messages_key(manager.settings.dramatiq_namespace, "high"))  # its first delivery
    manager.broker.enqueue(Message(queue_name="default", actor_name="t_noop", args=(), kwargs={}, options={},
                                   message_id=handle.id))  # the same message again
    wait_until(lambda: "already succeeded; delivery skipped" in pool.log_path.read_text(errors="replace"))
    wait_until(lambda: manager.queue_stats()["default"].in_progress == 0)  # its hooks are done
    assert redis_client.llen(high) == (1 if someone_waits else 0)
    assert traces.runs(handle.id) == 1

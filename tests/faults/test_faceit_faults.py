"""The FACEIT Data API misbehaving, through the REAL ``match_analysis`` actor on real workers.

Workers run ``dramatiq actors --queues high`` against the sandbox Data API (its own process),
with the scaled retry schedule 0.1/0.3/0.9 s of ``tests/conftest.py``.
"""

from __future__ import annotations

import time

import pytest

from queues.runtime import get_alert_store
from tests.faults.conftest import wait_until

SCHEDULE = (0.1, 0.3, 0.9)


def _alerts_for(job_id: str, *, wait: bool = True):
    """The alerts of a job; waits for the first (the alert follows the final record write)."""

    def read():
        return [a for a in get_alert_store().recent(1) if a.job_id == job_id]

    if wait:
        wait_until(read, timeout=10, message=f"no alert for job {job_id}")
    return read()


def _matches(sandbox, n: int, status: str = "VOTING") -> list[str]:
    world = sandbox.world()["matches"]
    ids = [m for s in (status, "READY", "ONGOING", "CHECK_IN", "CONFIGURING") for m in world.get(s, [])]
    assert len(ids) >= n, world
    return ids[:n]


def test_5xx_storm_retries_on_the_schedule_then_fails_with_one_alert_each(start_pool, manager,
                                                                          faceit_sandbox):
    faceit_sandbox.reset()
    faceit_sandbox.faults(error_rate=1.0, status=503)
    # The cache's memory of a failure is scaled down with the retry schedule (tests/conftest.py:
    # 20 ms against 0.1/0.3/0.9 s; 2 s against 10/30/90 s in production): each retry asks FACEIT again.
    start_pool(["high"], env=faceit_sandbox.env(), modules=(), threads=4)
    handles = [manager.enqueue_match_analysis(m, user_id=100 + i) for i, m in enumerate(_matches(faceit_sandbox, 3))]
    for handle in handles:
        record = manager.wait_for(handle.id, timeout=40)
        assert record.status == "failed", record.status
        assert record.attempts == 4 and record.error["type"] == "UpstreamError"
        assert [t["outcome"] for t in record.timeline] == ["retrying", "retrying", "retrying", "failed"]
        starts = [float(t["started_at"]) for t in record.timeline]
        ends = [float(t["finished_at"]) for t in record.timeline]
        for (end, start), delay in zip(zip(ends, starts[1:], strict=False), SCHEDULE, strict=True):
            assert delay - 0.02 <= start - end < delay + 2.0, (starts, ends)
        alerts = _alerts_for(handle.id)
        assert len(alerts) == 1 and alerts[0].level == "error", alerts
    # Bounded upstream load, and every attempt really tried: 4 attempts per job, each one call
    # and one internal retry.
    assert faceit_sandbox.calls() == 8 * len(handles)


def test_429_storm_is_paced_and_no_job_fails(start_pool, manager, faceit_sandbox):
    faceit_sandbox.reset()
    faceit_sandbox.faults(rate_limit_per_s=10)  # strict: 429 + Retry-After: 1 above 10 requests/s
    # Our shared bucket allows bursts of 30 at 20/s: above the sandbox's limit, so 429s come.
    start_pool(["high"], env={**faceit_sandbox.env(), "FACEIT_RATE_LIMIT": "20", "FACEIT_RATE_BURST": "30"},
               modules=(), threads=4)
    handles = [manager.enqueue_match_analysis(m, user_id=200 + i) for i, m in enumerate(_matches(faceit_sandbox, 3))]
    records = [manager.wait_for(h.id, timeout=60) for h in handles]
    assert [r.status for r in records] == ["succeeded"] * len(handles), [(r.status, r.error) for r in records]
    stats = faceit_sandbox.stats()
    assert int(stats["statuses"].get("429", 0)) > 0, stats  # the storm really happened
    assert not [a for h in handles for a in _alerts_for(h.id, wait=False)]


@pytest.mark.parametrize("limit_from", ["enqueue", "queue setting"])
def test_hanging_responses_end_at_the_time_limit_and_the_worker_goes_on(start_pool, manager, faceit_sandbox,
                                                                        limit_from):
    """The limit is the one given at enqueue, else the queue's setting: an analysis has no limit of
    its own, so an operator's ``QUEUE_HIGH_PRIORITY_TIMEOUT`` is what holds it."""
    faceit_sandbox.reset()
    faceit_sandbox.faults(timeout_rate=1.0, timeout_ms=60_000)  # every call hangs for a minute
    setting = {"QUEUE_HIGH_PRIORITY_TIMEOUT": "1.5"} if limit_from == "queue setting" else {}
    start_pool(["high"], env={**faceit_sandbox.env(), **setting}, modules=(), threads=1)
    hung_match, ok_match = _matches(faceit_sandbox, 2)
    started = time.monotonic()
    timeout = {"timeout": 1.5} if limit_from == "enqueue" else {}
    hung = manager.enqueue_job("match_analysis", **timeout, match_url_or_id=hung_match, user_id=300)
    record = manager.wait_for(hung.id, timeout=30)
    assert record.status == "failed" and record.attempts == 1
    assert record.error["message"] == "time limit exceeded (1.5 s)", record.error
    assert time.monotonic() - started < 20  # the limit, not the 60 s hang nor the 180 s default
    assert [a.level for a in _alerts_for(hung.id)] == ["warning"]
    faceit_sandbox.faults()  # FACEIT answers again: the single worker thread takes the next job
    after = manager.enqueue_match_analysis(ok_match, user_id=301)
    assert manager.wait_for(after.id, timeout=30).status == "succeeded"


def test_a_401_fails_at_once_with_one_critical_alert(start_pool, manager, faceit_sandbox):
    faceit_sandbox.reset()
    env = {**faceit_sandbox.env(), "FACEIT_API_KEY": "revoked-key"}
    start_pool(["high"], env=env, modules=(), threads=2)
    (match,) = _matches(faceit_sandbox, 1)
    handle = manager.enqueue_match_analysis(match, user_id=400)
    record = manager.wait_for(handle.id, timeout=30)
    assert record.status == "failed" and record.attempts == 1, (record.status, record.attempts)
    assert record.error["code"] == "auth" and record.error["retryable"] is False
    alerts = _alerts_for(handle.id)
    assert [a.level for a in alerts] == ["critical"], alerts
    assert faceit_sandbox.calls() == 1  # no retry hammered FACEIT with a bad key
    wait_until(lambda: faceit_sandbox.stats()["statuses"].get("401") == 1)


def test_no_key_against_faceits_own_api_fails_at_once_and_tells_the_admins_which_setting(start_pool, manager,
                                                                                        faceit_sandbox):
    """Workers started by hand without ``FACEIT_API_KEY`` (only ``make run`` points them at the
    sandbox): nothing goes out (no network needed), the job fails at once, and the critical alert
    names the setting instead of "FACEIT refused the API key"; FACEIT's call figures count it."""
    from faceit.metrics import faceit_call_counts
    from queues.runtime import get_redis

    env = {**faceit_sandbox.env(), "FACEIT_API_KEY": "", "FACEIT_API_URL": "https://open.faceit.com/data/v4"}
    start_pool(["high"], env=env, modules=(), threads=2)
    (match,) = _matches(faceit_sandbox, 1)
    handle = manager.enqueue_match_analysis(match, user_id=401)
    record = manager.wait_for(handle.id, timeout=30)
    assert record.status == "failed" and record.attempts == 1, (record.status, record.attempts)
    assert record.error["code"] == "auth" and record.error["type"] == "KeyMissingError"
    (alert,) = _alerts_for(handle.id)
    assert alert.level == "critical"
    assert alert.message == "FACEIT_API_KEY is not set: FACEIT jobs fail until it is (match_analysis)"
    counts = faceit_call_counts(300, get_redis())
    assert counts["auth_errors"] >= 1 and counts["key_missing"] == counts["auth_errors"]  # none was FACEIT's



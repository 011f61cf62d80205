"""The alert log's cap by count (``queues.alerts.ALERT_LOG_MAX``), scaled down to a few entries.

One alert is written per failed job: a day-long FACEIT outage at scale writes about 10^5, and
a log trimmed by age only kept them all for the whole retention (7 days).
"""

from __future__ import annotations

import json
import time

import pytest

import queues.alerts
from queues.alerts import Alert, AlertStore

CAP = 5


@pytest.fixture
def capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stores built from now on keep ``CAP`` entries."""
    monkeypatch.setattr(queues.alerts, "ALERT_LOG_MAX", CAP)


def _failed_job(i: int, now: float) -> Alert:
    return Alert("error", "pipeline", f"job j{i} failed", job_id=f"j{i}", time=now - 100 + i)


def test_a_storm_of_failed_jobs_leaves_only_the_newest_entries_in_the_log(fresh, capped, redis_client):
    from queues.runtime import get_redis

    store = AlertStore(get_redis(), sinks=[])
    now = time.time()
    for i in range(12):
        assert store.emit(_failed_job(i, now))

    assert redis_client.zcard(store.log_key) == CAP
    assert [a.job_id for a in store.recent(1)] == ["j11", "j10", "j9", "j8", "j7"]  # newest first


def test_the_monitors_own_writes_to_the_log_keep_the_cap(fresh, capped, make_monitor, redis_client):
    """The alerts told directly while Redis was down or full are written in a batch once it takes
    writes again; the daily retention sweep trims a log that grew past the cap (an older version
    wrote it)."""
    monitor = make_monitor()
    log = monitor.alerts.log_key
    now = time.time()
    monitor._unlogged = [_failed_job(i, now) for i in range(8)]
    monitor._write_unlogged()
    assert redis_client.zcard(log) == CAP
    assert min(json.loads(raw)["job_id"] for raw in redis_client.zrange(log, 0, 0)) == "j3"

    redis_client.zadd(log, {json.dumps(_failed_job(i, now).to_dict()): now - 100 + i for i in range(20, 30)})
    assert monitor.retention_cleanup()["trimmed_points"] == 10  # no series yet: the log's alone
    assert redis_client.zcard(log) == CAP
    assert [json.loads(raw)["job_id"] for raw in redis_client.zrange(log, 0, -1)] == [
        "j25", "j26", "j27", "j28", "j29"]


def test_trimming_the_log_now_says_how_many_entries_went(fresh, capped, redis_client):
    """What the retention sweep counts: entries past the retention, then all but the newest ``CAP``."""
    from queues.runtime import get_redis

    store = AlertStore(get_redis(), sinks=[], retention_seconds=3600)
    now = time.time()
    old = {json.dumps(_failed_job(i, now - 7200).to_dict()): now - 7200 + i for i in range(3)}
    newer = {json.dumps(_failed_job(i, now).to_dict()): now - 100 + i for i in range(10, 17)}
    redis_client.zadd(store.log_key, {**old, **newer})

    assert store.trim_log_now() == 3 + 2
    assert [json.loads(raw)["job_id"] for raw in redis_client.zrange(store.log_key, 0, -1)] == [
        "j12", "j13", "j14", "j15", "j16"]
    assert 0 < redis_client.ttl(store.log_key) <= 3600 + 60
    assert store.trim_log_now() == 0

"""The alert log's cap by count (``AlertStore(log_max=...)``, ``queues.alerts.ALERT_LOG_MAX`` by
default), scaled down to a few entries.

One alert is written per failed job: a day-long FACEIT outage at scale writes about 10^5, and
a log trimmed by age only kept them all for the whole retention (7 days).
"""

from __future__ import annotations

import json
import time

from queues.alerts import Alert, AlertStore

CAP = 5


def capped_store(**kwargs) -> AlertStore:
    """An alert store on the test Redis (the settings' key prefix) keeping ``CAP`` entries."""
    from queues.runtime import get_redis
    from settings import get_settings

    return AlertStore(get_redis(), prefix=get_settings().redis_key_prefix, sinks=[], log_max=CAP, **kwargs)


def _failed_job(i: int, now: float) -> Alert:
    return Alert("error", "pipeline", f"job j{i} failed", job_id=f"j{i}", time=now - 100 + i)


def test_a_storm_of_failed_jobs_leaves_only_the_newest_entries_in_the_log(fresh, redis_client):
    store = capped_store()
    now = time.time()
    for i in range(12):
        assert store.emit(_failed_job(i, now))

    assert redis_client.zcard(store.log_key) == CAP
    assert [a.job_id for a in store.recent(1)] == ["j11", "j10", "j9", "j8", "j7"]  # newest first


def test_the_monitors_own_writes_to_the_log_keep_the_cap(redis_server, fresh, make_monitor, redis_client):
    """The alerts told directly while Redis was down or full are written in a batch once it takes
    writes again, and the batch keeps the cap; the daily retention sweep trims a log that grew
    past the cap (an older version wrote it)."""
    store = capped_store()
    monitor = make_monitor(alert_store=store, resolve_after=1)
    log = store.log_key
    now = time.time()
    for i in range(CAP):  # a full log
        assert store.emit(_failed_job(i, now))

    def logged() -> list[tuple[str, str]]:
        """The log, oldest first: each entry's failed job or rule, and its state."""
        entries = map(json.loads, redis_client.zrange(log, 0, -1))
        return [(a["job_id"] or a["rule"], a["state"]) for a in entries]

    assert redis_client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    jobs_only = [(f"j{i}", "fired") for i in range(CAP)]
    try:
        redis_client.config_set("maxmemory", "1")  # 1 byte: every write is refused
        monitor.tick()  # "Redis refuses writes", told directly
        redis_server.stop()
        monitor.tick()  # "Redis is unreachable", told directly
        redis_server.start()
        redis_client.config_set("maxmemory", "1")  # back, and still full: the outage's end is told
        monitor.tick()
        assert logged() == jobs_only  # nothing of the three could be written
    finally:
        if redis_server.process is None:
            redis_server.start()
        redis_client.config_set("maxmemory", "0")
    monitor.tick()  # takes writes: the three in one batch, then the full episode's end
    assert logged() == [("j4", "fired"), ("redis_full", "fired"), ("redis_unreachable", "fired"),
                        ("redis_unreachable", "resolved"), ("redis_full", "resolved")]

    later = time.time()
    older_versions = {json.dumps(_failed_job(i, now).to_dict()): later + i / 1000 for i in range(20, 30)}
    redis_client.zadd(log, older_versions)
    assert monitor.retention_cleanup()["trimmed_points"] == 10  # the series' few points are all kept
    assert redis_client.zcard(log) == CAP
    assert [json.loads(raw)["job_id"] for raw in redis_client.zrange(log, 0, -1)] == [
        "j25", "j26", "j27", "j28", "j29"]


def test_trimming_the_log_now_says_how_many_entries_went(fresh, redis_client):
    """What the retention sweep counts: entries past the retention, then all but the newest ``CAP``."""
    store = capped_store(retention_seconds=3600)
    now = time.time()
    old = {json.dumps(_failed_job(i, now - 7200).to_dict()): now - 7200 + i for i in range(3)}
    newer = {json.dumps(_failed_job(i, now).to_dict()): now - 100 + i for i in range(10, 17)}
    redis_client.zadd(store.log_key, {**old, **newer})

    assert store.trim_log_now() == 3 + 2
    assert [json.loads(raw)["job_id"] for raw in redis_client.zrange(store.log_key, 0, -1)] == [
        "j12", "j13", "j14", "j15", "j16"]
    assert 0 < redis_client.ttl(store.log_key) <= 3600 + 60
    assert store.trim_log_now() == 0

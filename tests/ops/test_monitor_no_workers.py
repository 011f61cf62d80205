"""Monitor rules that need a pipeline with no worker running (queues that fill up), and a
Redis outage: kept apart from the modules that share a worker pool."""

from __future__ import annotations

import logging
import time

from queues.alert_rules import Thresholds
from queues.alerts import AlertStore, LogSink
from tests.ops.conftest import wait_until
from tests.ops.test_monitor import fired, resolved, settle


def test_queue_rules_fire_without_workers_and_resolve_when_a_worker_drains_the_queue(manager, make_monitor,
                                                                                    start_pool):
    thresholds = Thresholds(depth={"high": 3, "default": 100, "low": 200},
                            wait={"high": 0.3, "default": 60, "low": 600}, queued_max_age=0.5)
    monitor = make_monitor(thresholds=thresholds, window_seconds=1.5)
    for _ in range(5):
        manager.enqueue_job("probe_high", sent_at=time.time())
    time.sleep(0.6)
    snap = monitor.tick()
    high = snap["queues"]["high"]
    assert high["depth"] == 5 and high["workers"] == 0 and high["oldest_waiting_age"] >= 0.5
    for rule, level in (("no_workers", "critical"), ("queue_depth", "warning"), ("wait_time", "warning"),
                        ("stale_jobs", "error")):
        [alert] = fired(monitor.alerts, rule, "high")
        assert alert.level == level, rule
    # Score: 100 - 25 (no worker) - 10 (depth) - 10 (wait) - 15 (stale) - 5 - 5 (idle default, low).
    assert snap["health"]["health_score"] == 30
    assert {c["rule"] for c in snap["health"]["components"]} == {
        "no_workers", "queue_depth", "wait_time", "stale_jobs", "idle_queue"}

    start_pool(["high", "default", "low"])
    wait_until(lambda: manager.queue_stats()["high"].waiting == 0, timeout=20)
    wait_until(lambda: not manager.jobs.list_jobs(status="queued")[0], timeout=20)
    snap = settle(monitor)
    for rule in ("no_workers", "queue_depth", "stale_jobs"):
        assert len(resolved(monitor.alerts, rule, "high")) == 1, rule
    # The drained jobs did wait longer than the target: p95 wait keeps that alert open until
    # their samples leave the window.
    assert snap["queues"]["high"]["wait_p95"] > 0.3
    assert [(a.rule, a.subject) for a in monitor.open_alerts()] == [("wait_time", "high")]
    time.sleep(1.6)
    snap = settle(monitor)
    assert len(resolved(monitor.alerts, "wait_time", "high")) == 1
    assert monitor.open_alerts() == []
    assert snap["health"]["health_score"] == 100


def test_alerts_are_deduplicated_per_rule_and_subject_within_the_window(fresh, make_monitor):
    from queues.runtime import get_redis
    from settings import get_settings

    client = get_redis()
    store = AlertStore.from_settings(client, get_settings(), sinks=[LogSink()])
    store.dedupe_window = 1
    monitor = make_monitor(alert_store=store,
                           thresholds=Thresholds(depth={"high": 0, "default": 0, "low": 0}))
    import actors  # noqa: F401
    from queues.manager import get_queue_manager

    get_queue_manager().enqueue_job("probe_high", sent_at=time.time())
    get_queue_manager().enqueue_job("probe_low", sent_at=time.time())
    for _ in range(3):
        monitor.tick()
    assert len(fired(store, "queue_depth", "high")) == 1
    assert len(fired(store, "queue_depth", "low")) == 1  # another subject is another alert
    assert len(fired(store, "no_workers", "high")) == 1
    time.sleep(1.1)  # the window passed and the condition still holds: one reminder
    monitor.tick()
    monitor.tick()
    assert len(fired(store, "queue_depth", "high")) == 2


def test_redis_outage_alerts_once_directly_and_logs_the_outage_when_redis_is_back(redis_server, fresh,
                                                                                 make_monitor, caplog):
    monitor = make_monitor()
    monitor.tick()
    caplog.set_level(logging.INFO, logger="faceit_bot.alerts")
    redis_server.stop()
    try:
        snap = monitor.tick()
        assert snap["redis"]["reachable"] is False
        assert snap["health"]["health_score"] == 0
        assert monitor.get_system_health_summary()["health_score"] == 0
        monitor.tick()
        lines = [r.getMessage() for r in caplog.records if r.name == "faceit_bot.alerts"]
        assert len([x for x in lines if "fired [critical]" in x and "Redis is unreachable" in x]) == 1
    finally:
        redis_server.start()
    caplog.clear()
    snap = monitor.tick()
    assert snap["redis"]["reachable"] is True
    lines = [r.getMessage() for r in caplog.records if r.name == "faceit_bot.alerts"]
    assert any("resolved" in x and "Redis is unreachable" in x for x in lines)
    states = [(a.rule, a.state) for a in monitor.get_recent_alerts(1)]
    assert ("redis_unreachable", "fired") in states and ("redis_unreachable", "resolved") in states


def test_redis_full_and_redis_down_are_each_alerted_whichever_comes_first(redis_server, fresh, make_monitor,
                                                                            caplog):
    """A full Redis that goes away, and comes back full again (a restart reloads what it held):
    each episode is told and resolved, neither hides the other."""
    monitor = make_monitor(resolve_after=1)
    monitor.tick()
    caplog.set_level(logging.INFO, logger="faceit_bot.alerts")

    def lines(what: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "faceit_bot.alerts" and what in r.getMessage()]

    monitor.client.config_set("maxmemory", "1")
    monitor.tick()
    assert len(lines("Redis refuses writes")) == 1
    redis_server.stop()
    try:
        monitor.tick()
        assert len(lines("Redis is unreachable")) == 1  # told, though Redis was already full
    finally:
        redis_server.start()
    monitor.client.config_set("maxmemory", "1")  # back, and full again
    monitor.tick()
    assert [x for x in lines("Redis is unreachable") if "resolved" in x]  # back: the outage is over
    assert len(lines("Redis refuses writes")) == 1  # still the same full episode
    monitor.client.config_set("maxmemory", "0")
    monitor.tick()
    assert [x for x in lines("Redis refuses writes") if "resolved" in x]
    states = [(a.rule, a.state) for a in monitor.get_recent_alerts(1)]
    for rule in ("redis_unreachable", "redis_full"):
        assert states.count((rule, "fired")) == 1 and states.count((rule, "resolved")) == 1, states


def test_a_queue_without_workers_alerts_only_once_that_has_lasted(manager, make_monitor):
    """At start (or a pool's restart) the monitor's first check comes before the workers have
    registered: every restart with jobs pending sent the admins a CRITICAL "no live worker"."""
    monitor = make_monitor(thresholds=Thresholds(no_workers_after=0.8))
    manager.enqueue_job("probe_high", sent_at=time.time())
    snap = monitor.tick()
    assert any(c["rule"] == "no_workers" for c in snap["health"]["components"])  # seen and scored at once...
    assert fired(monitor.alerts, "no_workers", "high") == []  # ...but not alerted yet
    time.sleep(0.3)
    monitor.tick()
    assert fired(monitor.alerts, "no_workers", "high") == []
    time.sleep(0.6)  # 0.9 s since it was first seen
    monitor.tick()
    assert len(fired(monitor.alerts, "no_workers", "high")) == 1

"""The monitor on a real Redis with real workers: metrics, each rule firing and resolving,
de-duplication, Redis outages, FACEIT counters, series and retention."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
import time

from tests.ops.conftest import wait_until


def fired(store, rule: str, subject: str | None = None) -> list:
    return [a for a in store.recent(1) if a.rule == rule and a.state == "fired"
            and (subject is None or a.subject == subject)]


def resolved(store, rule: str, subject: str | None = None) -> list:
    return [a for a in store.recent(1) if a.rule == rule and a.state == "resolved"
            and (subject is None or a.subject == subject)]


def settle(monitor) -> dict:
    """Tick as often as a cleared condition needs before its alert is resolved; the last snapshot."""
    for _ in range(monitor.resolve_after):
        snap = monitor.tick()
    return snap


def test_metrics_from_real_jobs_and_the_failure_rate_alert_fires_then_resolves(live_pool, manager, make_monitor):
    monitor = make_monitor()
    ids = [manager.enqueue_job("t_noop").id for _ in range(5)]
    ids += [manager.enqueue_job("t_fail_times", failures=1, kind="bug", retry=0).id for _ in range(5)]
    for job_id in ids:
        assert manager.wait_for(job_id, timeout=20).is_final
    # A failed job's record is final just before Dramatiq dead-letters its message.
    wait_until(lambda: manager.queue_stats()["default"].dead == 5, timeout=20)
    snap = monitor.tick()
    q = snap["queues"]["default"]
    assert (q["succeeded"], q["failed"], q["refused"], q["processed"]) == (5, 5, 0, 10)
    assert q["failure_rate"] == 0.5 and q["workers"] == 1
    assert q["wait_p50"] is not None and q["wait_p95"] >= q["wait_p50"] >= 0
    assert q["run_p95"] is not None and q["samples"] == 10
    assert snap["workers"]["live"] == 1 and snap["workers"]["by_queue"]["high"] == 1
    assert snap["redis"]["reachable"] and snap["redis"]["used_memory"] > 0
    [alert] = fired(monitor.alerts, "failure_rate", "default")
    assert alert.level == "error" and "50%" in alert.message
    summary = monitor.get_system_health_summary()
    assert q["dead"] == 5  # the failed jobs' messages are dead-lettered
    assert summary["health_score"] == 75  # 100 - 20 (failure rate) - 5 (dead letters)
    assert [c["rule"] for c in summary["components"]] == ["failure_rate", "dead_letters"]

    # Thirty successes bring the rate to 5/40 = 12.5%: the condition clears and is resolved once.
    ids = [manager.enqueue_job("t_noop").id for _ in range(30)]
    for job_id in ids:
        assert manager.wait_for(job_id, timeout=20).status == "succeeded"
    snap = monitor.tick()
    assert snap["queues"]["default"]["failure_rate"] == 0.125
    assert not resolved(monitor.alerts, "failure_rate")  # clear once is not clear yet
    snap = settle(monitor)
    [notice] = resolved(monitor.alerts, "failure_rate", "default")
    assert notice.level == "info" and notice.details["opened_level"] == "error"
    assert notice.details["opened_details"]["failure_rate"] == 0.5  # what /alerts tells again in ru
    assert monitor.open_alerts() == []
    assert monitor.get_system_health_summary()["health_score"] == 95
    monitor.tick()
    assert len(resolved(monitor.alerts, "failure_rate")) == 1  # resolved once, not every tick


def test_a_failing_queue_gone_quiet_is_not_a_recovery(live_pool, manager, make_monitor, redis_client):
    """Fewer finished jobs in the window than the rule needs says nothing either way: the failure
    alert stays open (it was resolved, then fired again, while jobs kept failing now and then)."""
    monitor = make_monitor()
    ids = [manager.enqueue_job("t_noop").id for _ in range(5)]
    ids += [manager.enqueue_job("t_fail_times", failures=1, kind="bug", retry=0).id for _ in range(5)]
    for job_id in ids:
        assert manager.wait_for(job_id, timeout=20).is_final
    monitor.tick()
    assert fired(monitor.alerts, "failure_rate", "default")
    for key in redis_client.scan_iter("fb:stats:default:*"):  # the window moved past those jobs
        redis_client.delete(key)
    for _ in range(monitor.resolve_after + 1):
        assert monitor.tick()["queues"]["default"]["failed"] == 0
    assert not resolved(monitor.alerts, "failure_rate")
    assert [a.rule for a in monitor.open_alerts()] == ["failure_rate"]
    ids = [manager.enqueue_job("t_noop").id for _ in range(5)]  # jobs flow again, and succeed
    for job_id in ids:
        assert manager.wait_for(job_id, timeout=20).status == "succeeded"
    settle(monitor)
    assert len(resolved(monitor.alerts, "failure_rate", "default")) == 1


def test_jobs_refused_for_their_request_do_not_count_as_the_systems_failures(live_pool, manager, make_monitor):
    """Users mistyping nicknames is not the system failing: no failure-rate alert for it."""
    monitor = make_monitor()
    ids = [manager.enqueue_job("t_noop").id for _ in range(5)]
    ids += [manager.enqueue_job("t_fail_times", failures=1, kind="permanent").id for _ in range(5)]  # not found
    for job_id in ids:
        assert manager.wait_for(job_id, timeout=20).is_final
    q = monitor.tick()["queues"]["default"]
    assert (q["failed"], q["refused"], q["failure_rate"]) == (5, 5, 0.0)
    assert not fired(monitor.alerts, "failure_rate", "default")
    assert q["dead"] == 0  # nor dead letters for an operator to requeue or purge
    assert monitor.get_system_health_summary()["health_score"] == 100


def test_redis_memory_share_over_maxmemory_limit_fires_and_resolves(fresh, make_monitor):
    monitor = make_monitor()
    client = monitor.client
    client.set("filler", "x" * 8_000_000)  # 15% headroom must hold a tick's own reads and writes
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", str(int(used / 0.85)))
    try:
        snap = monitor.tick()
        assert snap["redis"]["memory_share"] > 0.8
        assert fired(monitor.alerts, "redis_memory")
    finally:
        client.config_set("maxmemory", "0")
    snap = settle(monitor)
    assert snap["redis"]["memory_share"] is None
    assert resolved(monitor.alerts, "redis_memory")


def test_a_redis_that_may_evict_keys_is_a_warning_until_noeviction_is_set(fresh, make_monitor):
    """Everything in Redis (job records, delivery marks, locks, subscriptions, Dramatiq's message
    bodies) must stay until the code deletes it: a policy that evicts is told in one line. Only
    under a maxmemory: without one (0, the test Redis's) Redis never evicts, whatever the policy."""
    monitor = make_monitor()
    client = monitor.client
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    assert client.config_get("maxmemory")["maxmemory"] == "0"
    before = monitor.tick()["health"]  # no workers here: idle queues cost points too
    assert "redis_eviction" not in {c["rule"] for c in before["components"]}
    client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        unlimited = monitor.tick()
        assert (unlimited["redis"]["maxmemory_policy"], unlimited["redis"]["maxmemory"]) == ("allkeys-lru", 0)
        assert not fired(monitor.alerts, "redis_eviction")
        assert unlimited["health"]["health_score"] == before["health_score"]
        client.config_set("maxmemory", str(1 << 30))  # far above what the test uses: nothing is evicted
        snap = monitor.tick()
        assert (snap["redis"]["maxmemory_policy"], snap["redis"]["maxmemory"]) == ("allkeys-lru", 1 << 30)
        assert [a.level for a in fired(monitor.alerts, "redis_eviction")] == ["warning"]
        [alert] = fired(monitor.alerts, "redis_eviction")
        assert (alert.level, alert.source, alert.subject) == ("warning", "redis", "-")
        assert alert.message == ("Redis may evict keys (maxmemory-policy allkeys-lru): job records, delivery marks "
                                 "and subscriptions can vanish; set maxmemory-policy noeviction")
        [component] = [c for c in snap["health"]["components"] if c["rule"] == "redis_eviction"]
        assert component["level"] == "warning" and component["score_lost"] == 10
        assert snap["health"]["health_score"] == before["health_score"] - 10
        monitor.tick()
        assert len(fired(monitor.alerts, "redis_eviction")) == 1  # one alert while it holds
    finally:
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "0")
    settle(monitor)
    assert len(resolved(monitor.alerts, "redis_eviction")) == 1
    assert monitor.open_alerts() == []


def alert_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "faceit_bot.alerts"]


def test_a_redis_that_refuses_writes_is_alerted_once_directly_and_logged_when_it_takes_them_again(
        fresh, make_monitor, caplog):
    """At maxmemory (noeviction) Redis still answers reads but refuses every write: the alert log
    cannot take an alert, so the sinks hear it directly, once for the episode, however the memory
    hovers at the limit; it resolves after ``resolve_after`` ticks whose writes went through."""
    monitor = make_monitor()
    client = monitor.client
    monitor.tick()
    caplog.set_level(logging.INFO, logger="faceit_bot.alerts")
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    try:
        for full in (True, True, False, True, False, True):  # hovering at the limit
            client.config_set("maxmemory", "1" if full else "0")  # 1 byte: every write is refused
            snap = monitor.tick()
            if full:
                assert snap["redis"]["refuses_writes"] and snap["redis"]["reachable"]
                assert snap["health"]["health_score"] <= 50 and "redis_full" in {
                    c["rule"] for c in snap["health"]["components"]}
        assert len([x for x in alert_lines(caplog) if "fired [critical]" in x and "Redis refuses writes" in x]) == 1
        assert not [x for x in alert_lines(caplog) if "resolved" in x]
    finally:
        client.config_set("maxmemory", "0")
    assert not monitor.tick()["redis"]["refuses_writes"]
    settle(monitor)
    resolved_lines = [x for x in alert_lines(caplog) if "resolved" in x and "Redis refuses writes" in x]
    assert len(resolved_lines) == 1, alert_lines(caplog)
    states = [(a.rule, a.state) for a in monitor.get_recent_alerts(1)]
    assert states.count(("redis_full", "fired")) == 1 and states.count(("redis_full", "resolved")) == 1
    assert "redis_full" not in {c["rule"] for c in monitor.get_system_health_summary()["components"]}


def test_a_condition_hovering_at_its_limit_keeps_one_alert_open(fresh, make_monitor):
    monitor = make_monitor()
    client = monitor.client
    client.set("filler", "x" * 8_000_000)  # 15% headroom must hold a tick's own reads and writes
    try:
        for over in (False, True) * 4:  # over the limit on every other check, the last one too
            used = int(client.info("memory")["used_memory"])
            client.config_set("maxmemory", str(int(used / 0.85)) if over else "0")
            share = monitor.tick()["redis"]["memory_share"]
            assert (share > 0.8) if over else share is None
    finally:
        client.config_set("maxmemory", "0")
    assert len(fired(monitor.alerts, "redis_memory")) == 1 and not resolved(monitor.alerts, "redis_memory")
    assert monitor.resolve_after > 1
    for _ in range(monitor.resolve_after - 1):
        monitor.tick()
    assert not resolved(monitor.alerts, "redis_memory")
    monitor.tick()  # clear for resolve_after checks in a row: resolved, once
    assert len(resolved(monitor.alerts, "redis_memory")) == 1


async def _record_faceit_calls(outcome: str, n: int) -> None:
    """``n`` FACEIT calls ending in ``outcome``, counted as the client counts them."""
    from faceit.keys import FaceitKeys
    from faceit.metrics import CallCounter
    from queues.connection import async_redis_client
    from settings import get_settings

    client = async_redis_client(get_settings())
    counter = CallCounter(client, FaceitKeys(get_settings().redis_key_prefix))
    for _ in range(n):
        await counter.record(outcome)
    await client.aclose()


def test_faceit_auth_errors_and_a_429_storm_from_the_faceit_counters(fresh, make_monitor, env_override):
    from faceit.keys import FaceitKeys
    from settings import get_settings

    env_override(ALERT_RATE_LIMIT_STORM="5")
    monitor = make_monitor()

    asyncio.run(_record_faceit_calls("rate_limited", 6))
    asyncio.run(_record_faceit_calls("auth", 1))
    asyncio.run(_record_faceit_calls("ok", 3))
    snap = monitor.tick()
    assert snap["faceit"]["available"] and snap["faceit"]["rate_limited"] == 6
    assert snap["faceit"]["requests"] == 10 and snap["faceit"]["auth_errors"] == 1
    assert fired(monitor.alerts, "faceit_auth")[0].level == "critical"
    assert fired(monitor.alerts, "faceit_rate_limit")[0].source == "faceit"
    for key in monitor.client.scan_iter(match=FaceitKeys(get_settings().redis_key_prefix).calls("*")):
        monitor.client.delete(key)
    settle(monitor)
    assert resolved(monitor.alerts, "faceit_auth") and resolved(monitor.alerts, "faceit_rate_limit")


def test_faceit_calls_failing_for_want_of_a_key_are_told_as_that_not_as_a_refusal(fresh, make_monitor):
    """Workers without ``FACEIT_API_KEY`` send nothing: the critical alert said "FACEIT refused
    our API key 2 times", sending the operator to FACEIT's console instead of the settings."""
    monitor = make_monitor()

    asyncio.run(_record_faceit_calls("no_key", 2))
    snap = monitor.tick()
    assert snap["faceit"]["auth_errors"] == 2 and snap["faceit"]["key_missing"] == 2
    assert snap["faceit"]["requests"] == 0 and snap["faceit"]["errors"] == 0  # nothing went out
    (alert,) = fired(monitor.alerts, "faceit_auth")
    assert alert.level == "critical"
    assert alert.message.startswith("FACEIT_API_KEY is not set: a FACEIT call went unsent 2 times in the last ")
    assert "refused" not in alert.message


def test_series_current_metrics_and_retention(live_pool, manager, make_monitor):
    monitor = make_monitor()
    for _ in range(3):
        manager.wait_for(manager.enqueue_job("t_noop").id, timeout=20)
    manager.wait_for(manager.enqueue_job("t_fail_times", failures=1, kind="permanent").id, timeout=20)
    monitor.tick()
    monitor.tick()
    throughput = monitor.series("throughput", "default", since_seconds=600, buckets=10)
    assert len(throughput) == 10 and sum(p["value"] for p in throughput) == 4
    assert sum(p["value"] for p in monitor.series("failures", None, 600, 10)) == 1
    depth = monitor.series("depth", "default", since_seconds=120, buckets=4)
    assert depth[-1]["value"] == 0 and all(a["t"] < b["t"] for a, b in itertools.pairwise(depth))
    assert any(p["value"] is not None for p in monitor.series("p95_wait", "default", 120, 4))
    # The failure was the user's (an unknown player): no dead letter, nothing off the score.
    assert monitor.series("health_score", None, 120, 4)[-1]["value"] == 100
    latest = monitor.current_metrics()
    assert set(latest["queues"]) == {"high", "default", "low"} and latest["health"]["health_score"] == 100

    # Retention: an old point is trimmed and the ids of expired records leave the indexes.
    key = monitor.keys.series("default")
    old = time.time() - monitor.retention_seconds - 60
    monitor.client.zadd(key, {json.dumps([old, 1]): old})
    gone_id = manager.enqueue_job("t_noop").id
    manager.wait_for(gone_id, timeout=20)
    monitor.client.delete(manager.jobs.job_key(gone_id))  # as if its TTL had run out
    result = monitor.retention_cleanup()
    assert result["pruned_ids"] >= 3 and result["trimmed_points"] == 1  # all, status, queue, actor
    assert monitor.client.zscore(manager.jobs.index_key("all"), gone_id) is None
    assert monitor.client.zcount(key, 0, old + 1) == 0


def test_retention_ends_while_redis_is_full(fresh, make_monitor, redis_client):
    """A Redis at maxmemory under noeviction refuses the prune cursor's write: every step then
    read the same oldest ids again, and the daily sweep never ended, sending scripts to a full
    Redis for ever. It stops after the steps a whole pass takes and says so."""
    monitor = make_monitor()
    for n in range(6):  # live records: nothing to prune, the pass has to go over all of them
        monitor.jobs.create(f"live-{n}", actor="a", queue="default", now=time.time() - 3600)
    policy = redis_client.config_get("maxmemory-policy")["maxmemory-policy"]
    redis_client.config_set("maxmemory-policy", "noeviction")
    redis_client.config_set("maxmemory", 1)  # every write that needs memory is refused
    outcome: list[dict] = []
    sweep = threading.Thread(target=lambda: outcome.append(monitor.retention_cleanup(batch=2)), daemon=True)
    try:
        sweep.start()
        sweep.join(timeout=20)
        assert not sweep.is_alive(), "the sweep never ended"
    finally:
        redis_client.config_set("maxmemory", 0)
        redis_client.config_set("maxmemory-policy", policy)
        sweep.join(timeout=20)
    assert outcome[0]["pruned_ids"] == 0 and outcome[0]["unfinished_indexes"] >= 1
    assert redis_client.zcard(monitor.jobs.index_key("all")) == 6


def test_the_monitor_tolerates_a_missing_faceit_layer(fresh, redis_client, tmp_path):
    """A monitor where ``faceit.metrics`` cannot be imported still ticks, and its snapshot says
    the FACEIT counters are unavailable. Run for real: a process of its own on a copy of the code
    without that module, on the test Redis."""
    import os
    import shutil
    import subprocess
    import sys

    from queues.monitoring import MonitorKeys
    from settings import get_settings
    from tests.support.workers import ROOT

    tree = tmp_path / "code"
    for package in ("queues", "faceit"):
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("settings.py", "settings.toml"):
        shutil.copy(ROOT / name, tree / name)
    (tree / "faceit" / "metrics.py").unlink()
    script = ("import importlib.util\n"
              "from queues.monitoring import QueueMonitor\n"
              "print('metrics importable:', importlib.util.find_spec('faceit.metrics') is not None)\n"
              "QueueMonitor(telegram=None).tick()\n")
    ran = subprocess.run([sys.executable, "-c", script], cwd=tree, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(tree)})
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "metrics importable: False" in ran.stdout  # the copy is what ran
    snap = json.loads(redis_client.get(MonitorKeys(get_settings().redis_key_prefix).latest))
    assert snap["faceit"] == {"available": False}
    assert snap["redis"]["reachable"]

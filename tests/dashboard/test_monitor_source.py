"""With ``queues.monitoring`` present, the health score and the charts are the monitor's."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from queues.jobstore import JobStore
from tests.dashboard.conftest import dashboard_settings
from tests.dashboard.helpers import DashboardServer, make_job


@pytest.fixture
def monitored(redis_url: str) -> Iterator[DashboardServer]:
    server = DashboardServer(dashboard_settings(), monitor_factory=None).start()  # the real monitor
    yield server
    server.stop()


def test_health_and_series_come_from_the_monitor(monitored: DashboardServer, store: JobStore,
                                                 redis_client) -> None:
    from queues.monitoring import get_queue_monitor

    make_job(store, status="succeeded")
    make_job(store, status="failed")
    redis_client.rpush("dramatiq:high", "m1", "m2", "m3")
    client = monitored.client()
    health = client.get("/api/health").json()
    expected = get_queue_monitor().get_system_health_summary()
    assert health["health_score"] == expected["health_score"] < 100
    assert health["reasons"] == expected["reasons"]
    assert any(c["rule"] == "no_workers" and c["subject"] == "high" for c in health["components"])
    page = client.get("/").text
    assert f'data-score="{expected["health_score"]}"' in page
    for reason in expected["reasons"]:
        assert reason.replace("'", "&#39;").replace('"', "&#34;") in page
    # Counter series are the monitor's sums per bucket.
    ours = client.get("/api/series", query={"metric": "throughput", "queue": "default"}).json()["points"]
    theirs = get_queue_monitor().series("throughput", "default", 3600, 60)
    assert [p["value"] for p in ours] == [p["value"] for p in theirs]
    assert sum(p["value"] for p in ours) == 2
    # No scheduler ran, so the monitor recorded no wait gauge: the job store's samples fill in.
    waits = client.get("/api/series", query={"metric": "wait_p95", "queue": "default"}).json()["points"]
    assert any(p["value"] is not None for p in waits)


def _row(**figures: object) -> dict[str, object]:
    """A queue row as the dashboard reads it (DashboardData.queues)."""
    return {"waiting": 0, "delayed": 0, "in_progress": 0, "dead": 0, "workers": 1, "succeeded": 0, "failed": 0,
            "refused": 0, "failure_rate": None, "wait_p95": None, "window_seconds": 3600, "broker_error": None,
            **figures}


def _lost(rows: dict[str, dict[str, object]], open_alerts: list[dict[str, object]] | None = None,
          redis_ok: bool = True) -> tuple[int, set[tuple[str, str]]]:
    from dashboard.monitor import local_health
    from settings import load_settings

    summary = local_health(load_settings(), rows, open_alerts or [], redis_ok)
    assert summary["source"] == "dashboard"
    return summary["health_score"], {(c["rule"], c["subject"]) for c in summary["components"]}


def test_the_fallback_score_judges_by_the_alert_rules_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the monitor the dashboard scores what it read itself, by the alert rules' own
    thresholds: it once counted failures from 5 finished jobs whatever ALERT_FAILURE_MIN_JOBS said."""
    monkeypatch.setenv("QUEUE_NAME_PREFIX", "")
    failing = _row(succeeded=4, failed=6, failure_rate=0.6)
    monkeypatch.setenv("ALERT_FAILURE_MIN_JOBS", "20")
    assert ("failure_rate", "default") not in _lost({"default": failing})[1]
    monkeypatch.setenv("ALERT_FAILURE_MIN_JOBS", "10")
    assert _lost({"default": failing}) == (80, {("failure_rate", "default")})
    monkeypatch.setenv("ALERT_DEPTH_DEFAULT", "3")
    assert _lost({"default": _row(waiting=4)}) == (90, {("queue_depth", "default")})
    assert _lost({"default": _row(waiting=3)}) == (100, set())


def test_the_fallback_score_is_the_monitors_for_what_both_read() -> None:
    """The same rules as the monitor's, not a copy that drifted from them: dead letters lose 5
    once, not 5 a queue; a queue nobody consumes loses 5 even when empty; with the broker down
    no depth rule is judged (a depth is unknown, not 0), the broker's own 50 is lost once."""
    assert _lost({"default": _row(dead=2), "low": _row(dead=1)}) == (95, {("dead_letters", "-")})
    assert _lost({"default": _row(workers=0), "high": _row(workers=0, waiting=2)}) == (
        70, {("idle_queue", "default"), ("no_workers", "high")})
    down = {name: _row(waiting=None, delayed=None, workers=0, broker_error="connection refused")
            for name in ("high", "default")}
    assert _lost(down) == (50, {("broker_unreachable", "-")})
    assert _lost({}, redis_ok=False) == (0, {("redis_unreachable", "-")})


def test_the_fallback_score_keeps_what_only_the_monitor_saw() -> None:
    """Conditions the dashboard cannot read (FACEIT refusing our key, an old waiting job) or
    reads over another window (the failure rate, the waits: an hour here) count as the monitor
    left them open; one it reads itself and finds cleared counts nothing; one its read cannot
    decide (any depth while the broker is down) counts. Not for ever: the monitor fires a
    condition that still holds once every ALERT_DEDUPE_WINDOW, so one older than two is stale."""
    from settings import load_settings

    settings = load_settings()
    window = settings.alert_dedupe_window + settings.queue_monitoring_interval

    def alert(rule: str, subject: str = "-", age: float = 0.0) -> dict[str, object]:
        return {"rule": rule, "subject": subject, "level": "critical", "message": f"{rule} on {subject}",
                "details": {}, "time": time.time() - age}

    score, lost = _lost({"default": _row()}, [alert("faceit_auth"), alert("stale_jobs", "default")])
    assert (score, lost) == (60, {("faceit_auth", "-"), ("stale_jobs", "default")})
    assert _lost({"default": _row(waiting=1)}, [alert("queue_depth", "default"), alert("no_workers", "default")]) == (
        100, set())
    # An hour of successes dilutes a burst of failures the monitor's window saw: it still counts.
    calm = _row(succeeded=200, failed=10, failure_rate=10 / 210, wait_p95=0.5)
    assert _lost({"default": calm}, [alert("failure_rate", "default"), alert("wait_time", "default")]) == (
        70, {("failure_rate", "default"), ("wait_time", "default")})
    down = {"default": _row(waiting=None, broker_error="connection refused")}
    assert _lost(down, [alert("queue_depth", "default"), alert("broker_unreachable")]) == (
        40, {("broker_unreachable", "-"), ("queue_depth", "default")})
    # A rule this version does not know, or an alert of no rule: nothing to judge it by.
    assert _lost({"default": _row()}, [alert("gremlins"), {"level": "error", "message": "x", "time": time.time()}]) == (
        100, set())
    # A condition found again is lost once, not once more for its open alert.
    assert _lost({"default": _row(workers=0, waiting=1)}, [alert("no_workers", "default")]) == (
        75, {("no_workers", "default")})
    # Left open by a monitor that has not looked for two dedupe windows: no longer its word.
    assert _lost({"default": _row()}, [alert("faceit_auth", age=2.5 * window)]) == (100, set())
    assert _lost({"default": _row()}, [alert("faceit_auth", age=1.5 * window)]) == (75, {("faceit_auth", "-")})

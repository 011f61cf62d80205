"""With ``queues.monitoring`` present, the health score and the charts are the monitor's."""

from __future__ import annotations

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


def test_the_fallback_score_judges_by_the_alert_rules_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the monitor the dashboard scores what it read itself. It counted failures from 5
    finished jobs whatever ALERT_FAILURE_MIN_JOBS said, so its score and the alert disagreed."""
    from dashboard.monitor import local_health
    from settings import load_settings

    queue = {"waiting": 0, "delayed": 0, "workers": 1, "succeeded": 4, "failed": 6, "failure_rate": 0.6,
             "wait_p95": None, "dead": 0}

    def lost(**env: str) -> set[str]:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return {c["name"] for c in local_health(load_settings(), {"default": queue}, [])["components"]}

    assert "failures:default" not in lost(ALERT_FAILURE_MIN_JOBS="20", QUEUE_NAME_PREFIX="")
    assert "failures:default" in lost(ALERT_FAILURE_MIN_JOBS="10")
    queue["waiting"] = 4
    assert "depth:default" in lost(ALERT_DEPTH_DEFAULT="3")

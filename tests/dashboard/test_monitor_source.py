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

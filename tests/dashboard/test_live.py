"""Actions against real ``dramatiq`` workers: a retried job really runs again and succeeds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from queues.manager import QueueManager
from tests.dashboard.conftest import dashboard_settings, load_test_actors
from tests.dashboard.helpers import Client, DashboardServer, wait_until
from tests.support.workers import WorkerPool


@pytest.fixture(scope="module")
def live(default_workers: WorkerPool, redis_server) -> Iterator[tuple[DashboardServer, QueueManager]]:
    settings = dashboard_settings()
    load_test_actors(redis_server)
    server = DashboardServer(settings).start()
    yield server, QueueManager(settings)
    server.stop()


def post(client: Client, path: str) -> dict:
    reply = client.post(path, headers={"X-CSRF-Token": client.csrf()})
    assert reply.status == 200, reply.text
    return reply.json()


def test_retry_a_failed_job_and_see_it_succeed(live) -> None:
    server, manager = live
    client = server.client()
    handle = manager.enqueue_job("t_fail_times", retry=0, failures=1)
    assert manager.wait_for(handle.id, timeout=20).status == "failed"
    detail = client.get(f"/api/jobs/{handle.id}").json()
    assert detail["actions"] == ["retry"] and detail["error"]["type"] == "UpstreamError"
    assert post(client, f"/api/jobs/{handle.id}/retry")["outcome"] == "retried"
    done = manager.wait_for(handle.id, timeout=20)
    assert done.status == "succeeded" and done.result == {"runs": 2}
    after = client.get(f"/api/jobs/{handle.id}").json()
    assert after["status"] == "succeeded" and after["actions"] == []
    assert [a["outcome"] for a in after["timeline"]] == ["failed", "succeeded"]  # both attempts on record


def test_cancel_a_running_job(live) -> None:
    server, manager = live
    client = server.client()
    handle = manager.enqueue_job("t_slow", seconds=20, steps=40)
    wait_until(lambda: client.get(f"/api/jobs/{handle.id}").json()["status"] == "started", timeout=15)
    assert post(client, f"/api/jobs/{handle.id}/cancel")["outcome"] == "canceling"
    record = manager.wait_for(handle.id, timeout=15)
    assert record.status == "canceled"
    assert client.get(f"/api/jobs/{handle.id}").json()["actions"] == ["requeue"]


def test_workers_and_queue_cards_show_the_live_pool(live) -> None:
    server, _ = live
    client = server.client()
    workers = client.get("/api/workers").json()["workers"]
    assert workers and all("default" in w["queues"] for w in workers)
    default = client.get("/api/queues/default").json()
    assert default["workers"] == len(workers)
    assert client.get("/api/queues/high").json()["workers"] == 0

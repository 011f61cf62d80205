"""The six FACEIT actors, for real: worker processes, the FACEIT client, the sandbox Data API.

Each stores a structured result plus texts in both languages in its job record, reports
progress, and turns FACEIT's refusals into the right final status.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from queues.health_texts import tell_alert
from tests.pipeline.conftest import wait_until
from tests.support.faceit_sandbox import FaceitSandbox
from tests.support.workers import WorkerPool, resume_module_pool, start_module_pool, stop_module_pool


@pytest.fixture(scope="module")
def faceit() -> Iterator[FaceitSandbox]:
    with FaceitSandbox() as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def _faceit_pool(faceit: FaceitSandbox, redis_server, tmp_path_factory) -> Iterator[WorkerPool]:
    pool = WorkerPool(queues=["high", "default", "low"], threads=8, env=faceit.env(),
                      log_path=tmp_path_factory.mktemp("faceit-pool") / "worker.log")
    start_module_pool(pool, redis_server)
    yield pool
    stop_module_pool(pool)


@pytest.fixture
def faceit_pool(_faceit_pool: WorkerPool, faceit: FaceitSandbox, redis_url: str) -> WorkerPool:
    faceit.reset()
    faceit.faults()
    return resume_module_pool(_faceit_pool)


def _texts_ok(result: dict) -> None:
    for lang in ("en", "ru"):
        parts = result["texts"][lang]
        assert parts and all(0 < len(p) <= 4096 for p in parts)
    assert result["texts"]["en"] != result["texts"]["ru"]


def test_match_analysis_of_a_live_lobby(faceit_pool, faceit, manager, redis_client):
    match_id = faceit.world()["matches"]["READY"][0]
    handle = manager.enqueue_match_analysis(f"https://www.faceit.com/ru/cs2/room/{match_id}", user_id=77)
    stages = set()

    def finished():
        record = manager.get_job(handle.id)
        if record and record.progress:
            stages.add(record.progress["stage"])
        return record if record and record.is_final else None

    record = wait_until(finished, timeout=60, interval=0.01)
    assert record.status == "succeeded", record.error
    result = record.result
    assert result["kind"] == "match_analysis" and result["data"]["match_id"] == match_id
    teams = result["data"]["teams"]
    assert {len(teams["faction1"]["players"]), len(teams["faction2"]["players"])} == {5}
    p1, p2 = teams["faction1"]["win_probability"], teams["faction2"]["win_probability"]
    assert abs(p1 + p2 - 1) < 1e-6
    _texts_ok(result)
    assert faceit.calls() <= 31  # the whole cold analysis: 1 match + 10 x 3
    assert stages  # the user's message had something to show while it ran
    # The requester's analysis is counted for their analytics report.
    again = manager.enqueue_match_analysis(match_id, user_id=78)
    assert manager.wait_for(again.id, timeout=60).status == "succeeded"
    assert faceit.calls() <= 32  # warm: at most the match itself again


def test_cancelled_match_is_refused_at_once(faceit_pool, faceit, manager):
    match_id = faceit.world()["matches"]["CANCELLED"][0]
    record = manager.wait_for(manager.enqueue_match_analysis(match_id, user_id=1).id, timeout=60)
    assert record.status == "failed" and record.attempts == 1
    assert record.error["code"] == "match_not_analysable"
    assert record.error["texts"]["en"] and record.error["texts"]["ru"]


def test_player_report_with_chart(faceit_pool, faceit, manager):
    nickname = faceit.world()["nicknames"][0]
    record = manager.wait_for(manager.enqueue_player_report(nickname, user_id=5).id, timeout=60)
    assert record.status == "succeeded", record.error
    result = record.result
    assert result["kind"] == "player_report"
    _texts_ok(result)
    png = base64.b64decode(result["photos"][0]["png_b64"])
    assert png.startswith(b"\x89PNG")


def test_unknown_player_fails_permanently_with_a_user_text(faceit_pool, manager):
    record = manager.wait_for(manager.enqueue_player_report("nobody_here_42", user_id=5).id, timeout=60)
    assert record.status == "failed" and record.attempts == 1
    assert record.error["code"] == "not_found"
    assert "nobody_here_42" in record.error["texts"]["en"] or record.error["texts"]["en"]


def test_bulk_analysis_summarises_several_matches(faceit_pool, faceit, manager):
    ids = faceit.world()["matches"]["FINISHED"][:3] + faceit.world()["matches"]["READY"][:1]
    record = manager.wait_for(manager.enqueue_bulk_analysis(ids, user_id=9).id, timeout=90)
    assert record.status == "succeeded", record.error
    assert record.result["kind"] == "bulk_analysis"
    _texts_ok(record.result)


def test_monitoring_cache_update_and_analytics_run(faceit_pool, faceit, manager):
    import asyncio

    from faceit import store

    player = faceit.world()["players"][0]

    async def subscribe():
        await store.subscribe(42, player["player_id"], player["nickname"])

    asyncio.run(subscribe())
    monitoring = manager.wait_for(manager.enqueue_match_monitoring().id, timeout=60)
    assert monitoring.status == "succeeded", monitoring.error
    assert monitoring.result["kind"] == "match_monitoring"
    update = manager.wait_for(manager.enqueue_cache_update("player").id, timeout=60)
    assert update.status == "succeeded", update.error
    report = manager.wait_for(manager.enqueue_analytics_report(42, "weekly").id, timeout=60)
    assert report.status == "succeeded", report.error
    _texts_ok(report.result)


def test_faceit_refusing_the_key_is_one_critical_alert_and_no_retry(faceit, start_pool, manager):
    from queues.runtime import get_alert_store

    faceit.reset()
    start_pool(["high"], env={**faceit.env(), "FACEIT_API_KEY": "wrong-key"})
    match_id = faceit.world()["matches"]["READY"][1]
    record = manager.wait_for(manager.enqueue_match_analysis(match_id, user_id=1).id, timeout=60)
    assert record.status == "failed" and record.attempts == 1 and record.error["code"] == "auth"
    # The alert is written just after the record's final status (after_* hooks run in reverse).
    alerts = wait_until(lambda: [a for a in get_alert_store().recent(1) if a.job_id == record.id])
    assert [a.level for a in alerts] == ["critical"]
    assert tell_alert(alerts[0], "ru") == "FACEIT отклонил API-ключ (match_analysis)"
    assert "wrong-key" not in str(record.to_dict())

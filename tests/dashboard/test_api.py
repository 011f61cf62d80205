"""The JSON API and the pages it mirrors, against real Redis and real job records (no workers)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from queues.alerts import AlertStore
from queues.jobstore import JobStore
from queues.runtime import get_alert_store
from tests.dashboard.conftest import dashboard_settings
from tests.dashboard.helpers import Client, DashboardServer, Reply, make_job, wait_until


@pytest.fixture
def local(open_dashboard: DashboardServer) -> Client:
    return open_dashboard.client()


def post(client: Client, path: str, body: dict | None = None):
    return client.post(path, json_body=body or {}, headers={"X-CSRF-Token": client.csrf()})


def test_overview_shows_health_reasons_queues_and_recent_failures(local: Client, store: JobStore,
                                                                  redis_client) -> None:
    failed = make_job(store, actor="t_fail_times", status="failed")
    make_job(store, status="succeeded")
    redis_client.rpush("dramatiq:high", "m1", "m2")  # two waiting messages and nobody to run them
    view = local.get("/api/overview").json()
    assert view["counts"]["failed"] == 1 and view["counts"]["succeeded"] == 1
    assert [j["id"] for j in view["recent_failures"]] == [failed]
    assert view["recent_failures"][0]["error"] == "UpstreamError: upstream 503"
    high = next(q for q in view["queues"] if q["name"] == "high")
    assert high["waiting"] == 2 and high["workers"] == 0
    health = view["health"]
    # The monitor's rules: 25 for the queue with work and no worker, 5 for each idle one.
    assert health["health_score"] == 65
    assert "queue high has 2 waiting and 0 delayed job(s) and no live worker consumes it" in health["reasons"]
    default = next(q for q in view["queues"] if q["name"] == "default")
    assert default["succeeded"] == 1 and default["failed"] == 1 and default["failure_rate"] == 0.5
    assert set(view["charts"]) == {"throughput", "failures", "wait_p95"}
    assert len(view["charts"]["throughput"]["default"]) == 60
    # The page shows the same: the score, the reason, the failed job linked.
    page = local.get("/").text
    assert 'data-score="65"' in page and "queue high has 2 waiting and 0 delayed job(s)" in page
    assert f'href="/jobs/{failed}"' in page and "<svg" in page


def test_series_count_what_finished(local: Client, store: JobStore) -> None:
    for _ in range(3):
        make_job(store, status="succeeded")
    make_job(store, status="failed")
    points = local.get("/api/series", query={"metric": "throughput", "queue": "default"}).json()["points"]
    assert len(points) == 60 and points[-1]["value"] == 4 and sum(p["value"] for p in points) == 4
    failures = local.get("/api/series", query={"metric": "failures", "queue": "default", "range": "day"}).json()
    assert len(failures["points"]) == 96 and failures["points"][-1]["value"] == 1
    assert local.get("/api/series", query={"metric": "nope", "queue": "default"}).status == 400
    assert local.get("/api/series", query={"metric": "throughput", "queue": "nope"}).status == 400
    missing = local.get("/api/series", query={"metric": "throughput"})
    assert missing.status == 400 and "queue is required" in missing.text
    bogus = local.get("/api/series", query={"metric": "bogus"})  # the metric is the mistake, not the queue
    assert bogus.status == 400 and "unknown metric 'bogus': one of throughput, failures, wait_p95" in bogus.text
    assert local.get("/", query={"range": "week"}).status == 200
    assert local.get("/", query={"range": "year"}).status == 400


def test_jobs_filters_pagination_and_search(local: Client, store: JobStore) -> None:
    ids = {}
    for i in range(12):
        ids[i] = make_job(store, actor="t_noop" if i % 2 else "t_low", queue="default" if i % 2 else "low",
                          status="failed" if i % 3 == 0 else "succeeded", user_id=500 + i % 4)
    page1 = local.get("/api/jobs", query={"per_page": 5}).json()
    assert page1["total"] == 12 and page1["pages"] == 3 and len(page1["jobs"]) == 5
    assert page1["jobs"][0]["id"] == ids[11]  # newest first
    page3 = local.get("/api/jobs", query={"per_page": 5, "page": 3}).json()
    assert [j["id"] for j in page3["jobs"]] == [ids[1], ids[0]]
    past = local.get("/api/jobs", query={"per_page": 5, "page": 999}).json()  # past the end: the last page
    assert (past["page"], past["pages"], past["jobs"]) == (3, 3, page3["jobs"])
    failed = local.get("/api/jobs", query={"status": "failed"}).json()
    assert {j["id"] for j in failed["jobs"]} == {ids[i] for i in (0, 3, 6, 9)}
    both = local.get("/api/jobs", query={"status": "failed", "actor": "t_noop"}).json()
    assert {j["id"] for j in both["jobs"]} == {ids[3], ids[9]} and both["total"] == 2
    user = local.get("/api/jobs", query={"user": 501, "queue": "default"}).json()
    assert {j["id"] for j in user["jobs"]} == {ids[1], ids[5], ids[9]}
    # Two filters: the total counts the matches after the page too, so the pager goes on.
    first = local.get("/api/jobs", query={"user": 501, "queue": "default", "per_page": 2}).json()
    assert first["total"] == 3 and first["pages"] == 2 and [j["id"] for j in first["jobs"]] == [ids[9], ids[5]]
    second = local.get("/api/jobs", query={"user": 501, "queue": "default", "per_page": 2, "page": 2}).json()
    assert second["total"] == 3 and [j["id"] for j in second["jobs"]] == [ids[1]]
    far = local.get("/api/jobs", query={"page": "99999999999999999999"})  # far past the end: the last page, not 500
    assert far.status == 200 and far.json()["page"] == far.json()["pages"] == 1 and len(far.json()["jobs"]) == 12
    assert local.get("/api/jobs", query={"status": "exploded"}).status == 400
    bogus = local.get("/api/jobs", query={"actor": "bogus"})  # like a bogus status or queue: not "no jobs"
    assert bogus.status == 400 and "unknown actor 'bogus': one of " in bogus.text
    assert "t_noop" in bogus.text and "match_analysis" in bogus.text  # with jobs here / declared
    page = local.get("/jobs", query={"actor": "bogus"}).text  # the page says so too (HTML-escaped)
    assert "unknown actor &#39;bogus&#39;" in page or "unknown actor &#x27;bogus&#x27;" in page
    assert local.get("/api/jobs", query={"user": "abc"}).status == 400
    # The page: same filter, pager links keep it; search by id opens the job.
    html = local.get("/jobs", query={"status": "failed", "per_page": 2}).text
    assert html.count('data-job-id="') == 2 and "status=failed" in html and "page=2" in html
    found = local.get("/jobs", query={"q": ids[4]})
    assert found.status == 303 and found.location == f"/jobs/{ids[4]}"
    missing = local.get("/jobs", query={"q": "no-such-job"})
    assert missing.status == 200 and "No job with id" in missing.text
    # The 8 characters the lists show (as the bot and admin.py take them): the job, if only one starts so.
    whole = make_job(store, status="failed", job_id="7080edc9-1c2d-4e5f-8a9b-0c1d2e3f4a5b")
    found = local.get("/jobs", query={"q": "7080EDC9…"})
    assert found.status == 303 and found.location == f"/jobs/{whole}"
    assert local.get("/api/jobs/7080edc9").json()["id"] == whole
    make_job(store, status="failed", job_id="7080edc9-0000-4000-8000-000000000000")
    assert local.get("/jobs", query={"q": "7080edc9"}).status == 200  # two start so: the list, not a guess


def test_job_detail_redacts_secrets_and_escapes_everything(local: Client, store: JobStore) -> None:
    hostile = '<script>alert("x")</script>'
    job_id = make_job(store, actor="t_fail_times", status="failed", user_id=77, kwargs={
        "player": hostile, "api_key": "live-key-123456", "nested": {"password": "hunter22"},
    }, error={"type": "UpstreamError", "code": "upstream", "retryable": True,
              "message": f"GET https://bot:s3cr3tpass@api.example/ failed {hostile}",
              "traceback": f"Traceback\n  {hostile}\nUpstreamError"})
    detail = local.get(f"/api/jobs/{job_id}").json()
    assert detail["kwargs"]["api_key"] == "***" and detail["kwargs"]["nested"]["password"] == "***"
    assert detail["kwargs"]["player"] == hostile  # data, not secret: shown, escaped on pages
    assert "s3cr3tpass" not in detail["error"]["message"]
    assert detail["actions"] == ["retry"] and detail["requesters"][0]["user_id"] == 77
    assert len(detail["timeline"]) == 1 and detail["timeline"][0]["outcome"] == "failed"
    html = local.get(f"/jobs/{job_id}").text
    assert hostile not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "live-key-123456" not in html and "hunter22" not in html and "s3cr3tpass" not in html
    assert 'action="/jobs/' + job_id + '/retry"' in html and "Traceback" in html
    # Pages carry a strict CSP: no inline script can run even if something slipped through.
    csp = local.get(f"/jobs/{job_id}").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert local.get("/api/jobs/nope").status == 404 and local.get("/jobs/nope").status == 404
    # Error pages too (they carry the CSRF token and the operator's name): a 404 with no
    # Cache-Control may be kept by a shared cache, and one without the CSP may be framed.
    for path in ("/jobs/nope", "/api/jobs/nope", "/no-such-page", "/jobs?status=bogus&page=x"):
        reply = local.get(path)
        assert reply.headers.get("cache-control") == "no-store", (path, reply.status, reply.headers)
        assert "frame-ancestors 'none'" in reply.headers.get("content-security-policy", ""), path
        assert reply.headers.get("x-content-type-options") == "nosniff", path


def test_job_actions_change_records_and_queues(local: Client, store: JobStore, redis_client,
                                               broker_on_test_redis) -> None:
    failed = make_job(store, status="failed")
    succeeded = make_job(store, status="succeeded")
    queued = make_job(store, status="queued")
    canceled = make_job(store, status="canceled")
    reply = post(local, f"/api/jobs/{failed}/retry")
    assert reply.status == 200 and reply.json() == {**reply.json(), "outcome": "retried", "status": "queued"}
    assert store.status(failed) == "queued" and redis_client.llen("dramatiq:default") == 1
    conflict = post(local, f"/api/jobs/{succeeded}/retry")
    assert conflict.status == 409 and conflict.json()["error"] == "not_failed"
    assert post(local, f"/api/jobs/{queued}/cancel").json()["outcome"] == "canceled"
    assert store.status(queued) == "canceled"
    assert post(local, f"/api/jobs/{queued}/cancel").status == 409
    assert post(local, f"/api/jobs/{canceled}/requeue").json()["status"] == "queued"
    assert redis_client.llen("dramatiq:default") == 2
    assert post(local, "/api/jobs/nope/retry").status == 404
    assert post(local, f"/api/jobs/{failed}/explode").status == 404
    # The page form does the same and comes back with a fixed notice.
    again = make_job(store, status="failed")
    form = local.post(f"/jobs/{again}/retry", form={"csrf_token": local.csrf()})
    assert form.status == 303 and form.location == f"/jobs/{again}?done=retried"
    assert "Job sent again" in local.get(form.location).text
    bad = local.post(f"/jobs/{succeeded}/cancel", form={"csrf_token": local.csrf()})
    assert bad.location == f"/jobs/{succeeded}?error=not_active"
    # The 8 characters the lists show name the job for its actions too, as for its page.
    short = make_job(store, status="queued", job_id=str(uuid.uuid4()))
    reply = post(local, f"/api/jobs/{short[:8]}/cancel")
    assert reply.status == 200 and reply.json()["job_id"] == short and store.status(short) == "canceled"
    assert post(local, f"/api/jobs/{short[:8]}/requeue").json()["status"] == "queued"


def _cancel_after_the_job_ended(store: JobStore, redis_client, send_cancel: Callable[[str], Reply]) -> tuple[str, Reply]:
    """Cancel a job that the dashboard reads as started but that succeeds just before its cancel.

    Made exact with Redis itself: while writes are paused (``CLIENT PAUSE WRITE``) reads still
    answer, and the scripts held back run in the order they came once the pause ends. So the
    worker's finish is held first; then the dashboard reads the job (started) and its cancel is
    held behind that finish, and meets a job that already succeeded."""
    # Both scripts in Redis's cache first: a held EVALSHA answered NOSCRIPT would load and run
    # again after the other one, out of order.
    make_job(store, status="succeeded")
    store.cancel(make_job(store, status="queued"))
    job_id = make_job(store, status="queued")
    attempt = store.begin(job_id, max_deliveries=5, worker="host:1:test").attempt

    def held_scripts() -> int:
        return sum(1 for c in redis_client.client_list() if "b" in c["flags"] and c["cmd"] == "evalsha")

    with ThreadPoolExecutor(2) as pool:
        redis_client.client_pause(10_000, all=False)  # writes only; it ends by itself if the test dies
        try:
            finished = pool.submit(store.finish, job_id, attempt=attempt, status="succeeded", result={"ok": True})
            wait_until(lambda: held_scripts() == 1, timeout=5)
            canceled = pool.submit(send_cancel, job_id)
            wait_until(lambda: held_scripts() == 2, timeout=5)
        finally:
            redis_client.client_unpause()
        finished.result(timeout=10)
        return job_id, canceled.result(timeout=10)


def test_a_cancel_that_meets_an_ended_job_says_it_was_no_longer_active(local: Client, store: JobStore,
                                                                       redis_client) -> None:
    """The dashboard read the job as started; it succeeded before the cancel ran. Nothing was
    canceled: a 409 ``not_active``, and the page's notice says so (``done=succeeded`` showed none)."""
    token = local.csrf()
    job_id, reply = _cancel_after_the_job_ended(
        store, redis_client, lambda job: local.post(f"/api/jobs/{job}/cancel", json_body={},
                                                    headers={"X-CSRF-Token": token}))
    assert reply.status == 409, reply.text
    assert reply.json()["error"] == "not_active" and "is succeeded" in reply.text
    assert store.status(job_id) == "succeeded"

    job_id, page = _cancel_after_the_job_ended(
        store, redis_client, lambda job: local.post(f"/jobs/{job}/cancel", form={"csrf_token": token}))
    assert page.status == 303 and page.location == f"/jobs/{job_id}?error=not_active"
    assert "The job already finished; there is nothing to cancel." in local.get(page.location).text


def test_emptying_a_queue_needs_its_name(local: Client, store: JobStore, redis_client, broker_on_test_redis) -> None:
    waiting = make_job(store, actor="t_low", queue="low", status="queued")
    running = make_job(store, actor="t_low", queue="low", status="started")
    elsewhere = make_job(store, actor="t_noop", queue="default", status="queued")
    redis_client.rpush("dramatiq:low", "a")
    redis_client.hset("dramatiq:low.msgs", mapping={"a": "{}"})
    assert post(local, "/api/queues/low/empty").status == 400
    assert post(local, "/api/queues/low/empty", {"confirm": "high"}).status == 400
    assert redis_client.llen("dramatiq:low") == 1 and store.status(waiting) == "queued"
    reply = post(local, "/api/queues/low/empty", {"confirm": "low"})
    assert reply.status == 200 and reply.json()["cleared"] == 1 and reply.json()["jobs_canceled"] == 1
    assert redis_client.llen("dramatiq:low") == 0
    # The dropped job's record is closed; a running one and other queues are left alone.
    assert store.status(waiting) == "canceled"
    assert store.status(running) == "started" and store.status(elsewhere) == "queued"
    assert post(local, "/api/queues/nope/empty", {"confirm": "nope"}).status == 404
    assert post(local, "/api/queues/nope/empty").status == 404  # no such queue, before asking to confirm it
    # Pages: a confirmation step, then the form with the typed name.
    assert "Type <code>default</code> to confirm" in local.get("/queues/default/empty").text
    unconfirmed = local.post("/queues/default/empty", form={"csrf_token": local.csrf(), "confirm": "x"})
    assert unconfirmed.location == "/queues/default/empty?error=not_confirmed"
    done = local.post("/queues/default/empty", form={"csrf_token": local.csrf(), "confirm": "default"})
    assert done.location == "/queues?done=emptied&queue=default&cleared=0&canceled=1"  # `elsewhere`'s record


def test_emptying_a_queue_from_the_page_says_what_it_dropped(local: Client, store: JobStore, redis_client,
                                                             broker_on_test_redis) -> None:
    """The notice counts the messages dropped and the jobs canceled, and says when there were none
    (it said "Queue emptied." whatever happened). Only whole numbers from the query are shown."""
    waiting = make_job(store, actor="t_low", queue="low", status="queued")
    redis_client.rpush("dramatiq:low", "a")
    redis_client.hset("dramatiq:low.msgs", mapping={"a": "{}"})
    done = local.post("/queues/low/empty", form={"csrf_token": local.csrf(), "confirm": "low"})
    assert done.location == "/queues?done=emptied&queue=low&cleared=1&canceled=1"
    assert store.status(waiting) == "canceled"
    page = local.get(done.location).text
    assert "Queue low emptied: 1 waiting or delayed message dropped, 1 job canceled." in page
    again = local.post("/queues/low/empty", form={"csrf_token": local.csrf(), "confirm": "low"})
    assert "Queue low was already empty: no message dropped, no job canceled." in local.get(again.location).text
    forged = local.get("/queues", query={"done": "emptied", "queue": "<b>x</b>", "cleared": "<i>", "canceled": "2"})
    assert "Queue emptied." in forged.text and "<i>" not in forged.text and "<b>x" not in forged.text


def test_alerts_history_filters_and_open(local: Client, redis_url: str) -> None:
    alerts: AlertStore = get_alert_store()
    alerts.fire("warning", "monitor", "default is deep", rule="depth", subject="default")
    alerts.fire("critical", "monitor", "redis <b>down</b>", rule="redis", subject="-")
    alerts.fire("error", "worker", "job failed for good", job_id="job-1")
    alerts.resolve("depth", "default")
    view = local.get("/api/alerts").json()
    assert len(view["alerts"]) == 4
    assert {a["rule"] for a in view["open"]} == {"redis"}
    errors = local.get("/api/alerts", query={"level": "error"}).json()["alerts"]
    assert {a["level"] for a in errors} == {"error", "critical"}
    resolved = local.get("/api/alerts", query={"state": "resolved"}).json()["alerts"]
    assert len(resolved) == 1 and resolved[0]["message"].startswith("resolved:")
    assert local.get("/api/alerts", query={"level": "loud"}).status == 400
    html = local.get("/alerts", query={"level": "critical"}).text
    assert "redis &lt;b&gt;down&lt;/b&gt;" in html and "job failed for good" not in html


def test_alert_filters_judge_a_resolve_notice_by_what_it_resolved(local: Client, redis_url: str) -> None:
    """A resolve notice is written at ``info``: "warning and above" + "resolved" was always empty."""
    alerts: AlertStore = get_alert_store()
    alerts.fire("warning", "monitor", "default is deep", rule="depth", subject="default")
    alerts.fire("info", "monitor", "low is idle", rule="idle", subject="low")
    alerts.resolve("depth", "default")
    alerts.resolve("idle", "low")
    query = {"level": "warning", "state": "resolved"}
    assert [a["message"] for a in local.get("/api/alerts", query=query).json()["alerts"]] == [
        "resolved: default is deep"]
    assert "resolved: default is deep" in local.get("/alerts", query=query).text
    assert [a["message"] for a in local.get("/api/alerts", query={"level": "warning"}).json()["alerts"]] == [
        "resolved: default is deep", "default is deep"]


def test_alert_state_filter_comes_before_the_limit(local: Client, redis_url: str) -> None:
    """The state was filtered after the 500 newest alerts were taken: newer fired ones hid the
    resolve notices."""
    alerts: AlertStore = get_alert_store()
    alerts.fire("warning", "monitor", "default is deep", rule="depth", subject="default")
    alerts.fire("info", "monitor", "low is idle", rule="idle", subject="low")
    alerts.resolve("depth", "default")
    alerts.resolve("idle", "low")
    time.sleep(0.01)  # the notices strictly older than what follows
    quiet = AlertStore(alerts.client, prefix=alerts.prefix, sinks=[])  # 500 log lines say nothing here
    for n in range(500):
        quiet.fire("error", "worker", f"job {n} failed for good", job_id=f"job-{n}")
    resolved = local.get("/api/alerts", query={"state": "resolved"}).json()["alerts"]
    assert [a["message"] for a in resolved] == ["resolved: low is idle", "resolved: default is deep"]


def test_metrics_in_prometheus_text(local: Client, store: JobStore, redis_client) -> None:
    make_job(store, actor="t_noop", status="succeeded")
    make_job(store, actor="t_noop", status="succeeded")
    make_job(store, actor="t_noop", status="failed")
    redis_client.rpush("dramatiq:default", "m")
    get_alert_store().fire("error", "monitor", "x", rule="r", subject="s")
    reply = local.get("/metrics")
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = reply.text
    line = re.compile(r'^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+Inf]+$')
    for row in text.splitlines():
        assert row.startswith("# HELP ") or row.startswith("# TYPE ") or line.match(row), row
    assert 'faceit_bot_queue_messages{queue="default",state="waiting"} 1' in text
    assert 'faceit_bot_jobs_processed_total{actor="t_noop"} 3' in text
    assert 'faceit_bot_jobs_failed_total{actor="t_noop"} 1' in text
    assert 'faceit_bot_job_duration_seconds_count{actor="t_noop"} 3' in text
    assert 'faceit_bot_job_duration_seconds_bucket{actor="t_noop",le="+Inf"} 3' in text
    buckets = [int(m) for m in re.findall(r'duration_seconds_bucket\{actor="t_noop",le="[^"]+"\} (\d+)', text)]
    assert buckets == sorted(buckets) and len(buckets) == 11
    assert 'faceit_bot_alerts_open{level="error"} 1' in text
    assert re.search(r"^faceit_bot_health_score \d+$", text, re.M)
    assert text.count("# TYPE faceit_bot_job_duration_seconds histogram") == 1


def test_healthz_and_pages_when_redis_is_down(local: Client, redis_server) -> None:
    assert local.get("/healthz").json()["redis"] is True
    redis_server.stop()
    try:
        down = local.get("/healthz")
        assert down.status == 503 and down.json()["redis"] is False
        assert local.get("/api/jobs").status == 503
        page = local.get("/queues")
        assert page.status == 503 and "Redis is unreachable" in page.text
        assert "faceit_bot_redis_up 0" in local.get("/metrics").text
    finally:
        redis_server.start()
    assert local.get("/healthz").status == 200


def test_workers_page_lists_heartbeats(local: Client, store: JobStore) -> None:
    import time

    from queues.workers import WorkerInfo, WorkerRegistry

    registry = WorkerRegistry(store.client, prefix=store.prefix)
    now = time.time()
    registry.heartbeat(WorkerInfo("host-a:4242:x", "host-a", 4242, ["high", "default"], ["job-abc"], 17, now - 90, now))
    rows = local.get("/api/workers").json()["workers"]
    assert [w["pid"] for w in rows] == [4242] and rows[0]["current_jobs"] == ["job-abc"]
    html = local.get("/workers").text
    assert "host-a" in html and 'href="/jobs/job-abc"' in html


def test_users_mistakes_are_not_counted_as_the_systems_failures(local: Client, store: JobStore) -> None:
    """A cancelled match, an aborted one, a mistyped nickname: failed jobs, but the users' doing.
    The alert rule left them out; the dashboard's rate (and its own health score) did not, so a
    few typos read as "100% of jobs failed"."""
    for _ in range(5):
        make_job(store, actor="player_report", status="failed",
                 error={"type": "NotFoundError", "code": "not_found", "message": "no such player", "retryable": False})
    make_job(store, status="failed")  # one of the system's own
    make_job(store, status="succeeded")
    default = next(q for q in local.get("/api/overview").json()["queues"] if q["name"] == "default")
    assert default["failed"] == 6 and default["refused"] == 5 and default["failure_rate"] == pytest.approx(1 / 7)
    page = local.get("/").text
    assert "6 <small>failed</small> <small" in page and "(5 refused)</small>" in page and "14%" in page
    # Prometheus can tell them apart too (a failure-rate rule on failed_total fired on typos).
    metrics = local.get("/metrics").text
    assert 'faceit_bot_jobs_failed_total{actor="player_report"} 5' in metrics
    assert 'faceit_bot_jobs_refused_total{actor="player_report"} 5' in metrics
    assert 'faceit_bot_jobs_refused_total{actor="t_noop"} 0' in metrics
    assert 'outcome="refused"' not in metrics  # not a second outcome: a part of "failed"


def test_a_job_waiting_for_a_retry_has_a_page(local: Client, store: JobStore) -> None:
    """Between attempts the progress is the retry notice (no percent): the page answered 500,
    during a FACEIT outage, for every job waiting to try again and every one cancelled then."""
    waiting = make_job(store, status="started")
    store.set_progress(waiting, {"stage": "retrying", "code": "upstream", "retry_in": 10, "attempt": 2,
                                 "attempts": 4})
    store.finish(waiting, attempt=1, status="retrying", retry_at=time.time() + 10,
                 error={"type": "UpstreamError", "code": "upstream", "message": "upstream 503"})
    page = local.get(f"/jobs/{waiting}")
    assert page.status == 200 and "waiting to try again: attempt 2 of 4 (upstream)" in page.text
    assert store.cancel(waiting)[0] == "canceled"
    assert local.get(f"/jobs/{waiting}").status == 200


def _dashboard_with_workers(store: JobStore, *, interval: float, timeout: float,
                            ages: dict[str, float]) -> DashboardServer:
    """A dashboard with that heartbeat timing, and a live worker per host whose last heartbeat is
    ``ages[host]`` seconds old."""
    from queues.workers import WorkerInfo, WorkerRegistry

    server = DashboardServer(dashboard_settings(queue_maintenance_interval=interval,
                                                queue_heartbeat_timeout=timeout)).start()
    registry = WorkerRegistry(store.client, prefix=store.prefix)
    now = time.time()
    for host, age in ages.items():
        registry.heartbeat(WorkerInfo(f"{host}:1:x", host, 1, ["default"], [], 0, now - 60, now - age))
    return server


def test_a_worker_is_marked_late_only_once_it_missed_a_heartbeat(store: JobStore) -> None:
    """The shipped timing (a heartbeat every 5 s, dead after 15 s): 6 s since the last beat is a
    healthy worker between beats (the fixed 5 s marked it), 11 s is one that missed a beat."""
    server = _dashboard_with_workers(store, interval=5, timeout=15, ages={"between-beats": 6, "missed-a-beat": 11})
    try:
        client = server.client()
        rows = {w["host"]: w for w in client.get("/api/workers").json()["workers"]}
        assert not rows["between-beats"]["heartbeat_late"] and rows["missed-a-beat"]["heartbeat_late"]
        html = client.get("/workers").text
        late = {host: re.search(rf'data-worker="{host}:1:x".*?<span class="([^"]*)"><span class="ago"', html, re.S).group(1)
                for host in rows}
        assert late == {"between-beats": "", "missed-a-beat": "warn-text"}
    finally:
        server.stop()


def test_a_late_heartbeat_shows_before_the_worker_counts_as_gone(store: JobStore) -> None:
    """A heartbeat every 8 s, gone after 15 s: late after twice the interval (16 s) never showed,
    since a worker silent for 15 s is no longer listed. It shows from midway between one interval
    and the timeout (11.5 s), and a worker between beats (7 s) is still not marked."""
    server = _dashboard_with_workers(store, interval=8, timeout=15, ages={"between-beats": 7, "missed-a-beat": 13})
    try:
        rows = {w["host"]: w for w in server.client().get("/api/workers").json()["workers"]}
        assert set(rows) == {"between-beats", "missed-a-beat"}  # both still listed as live
        assert not rows["between-beats"]["heartbeat_late"] and rows["missed-a-beat"]["heartbeat_late"]
    finally:
        server.stop()

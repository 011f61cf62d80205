"""Every admin command against a real Redis (and real workers where jobs must run): its human
output, its ``--json`` output and its exit codes (0 fine, 1 a problem, 2 usage)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from click.testing import CliRunner

from admin import cli
from tests.ops.conftest import wait_until
from tests.support.workers import ROOT


def run(*args: str, input: str | None = None):
    """``admin.py ARGS`` in this process (the imports are paid once)."""
    from tests.ops.conftest import reset_singletons

    reset_singletons()
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def run_json(*args: str, code: int = 0) -> dict:
    result = run(*args, "--json")
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    return json.loads(result.stdout)


def admin_process(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "admin.py", *args], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)


def failed_job(manager) -> str:
    """A job that failed, its message dead-lettered (just after its record said failed)."""
    dead = manager.queue_stats()["default"].dead
    handle = manager.enqueue_job("t_fail_times", failures=9, kind="bug", retry=0)
    assert manager.wait_for(handle.id, timeout=20).status == "failed"
    wait_until(lambda: manager.queue_stats()["default"].dead == dead + 1, timeout=20)
    return handle.id


# --- with the shared worker pool ----------------------------------------------------------------


def test_status_is_ok_with_workers_and_reports_health(live_pool, manager):
    result = run("status")
    assert result.exit_code == 0, result.stdout
    assert "high" in result.stdout and "health score" in result.stdout
    assert f"Queues (redis at {manager.settings.redis_url})" in result.stdout  # which Redis it read
    data = run_json("status")
    assert data["redis"] == manager.settings.redis_url
    assert set(data["queues"]) == {"high", "default", "low"}
    assert all(q["workers"] == 1 for q in data["queues"].values())
    assert data["health"]["health_score"] >= 95 and data["problem"] is False
    assert len(data["workers"]) == 1
    assert data["open_alerts"] == {"count": 0, "summary": "0"}


def test_status_says_a_problem_while_an_error_alert_is_open_as_alerts_does(live_pool, manager):
    """A failure-rate alert that the rules can no longer judge (too few jobs since) stays open but
    leaves the score: status exited 0 where alerts --open exited 1."""
    from queues.runtime import get_alert_store

    store = get_alert_store()
    store.fire("error", "monitor", "queue default: 50% of jobs failed", rule="failure_rate", subject="default")
    result = run("status")
    assert result.exit_code == 1 and "open conditions: 1 (1 error)" in result.stdout, result.stdout
    assert run("alerts", "--open").exit_code == 1
    store.resolve("failure_rate", "default", "resolved")
    assert run("status").exit_code == 0


def test_test_command_passes_on_every_queue_with_latency(live_pool, manager):
    result = run("test", "--timeout", "20")
    assert result.exit_code == 0, result.stdout
    assert result.stdout.count("PASS") == 3
    data = run_json("test", "--timeout", "20")
    assert data["ok"] is True and [r["queue"] for r in data["results"]] == ["high", "default", "low"]
    assert all(r["status"] == "succeeded" and 0 <= r["latency"] < 20 for r in data["results"])


def test_job_shows_the_whole_record_with_traceback_and_attempts(live_pool, manager):
    job_id = failed_job(manager)
    result = run("job", job_id)
    assert result.exit_code == 0
    assert "Traceback" in result.stdout and "ValueError" in result.stdout and "Attempts" in result.stdout
    data = run_json("job", job_id)
    assert data["id"] == job_id and data["status"] == "failed" and data["attempts"] == 1
    assert run_json("job", job_id[:8])["id"] == job_id  # its start, as the dashboard shows it
    assert run_json("job", f"{job_id[:8].upper()}…")["id"] == job_id  # copied from the bot's text: read as the bot reads it
    assert "Traceback" in data["error"]["traceback"] and data["timeline"][0]["outcome"] == "failed"
    missing = run("job", "0adf2eb6-0000")
    assert missing.exit_code == 1 and "no job 0adf2eb6-0000" in missing.stderr
    not_an_id = run("job", "no-such-job")  # said before Redis is asked
    assert not_an_id.exit_code == 1 and "'no-such-job' is not a job id" in not_an_id.stderr


def test_a_done_job_shows_no_stale_progress(live_pool, manager):
    handle = manager.enqueue_job("t_sleep", seconds=0.1, steps=3)  # last report: 67% "sleeping"
    record = manager.wait_for(handle.id, timeout=20)
    assert record.status == "succeeded" and record.progress["percent"] < 100
    shown = run("job", handle.id)
    assert shown.exit_code == 0 and "progress" not in shown.stdout and "sleeping" not in shown.stdout


def test_a_failed_job_shows_no_next_retry(live_pool, manager):
    handle = manager.enqueue_job("t_fail_times", failures=9, kind="transient", retry=1)
    record = manager.wait_for(handle.id, timeout=20)
    assert record.status == "failed" and record.attempts == 2
    assert record.retry_at  # the record keeps when its retry was due...
    shown = run("job", handle.id)
    assert shown.exit_code == 0 and "next retry" not in shown.stdout  # ...but it retries no more


def test_a_long_result_is_shown_cut_and_says_so(live_pool, manager):
    handle = manager.enqueue_job("t_noop", value="x" * 3000)
    assert manager.wait_for(handle.id, timeout=20).status == "succeeded"
    shown = run("job", handle.id)
    assert shown.exit_code == 0 and "more characters: --json shows it whole" in shown.stdout
    assert run_json("job", handle.id)["result"] == {"value": "x" * 3000}


def test_requeue_one_job_a_queue_or_all_and_usage_errors(live_pool, manager):
    first, second = failed_job(manager), failed_job(manager)
    data = run_json("requeue", "--job", first[:8])  # as `job` and the dashboard take it
    assert data == {"requeued": [first], "count": 1, "skipped": 0, "superseded": 0, "more": False}
    # It ran again (and failed again: it fails nine times).
    wait_until(lambda: manager.get_job(first).status == "failed" and manager.get_job(first).attempts == 2,
               timeout=20)
    data = run_json("requeue", "--queue", "default")
    assert set(data["requeued"]) == {first, second}
    wait_until(lambda: {manager.get_job(j).status for j in (first, second)} == {"failed"}, timeout=20)
    data = run_json("requeue")  # no option: every failed job, as the first version's `requeue`
    assert {first, second} <= set(data["requeued"]) and data["more"] is False
    wait_until(lambda: {manager.get_job(j).status for j in (first, second)} == {"failed"}, timeout=20)
    batch = manager.requeue_failed(queue="default", limit=1)  # a bulk requeue looks at `limit` jobs
    assert len(batch) == 1 and batch.more  # "requeued 1000" said nothing of the rest
    wait_until(lambda: {manager.get_job(j).status for j in (first, second)} == {"failed"}, timeout=20)
    assert manager.requeue_failed(queue="default", limit=3).more is False
    assert run("requeue", "--all", "--job", first).exit_code == 2
    for empty in (("--queue", ""), ("--job", " "), ("--queue", "default", "--job", "")):  # "$Q" unset
        refused = run("requeue", *empty)
        assert refused.exit_code == 2 and "is empty" in refused.stderr
    assert run("requeue", "--queue", "nope").exit_code == 2
    unknown = run("requeue", "--job", "deadbeef")
    assert unknown.exit_code == 1 and "no job deadbeef" in unknown.stderr
    not_an_id = run("requeue", "--job", "missing-id")
    assert not_an_id.exit_code == 1 and "'missing-id' is not a job id" in not_an_id.stderr
    ok = manager.enqueue_job("t_noop")
    manager.wait_for(ok.id, timeout=20)
    not_failed = run("requeue", "--job", ok.id)
    assert not_failed.exit_code == 1 and "succeeded" in not_failed.stderr


def test_report_writes_throughput_failures_latency_and_alerts(live_pool, manager, tmp_path):
    for _ in range(3):
        manager.wait_for(manager.enqueue_job("t_noop").id, timeout=20)
    failed_job(manager)
    typo = manager.enqueue_job("t_fail_times", retry=0, failures=1, kind="permanent")  # "no such player"
    assert manager.wait_for(typo.id, timeout=20).status == "failed"
    out = tmp_path / "report.json"
    result = run("report", "--hours", "1", "--output", str(out))
    assert result.exit_code == 0 and "written to" in result.stderr
    report = json.loads(out.read_text())
    assert report["throughput"]["by_queue"]["default"]["succeeded"] == 3
    assert report["throughput"]["by_actor"]["t_noop"]["succeeded"] == 3
    assert report["failures"]["by_actor"] == {"t_fail_times": 2}
    assert report["failures"]["by_error_type"] == {"ValueError": 1, "NotFoundError": 1}
    assert report["failures"]["by_actor_and_type"] == {"t_fail_times": {"ValueError": 1, "NotFoundError": 1}}
    # The user's mistake is counted apart and left out of the rate: 1 failure of 5 finished.
    assert report["failures"]["total"] == 2 and report["failures"]["refused"] == 1
    assert report["failures"]["rate"] == 0.2
    assert report["latency"]["by_queue"]["default"]["run"]["count"] == 5
    assert report["latency"]["by_queue"]["default"]["wait"]["p95"] is not None
    assert report["alerts"]["count"] >= 1  # the final failure of an unexpected error is an alert
    assert "t_noop" in report["latency"]["by_actor_histogram"]
    stdout = run("report", "--hours", "1")
    assert json.loads(stdout.stdout)["window_hours"] == 1


def test_workers_lists_the_live_pool(live_pool, manager):
    result = run("workers")
    assert result.exit_code == 0 and "1 live worker" in result.stdout
    data = run_json("workers")
    assert data["live"] == 1 and data["workers"][0]["queues"] == ["default", "high", "low"]


def test_purge_dead_drops_old_dead_letters(live_pool, manager):
    from queues.monitoring import get_queue_monitor

    failed_job(manager)
    failed_job(manager)
    assert manager.queue_stats()["default"].dead == 2
    get_queue_monitor().tick()  # the monitor's snapshot: two dead letters
    assert run_json("purge-dead", "--older-than", "1h")["total"] == 0  # too recent
    assert run_json("purge-dead", "--dry-run")["total"] == 2
    assert manager.queue_stats()["default"].dead == 2
    asked = run("purge-dead", "--older-than", "0", input="n\n")  # says how many and how old, asks
    assert asked.exit_code == 1 and "Drop 2 dead message(s) older than 0 ms from high, default, low?" in asked.stderr
    assert manager.queue_stats()["default"].dead == 2  # declined: nothing dropped
    data = run_json("purge-dead", "--queue", "default", "--yes")
    assert data["purged"] == {"default": 2}
    assert manager.queue_stats()["default"].dead == 0
    # status's health agrees with its counts read now, not with the monitor's last snapshot
    assert not [c for c in run_json("status")["health"]["components"] if c["rule"] == "dead_letters"]
    assert run("purge-dead", "--older-than", "soon").exit_code == 2


def test_every_commands_help_is_plain_text() -> None:
    """Docstrings mark code for their readers (``--level``, :attr:`…`); --help showed the marks."""
    for name in cli.commands:
        shown = run(name, "--help").output
        assert "``" not in shown and not re.search(r":[a-z]+:`", shown), (name, shown)
    assert "--level judges a resolve notice" in run("alerts", "--help").output
    assert "``" not in run("--help").output

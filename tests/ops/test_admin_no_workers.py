"""Admin commands with no worker running (queues that fill up, probes that time out), and as
real processes: usage errors, bad settings and an unreachable Redis."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from tests.ops.test_admin import admin_process, run, run_json
from tests.support.workers import ROOT

# --- without workers --------------------------------------------------------------------------


def test_alerts_lists_filters_and_exits_1_while_an_error_is_open(fresh):
    from queues.runtime import get_alert_store

    store = get_alert_store()
    store.fire("warning", "monitor", "queue low holds 300 waiting jobs", rule="queue_depth", subject="low")
    store.fire("error", "pipeline", "player_report job failed: UpstreamError", job_id="j-1")
    result = run("alerts", "--hours", "1")
    assert result.exit_code == 0  # nothing at error level is open (the job alert is an event)
    assert "queue low holds 300" in result.stdout and "player_report" in result.stdout
    data = run_json("alerts", "--hours", "1", "--level", "error")
    assert [a["message"] for a in data["alerts"]] == ["player_report job failed: UpstreamError"]
    # The open conditions are named by level: a warning is not counted as if it were an error.
    assert "open conditions: 1 (1 warning)" in run("alerts", "--hours", "1", "--level", "error").stdout
    store.fire("critical", "monitor", "queue high has 5 waiting jobs and no worker", rule="no_workers",
               subject="high")
    data = run_json("alerts", "--open", code=1)
    assert {a["rule"] for a in data["alerts"]} == {"queue_depth", "no_workers"} and data["problem"] is True
    assert "open conditions: 2 (1 warning, 1 critical)" in run("alerts", "--open").stdout
    store.resolve("no_workers", "high")
    assert run("alerts").exit_code == 0
    assert run("alerts", "--level", "loud").exit_code == 2
    assert run("alerts", "--hours", "0").exit_code == 2


def test_the_limit_counts_alerts_at_the_level_asked_for(fresh):
    from queues.alerts import AlertStore
    from queues.runtime import get_redis

    store = AlertStore(get_redis(), sinks=[])
    store.fire("error", "pipeline", "the one error")
    for i in range(300):  # newer, lower-level ones
        store.fire("info", "monitor", f"resolved: notice {i}")
    data = run_json("alerts", "--hours", "1", "--level", "error", "--limit", "10")
    assert [a["message"] for a in data["alerts"]] == ["the one error"]
    assert len(store.recent(1, level="warning", limit=5)) == 1 and len(store.recent(1, limit=5)) == 5


def test_level_lists_the_resolve_notice_of_an_alert_at_that_level(fresh):
    """A resolve notice is written at ``info`` whatever it closes: ``alerts --level warning``
    judged it by that, so the news that a warning was over never showed (the dashboard's filter
    showed it). It counts at the level it resolves now, in the store that every reader asks."""
    from queues.runtime import get_alert_store

    store = get_alert_store()
    store.fire("warning", "monitor", "queue low holds 300 waiting jobs", rule="queue_depth", subject="low")
    store.fire("info", "monitor", "queue low is idle", rule="idle", subject="low")
    store.resolve("queue_depth", "low")
    store.resolve("idle", "low")
    data = run_json("alerts", "--hours", "1", "--level", "warning")
    assert [(a["state"], a["message"]) for a in data["alerts"]] == [
        ("resolved", "resolved: queue low holds 300 waiting jobs"), ("fired", "queue low holds 300 waiting jobs")]
    shown = run("alerts", "--hours", "1", "--level", "warning").stdout.replace("\n", "")
    assert "resolved: queue low holds 300 waiting jobs" in shown and "idle" not in shown
    # Filtered by state as well before the limit: the one resolved warning, not the newer info notice.
    notices = store.recent(1, level="warning", state="resolved", limit=1)
    assert [a.message for a in notices] == ["resolved: queue low holds 300 waiting jobs"]


def test_brackets_in_alert_messages_are_shown_as_written(fresh):
    from queues.alerts import AlertStore
    from queues.runtime import get_redis

    AlertStore(get_redis(), sinks=[]).fire("error", "pipeline", "[/b]oss failed: [type=missing]")
    result = run("alerts", "--hours", "1")
    assert result.exit_code == 0
    assert "[/b]oss failed: [type=missing]" in result.stdout.replace("\n", "")


@pytest.mark.parametrize("command", ["alerts", "report"])
@pytest.mark.parametrize("hours", ["nan", "inf", "1e9", "-1", "abc"])
def test_hours_must_be_a_finite_window_of_at_most_a_year(fresh, command, hours):
    result = run(command, "--hours", hours)
    assert result.exit_code == 2 and "--hours" in result.stderr and "Traceback" not in result.stderr


def test_a_report_window_longer_than_the_metrics_are_kept_is_cut_to_it(fresh):
    from queues.monitoring import get_queue_monitor

    monitor = get_queue_monitor()
    kept_hours = monitor.retention_seconds / 3600
    assert monitor.report(24 * 365)["window_hours"] == kept_hours


def test_a_report_to_a_missing_folder_is_one_line_before_any_work(fresh, tmp_path):
    result = run("report", "--output", str(tmp_path / "no-such-folder" / "r.json"))
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.strip().count("\n") == 0 and "does not exist" in result.stderr


@pytest.mark.parametrize("args", [("alerts", "--level", "loud"), ("nosuch",), ("clear", "medium"), ("job",),
                                  ("report", "--hours", "soon")])
def test_a_usage_error_is_one_line_and_exit_2(args):
    done = admin_process(*args)
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and line.endswith("--help)")


def test_no_command_lists_the_commands():
    done = admin_process()
    assert done.returncode == 0 and "purge-dead" in done.stdout and done.stderr == ""


def test_status_exits_1_when_work_waits_without_workers(manager):
    manager.enqueue_job("probe_high", sent_at=time.time())
    data = run_json("status", code=1)
    assert data["queues"]["high"]["waiting"] == 1 and data["problem"] is True
    assert any(c["rule"] == "no_workers" for c in data["health"]["components"])
    human = run("status")
    assert human.exit_code == 1 and "no live worker" in human.stdout


def test_test_command_fails_without_workers_and_cancels_its_probes(manager):
    data = run_json("test", "--timeout", "0.5", code=1)
    assert data["ok"] is False and all(not r["ok"] for r in data["results"])
    for result in data["results"]:
        assert manager.get_job(result["job_id"]).status == "canceled"  # will not run later
    data = run_json("test", "--timeout", "0.5", "--queues", "high", code=1)
    assert [r["queue"] for r in data["results"]] == ["high"]
    assert run("test", "--queues", "urgent").exit_code == 2


def test_test_command_waits_queue_burst_timeout_by_default(manager, env_override):
    env_override(QUEUE_BURST_TIMEOUT="0.5")
    started = time.monotonic()
    data = run_json("test", code=1)
    assert data["timeout"] == 0.5 and time.monotonic() - started < 20


@pytest.mark.parametrize("timeout", ["nan", "inf", "-1", "0", "soon"])
def test_test_timeout_must_be_a_finite_number_of_seconds(timeout):
    done = admin_process("test", "--timeout", timeout)
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: Invalid value for '--timeout'") and line.endswith("--help)")


def test_a_missing_job_names_the_lifetimes_in_force(fresh, env_override):
    env_override(QUEUE_RESULT_TTL="60", QUEUE_FAILURE_TTL="7200")
    missing = run("job", "0adf2eb6-1c2d")
    assert missing.exit_code == 1
    assert missing.stderr.strip() == ("error: no job 0adf2eb6-1c2d (records of finished jobs expire: "
                                      "results after 1 min, failures after 2 h)")


def test_status_sends_no_alerts_so_it_does_not_warn_about_them():
    done = admin_process("status", ADMIN_USER_IDS="7001", TELEGRAM_BOT_TOKEN="",
                         TELEGRAM_API_URL="https://api.telegram.org")
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr
    assert "Telegram alerts are off" not in done.stderr


def test_a_monitor_that_sends_alerts_still_warns_they_are_off(fresh, env_override, caplog):
    from queues.monitoring import QueueMonitor

    env_override(ADMIN_USER_IDS="7001", TELEGRAM_BOT_TOKEN="", TELEGRAM_API_URL="https://api.telegram.org")
    monitor = QueueMonitor()
    monitor.tick()
    assert monitor.telegram is None
    assert "TELEGRAM_BOT_TOKEN is empty; Telegram alerts are off" in caplog.text


def test_clear_asks_first_and_marks_dropped_jobs_canceled(manager):
    ids = [manager.enqueue_job("probe_low", sent_at=time.time()).id for _ in range(3)]
    kept = manager.enqueue_job("probe_high", sent_at=time.time()).id
    declined = run("clear", "low", input="n\n")
    assert declined.exit_code == 1 and "nothing cleared" in declined.stderr
    assert manager.queue_stats()["low"].waiting == 3
    result = run("clear", "low", input="y\n")
    assert result.exit_code == 0 and "low: dropped 3 job(s)" in result.stdout
    assert manager.queue_stats()["low"].waiting == 0 and manager.queue_stats()["high"].waiting == 1
    assert {manager.get_job(i).status for i in ids} == {"canceled"}
    assert manager.get_job(kept).status == "queued"
    data = run_json("clear", "all", "--yes")
    assert data["cleared"]["high"] == 1 and data["records_canceled"] == 1
    assert run("clear", "medium", "--yes").exit_code == 2


def test_clear_with_no_queue_named_asks_about_all_and_needs_an_answer(manager):
    """The first version's ``clear`` took no queue to mean every queue (ours refused: "Missing
    argument"); with nobody to answer its question (a script, stdin closed) it says --yes."""
    ids = [manager.enqueue_job(actor, sent_at=time.time()).id for actor in ("probe_high", "probe_low")]
    declined = run("clear", input="n\n")
    assert declined.exit_code == 1 and "from high, default, low?" in declined.stderr
    unanswered = run("clear", input="")
    assert unanswered.exit_code == 1 and "nothing cleared: no answer (--yes clears without asking)" in unanswered.stderr
    assert {manager.get_job(i).status for i in ids} == {"queued"}
    result = run("clear", input="y\n")
    assert result.exit_code == 0 and "high: dropped 1 job(s)" in result.stdout and "low: dropped 1 job(s)" in result.stdout
    assert {manager.get_job(i).status for i in ids} == {"canceled"}


def test_workers_exits_1_when_none_is_live(fresh):
    result = run("workers")
    assert result.exit_code == 1 and "no live worker" in result.stdout
    assert run_json("workers", code=1) == {"live": 0, "workers": []}


# --- real processes: the entry point, usage errors, Redis down ----------------------------------


def test_the_entry_point_exit_codes_and_redis_unreachable(redis_server, fresh):
    done = admin_process("alerts", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["count"] == 0
    assert admin_process("no-such-command").returncode == 2
    assert admin_process("status", "--bogus").returncode == 2
    redis_server.stop()
    try:
        for args in (("status",), ("alerts",), ("workers", "--json"), ("job", "0adf2eb6"), ("report",)):
            done = admin_process(*args)
            assert done.returncode == 1, (args, done.stderr)
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: Redis at redis://127.0.0.1:") \
                and "unreachable" in lines[0], (args, done.stderr)
    finally:
        redis_server.start()


@pytest.mark.parametrize("value", ["abc", "-1"])
def test_a_bad_setting_is_a_usage_error(fresh, value):
    done = admin_process("status", ALERT_DEPTH_HIGH=value)
    assert done.returncode == 2 and done.stderr.startswith("error: settings: ALERT_DEPTH_HIGH")


# --- RabbitMQ unreachable -----------------------------------------------------------------------

MONITOR_TICK = """
import json
from queues.monitoring import QueueMonitor
monitor = QueueMonitor(telegram=None)
snap = monitor.tick()
print(json.dumps({"health": snap["health"], "depths": [q["depth"] for q in snap["queues"].values()],
                  "open": [a.to_dict() for a in monitor.open_alerts()]}))
"""


def test_an_unreachable_rabbitmq_is_reported_as_such_never_as_empty_queues(redis_server, fresh):
    """No RabbitMQ server needed: the broker's URL points at a port nobody listens on."""
    from tests.support.redis_server import free_port

    port = free_port()
    env = {"BROKER": "rabbitmq", "RABBITMQ_URL": f"amqp://u:s3cretpw@127.0.0.1:{port}/"}
    for args in (("status",), ("status", "--json")):
        done = admin_process(*args, **env)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert done.stderr.strip() == f"error: RabbitMQ at amqp://u:***@127.0.0.1:{port}/ is unreachable " \
                                      "(AMQPConnectionError)", done.stderr
        assert "waiting" not in done.stdout and "s3cretpw" not in done.stdout + done.stderr
    # The monitor (the scheduler's tick): depths unknown, the broker is the finding and an open alert
    tick = subprocess.run([sys.executable, "-c", MONITOR_TICK], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)
    assert tick.returncode == 0, tick.stderr
    assert "s3cretpw" not in tick.stdout + tick.stderr
    result = json.loads(tick.stdout.strip().splitlines()[-1])
    assert result["depths"] == [None, None, None]
    broker = next(c for c in result["health"]["components"] if c["rule"] == "broker_unreachable")
    assert broker["level"] == "critical" and broker["score_lost"] == 50 and broker["name"] == "broker"
    assert broker["reason"].startswith(f"the broker is unreachable: RabbitMQ at amqp://u:***@127.0.0.1:{port}/")
    assert result["health"]["health_score"] <= 50
    assert [a["rule"] for a in result["open"]] == ["broker_unreachable"]


# --- an alert a worker fired ----------------------------------------------------------------------


def test_a_workers_telegram_not_configured_alert_resolves_once_it_delivers_again(manager, start_pool,
                                                                                telegram_sandbox):
    """The workers ran without a token (an error alert says so), then were restarted with it: the
    first delivery that reaches Telegram resolves the alert, and ``alerts --open`` is clean again."""
    from sandbox.telegram_api import SANDBOX_BOT_TOKEN
    from tests.ops.conftest import wait_until

    unconfigured = start_pool(["default", "high"], env={"TELEGRAM_API_URL": "https://api.telegram.org",
                                                        "TELEGRAM_BOT_TOKEN": ""})
    handle = manager.enqueue_job("t_noop", requester={"user_id": 45, "chat_id": 45})
    wait_until(lambda: [r for r in manager.jobs.list_jobs(actor="deliver_result")[0]
                        if r.args == [handle.id] and r.status in ("retrying", "failed")], timeout=20)
    opened = run_json("alerts", "--open", code=1)
    assert [a["rule"] for a in opened["alerts"]] == ["telegram_not_configured"]
    unconfigured.stop(graceful=False)

    start_pool(["default", "high"], env={"TELEGRAM_API_URL": telegram_sandbox.base_url,
                                         "TELEGRAM_BOT_TOKEN": SANDBOX_BOT_TOKEN})
    for user in (46, 47):  # two deliveries, one resolve notice
        handle = manager.enqueue_job("t_noop", requester={"user_id": user, "chat_id": user})

        def delivered(h=handle):
            return [r for r in manager.jobs.list_jobs(actor="deliver_result")[0] if r.args == [h.id] and r.is_final]

        # 60 s: once, under the whole suite on two cores, 20 s were not enough (not seen alone).
        try:
            (delivery,) = wait_until(delivered, timeout=60)
        except AssertionError:  # say where it stood: the job, and its delivery's attempts
            job = manager.jobs.get(handle.id)
            deliveries = [(r.status, r.timeline) for r in manager.jobs.list_jobs(actor="deliver_result")[0]
                          if r.args == [handle.id]]
            raise AssertionError(f"no delivery of {handle.id} within 60 s: job {job and (job.status, job.timeline)}, "
                                 f"deliveries {deliveries}") from None
        assert delivery.result["sent"] == 1
    assert run_json("alerts", "--open")["alerts"] == []
    assert run("alerts", "--open").exit_code == 0
    resolved = [a for a in run_json("alerts", "--hours", "1")["alerts"] if a["state"] == "resolved"]
    assert [(a["rule"], a["message"]) for a in resolved] == [
        ("telegram_not_configured", f"resolved: results are delivered from {socket.gethostname()} again")]


def test_an_open_alert_nothing_resolves_does_not_outlive_the_alert_logs_retention(fresh):
    from queues.alerts import AlertStore
    from queues.runtime import get_redis
    from settings import get_settings

    store = AlertStore.from_settings(get_redis(), get_settings(), sinks=[])
    store.retention_seconds = 2
    store.fire("error", "delivery", "results are not delivered from old-host", rule="telegram_not_configured",
               subject="old-host")
    assert 0 < get_redis().ttl(store.open_key) <= 62  # the open set expires with the log
    assert [a.subject for a in store.open_alerts()] == ["old-host"]
    time.sleep(2.1)
    store.fire("warning", "monitor", "queue low holds 300 waiting jobs", rule="queue_depth", subject="low")
    assert [a.subject for a in store.open_alerts()] == ["low"]  # the old one is gone, from Redis too
    assert get_redis().hkeys(store.open_key) == ["queue_depth|low"]

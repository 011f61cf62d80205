"""Sentry: envelopes reach a local ingest endpoint (a DSN on 127.0.0.1) from a plain process and
from real workers, with the alert's level, and with no token, key or chat text in them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from queues.sentry import scrub
from tests.support.sentry_server import SentryServer
from tests.support.workers import ROOT

FACEIT_KEY = "fk-3b1e9d2c-4f5a-4e6b-9c7d-secretkey"
BOT_TOKEN = "1234567890:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
CHAT_TEXT = "my secret plans for tonight's match"


def secret_env(sentry: SentryServer) -> dict[str, str]:
    return {"SENTRY_DSN": sentry.dsn, "FACEIT_API_KEY": FACEIT_KEY, "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
            "SENTRY_ENVIRONMENT": "test"}


def assert_no_secrets(text: str) -> None:
    where = text.find(CHAT_TEXT)
    assert where < 0, text[max(0, where - 400):where + 60]
    assert FACEIT_KEY not in text
    assert BOT_TOKEN not in text and BOT_TOKEN.split(":")[1] not in text
    assert CHAT_TEXT not in text and "private chat" not in text


def run_probe(module: str, sentry: SentryServer, **env: str) -> str:
    """Run ``module`` as its own process (Sentry's init is process-wide) with the secret env (and
    ``env``); returns what it printed."""
    done = subprocess.run([sys.executable, "-m", module], cwd=ROOT, env={**os.environ, **secret_env(sentry), **env},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def message_of(event: dict) -> str:
    entry = event.get("logentry") or {}
    return entry.get("formatted") or entry.get("message") or event.get("message") or ""


def test_alerts_arrive_with_their_level_and_without_secrets(redis_url):
    with SentryServer() as sentry:
        run_probe("tests.ops.sentry_probe", sentry)
        events = sentry.wait_for_events(lambda evs: len(evs) >= 4)
        raw = sentry.raw_text()
    by_rule = {e.get("tags", {}).get("alert_rule", "exception") + ":" + e.get("tags", {}).get("alert_state", "-"): e
               for e in events}
    critical = by_rule["faceit_auth:fired"]
    assert critical["level"] == "fatal" and critical["environment"] == "test"
    assert "FACEIT refused the API key [scrubbed]" in message_of(critical)
    assert critical["tags"]["role"] == "probe" and critical["tags"]["alert_level"] == "critical"
    assert critical["fingerprint"] == ["alert", "faceit_auth", "-", "fired"]
    assert critical["contexts"]["alert"]["api_key"] == "[scrubbed]"
    assert by_rule["queue_depth:fired"]["level"] == "warning"
    assert by_rule["queue_depth:resolved"]["level"] == "info"
    [exc_event] = [e for e in events if e.get("exception")]
    assert "bot[scrubbed]/sendMessage" in exc_event["exception"]["values"][0]["value"]
    assert_no_secrets(raw)


def test_the_bot_process_reports_as_the_bot_even_after_loading_the_actors(redis_url):
    with SentryServer() as sentry:
        run_probe("tests.ops.sentry_role_probe", sentry)
        [event] = sentry.wait_for_events(lambda evs: len(evs) >= 1)
    assert message_of(event) == "role probe"
    assert event["tags"]["role"] == "bot" and event["server_name"] == "bot"


def test_a_failing_job_on_a_real_worker_reports_the_error_and_the_alert_scrubbed(manager, start_pool):
    import tests.ops.ops_actors  # noqa: F401  (declares the actor for enqueueing)

    with SentryServer() as sentry:
        start_pool(["default"], env=secret_env(sentry), modules=("tests.support.job_actors", "tests.ops.ops_actors"))
        handle = manager.enqueue_job("ops_leaky_failure", text=CHAT_TEXT, api_key=FACEIT_KEY)
        record = manager.wait_for(handle.id, timeout=20)
        assert record.status == "failed"
        events = sentry.wait_for_events(
            lambda evs: any(e.get("exception") for e in evs) and any(e.get("tags", {}).get("job_id") for e in evs))
        raw = sentry.raw_text()
    [crash] = [e for e in events if e.get("exception")]
    assert crash["exception"]["values"][-1]["type"] == "RuntimeError"
    assert "key=[scrubbed] token=[scrubbed]" in crash["exception"]["values"][-1]["value"]
    kwargs = crash["contexts"]["dramatiq"]["data"]["kwargs"]
    assert kwargs["text"] == "[scrubbed]" and kwargs["api_key"] == "[scrubbed]"
    frames = crash["exception"]["values"][-1]["stacktrace"]["frames"]
    assert not any(f.get("vars") for f in frames)  # no local variables shipped
    [alert] = [e for e in events if e.get("tags", {}).get("job_id") == handle.id and not e.get("exception")]
    assert alert["level"] == "error" and alert["tags"]["role"] == "worker"
    assert_no_secrets(raw)


def test_a_queued_message_carries_the_trace_but_not_the_dsns_key(redis_url, redis_client):
    """Sentry's Dramatiq integration wrote the DSN's public key (``sentry-public_key=…`` in its
    baggage) into every message, kept in the broker (dead letters for days)."""
    with SentryServer() as sentry:
        printed = run_probe("tests.ops.sentry_enqueue_probe", sentry, REDIS_URL=redis_url)
        key = sentry.key
    job_id = printed.split()[-1]
    [(_, raw)] = [(name, value) for name, value in redis_client.hgetall("dramatiq:default.msgs").items()
                  if job_id in str(value)]
    headers = json.loads(raw)["options"]["_sentry_headers"]
    assert headers["sentry-trace"] and "sentry-trace_id=" in headers["baggage"]  # the trace goes on
    assert key not in str(raw) and "sentry-public_key" not in str(raw)


def test_a_worker_reads_its_own_dsn_key_back_into_the_trace_headers(redis_url):
    """The key is taken out of what is queued; Sentry's trace context names it: a worker puts its
    own back before Sentry's middleware continues the trace."""
    with SentryServer() as sentry:
        printed = run_probe("tests.ops.sentry_restore_probe", sentry, REDIS_URL=redis_url)
        key = sentry.key
    seen = json.loads(printed.splitlines()[-1])
    assert seen["order"].index("SentryHeadersRestore") < seen["order"].index("SentryMiddleware")
    assert seen["order"].index("SentryMiddleware") < seen["order"].index("SentryHeadersScrub")
    assert seen["baggage"].endswith(f",sentry-public_key={key}") and "sentry-trace_id=" in seen["baggage"]


def test_scrub_replaces_secret_values_token_shapes_and_sensitive_keys():
    event = {"message": "key sk-123456 leaked", "extra": {"Authorization": "Bearer abc", "note": "ok",
                                                          "caption": "a photo caption"},
             "breadcrumbs": [{"message": f"GET /bot{BOT_TOKEN}/getMe"}]}
    out = scrub(event, ["sk-123456"])
    assert out["message"] == "key [scrubbed] leaked"
    assert out["extra"] == {"Authorization": "[scrubbed]", "note": "ok", "caption": "[scrubbed]"}
    assert out["breadcrumbs"][0]["message"] == "GET /bot[scrubbed]/getMe"

"""Admin alerts on Telegram, through aiogram against the sandbox Bot API: batching (a storm is
one message per window), relaying other processes' alerts, secrets scrubbed, Telegram down."""

from __future__ import annotations

import time

from queues.alerts import Alert, AlertStore, LogSink
from queues.telegram_alerts import TelegramAlertSink, format_batch

ADMINS = [7001, 7002]
TOKEN = "987654321:AAE-secret-admin-bot-token-value-xyz"
FACEIT_KEY = "faceit-key-5f2b7c1e-secret"


def sent_to(sandbox, chat_id: int) -> list[dict]:
    return [m for m in sandbox.messages(chat_id) if m["kind"] == "sent"]


def make_sink(client, sandbox_url: str, batch_seconds: float = 60.0) -> TelegramAlertSink:
    return TelegramAlertSink(client, admin_ids=ADMINS, api_url=sandbox_url, token=TOKEN,
                             batch_seconds=batch_seconds, secrets=[TOKEN, FACEIT_KEY])


def test_a_storm_of_alerts_is_one_message_per_window_to_each_admin(fresh, redis_client, telegram_sandbox):
    from queues.runtime import get_redis

    sink = make_sink(get_redis(), telegram_sandbox.base_url, batch_seconds=1.0)
    store = AlertStore(get_redis(), sinks=[LogSink(), sink])
    for i in range(100):
        store.fire("error", "pipeline", f"job {i} failed: FACEIT refused key {FACEIT_KEY}", job_id=f"j{i}")
    # The first alert went out at once; the other 99 wait for the window.
    for admin in ADMINS:
        [first] = sent_to(telegram_sandbox, admin)
        assert "1 alert (1 error)" in first["text"] and "job 0 failed" in first["text"]
    assert sink.flush() == 0  # the window is still closed
    time.sleep(redis_client.pttl(sink.window_key) / 1000 + 0.02)
    assert sink.flush() == 99
    for admin in ADMINS:
        messages = sent_to(telegram_sandbox, admin)
        assert len(messages) == 2
        batch = messages[1]["text"]
        assert batch.startswith("FACEIT bot: 99 alerts (99 error)")
        assert len(batch) <= 4096 and "job 1 failed" in batch
        for message in messages:
            assert FACEIT_KEY not in message["text"] and TOKEN not in message["text"]
            assert "[scrubbed]" in message["text"]
    assert redis_client.llen(sink.pending_key) == 0


def test_an_alert_is_sent_once_even_when_several_processes_hand_it_over(fresh, telegram_sandbox):
    from queues.runtime import get_redis

    sink = make_sink(get_redis(), telegram_sandbox.base_url, batch_seconds=0.01)
    alert = Alert("critical", "faceit", "FACEIT refused the API key", job_id="abc")
    sink.send(alert)
    other_process_sink = make_sink(get_redis(), telegram_sandbox.base_url, batch_seconds=0.01)
    time.sleep(0.02)
    other_process_sink.send(alert)
    assert len(sent_to(telegram_sandbox, ADMINS[0])) == 1


def test_the_monitor_relays_alerts_written_by_other_processes(fresh, telegram_sandbox, make_monitor):
    from queues.runtime import get_redis
    from settings import get_settings

    sink = make_sink(get_redis(), telegram_sandbox.base_url, batch_seconds=0.01)
    monitor = make_monitor(telegram=sink)
    old_store = AlertStore.from_settings(get_redis(), get_settings(), sinks=[LogSink()])
    old_store.emit(Alert("error", "pipeline", "ancient failure", time=time.time() - 3600))
    monitor.tick()  # the first relay looks back two minutes, no further
    assert not sent_to(telegram_sandbox, ADMINS[1])
    worker_store = AlertStore.from_settings(get_redis(), get_settings(), sinks=[LogSink()])
    worker_store.fire("error", "pipeline", "match_analysis job failed: UpstreamError: 503", job_id="job-1")
    time.sleep(0.02)
    monitor.tick()
    texts = [m["text"] for m in sent_to(telegram_sandbox, ADMINS[1])]
    assert any("match_analysis job failed" in t and "job-1" in t for t in texts)
    monitor.tick()
    assert len([t for t in sent_to(telegram_sandbox, ADMINS[1]) if "match_analysis" in t["text"]]) == 1


def test_when_telegram_is_down_the_batch_is_kept_for_the_next_window(fresh, redis_client, telegram_sandbox):
    from queues.runtime import get_redis
    from tests.support.redis_server import free_port

    down = make_sink(get_redis(), f"http://127.0.0.1:{free_port()}", batch_seconds=0.01)
    down.send(Alert("warning", "monitor", "queue high holds 60 waiting jobs", rule="queue_depth", subject="high"))
    assert down.send_failures >= 1
    assert redis_client.llen(down.pending_key) == 1  # not lost
    up = make_sink(get_redis(), telegram_sandbox.base_url, batch_seconds=0.01)
    time.sleep(0.02)
    assert up.flush() == 1
    assert "queue high holds 60 waiting jobs" in sent_to(telegram_sandbox, ADMINS[0])[0]["text"]


def test_from_settings_needs_admins_and_never_shows_the_token(fresh, env_override, telegram_sandbox):
    from settings import get_settings

    assert TelegramAlertSink.from_settings(get_settings()) is None  # no ADMIN_USER_IDS
    env_override(ADMIN_USER_IDS="7001,7002", TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_URL=telegram_sandbox.base_url)
    sink = TelegramAlertSink.from_settings(get_settings())
    assert sink is not None and sink.admin_ids == ADMINS
    assert TOKEN not in repr(sink)
    sink.send(Alert("info", "monitor", "hello admins"))
    assert "hello admins" in sent_to(telegram_sandbox, 7002)[0]["text"]


def test_format_batch_orders_by_level_and_counts_resolves():
    alerts = [Alert("warning", "monitor", "w1"), Alert("critical", "redis", "c1"),
              Alert("info", "monitor", "resolved: x", state="resolved", rule="queue_depth", subject="high")]
    text = format_batch(alerts, [])
    lines = text.splitlines()
    assert lines[0] == "FACEIT bot: 3 alerts (1 critical, 1 warning, 1 resolved)"
    assert "c1" in lines[1] and "w1" in lines[2] and lines[3].startswith("✅")
    assert "[queue_depth/high]" in lines[3]

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
        assert batch.startswith("FACEIT bot: 99 alerts (99 errors)")
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


def test_a_condition_resolved_by_several_processes_at_once_is_resolved_once(fresh):
    """Every worker process of a host resolves its delivery alert after its first delivery, and
    after a restart they deliver at about the same moment: one resolve notice, not one each."""
    import threading

    from queues.runtime import get_redis

    stores = [AlertStore(get_redis(), sinks=[]) for _ in range(8)]
    stores[0].fire("error", "delivery", "results are not delivered from vm", rule="telegram_not_configured",
                   subject="vm")
    start = threading.Barrier(len(stores))
    outcomes: list[bool] = []

    def resolve(store: AlertStore) -> None:
        start.wait()
        outcomes.append(store.resolve("telegram_not_configured", "vm"))

    threads = [threading.Thread(target=resolve, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count(True) == 1
    assert [a.state for a in stores[0].recent(1)].count("resolved") == 1


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
    assert lines[0] == "FACEIT bot: 3 alerts (1 critical, 1 warning, 1 resolved), times UTC"
    assert "CRITICAL redis: c1" in lines[1] and "WARNING monitor: w1" in lines[2]
    assert lines[3].startswith("✅") and lines[3].endswith("INFO monitor: resolved: x")


def test_each_admin_reads_the_batch_in_their_language(fresh, redis_client, telegram_sandbox):
    """The bot keeps a language per user (``/lang``, or the one an admin command last answered
    in): the monitor's alerts are told again in it, a job's failure is shown as written."""
    from queues.runtime import get_redis

    redis_client.hset("fb:bot:lang", str(ADMINS[0]), "ru")
    sink = make_sink(get_redis(), telegram_sandbox.base_url, batch_seconds=60)
    failing = {"failure_rate": 0.5, "window_seconds": 300, "failed": 5, "finished": 10, "limit": 0.2}
    opened = Alert("error", "monitor", "queue default: 50% of jobs failed in the last 5.0 min (5 of 10; limit 20%)",
                   rule="failure_rate", subject="default", details=failing)
    sink.send(opened)  # the first goes at once; the next two wait for the window
    sink.send(Alert("error", "pipeline", "match_analysis job failed: UpstreamError: 503", job_id="j1"))
    sink.send(opened.resolved())
    assert sink.flush(force=True) == 2
    russian, english = (sent_to(telegram_sandbox, admin) for admin in ADMINS)
    assert russian[0]["text"].startswith("FACEIT bot: 1 оповещение (ошибка: 1), время UTC")
    assert "ОШИБКА monitor: очередь default: за последние 5,0 мин с ошибкой завершилось 50%" in russian[0]["text"]
    assert russian[1]["text"].startswith("FACEIT bot: 2 оповещения (ошибка: 1, решено: 1), время UTC")
    assert "match_analysis job failed: UpstreamError: 503 (задача j1)" in russian[1]["text"]
    assert "ИНФО monitor: решено: очередь default: за последние 5,0 мин" in russian[1]["text"]
    assert english[0]["text"].startswith("FACEIT bot: 1 alert (1 error), times UTC")
    assert "ERROR monitor: queue default: 50% of jobs failed in the last 5.0 min" in english[0]["text"]
    assert english[1]["text"].startswith("FACEIT bot: 2 alerts (1 error, 1 resolved), times UTC")
    assert "INFO monitor: resolved: queue default: 50% of jobs failed" in english[1]["text"]


def test_each_admin_reads_the_times_in_the_zone_they_chose(fresh, redis_client, telegram_sandbox):
    """As ``/alerts`` shows them: in the zone an admin chose with ``/tz``; UTC for one who did not."""
    from datetime import UTC, datetime

    from queues.runtime import get_redis

    redis_client.hset("fb:bot:tz", str(ADMINS[0]), "Asia/Kolkata")
    sink = make_sink(get_redis(), telegram_sandbox.base_url, batch_seconds=60)
    fired_at = datetime(2026, 12, 6, 22, 30, 15, tzinfo=UTC).timestamp()
    sink.send(Alert("error", "pipeline", "match_analysis job failed: UpstreamError: 503", job_id="j2", time=fired_at))
    (kolkata,), (utc,) = (sent_to(telegram_sandbox, admin) for admin in ADMINS)
    assert kolkata["text"].startswith("FACEIT bot: 1 alert (1 error), times in Asia/Kolkata (UTC+05:30)")
    assert "04:00:15 ERROR pipeline: match_analysis job failed" in kolkata["text"]
    assert utc["text"].startswith("FACEIT bot: 1 alert (1 error), times UTC")
    assert "22:30:15 ERROR pipeline" in utc["text"]

"""The admin commands' texts in the admin's language: alerts the monitor raised are told again
from their rule and details; anything else is shown as it was written."""

from __future__ import annotations

from bot.routers.admin import health_reasons
from queues.alert_rules import Thresholds, evaluate, health
from queues.alerts import Alert
from queues.health_texts import tell_alert


def _failing_queue_snapshot() -> dict:
    queue = {"name": "default", "priority": "default", "depth": 0, "delayed": 0, "workers": 1, "succeeded": 5,
             "failed": 5, "failure_rate": 0.5, "window_seconds": 300}
    return {"redis": {"reachable": True}, "queues": {"default": queue}, "faceit": {"available": False},
            "monitor": {"stale": False}}


def test_a_condition_alert_reads_in_russian_and_other_alerts_as_written():
    (finding,) = evaluate(_failing_queue_snapshot(), Thresholds())
    fired = Alert(level=finding.level, source=finding.source, message=finding.message, rule=finding.rule,
                  subject=finding.subject, details=finding.details)
    assert tell_alert(fired, "en") == finding.message
    assert finding.message == "queue default: 50% of jobs failed in the last 5.0 min (5 of 10; limit 20%)"
    assert tell_alert(fired, "ru").startswith("очередь default: за последние 5,0 мин с ошибкой завершилось 50%")
    resolved = Alert(level="info", source="monitor", message=f"resolved: {finding.message}", rule=finding.rule,
                     subject="default", state="resolved",
                     details={"opened_level": "error", "opened_details": finding.details})
    assert tell_alert(resolved, "ru").startswith("решено: очередь default: за последние 5,0 мин")
    job_failed = Alert(level="error", source="pipeline", message="match_analysis job failed: ValueError: x")
    old = Alert(level="error", source="monitor", message="written by an older monitor", rule="failure_rate",
                subject="default")  # no details: told as written
    old_resolve = Alert(level="info", source="monitor", message="resolved: an older monitor's", rule="failure_rate",
                        subject="default", state="resolved", details={"opened_level": "error"})
    # A crash loop recorded before its details carried the count: told as written, not "None times"
    old_crash = Alert(level="error", source="pipeline", message="match_analysis job killed its worker 3 times; failed",
                      details={"reason": "crash_loop", "actor": "match_analysis"})
    for alert in (job_failed, old, old_resolve, old_crash):
        assert tell_alert(alert, "ru") == alert.message
    once = Alert(level="error", source="pipeline", message="x",
                 details={"reason": "crash_loop", "actor": "match_analysis", "workers_lost": 1})
    assert tell_alert(once, "en") == "match_analysis job killed its worker 1 time; failed"
    assert tell_alert(once, "ru") == "задача match_analysis 1 раз уронила воркер и завершилась ошибкой"


def test_health_reasons_fall_back_to_the_stored_english_without_details():
    summary = health(evaluate(_failing_queue_snapshot(), Thresholds()))
    assert health_reasons(summary, "ru")[0].startswith("очередь default:")
    estimate = {"health_score": 75, "components": [{"name": "queue:high", "score_lost": 25,
                                                    "reason": "high: 2 jobs waiting and no live worker"}]}
    assert health_reasons(estimate, "ru") == ["high: 2 jobs waiting and no live worker"]


def test_alert_times_are_written_as_each_language_reads_dates():
    from datetime import UTC, datetime

    from bot.routers.admin import alert_time

    moment = datetime(2026, 12, 6, 20, 16, tzinfo=UTC).timestamp()
    assert alert_time(moment, "en") == "Dec 6 20:16"
    assert alert_time(moment, "ru") == "06.12 20:16"


def test_alert_times_are_in_the_admins_zone_day_included():
    from datetime import UTC, datetime

    from bot.routers.admin import alert_time
    from bot.timezones import zone_of

    moment = datetime(2026, 12, 6, 22, 30, tzinfo=UTC).timestamp()  # already the 7th in Moscow
    assert alert_time(moment, "en", zone_of("Europe/Moscow")) == "Dec 7 01:30"
    assert alert_time(moment, "ru", zone_of("UTC-05:00")) == "06.12 17:30"
    assert alert_time(moment, "ru", zone_of(None)) == "06.12 22:30"

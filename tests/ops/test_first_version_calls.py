"""The first version's Python call shapes, as its guide wrote them, run unchanged: the import
paths ``queues.config`` and ``queues.jobs``, ``enqueue_job(func=…, retry=…, timeout=…)``, and the
alert API of its "Failure Handling" and "Health Monitoring" examples. Each one raised
(ModuleNotFoundError, TypeError, AttributeError) before. Against the test Redis; no worker runs."""

from __future__ import annotations

import json

import pytest

from queues.priorities import QueuePriority


def test_queue_priority_and_the_analytics_job_import_from_their_old_modules(manager) -> None:
    from queues.config import QueuePriority as OldQueuePriority
    from queues.jobs import generate_analytics_report_job

    assert OldQueuePriority is QueuePriority
    job = manager.enqueue_job(generate_analytics_report_job, priority=OldQueuePriority.LOW, user_id=12345,
                              report_type="weekly", include_comparisons=True)
    record = manager.get_job(job.id)
    assert (record.actor, record.queue, record.status) == ("analytics_report", "low", "queued")
    assert record.kwargs == {"user_id": 12345, "report_type": "weekly", "include_comparisons": True}


def test_enqueue_job_takes_the_actor_as_func_with_its_own_retries_and_time_limit(manager) -> None:
    job = manager.enqueue_job(func="t_noop", retry=5, timeout=600, value=1)
    record = manager.get_job(job.id)
    assert (record.actor, record.max_retries, record.kwargs) == ("t_noop", 5, {"value": 1})
    assert record.options["time_limit"] == 600
    with pytest.raises(TypeError, match="first or as func="):
        manager.enqueue_job("t_noop", func="t_noop")
    with pytest.raises(TypeError, match="first or as func="):
        manager.enqueue_job(value=1)


async def test_an_alert_raised_the_first_versions_way_is_logged_and_read_back_with_its_level(fresh) -> None:
    from queues.monitoring import AlertLevel, QueueMonitor

    monitor = QueueMonitor()
    await monitor.initialize()
    assert await monitor._create_alert(AlertLevel.ERROR, "High failure rate detected: 7 failures")
    [alert] = monitor.get_recent_alerts(hours=24)
    assert f"{alert.level.value}: {alert.message}" == "error: High failure rate detected: 7 failures"
    assert alert.level is AlertLevel.ERROR and alert.level == "error" and alert.source == "monitor"
    # Stored as the plain word, as every reader of the log (dashboard, admin.py, Sentry) takes it.
    [raw] = monitor.alerts.client.zrange(monitor.alerts.log_key, 0, -1)
    assert json.loads(raw)["level"] == "error"
    with pytest.raises(ValueError):
        await monitor._create_alert("loud", "not a level")

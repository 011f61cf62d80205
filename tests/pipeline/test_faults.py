"""Faults: a killed worker, a poison message, Redis going away while a retry is sent."""

from __future__ import annotations

import time

from queues.health_texts import tell_alert
from queues.runtime import get_alert_store
from tests.pipeline.conftest import wait_until


def test_sigkill_mid_job_is_redelivered_and_succeeds(start_pool, manager, traces):
    pool = start_pool(["default"])
    handle = manager.enqueue_job("t_slow", seconds=2, steps=20)
    wait_until(lambda: traces.runs(handle.id) == 1)
    pool.kill_worker()
    pool.stop(graceful=False)
    start_pool(["default"])  # the operator's supervisor restarts the pool
    record = manager.wait_for(handle.id, timeout=40)
    assert record.status == "succeeded"
    assert traces.runs(handle.id) == 2 and traces.runs(handle.id, "done") == 1
    assert [t.get("outcome") for t in record.timeline] == ["worker_lost", "succeeded"]
    assert record.deliveries == 2


def test_dead_worker_recovery_takes_seconds_with_production_heartbeats(start_pool, manager, traces):
    """With the shipped QUEUE_HEARTBEAT_TIMEOUT (15 s) and sweep interval (5 s): well under 60 s."""
    prod = {"QUEUE_HEARTBEAT_TIMEOUT": "15", "QUEUE_MAINTENANCE_INTERVAL": "5"}
    victim = start_pool(["default"], env=prod)
    handle = manager.enqueue_job("t_slow", seconds=1, steps=10)
    wait_until(lambda: traces.runs(handle.id) == 1)
    victim.kill_worker()
    killed_at = time.monotonic()
    victim.stop(graceful=False)
    start_pool(["default"], env=prod)
    record = manager.wait_for(handle.id, timeout=60)
    assert record.status == "succeeded"
    assert time.monotonic() - killed_at < 60


def test_a_poison_message_fails_after_its_deliveries_with_one_alert(start_pool, manager, traces):
    """t_crash kills its worker on every delivery; max_retries=2 → 3 workers lost, then failed."""
    handle = manager.enqueue_job("t_crash")
    bystander = manager.enqueue_job("t_noop", value=7)
    deadline = time.monotonic() + 150
    pools = []
    while manager.get_job_status(handle.id) != "failed" and time.monotonic() < deadline:
        pool = start_pool(["default"], wait=False)  # a supervisor restarting the dead pool
        pools.append(pool)
        # When the child dies before it reports "booted" (t_crash can kill it first), Dramatiq's
        # supervisor waits out --worker-fork-timeout (30 s) before it notices: allow for that.
        wait_until(lambda p=pool: p.process.poll() is not None or manager.get_job_status(handle.id) == "failed",
                   timeout=45)
        if pool.process.poll() is None:
            break  # this pool failed the message: it goes on and takes other work
        pool.stop(graceful=False)
    record = manager.get_job(handle.id)
    assert record.status == "failed" and record.error["code"] == "crash_loop"
    assert traces.runs(handle.id) == 3  # max_retries + 1 deliveries ran the body, no more
    # The alert is written just after the record's final status (after_* hooks run in reverse).
    alerts = wait_until(lambda: [a for a in get_alert_store().recent(1) if a.job_id == handle.id])
    assert len(alerts) == 1 and alerts[0].details["reason"] == "crash_loop"
    assert "killed its worker 3 times" in alerts[0].message
    assert tell_alert(alerts[0], "ru") == "задача t_crash 3 раза уронила воркер и завершилась ошибкой"
    wait_until(lambda: manager.queue_stats()["default"].dead == 1)  # dead-lettered, not dropped
    assert manager.wait_for(bystander.id, timeout=30).status == "succeeded"  # other jobs flow


def test_redis_down_while_the_retry_is_sent_loses_nothing(start_pool, manager, traces, redis_server, tmp_path):
    """The job fails, then Redis stops before its retry is recorded and sent: the worker holds the
    message (unacked) and retries the write and the re-enqueue until Redis is back.

    Redis stays down until the worker has said it cannot write the retry yet: the outage then
    surely hit the retry's path (a fixed outage could end before a slow worker gets there)."""
    pool = start_pool(["default"], env={"QUEUE_RETRY_DELAYS": "0.2"})
    handle = manager.enqueue_job("t_fail_times", failures=1, stop_redis=True)
    wait_until(lambda: redis_server.process.poll() is not None, timeout=20)  # the actor shut Redis down
    redis_server.process = None
    met_the_outage = f"job {handle.id}: cannot write outcome retrying yet"
    wait_until(lambda: met_the_outage in pool.log_path.read_text(errors="replace"), timeout=20,
               what="the worker meeting the outage as it records the retry")
    redis_server.start()  # AOF brings back every key, the job record included
    record = manager.wait_for(handle.id, timeout=40)
    assert record.status == "succeeded"
    assert traces.runs(handle.id) == 2
    # The write the outage held back is the one that went through (logged before the retry ran).
    assert f"job {handle.id}: outcome retrying written after" in pool.log_path.read_text(errors="replace")


def test_delayed_retries_held_by_a_worker_survive_a_redis_restart(start_pool, manager, redis_server, traces,
                                                                    redis_client):
    """Dramatiq drops the delayed messages a consumer holds when its connection breaks; the
    broker puts them back when the consumer reconnects (actors/brokers.py)."""
    pool = start_pool(["default"], env={"QUEUE_RETRY_DELAYS": "4"})
    handles = [manager.enqueue_job("t_fail_times", failures=1) for _ in range(30)]
    wait_until(lambda: all(manager.get_job_status(h.id) == "retrying" for h in handles), timeout=30)
    # The record says "retrying" a moment before the retry is sent: wait until the worker's
    # delay-queue consumer holds all 30 (sent, and fetched off the list into its memory).
    wait_until(lambda: redis_client.hlen("dramatiq:default.DQ.msgs") == 30
               and redis_client.llen("dramatiq:default.DQ") == 0, timeout=10)
    # AOF keeps the records and the delay queue's messages.
    redis_server.stop()
    time.sleep(5)
    redis_server.start()
    for h in handles:
        assert manager.wait_for(h.id, timeout=40).status == "succeeded", h.id
        assert traces.runs(h.id) == 2
    assert "back after a broken connection" in pool.log_path.read_text()

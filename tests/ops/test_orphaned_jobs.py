"""Active job records with no message behind them (a publish lost between the record and its
message) are failed by the monitor as ``orphaned``, freeing their subject; records whose message
still waits, or whose retry is not due yet, are left alone."""

from __future__ import annotations

import time
from typing import Any


def orphan(manager, *, status: str, due: float, subject: str, user_id: int = 7) -> str:
    """A record written without its message (the submit's second round trip never happened),
    set to ``status`` due at ``due`` (retry_at for retrying, enqueued_at for queued)."""
    job = manager.prepare_job("t_noop", coalesce=subject, requester={"user_id": user_id})
    assert manager.jobs.create_from(job.create_args).state == "new"
    make_overdue(manager, job.job_id, status=status, due=due)
    return job.job_id


def make_overdue(manager, job_id: str, *, status: str, due: float) -> None:
    jobs, client = manager.jobs, manager.jobs.client
    # As a real record: indexed by enqueued_at, which is never later than its retry's due time.
    enqueued = min(client.zscore(jobs.index_key("status", "queued"), job_id), due)
    client.zrem(jobs.index_key("status", "queued"), job_id)
    client.zadd(jobs.index_key("status", status), {job_id: enqueued})
    fields = {"status": status, "enqueued_at": repr(enqueued)}
    if status == "retrying":
        fields.update(retry_at=repr(due), attempts="1")
    client.hset(jobs.job_key(job_id), mapping=fields)


def orphan_alerts(monitor) -> list:
    return [a for a in monitor.alerts.recent(1) if (a.details or {}).get("reason") == "orphaned"]


def test_an_overdue_retry_with_no_message_is_failed_and_its_subject_freed(manager, make_monitor):
    job_id = orphan(manager, status="retrying", due=time.time() - 1200, subject="player:lost")
    joined = manager.enqueue_job("t_noop", coalesce="player:lost", requester={"user_id": 8})
    assert joined.id == job_id  # the dead job swallows every request for its subject
    monitor = make_monitor()
    monitor.tick()
    record = manager.get_job(job_id)
    assert record.status == "failed" and record.error["code"] == "orphaned"
    assert record.finished_at is not None
    assert not manager.jobs.client.zscore(manager.jobs.index_key("status", "retrying"), job_id)
    assert manager.jobs.client.zscore(manager.jobs.index_key("status", "failed"), job_id) is not None
    assert manager.jobs.client.get(manager.jobs.coalesce_key("t_noop", "player:lost")) is None
    [alert] = orphan_alerts(monitor)
    assert alert.level == "error" and alert.details["count"] == 1 and "1 orphaned job" in alert.message
    fresh = manager.enqueue_job("t_noop", coalesce="player:lost", requester={"user_id": 8})
    assert fresh.id != job_id and manager.get_job(fresh.id).status == "queued"
    monitor.tick()
    assert len(orphan_alerts(monitor)) == 1  # nothing new: no second alert
    assert manager.get_job(fresh.id).status == "queued"  # its message waits in the queue


def test_a_queued_record_with_no_message_is_failed_on_redis(manager, make_monitor):
    job_id = orphan(manager, status="queued", due=time.time() - 1200, subject="match:lost")
    monitor = make_monitor()
    monitor.tick()
    assert manager.get_job(job_id).error["code"] == "orphaned"
    assert manager.jobs.client.get(manager.jobs.coalesce_key("t_noop", "match:lost")) is None


def test_records_that_are_due_later_or_whose_message_still_waits_are_left_alone(manager, make_monitor):
    not_due = orphan(manager, status="retrying", due=time.time() + 60, subject="a")
    # Waiting behind a long queue: overdue by the clock, but their messages are in the queue.
    waiting_retry = manager.enqueue_job("t_noop", coalesce="b", requester={"user_id": 7}).id
    make_overdue(manager, waiting_retry, status="retrying", due=time.time() - 1200)
    waiting_queued = manager.enqueue_job("t_noop", coalesce="c", requester={"user_id": 7}).id
    make_overdue(manager, waiting_queued, status="queued", due=time.time() - 1200)
    monitor = make_monitor()
    monitor.tick()
    assert manager.get_job(not_due).status == "retrying"
    assert manager.get_job(waiting_retry).status == "retrying"
    assert manager.get_job(waiting_queued).status == "queued"
    assert not orphan_alerts(monitor)
    joined = manager.enqueue_job("t_noop", coalesce="a", requester={"user_id": 9})
    assert joined.id == not_due


class MovesARetryMidRead:
    """The monitor's Redis client, which moves a due retry from the delay queue to the queue, as
    a worker does (written to the queue, then taken off the delay queue), right after the
    monitor's first read of a message hash: the moment a sweep that read the queue first missed
    it in both."""

    def __init__(self, client: Any, move: Any) -> None:
        self._client, self._move = client, move

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def hscan_iter(self, key: str, **kwargs: Any) -> Any:
        yield from self._client.hscan_iter(key, **kwargs)
        if self._move is not None:
            move, self._move = self._move, None
            move()


def test_a_retry_moved_out_of_the_delay_queue_during_the_sweep_is_not_failed(manager, make_monitor):
    from dramatiq.common import dq_name

    from queues.dramatiq_keys import messages_key, queue_key

    handle = manager.enqueue_job("t_noop", coalesce="moving", requester={"user_id": 7})
    make_overdue(manager, handle.id, status="retrying", due=time.time() - 1200)  # workers were away
    client, ns, queue = manager.jobs.client, manager.settings.dramatiq_namespace, manager.get_job(handle.id).queue
    [(message_id, body)] = client.hgetall(messages_key(ns, queue)).items()
    # Its message waits in the delay queue, as a retry's does.
    client.delete(messages_key(ns, queue), queue_key(ns, queue))
    client.hset(messages_key(ns, dq_name(queue)), message_id, body)
    client.rpush(queue_key(ns, dq_name(queue)), message_id)

    def move() -> None:
        client.hset(messages_key(ns, queue), message_id, body)
        client.rpush(queue_key(ns, queue), message_id)
        client.hdel(messages_key(ns, dq_name(queue)), message_id)
        client.lrem(queue_key(ns, dq_name(queue)), 0, message_id)

    monitor = make_monitor()
    monitor.client = MovesARetryMidRead(monitor.client, move)
    monitor.tick()
    assert manager.get_job(handle.id).status == "retrying"
    assert not orphan_alerts(monitor)
    assert client.hexists(messages_key(ns, queue), message_id)  # the move happened during the sweep


def test_a_backlog_older_than_the_grace_does_not_hide_a_newer_orphan(manager, make_monitor):
    """Each sweep reads a few ids per status; it used to read the oldest every time, so a backlog
    of jobs waiting longer than the grace (their messages there) kept a newer orphan from ever
    being looked at."""
    now = time.time()
    backlog = []
    for index in range(3):  # legitimately waiting, for longer than the grace
        job_id = manager.enqueue_job("t_noop", coalesce=f"backlog-{index}", requester={"user_id": 7}).id
        make_overdue(manager, job_id, status="queued", due=now - 3000 + index)
        backlog.append(job_id)
    lost = orphan(manager, status="queued", due=now - 1200, subject="behind-the-backlog")
    monitor = make_monitor(orphan_scan=2, orphan_sweep_interval=0.0)  # a sweep each tick
    for _ in range(3):
        monitor.tick()
    assert manager.get_job(lost).error["code"] == "orphaned"
    assert [manager.get_job(job_id).status for job_id in backlog] == ["queued"] * 3


def test_ids_that_share_a_score_across_two_sweeps_are_each_read(manager, make_monitor):
    """The sweep goes on from the score it stopped at: ids at that very score that did not fit
    in its read are read by the next one, not skipped."""
    due = time.time() - 1200
    lost = [orphan(manager, status="queued", due=due, subject=f"tied-{index}") for index in range(3)]
    monitor = make_monitor(orphan_scan=2, orphan_sweep_interval=0.0)  # a sweep each tick
    monitor.tick()
    assert sum(manager.get_job(job_id).status == "failed" for job_id in lost) == 2
    monitor.tick()
    assert [manager.get_job(job_id).status for job_id in lost] == ["failed"] * 3

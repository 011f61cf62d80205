"""Redis restarts and outages while workers run: nothing lost, nothing run twice, nothing left.

Both tests use the session's ``redis-server`` (AOF on, so a restart keeps every key) and real
``dramatiq`` worker processes with the test actors, which count their runs in Redis.
"""

from __future__ import annotations

import time
from collections import Counter

from tests.faults.conftest import broker_leftovers, lost_message_report, statuses, wait_until


def _summary(values: list) -> dict:
    return dict(Counter(values))


def _run_report(client, job_ids: list[str], runs: list[int], expected: int) -> str:
    """For each job that did not run ``expected`` times: when it ran and what its record says."""
    from queues.runtime import get_job_store

    store = get_job_store()
    odd = [job_id for job_id, n in zip(job_ids, runs, strict=True) if n != expected][:5]
    return "; ".join(f"{job_id}: runs at {client.lrange(f't:times:{job_id}', 0, -1)}, "
                     f"record {client.hgetall(store.job_key(job_id))}" for job_id in odd)


def _assert_all_done(client, traces, noop_ids: list[str], retried_ids: list[str], timeout: float,
                     context: str = "") -> None:
    """Every job succeeded, t_noop ran once, t_fail_times twice, the broker holds nothing.

    ``context`` (e.g. when Redis restarted) is added to a failure's report of odd jobs."""
    every = noop_ids + retried_ids

    def finished() -> bool:
        return all(s == "succeeded" for s in statuses(client, every))

    def where() -> str:
        pending = {j for j, s in zip(every, statuses(client, every), strict=True) if s != "succeeded"}
        return (f"statuses={_summary(statuses(client, every))} "
                f"unfinished jobs' messages are in={ {k: len(v) for k, v in lost_message_report(client, pending).items()} } "
                f"broker={broker_leftovers(client)}")

    wait_until(finished, timeout=timeout, interval=0.2, message=where)
    noop_runs, retried_runs = traces.runs(noop_ids), traces.runs(retried_ids)
    assert all(n == 1 for n in noop_runs), (
        f"no-op runs: {_summary(noop_runs)}; {context} " + _run_report(client, noop_ids, noop_runs, 1))
    assert all(n == 2 for n in retried_runs), (
        f"retried runs: {_summary(retried_runs)}; {context} " + _run_report(client, retried_ids, retried_runs, 2))
    # Acks trail the final record write by at most one round trip.
    wait_until(lambda: not broker_leftovers(client), timeout=10,
               message=lambda: f"left on the broker: {broker_leftovers(client)}")


def test_redis_restart_with_1000_jobs_queued_and_delayed(start_pool, manager, traces, redis_server,
                                                         redis_client):
    """500 retries wait in the delay queue, 500 no-ops are queued: Redis restarts; all 1,000 finish once.

    That every retry still waited when Redis went down is read off the delay queue just before
    the restart (a retry that came due would have left it), not timed: the run up to there takes
    under a second here, and the retries' delay leaves a busy machine ten times that.
    """
    retry_delay = 10.0  # long enough that every retry is still waiting when Redis goes down
    start_pool(["default"], processes=2, threads=8, env={"QUEUE_RETRY_DELAYS": str(retry_delay)})
    retried = [manager.enqueue_job("t_fail_times", failures=1).id for _ in range(500)]
    wait_until(lambda: sum(traces.runs(retried)) == 500, timeout=30, interval=0.1)
    wait_until(lambda: all(s == "retrying" for s in statuses(redis_client, retried)), timeout=10)
    # The record says "retrying" a moment before the retry is sent: wait until all 500 are sent.
    wait_until(lambda: redis_client.hlen("dramatiq:default.DQ.msgs") == 500, timeout=10,
               message=lambda: f"delayed: {redis_client.hlen('dramatiq:default.DQ.msgs')}")
    noops = [manager.enqueue_job("t_noop", value=i).id for i in range(500)]
    before = {"queued": redis_client.llen("dramatiq:default"),
              "delayed": redis_client.hlen("dramatiq:default.DQ.msgs")}
    restart_began = time.time()
    redis_server.restart()  # SHUTDOWN (AOF flushed), then the same port again
    restarted = f"Redis restarted from {restart_began:.3f} to {time.time():.3f};"
    assert before["delayed"] == 500, f"not every retry was waiting in the delay queue at the restart: {before}"
    _assert_all_done(redis_client, traces, noops, retried, timeout=60, context=restarted)


def test_redis_unreachable_for_10_s_loses_no_retry(start_pool, manager, traces, redis_server, redis_client):
    """100 jobs fail once each; Redis is down ~10 s while their retries wait: each runs exactly twice."""
    start_pool(["default"], processes=1, threads=8, env={"QUEUE_RETRY_DELAYS": "2"})
    jobs = [manager.enqueue_job("t_fail_times", failures=1).id for _ in range(100)]
    wait_until(lambda: sum(traces.runs(jobs)) >= 100, timeout=20, interval=0.05)
    redis_server.stop()  # AOF flushed; the workers keep running and their retries come due meanwhile
    time.sleep(10)
    redis_server.start()
    _assert_all_done(redis_client, traces, [], jobs, timeout=40)


def test_redis_down_while_retries_come_due_loses_none(start_pool, manager, traces, redis_server, redis_client):
    """Retries fall due one after another while Redis is down: none is lost, none runs twice.

    Each job's first run fails with a 429 whose ``retry_after`` is spread over 1–5 s, so the
    worker's delay-queue consumer meets due retries during the outage (it must move them back
    to the work queue then, and cannot). Every job must still run exactly twice.
    """
    start_pool(["default"], processes=1, threads=8)
    jobs = [manager.enqueue_job("t_fail_times", failures=1, kind="rate", retry_after=1.0 + i * 0.02).id
            for i in range(200)]
    wait_until(lambda: sum(traces.runs(jobs)) >= 200, timeout=30, interval=0.02)
    wait_until(lambda: sum(traces.runs(jobs)) >= 210, timeout=10, interval=0.02)  # retries are falling due
    redis_server.stop()
    time.sleep(8)
    redis_server.start()
    _assert_all_done(redis_client, traces, [], jobs, timeout=30)


def test_jobs_that_finish_while_redis_is_down_still_record_their_outcome(start_pool, manager, traces,
                                                                          redis_server, redis_client):
    """16 jobs are running when Redis stops; they end during the outage (their bodies need no
    Redis at the end). After Redis returns, every record must say succeeded (a record stuck in
    ``started`` keeps its coalescing key and never delivers its result), each ran once, and
    nothing is left on the broker.

    Redis stays down until the worker has said, for every one of the 16, that it cannot write
    the job's outcome yet: the proof that each body ended during the outage (on a slow machine
    a fixed outage could end before they do, and the test would check nothing)."""
    pool = start_pool(["low"], processes=1, threads=16)
    jobs = [manager.enqueue_job("t_low", seconds=1.5).id for _ in range(16)]
    wait_until(lambda: sum(traces.runs(jobs)) == 16, timeout=20, interval=0.02)  # all 16 running
    redis_server.stop()

    def not_yet_recorded() -> list[str]:
        """The jobs whose end the worker has not yet failed to record."""
        log = pool.log_path.read_text(errors="replace")
        return [job_id for job_id in jobs if f"job {job_id}: cannot write outcome succeeded yet" not in log]

    wait_until(lambda: not not_yet_recorded(), timeout=30, interval=0.1,
               message=lambda: f"bodies not seen ending during the outage: {not_yet_recorded()}")
    redis_server.start()

    def where() -> str:
        return f"statuses={_summary(statuses(redis_client, jobs))} broker={broker_leftovers(redis_client)}"

    wait_until(lambda: all(s == "succeeded" for s in statuses(redis_client, jobs)), timeout=30, interval=0.2,
               message=where)
    assert all(n == 1 for n in traces.runs(jobs)), f"runs: {_summary(traces.runs(jobs))}"
    wait_until(lambda: not broker_leftovers(redis_client), timeout=10,
               message=lambda: f"left on the broker: {broker_leftovers(redis_client)}")

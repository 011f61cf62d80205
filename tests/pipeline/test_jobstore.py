"""The job store's transitions on a real Redis: each one Lua call, stale writers refused."""

from __future__ import annotations

import json
import time

import pytest

from queues.jobstore import AckTarget, JobStore


def _store(redis_client) -> JobStore:
    return JobStore(redis_client, prefix="fb:", result_ttl=60, failure_ttl=600, index_limit=100)


def test_a_stale_attempt_writes_nothing(redis_client):
    store = _store(redis_client)
    store.create("j1", actor="a", queue="default")
    first = store.begin("j1", max_deliveries=4)
    second = store.begin("j1", max_deliveries=4)  # re-delivered: the first worker was lost
    assert (first.attempt, second.attempt) == (1, 2)
    assert store.finish("j1", attempt=1, status="succeeded", result={"x": 1}).status == "stale"
    assert store.get("j1").status == "started"
    assert store.finish("j1", attempt=2, status="succeeded", result={"x": 2}).status == "succeeded"
    record = store.get("j1")
    assert record.result == {"x": 2}
    assert [t.get("outcome") for t in record.timeline] == ["worker_lost", "succeeded"]


def test_deliveries_beyond_the_allowance_are_a_crash_loop(redis_client):
    store = _store(redis_client)
    store.create("j2", actor="a", queue="default")
    verdicts = [store.begin("j2", max_deliveries=3).verdict for _ in range(4)]
    assert verdicts == ["run", "run", "run", "crash_loop"]
    record = store.get("j2")
    assert record.status == "failed" and record.error["code"] == "crash_loop"
    assert store.begin("j2", max_deliveries=3).verdict == "final"
    assert store.reset_for_requeue("j2") == "failed"  # requeued: fresh counters, it runs again
    assert store.begin("j2", max_deliveries=3).verdict == "run"


def test_one_lost_worker_does_not_use_up_the_last_retry(redis_client):
    store = _store(redis_client)
    store.create("j6", actor="a", queue="default")
    store.begin("j6", max_deliveries=4)  # attempt 1: its worker dies
    for _ in range(3):  # the redelivery and two retries fail
        begun = store.begin("j6", max_deliveries=4)
        assert begun.verdict == "run"
        store.finish("j6", attempt=begun.attempt, status="retrying", retry_at=time.time())
    last = store.begin("j6", max_deliveries=4)  # five deliveries, one of them lost: still runs
    assert (last.verdict, last.attempt) == ("run", 5)
    assert store.finish("j6", attempt=5, status="succeeded", result={}).status == "succeeded"
    assert store.get("j6").timeline[0].get("outcome") == "worker_lost"


def test_final_success_without_requesters_acks_the_message(redis_client):
    store = _store(redis_client)
    ack = AckTarget("dramatiq:__acks__.w1.default", "dramatiq:default.msgs", "r1")
    redis_client.sadd(ack.acks_key, "r1")
    redis_client.hset(ack.msgs_key, "r1", "{}")
    store.create("j3", actor="a", queue="default")
    store.begin("j3", max_deliveries=4)
    assert store.finish("j3", attempt=1, status="succeeded", result=None, ack=ack).acked is True
    assert not redis_client.sismember(ack.acks_key, "r1") and not redis_client.hexists(ack.msgs_key, "r1")


def test_a_job_someone_waits_on_keeps_its_message_for_the_normal_ack(redis_client):
    store = _store(redis_client)
    ack = AckTarget("dramatiq:__acks__.w1.default", "dramatiq:default.msgs", "r2")
    redis_client.sadd(ack.acks_key, "r2")
    redis_client.hset(ack.msgs_key, "r2", "{}")
    store.create("j4", actor="a", queue="default", requester={"user_id": 9})
    store.begin("j4", max_deliveries=4)
    finish = store.finish("j4", attempt=1, status="succeeded", result={}, ack=ack)
    assert (finish.acked, finish.requesters) == (False, 1)
    assert redis_client.sismember(ack.acks_key, "r2")  # acked later, after its delivery is enqueued


def test_a_failure_is_never_acked_by_the_record_write(redis_client):
    store = _store(redis_client)
    ack = AckTarget("dramatiq:__acks__.w1.default", "dramatiq:default.msgs", "r3")
    redis_client.sadd(ack.acks_key, "r3")
    store.create("j5", actor="a", queue="default")
    store.begin("j5", max_deliveries=4)
    assert store.finish("j5", attempt=1, status="failed", error={"type": "E"}, ack=ack).acked is False
    assert redis_client.sismember(ack.acks_key, "r3")  # Dramatiq nacks it into the dead letters


def test_cancel_states(redis_client):
    store = _store(redis_client)
    store.create("q", actor="a", queue="default")
    assert store.cancel("q")[0] == "canceled"
    assert store.begin("q", max_deliveries=4).verdict == "final"
    store.create("r", actor="a", queue="default")
    store.begin("r", max_deliveries=4)
    assert store.cancel("r")[0] == "canceling" and store.is_cancel_requested("r")
    assert store.cancel("missing")[0] == "missing"


def test_outcomes_feed_per_minute_counters_samples_and_histograms(redis_client):
    store = _store(redis_client)
    for i, status in enumerate(["succeeded", "failed", "succeeded"]):
        store.create(f"s{i}", actor="act", queue="low")
        store.begin(f"s{i}", max_deliveries=4)
        store.finish(f"s{i}", attempt=1, status=status)
    minutes = list(redis_client.scan_iter("fb:stats:low:*"))
    assert len(minutes) == 1
    assert redis_client.hgetall(minutes[0]) == {"succeeded": "2", "failed": "1"}
    assert redis_client.hget(store.totals_key(), "act|succeeded") == "2"
    assert redis_client.llen(store.samples_key("low")) == 3
    hist = redis_client.hgetall(store.histogram_key("act"))
    assert sum(int(v) for k, v in hist.items() if k != "sum") == 3


def test_a_job_id_typed_short_is_found_among_the_users_jobs_or_all_of_them(redis_client):
    """/status and /cancel take the start of an id: a user's own jobs (their index), an admin's
    among all; an index entry whose record expired is no match, and a glob is refused."""
    store = _store(redis_client)
    mine, theirs = "5e1f0a2b-0000-4000-8000-000000000001", "5e1f0a2b-0000-4000-8000-000000000002"
    store.create(mine, actor="a", queue="default", requester={"user_id": 7101, "chat_id": 7101})
    store.create(theirs, actor="a", queue="default", requester={"user_id": 7102, "chat_id": 7102})
    redis_client.zadd("fb:jobs:user:7101", {"5e1f0a2b-0000-4000-8000-00000000000f": time.time()})  # expired
    assert store.ids_starting_with("5e1f0a2b", 7101) == [mine]
    assert store.ids_starting_with("5e1f0a2b-0000-4000-8000-000000000002", 7101) == []
    assert store.ids_starting_with("5e1f0a2b", None) == [mine, theirs]
    assert store.ids_starting_with("5e1f0a2c", None) == []
    with pytest.raises(ValueError):
        store.ids_starting_with("5e1f0a2*", None)


def test_every_way_a_job_ends_is_counted(redis_client):
    """The failure-rate rule, the dashboard and /metrics read the per-minute counts and totals:
    a crash loop and a cancel before the job ran were never counted there."""
    store = _store(redis_client)
    store.create("jc1", actor="crashy", queue="default")
    while store.begin("jc1", max_deliveries=2).verdict == "run":
        pass  # each worker dies
    store.create("jc2", actor="crashy", queue="default")
    assert store.cancel("jc2")[0] == "canceled"  # still queued
    store.create("jc3", actor="crashy", queue="default")
    store.begin("jc3", max_deliveries=3)
    assert store.cancel("jc3")[0] == "canceling"  # running: it stops, and its re-delivery ends it
    store.begin("jc3", max_deliveries=3)  # (its worker died first: the next delivery finds the cancel)
    store.create("jc4", actor="crashy", queue="default")
    store.begin("jc4", max_deliveries=3)
    store.finish("jc4", attempt=1, status="failed", error={"type": "X", "message": "m"})
    totals = {k.decode() if isinstance(k, bytes) else k: int(v) for k, v in
              redis_client.hgetall(store.totals_key()).items()}
    assert totals == {"crashy|failed": 2, "crashy|canceled": 2}
    minute = int(time.time() // 60)
    counted = {}
    for bucket in (minute - 1, minute):
        for key in (store.stats_key("default", bucket), store.actor_stats_key("crashy", bucket)):
            for outcome, n in redis_client.hgetall(key).items():
                name = f"{key.rsplit(':', 1)[0]}|{outcome.decode() if isinstance(outcome, bytes) else outcome}"
                counted[name] = counted.get(name, 0) + int(n)
    assert counted == {"fb:stats:default|failed": 2, "fb:stats:default|canceled": 2,
                       "fb:stats:actor:crashy|failed": 2, "fb:stats:actor:crashy|canceled": 2}
    assert redis_client.ttl(store.stats_key("default", minute)) > 0


def test_a_job_cancelled_while_queued_is_skipped_even_after_results_expire(redis_client):
    """Its message may wait in a backlog longer than a result is kept: when a worker takes it,
    the record must still say "cancelled", or the job is made anew and run for nobody."""
    store = JobStore(redis_client, prefix="fb:", result_ttl=1, failure_ttl=600, index_limit=100)
    store.create("jq1", actor="a", queue="low")
    assert store.cancel("jq1")[0] == "canceled"
    time.sleep(1.2)  # past the (scaled-down) result lifetime
    begin = store.begin("jq1", max_deliveries=3)
    assert (begin.verdict, begin.status) == ("final", "canceled")


def _finished_long_ago(redis_client, job_ids_and_statuses, lifetime: int) -> None:
    """Jobs enqueued an hour ago, run, and finished with records kept ``lifetime`` seconds."""
    keeping = _store(redis_client)  # a minute and more while they run: a loaded machine cannot lose them
    ending = JobStore(redis_client, prefix="fb:", result_ttl=lifetime, failure_ttl=lifetime, index_limit=100)
    for job_id, status in job_ids_and_statuses:
        keeping.create(job_id, actor="a", queue="default", now=time.time() - 3600)
        begun = keeping.begin(job_id, max_deliveries=4)
        ending.finish(job_id, attempt=begun.attempt, status=status, result={})


def test_counts_and_totals_leave_out_jobs_whose_record_expired(redis_client):
    """Records expire by TTL and nothing tells the indexes: the dashboard's counts read the
    indexes' sizes, and showed "succeeded 3" above an empty list of succeeded jobs, and pages of
    the job list past the live jobs came back empty."""
    store = JobStore(redis_client, prefix="fb:", result_ttl=60, failure_ttl=600, index_limit=100)
    _finished_long_ago(redis_client, [("old-1", "succeeded"), ("old-2", "succeeded"), ("old-3", "succeeded"),
                                      ("old-4", "failed")], lifetime=1)
    deadline = time.monotonic() + 10
    while any(redis_client.exists(store.job_key(f"old-{i}")) for i in range(1, 5)):  # their 1 s lifetime
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert redis_client.zcard(store.index_key("status", "succeeded")) == 3  # the index still holds them
    store.create("waiting", actor="a", queue="default", now=time.time() - 3600)

    counts = store.count_by_status()
    assert (counts["succeeded"], counts["failed"], counts["queued"]) == (0, 0, 1)
    assert store.list_jobs(status="succeeded") == ([], 0)
    page, total = store.list_jobs(queue="default", limit=1)  # the page holds fewer ids than expired
    assert [r.id for r in page] == ["waiting"] and total == 1


def test_jobs_kept_longer_than_the_shortest_lifetime_are_still_counted(redis_client):
    store = _store(redis_client)  # results a minute, failures ten
    _finished_long_ago(redis_client, [("kept-1", "failed"), ("kept-2", "succeeded")], lifetime=600)
    counts = store.count_by_status()  # both are old enough to be looked at, and both are there
    assert (counts["failed"], counts["succeeded"]) == (1, 1)
    assert store.list_jobs(queue="default")[1] == 2


def test_counts_still_answer_when_redis_is_full(redis_client):
    """Counting prunes on the way and keeps a cursor (a write): a Redis at maxmemory under
    noeviction refused the cursor's HSET, so the dashboard's counts failed exactly when Redis
    was full. They answer; the next step looks at the same ids again."""
    store = _store(redis_client)
    _finished_long_ago(redis_client, [(f"live-{i}", "failed") for i in range(4)], lifetime=600)
    key, cutoff = store.index_key("actor", "a"), time.time()
    assert store.prune_step([key], [cutoff], batch=2) == [(4, False, True)]  # the script loaded, the cursor kept
    cursor = redis_client.hget(store.index_key("prune-cursor"), key)
    policy = redis_client.config_get("maxmemory-policy")["maxmemory-policy"]
    redis_client.config_set("maxmemory-policy", "noeviction")
    redis_client.config_set("maxmemory", 1)  # every write that needs memory is refused
    try:
        assert store.prune_step([key], [cutoff], batch=2) == [(4, False, False)]
        assert store.prune_step([key], [cutoff], batch=2) == [(4, False, False)]  # not saved: again from where it was
    finally:
        redis_client.config_set("maxmemory", 0)
        redis_client.config_set("maxmemory-policy", policy)
    assert redis_client.hget(store.index_key("prune-cursor"), key) is not None  # the one kept before
    assert redis_client.hget(store.index_key("prune-cursor"), key) == cursor


def test_pruning_goes_on_past_live_ids_instead_of_reading_them_again(redis_client):
    """A mixed index whose oldest ids are live (a day of failures): each bounded step goes on
    where the last one stopped, so the expired ids behind them are reached."""
    store = _store(redis_client)
    _finished_long_ago(redis_client, [("live-1", "failed"), ("live-2", "failed")], lifetime=600)
    _finished_long_ago(redis_client, [("gone-1", "succeeded"), ("gone-2", "succeeded")], lifetime=1)
    deadline = time.monotonic() + 10
    while redis_client.exists(store.job_key("gone-1"), store.job_key("gone-2")):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    key, cutoff = store.index_key("actor", "a"), time.time()
    assert store.prune_step([key], [cutoff], batch=2) == [(4, False, True)]  # the two live ones, oldest
    assert store.prune_step([key], [cutoff], batch=2) == [(2, False, True)]  # then the two expired
    assert store.prune_step([key], [cutoff], batch=2) == [(2, True, True)]  # the end: the next pass starts over
    assert sorted(redis_client.zrange(key, 0, -1)) == ["live-1", "live-2"]


@pytest.mark.parametrize(("requester", "result", "waits"), [
    (None, {"x": 1}, False),
    ({"user_id": 7, "chat_id": 7}, {"x": 1}, True),
    (None, {"notifications": [{"user_id": 7, "text": "finished"}]}, True),  # a monitoring run's
    (None, {"notifications": []}, False),
])
def test_a_delivery_of_an_ended_job_says_whether_anyone_waits(redis_client, requester, result, waits):
    store = _store(redis_client)
    store.create("ended", actor="a", queue="default", requester=requester)
    begun = store.begin("ended", max_deliveries=4)
    store.finish("ended", attempt=begun.attempt, status="succeeded", result=result)
    again = store.begin("ended", max_deliveries=4)
    assert (again.verdict, again.status, again.someone_waits) == ("final", "succeeded", waits)


@pytest.mark.parametrize("requester", [None, {"user_id": 7, "chat_id": 7}])
def test_a_cancel_and_a_canceled_delivery_say_whether_anyone_waits(redis_client, requester):
    store = _store(redis_client)
    store.create("queued", actor="a", queue="default", requester=requester)
    assert store.cancel("queued") == ("canceled", requester is not None)
    store.create("running", actor="a", queue="default", requester=requester)
    store.begin("running", max_deliveries=4)
    assert store.cancel("running") == ("canceling", False)  # it stops itself, and its delivery tells
    again = store.begin("running", max_deliveries=4)  # it comes back (its worker died): dropped
    assert (again.verdict, again.someone_waits) == ("canceled", requester is not None)


# A call whose reply is lost (a dropped connection, a failover, a Redis stalled past the socket
# timeout) may have run; the caller sends it again, as redis-py's retries and the workers'
# until-answered loop do. Each write below is sent twice with the very same arguments.

def test_a_create_sent_again_is_still_the_new_job_whose_message_is_to_be_sent(redis_client):
    """It answered "joined" to its own record: the message was never sent, and every request
    for the match for a day joined a job that never ran."""
    store = _store(redis_client)
    args = store.create_args("c1", actor="match_analysis", queue="high", coalesce="1-abc",
                             requester={"user_id": 7, "chat_id": 7, "message_id": 70})
    first, again = store.create_from(args), store.create_from(args)
    assert (first.job_id, first.state) == ("c1", "new")
    assert (again.job_id, again.state) == ("c1", "new") and not again.again
    assert [r["user_id"] for r in store.get("c1").requesters] == [7]
    other = store.create("c2", actor="match_analysis", queue="high", coalesce="1-abc",
                         requester={"user_id": 8, "chat_id": 8, "message_id": 80})
    assert (other.job_id, other.state) == ("c1", "queued")  # a request of its own still joins


def test_a_requeue_reset_sent_again_answers_as_the_first(redis_client):
    """It answered "queued", so the requeue skipped the job: queued with no message, and
    refused ("only failed or canceled jobs can be requeued") when tried again."""
    store = _store(redis_client)
    store.create("r1", actor="a", queue="default")
    store.finish("r1", attempt=store.begin("r1", max_deliveries=1).attempt, status="failed",
                 error={"type": "UpstreamError", "code": "upstream", "message": "503"})
    now = time.time()
    assert [store.reset_for_requeue("r1", now), store.reset_for_requeue("r1", now)] == ["failed", "failed"]
    assert store.reset_for_requeue("r1", now + 1) == "queued"  # another requeue: it is queued already
    assert store.get("r1").status == "queued"


def test_a_requeued_jobs_wait_counts_from_its_requeue(redis_client):
    """Canceled while it waited, requeued by an operator five minutes later, started at once: its
    wait sample counted from its first enqueue ("p95 wait is 5.4 min", a wait_time alert and 10
    points of health for jobs that waited milliseconds). A job that had run keeps its first wait."""
    store = _store(redis_client)
    now = time.time()

    def last_wait() -> float:
        return json.loads(redis_client.lindex(store.samples_key("default"), 0))[1]

    store.create("w1", actor="a", queue="default", now=now - 300)
    assert store.cancel("w1")[0] == "canceled"
    assert store.reset_for_requeue("w1", now) == "canceled"
    store.finish("w1", attempt=store.begin("w1", max_deliveries=4).attempt, status="succeeded")
    assert 0 <= last_wait() < 5  # since the requeue, not 300 s
    store.create("w2", actor="a", queue="default", now=now - 300)
    store.finish("w2", attempt=store.begin("w2", max_deliveries=4).attempt, status="failed",
                 error={"type": "UpstreamError", "code": "upstream", "message": "503"})
    redis_client.hset(store.job_key("w2"), "first_started_at", repr(now - 290))  # it waited 10 s then
    assert store.reset_for_requeue("w2", now) == "failed"
    store.finish("w2", attempt=store.begin("w2", max_deliveries=4).attempt, status="succeeded")
    assert round(last_wait()) == 10  # its first wait, as before


def test_a_begin_sent_again_is_not_taken_for_a_lost_worker(redis_client):
    """It found its own open attempt and recorded "worker_lost": four such turned a healthy job
    into a crash loop."""
    store = _store(redis_client)
    store.create("b1", actor="a", queue="default")
    runs = [store.begin("b1", max_deliveries=4, worker="w1", token="tok-1") for _ in range(4)]
    assert [(b.verdict, b.attempt) for b in runs] == [("run", 1)] * 4
    record = store.get("b1")
    assert record.status == "started" and record.attempts == 1 and record.raw.get("lost") == "0"
    assert [t.get("outcome") for t in record.timeline] == [None]
    # A delivery of its own (another token) is still a re-delivery: the first worker was lost.
    assert store.begin("b1", max_deliveries=4, worker="w2", token="tok-2").attempt == 2
    assert [t.get("outcome") for t in store.get("b1").timeline] == ["worker_lost", None]


@pytest.mark.parametrize("status", ["succeeded", "retrying", "failed"])
def test_a_finish_sent_again_answers_with_what_it_wrote_not_stale(redis_client, status):
    """It answered "stale": the result was never delivered, the failure never told, the retry
    never pushed (the record stayed "retrying" for a day, holding the users' slots)."""
    store = _store(redis_client)
    store.create("f1", actor="a", queue="default", requester={"user_id": 5, "chat_id": 5, "message_id": 50})
    attempt = store.begin("f1", max_deliveries=4, token="b").attempt
    error = None if status == "succeeded" else {"type": "UpstreamError", "code": "upstream", "message": "503"}
    outcome = {"attempt": attempt, "status": status, "result": {"ok": 1} if error is None else None,
               "error": error, "retry_at": time.time() + 10 if status == "retrying" else None, "token": "fin-1"}
    first, again = store.finish("f1", **outcome), store.finish("f1", **outcome)
    assert (first.status, first.requesters) == (status, 1)
    assert (again.status, again.requesters) == (status, 1)
    record = store.get("f1")
    assert record.status == status and [t.get("outcome") for t in record.timeline] == [status]
    # Another writer of that attempt (no token, or another) is still stale.
    assert store.finish("f1", **{**outcome, "token": "fin-2"}).status == "stale"


def test_a_running_job_asked_to_cancel_is_joined_by_nobody(redis_client):
    """Until the actor noticed the cancel (its next await, or a re-delivery if its worker died),
    a request for the same match joined the job, and its user got "canceled" for a job they
    never canceled. The cancel now lets the subject go: the request starts a job of its own."""
    store = _store(redis_client)
    store.create("x1", actor="match_analysis", queue="high", coalesce="1-m",
                 requester={"user_id": 1, "chat_id": 1, "message_id": 10})
    store.begin("x1", max_deliveries=4)
    assert store.cancel("x1", alone=1) == ("canceling", False)
    later = store.create("x2", actor="match_analysis", queue="high", coalesce="1-m",
                         requester={"user_id": 2, "chat_id": 2, "message_id": 20})
    assert (later.job_id, later.state) == ("x2", "new")
    assert [r["user_id"] for r in store.get("x1").requesters] == [1]


def test_a_users_own_cancel_leaves_a_job_someone_joined_since_alone(redis_client):
    """The bot reads the record (one requester), then another user joins, then the cancel runs:
    it cancelled the newcomer's job too. Cancelled as the user's alone, it changes nothing and
    says "others" (the bot then reads again and lets the user leave it)."""
    store = _store(redis_client)
    store.create("y1", actor="match_analysis", queue="high", coalesce="1-n",
                 requester={"user_id": 1, "chat_id": 1, "message_id": 10})
    store.create("y2", actor="match_analysis", queue="high", coalesce="1-n",
                 requester={"user_id": 2, "chat_id": 2, "message_id": 20})  # joins y1
    assert store.cancel("y1", alone=1) == ("others", False)
    record = store.get("y1")
    assert record.status == "queued" and not record.cancel_requested
    assert store.cancel("y1", alone=2) == ("others", False)
    assert store.cancel("y1")[0] == "canceled"  # an admin's cancel: anyone's
    # A member of the group shown the job's message watches it: theirs too.
    store.create("z1", actor="match_analysis", queue="high", coalesce="1-o",
                 requester={"user_id": 1, "chat_id": -100, "message_id": 10})
    shown = store.create("z2", actor="match_analysis", queue="high", coalesce="1-o",
                         requester={"user_id": 3, "chat_id": -100})
    assert shown.shown_here == 10 and store.get("z1").watchers == [3]
    assert store.cancel("z1", alone=1) == ("others", False)
    assert store.get("z1").status == "queued"

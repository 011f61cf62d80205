import time

from tests.faults.conftest import broker_leftovers, lost_message_report, statuses, wait_until
from tests.faults.test_redis_restart import _assert_all_done


def test_redis_down_while_retries_come_due(start_pool, manager, traces, redis_server, redis_client):
    start_pool(["default"], processes=1, threads=8, env={"QUEUE_RETRY_DELAYS": "1.5"})
    jobs = []
    t0 = time.monotonic()
    for _ in range(400):
        jobs.append(manager.enqueue_job("t_fail_times", failures=1).id)
        time.sleep(0.01)
    print("enqueue took", time.monotonic() - t0)
    wait_until(lambda: sum(traces.runs(jobs)) >= 400, timeout=30, interval=0.05)
    # some retries already due and running
    wait_until(lambda: sum(traces.runs(jobs)) >= 420, timeout=20, interval=0.01)
    print("runs at stop", sum(traces.runs(jobs)))
    redis_server.stop()
    redis_server.process = None
    time.sleep(6)
    redis_server.start()
    _assert_all_done(redis_client, traces, [], jobs, timeout=30)

"""Priority isolation: a pool that listens on ``high`` never takes other queues' work.

In a module of its own: the module-scoped shared pool of the other pipeline modules listens on
every queue and would take the low job itself.
"""

from __future__ import annotations


def test_a_high_pool_never_runs_default_or_low_jobs(start_pool, manager, traces):
    start_pool(["high"])
    low = manager.enqueue_job("t_low")
    high = manager.enqueue_job("t_high")
    assert manager.wait_for(high.id, timeout=20).status == "succeeded"
    assert manager.get_job_status(low.id) == "queued" and traces.runs(low.id) == 0


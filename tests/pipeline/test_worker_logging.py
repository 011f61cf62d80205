"""Worker logs: ``LOG_LEVEL`` governs worker processes too (``dramatiq`` itself sets up logging
at INFO), and only a bug gets an ERROR line with a traceback."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("level", "per_job_line"), [("INFO", True), ("WARNING", False)])
def test_log_level_decides_whether_workers_log_each_job(start_pool, manager, level, per_job_line):
    pool = start_pool(["default"], env={"LOG_LEVEL": level})
    handle = manager.enqueue_job("t_noop", value=1)
    assert manager.wait_for(handle.id, timeout=20).status == "succeeded"
    pool.stop(graceful=True)  # flushes the worker's log pipe
    assert (f"job {handle.id}: succeeded" in pool.log_path.read_text()) is per_job_line


def test_only_a_bug_is_logged_as_an_error_with_a_traceback(start_pool, manager):
    """An upstream 503 that is retried is an expected outcome: one WARNING line, no traceback.
    A bug keeps its ERROR line and traceback."""
    pool = start_pool(["default"], env={"LOG_LEVEL": "INFO", "QUEUE_RETRY_DELAYS": "0.1"})
    transient = manager.enqueue_job("t_fail_times", failures=1)
    bug = manager.enqueue_job("t_fail_times", failures=1, kind="bug", retry=0)
    assert manager.wait_for(transient.id, timeout=20).status == "succeeded"
    assert manager.wait_for(bug.id, timeout=20).status == "failed"
    pool.stop(graceful=True)
    log = pool.log_path.read_text()

    assert f"job {transient.id}: retrying (attempt 1)" in log
    assert any("[WARNING]" in line and "t_fail_times(failures=1): UpstreamError: upstream 503" in line
               for line in log.splitlines())
    errors = [line for line in log.splitlines() if "[ERROR]" in line]
    unhandled = [line for line in errors if "unhandled exception" in line]
    assert len(unhandled) == 1 and "kind='bug'" in unhandled[0], errors
    assert not any(transient.id in line for line in errors), errors
    assert log.count("Traceback (most recent call last)") == 1


def test_a_job_stopped_at_its_time_limit_is_one_warning_line_saying_where_it_was(start_pool, manager):
    """A chaos test: a normal time-limit stop was logged as an "unhandled exception" with a
    traceback, as a bug is (the user is told and an alert fires: it is an outcome)."""
    pool = start_pool(["default"], env={"LOG_LEVEL": "INFO"})
    handle = manager.enqueue_job("t_sleep", retry=0, seconds=3, steps=30)  # its 1 s limit ends it
    assert manager.wait_for(handle.id, timeout=20).status == "failed"
    pool.stop(graceful=True)
    log = pool.log_path.read_text()
    [line] = [line for line in log.splitlines() if "WorkerThread" in line and "JobTimeLimitExceeded" in line]
    assert "[WARNING]" in line and "time limit exceeded (1 s) (stopped in tests/support/job_actors.py:" in line, line
    assert "Traceback (most recent call last)" not in log and "[ERROR]" not in log

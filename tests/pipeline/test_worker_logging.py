"""``LOG_LEVEL`` governs worker processes too (``dramatiq`` itself sets up logging at INFO)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("level", "per_job_line"), [("INFO", True), ("WARNING", False)])
def test_log_level_decides_whether_workers_log_each_job(start_pool, manager, level, per_job_line):
    pool = start_pool(["default"], env={"LOG_LEVEL": level})
    handle = manager.enqueue_job("t_noop", value=1)
    assert manager.wait_for(handle.id, timeout=20).status == "succeeded"
    pool.stop(graceful=True)  # flushes the worker's log pipe
    assert (f"job {handle.id}: succeeded" in pool.log_path.read_text()) is per_job_line

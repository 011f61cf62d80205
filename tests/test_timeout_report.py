"""A hung async test's timeout report names the ``await`` that never returned."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HANGING_TEST = '''
import asyncio


async def test_hangs():
    async def waits_for_a_lock_nobody_releases():
        await asyncio.Event().wait()

    async def fetches():
        await waits_for_a_lock_nobody_releases()

    task = asyncio.ensure_future(fetches())
    task.set_name("the-stuck-fetch")
    await task
'''


def test_a_timed_out_async_test_reports_each_tasks_stack(tmp_path: Path) -> None:
    (tmp_path / "test_hangs.py").write_text(HANGING_TEST)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.support.timeout_tasks", "--timeout", "1",
         "-p", "no:cacheprovider", "-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function",
         str(tmp_path / "test_hangs.py")],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 1, run.stdout[-2000:]
    assert "Timeout (>1.0s)" in run.stdout
    assert "asyncio the-stuck-fetch" in run.stdout, run.stdout[-3000:]  # the task, by name
    # and the await it hung in, down the chain of awaits (asyncio's own stack stops at the task's
    # coroutine, ``fetches``):
    assert "in waits_for_a_lock_nobody_releases" in run.stdout
    assert "in wait\n  waits on FutureIter" in run.stdout  # Event.wait, on its future

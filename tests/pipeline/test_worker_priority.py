"""Worker processes lower their CPU priority at boot (``WORKER_NICE``), and their session's where
Linux groups by session, so the bot's replies get the CPU first (middleware/cpu_priority.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from middleware.cpu_priority import session_group_nice

ROOT = Path(__file__).resolve().parents[2]


def _autogroup_nice(pid: int) -> int | None:
    """The nice value of ``pid``'s session group, or None when its session is not a group.

    Linux prints "/autogroup-85 nice 7", or nothing for a session that never got a group of its
    own (the boot session: CI runners and containers often run everything in it).
    """
    path = Path(f"/proc/{pid}/autogroup")
    if not path.exists():
        return None
    text = path.read_text().strip()
    return int(text.split(" nice ")[1]) if text else None


SESSION_IS_A_GROUP = _autogroup_nice(os.getpid()) is not None


def test_workers_run_at_worker_nice_and_the_test_process_is_untouched(start_pool, manager):
    ours = (psutil.Process().nice(), _autogroup_nice(os.getpid()))
    pool = start_pool(["default"], processes=2, env={"WORKER_NICE": "7"})
    handle = manager.enqueue_job("t_noop", value=1)
    assert manager.wait_for(handle.id, timeout=20).status == "succeeded"  # niced workers still work
    children = pool.worker_pids()
    assert len(children) == 2
    assert [psutil.Process(pid).nice() for pid in children] == [7, 7]
    if Path("/proc/self/autogroup").exists():  # a kernel that schedules sessions as groups
        # the pool runs in a session of its own (start_pool's setsid), a group whatever ours is
        assert [_autogroup_nice(pid) for pid in children] == [7, 7]
        assert _autogroup_nice(pool.process.pid) == 7  # the pool's supervisor shares their session
    assert (psutil.Process().nice(), _autogroup_nice(os.getpid())) == ours
    assert "worker runs at nice 7" in _log_after_stop(pool)


def test_worker_nice_0_leaves_the_priority_alone(start_pool):
    pool = start_pool(["default"], env={"WORKER_NICE": "0"})
    assert [psutil.Process(pid).nice() for pid in pool.worker_pids()] == [psutil.Process().nice()]  # inherited
    assert "worker runs at nice" not in _log_after_stop(pool)


@pytest.mark.skipif(not SESSION_IS_A_GROUP,
                    reason="this test's session is not scheduled as a group (no autogroup, or the boot session)")
def test_a_pool_started_in_this_session_leaves_the_sessions_share_alone(redis_url, tmp_path, manager):
    """As when an operator runs ``dramatiq actors`` in a terminal: only the workers' own nice."""
    session_nice = _autogroup_nice(os.getpid())
    log = tmp_path / "pool.log"
    cmd = [sys.executable, "-m", "dramatiq", "actors", "tests.support.job_actors", "--processes", "1",
           "--threads", "2", "--queues", "default"]
    with open(log, "wb") as out:
        pool = subprocess.Popen(cmd, env={**os.environ, "WORKER_NICE": "9"}, stdout=out, stderr=subprocess.STDOUT)
    try:
        handle = manager.enqueue_job("t_noop", value=1)
        assert manager.wait_for(handle.id, timeout=30).status == "succeeded"
        assert [child.nice() for child in psutil.Process(pool.pid).children()] == [9]
        assert _autogroup_nice(os.getpid()) == session_nice
    finally:
        pool.terminate()
        pool.wait(30)
    assert "worker runs at nice 9:" in log.read_text()


def _log_after_stop(pool) -> str:
    pool.stop(graceful=True)  # flushes the workers' log pipe
    return pool.log_path.read_text()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None or not Path("/proc/self/autogroup").exists(),
                    reason="needs root (to start unprivileged probes), setpriv and a kernel that groups by session")
def test_pools_booting_together_all_lower_their_sessions():
    """Unprivileged, Linux takes one session-group change per 100 ms machine-wide (EAGAIN for the
    rest): three sessions booting at once must all get there."""
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
           "tests.support.autogroup_probe", "6"]
    probes = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)}) for _ in range(3)]
    outputs = [probe.communicate(timeout=60)[0].strip().splitlines()[-1] for probe in probes]
    assert outputs == ["True 6"] * 3, outputs


def test_a_session_without_a_group_of_its_own_is_told_apart():
    """The kernel prints nothing for the boot session (as CI runners often run everything in it):
    the middleware must take that as "no session group", not fail on it."""
    assert session_group_nice("/autogroup-85 nice 7\n") == 7
    assert session_group_nice("/autogroup-3 nice -2\n") == -2
    assert session_group_nice("") is None

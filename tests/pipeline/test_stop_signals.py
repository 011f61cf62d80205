"""Stop signals of worker processes: a process-group kill stops a pool gracefully, and a stop
signal repeated later ends a worker at once — never a process that lingers (real pools)."""

from __future__ import annotations

import os
import signal
import subprocess

from tests.pipeline.conftest import wait_until


def _gone(pid: int) -> bool:
    """The process has exited (reaped, or a zombie its parent has not reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_process_group_kill_stops_the_pool_gracefully(start_pool, manager):
    """systemd's control-group kill (and ``timeout``, ``kill -- -PGID``) signals every process:
    each worker gets SIGTERM directly and again from the dramatiq parent. Once, it used to take
    the second for "kill" before it had begun to stop, and hang for ever with its threads alive."""
    pool = start_pool(["default"], processes=2, threads=2)
    handle = manager.enqueue_job("t_slow", seconds=1.5, steps=15)
    wait_until(lambda: manager.get_job_status(handle.id) == "started", timeout=20)
    os.killpg(pool.process.pid, signal.SIGTERM)
    try:
        pool.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the pool did not exit; still alive: {pool.worker_pids()}") from None
    assert manager.get_job(handle.id).status == "succeeded"  # the running job was let finish


def test_a_stop_signal_repeated_later_ends_the_worker_at_once(start_pool, manager):
    """With no repeat window, every further SIGTERM counts as "later": the worker ends at once
    (its job comes back through the dead-worker sweep), instead of waiting for the job (60 s)."""
    pool = start_pool(["default"], processes=1, threads=2, env={"WORKER_STOP_REPEAT_WINDOW": "0"})
    handle = manager.enqueue_job("t_slow", seconds=60, steps=60)
    wait_until(lambda: manager.get_job_status(handle.id) == "started", timeout=20)
    (worker,) = pool.worker_pids()
    os.kill(worker, signal.SIGTERM)
    # Two signals of one kind that arrive before the handler runs are handled once: wait for
    # the first to be taken (the graceful stop has begun) before the repeat.
    wait_until(lambda: "Stopping worker process" in pool.log_path.read_text(errors="replace"), timeout=20)
    os.kill(worker, signal.SIGTERM)
    wait_until(lambda: _gone(worker), timeout=20, what="the worker process ended")
    assert manager.get_job(handle.id).status != "succeeded"
    assert manager.get_job(handle.id).status == "started"  # cut off mid-run: the dead-worker sweep brings it back

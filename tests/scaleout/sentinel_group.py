"""A real Redis Sentinel group for tests: one master, one replica and one sentinel, on free ports.

Each process runs from its own temporary directory (the sentinel rewrites its config file
there), binds 127.0.0.1 only and is stopped with SIGKILL at the end. The sentinel's timings
are scaled down (down after 1 s, failover timeout 3 s) so a failover takes about a second.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from tests.support.redis_server import free_port, redis_server_binary

MASTER_NAME = "fbtest"


def _wait_ping(port: int, timeout: float = 10) -> None:
    client = redis.Redis(port=port, socket_timeout=1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.ping():
                return
        except redis.RedisError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing answers on 127.0.0.1:{port}")


class SentinelGroup:
    """Master + replica + sentinel; :meth:`node` gives a plain client to one node by port."""

    def __init__(self, directory: Path, master_name: str = MASTER_NAME) -> None:
        self.directory = directory
        self.master_name = master_name
        self.master_port = free_port()
        self.replica_port = free_port()
        self.sentinel_port = free_port()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def sentinels(self) -> str:
        """The ``REDIS_SENTINELS`` value for this group."""
        return f"127.0.0.1:{self.sentinel_port}"

    def _spawn(self, name: str, args: list[str]) -> None:
        workdir = self.directory / name
        workdir.mkdir(parents=True, exist_ok=True)
        log = open(workdir / "out.log", "wb")  # noqa: SIM115  (kept open for the process's life)
        self.processes[name] = subprocess.Popen(args, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True)

    def _server_args(self, port: int) -> list[str]:
        return [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--loglevel", "notice", "--dir", ".", "--repl-diskless-sync-delay", "0"]

    def start(self) -> SentinelGroup:
        self._spawn("master", self._server_args(self.master_port))
        self._spawn("replica", [*self._server_args(self.replica_port),
                                "--replicaof", "127.0.0.1", str(self.master_port)])
        _wait_ping(self.master_port)
        _wait_ping(self.replica_port)
        self._wait_replica_in_sync()
        config = self.directory / "sentinel" / "sentinel.conf"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(
            f"port {self.sentinel_port}\n"
            "bind 127.0.0.1\n"
            "dir .\n"
            f"sentinel monitor {self.master_name} 127.0.0.1 {self.master_port} 1\n"
            f"sentinel down-after-milliseconds {self.master_name} 1000\n"
            f"sentinel failover-timeout {self.master_name} 3000\n"
            f"sentinel parallel-syncs {self.master_name} 1\n"
        )
        self._spawn("sentinel", [redis_server_binary(), str(config), "--sentinel"])
        _wait_ping(self.sentinel_port)
        self._wait_sentinel_knows_replica()
        return self

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2, decode_responses=True)

    def sentinel(self) -> redis.Redis:
        return self.node(self.sentinel_port)

    def master_address(self) -> tuple[str, int]:
        host, port = self.sentinel().execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
        return host, int(port)

    def _wait_replica_in_sync(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.node(self.replica_port).info("replication")
            if info.get("master_link_status") == "up":
                return
            time.sleep(0.05)
        raise RuntimeError("the replica did not sync with the master")

    def _wait_sentinel_knows_replica(self, timeout: float = 15) -> None:
        """Until the sentinel lists the replica as usable (a failover needs one)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            replicas = self.sentinel().execute_command("SENTINEL", "REPLICAS", self.master_name)
            for fields in replicas or []:
                info = dict(zip(fields[::2], fields[1::2], strict=True)) if isinstance(fields, list) else fields
                if str(info.get("port")) == str(self.replica_port) and "disconnected" not in info.get("flags", ""):
                    return
            time.sleep(0.1)
        raise RuntimeError("the sentinel did not discover the replica")

    def failover(self) -> None:
        """Ask the sentinel to promote the replica now (no quorum needed for a forced failover)."""
        self.sentinel().execute_command("SENTINEL", "FAILOVER", self.master_name)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
            process.wait()
        self.processes.clear()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

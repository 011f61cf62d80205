"""Network namespaces as stand-in "hosts" for scale-out tests (Linux, root, iproute2).

:class:`NetnsLab` creates namespaces, each joined to this machine by its own veth pair on a
private ``10.x.y.0/30`` subnet (this machine ``.1``, the namespace ``.2``). Nothing else is
routed: a process in a namespace reaches only the servers this machine binds to the veth
address of that namespace. Each "host" also gets its own hostname (a UTS namespace), so
worker ids, which start with the hostname, tell the hosts apart.

Everything is torn down by :meth:`NetnsLab.cleanup` (deleting a namespace deletes its veth
pair). :func:`netns_unavailable` says why the machine cannot do this (not root, no ``ip``,
no permission), so callers can fall back to plain process trees and say so.
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass

from tests.support.workers import ROOT, WorkerPool


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=True, timeout=20)


def netns_unavailable() -> str | None:
    """None when namespaces with veth pairs and UTS namespaces work here, else the reason.

    ``TEST_NETNS=0`` in the environment turns them off (to run the fallback on purpose).
    """
    if os.environ.get("TEST_NETNS") == "0":
        return "TEST_NETNS=0"
    if os.geteuid() != 0:
        return "not root"
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"no `{tool}` on PATH"
    probe = f"fbprobe-{uuid.uuid4().hex[:6]}"
    try:
        _run("ip", "netns", "add", probe)
        _run("ip", "netns", "exec", probe, "unshare", "--uts", "true")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        return f"`ip netns` is not permitted here: {detail.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _free_subnet_octet() -> int:
    """A second octet ``x`` such that no local address is in ``10.x.0.0/16``."""
    out = _run("ip", "-4", "-o", "addr").stdout
    used = set()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            address = ipaddress.ip_interface(fields[3]).ip
            if address in ipaddress.ip_network("10.0.0.0/8"):
                used.add(address.packed[1])
    choices = [x for x in range(200, 250) if x not in used]
    return random.choice(choices)


@dataclass
class NetnsHost:
    """One namespace: its name, hostname, and the two ends of its veth pair."""

    namespace: str
    hostname: str
    host_ip: str  # this machine's end: bind servers here
    ns_ip: str  # the namespace's end

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace, under its own hostname (same pid: every step execs)."""
        return ["ip", "netns", "exec", self.namespace, "unshare", "--uts", "sh", "-c",
                'hostname "$0" && exec "$@"', self.hostname, *argv]


class NetnsLab:
    """Namespaces with veth pairs, created on demand and all removed by :meth:`cleanup`."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:4]
        self.octet = _free_subnet_octet()
        self.hosts: list[NetnsHost] = []

    def add_host(self, hostname: str) -> NetnsHost:
        index = len(self.hosts)
        namespace = f"fbt-{self.tag}-{index}"
        outside, inside = f"fb{self.tag}{index}h", f"fb{self.tag}{index}n"
        host_ip, ns_ip = f"10.{self.octet}.{index}.1", f"10.{self.octet}.{index}.2"
        host = NetnsHost(namespace, hostname, host_ip, ns_ip)
        self.hosts.append(host)  # before creating anything, so cleanup sees partial work
        _run("ip", "netns", "add", namespace)
        _run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
        _run("ip", "link", "set", inside, "netns", namespace)
        _run("ip", "addr", "add", f"{host_ip}/30", "dev", outside)
        _run("ip", "link", "set", outside, "up")
        _run("ip", "netns", "exec", namespace, "ip", "addr", "add", f"{ns_ip}/30", "dev", inside)
        _run("ip", "netns", "exec", namespace, "ip", "link", "set", inside, "up")
        _run("ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up")
        return host

    def cleanup(self) -> None:
        for index, host in enumerate(self.hosts):
            subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True)
            subprocess.run(["ip", "link", "del", f"fb{self.tag}{index}h"], capture_output=True)
        self.hosts.clear()


class NetnsWorkerPool(WorkerPool):
    """A :class:`~tests.support.workers.WorkerPool` whose ``dramatiq`` runs inside ``host``."""

    def __init__(self, host: NetnsHost, **kwargs) -> None:
        super().__init__(**kwargs)
        self.host = host

    def start(self, wait: bool = True, timeout: float = 30) -> NetnsWorkerPool:
        cmd = [sys.executable, "-m", "dramatiq", "actors", *self.modules, "--processes", str(self.processes),
               "--threads", str(self.threads), "--worker-shutdown-timeout", "5000"]
        if self.queues:
            cmd += ["--queues", *self.queues]
        self._log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(self.host.command(cmd), cwd=ROOT, env=self.env, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            self.wait_ready(timeout)
        return self

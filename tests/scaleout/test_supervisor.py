"""``python supervisor.py`` (``supervisor.main``, which ``make run`` calls through ``admin.py run``): the
whole local stack as one process tree.

The supervisor runs as a real subprocess with ``REDIS_URL``, ``FACEIT_API_KEY`` and
``TELEGRAM_BOT_TOKEN`` unset, so it embeds Redis and starts both sandboxes, on free ports
(``RUN_REDIS_PORT``, ``RUN_FACEIT_PORT``, ``RUN_TELEGRAM_PORT``, ``QUEUE_DASHBOARD_PORT``), so it
never collides with a ``make run`` on this machine.

The embedded Redis keeps its AOF in ``RUN_REDIS_DIR``, here the test's temporary directory, so
the checkout's own ``var/redis`` (a developer's data) is never touched.

Checked: the tree starts (both worker pools heartbeat, the dashboard answers ``/healthz``, the
sandboxes answer); a SIGKILLed worker pool is reported and restarted; jobs enqueued through the
embedded Redis run; every output line is prefixed with its process's name; SIGTERM stops all
with exit status 0, nothing left listening on the ports it used and no process of the tree left.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import redis

from queues.workers import WorkerRegistry
from settings import load_settings
from tests.scaleout.helpers import manager_for, wait_until
from tests.support.redis_server import free_port
from tests.support.workers import ROOT

NAMES = ("supervisor", "faceit-sandbox", "telegram-sandbox", "worker-high", "worker-default-low", "scheduler",
         "bot", "dashboard")
LINE = re.compile(r"^\[(?P<name>[a-z-]+)\s*\] ")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    root: Path
    ports: dict[str, int]
    lines: list[str] = field(default_factory=list)
    seen: dict[int, float] = field(default_factory=dict)  # pid -> create time, every process of the tree

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports['redis']}/0"

    def output(self) -> str:
        return "\n".join(self.lines)

    def has_line(self, pattern: str) -> bool:
        return any(re.search(pattern, line) for line in list(self.lines))

    def snapshot(self) -> list[psutil.Process]:
        """The supervisor's descendants now (recorded, so the end can check they are all gone)."""
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        for child in children:
            try:
                self.seen.setdefault(child.pid, child.create_time())
            except psutil.NoSuchProcess:
                pass
        return children

    def pool(self, queues: str) -> psutil.Process:
        """The ``dramatiq`` parent of the pool that consumes exactly ``queues``."""
        for child in psutil.Process(self.process.pid).children():
            cmdline = child.cmdline()
            if "dramatiq" in cmdline and " ".join(cmdline).endswith(f"--queues {queues}"):
                return child
        raise AssertionError(f"no worker pool for {queues!r}")

    def survivors(self) -> list[int]:
        left = []
        for pid, created in self.seen.items():
            try:
                if psutil.Process(pid).create_time() == created:
                    left.append(pid)
            except psutil.NoSuchProcess:
                pass
        return left


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    from queues.runtime import reset_runtime

    root = ROOT
    ports = {"redis": free_port(), "faceit": free_port(), "telegram": free_port(), "dashboard": free_port()}
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "FACEIT_API_KEY", "FACEIT_API_URL", "TELEGRAM_BOT_TOKEN", "TELEGRAM_API_URL")}
    env.update(RUN_REDIS_PORT=str(ports["redis"]), RUN_FACEIT_PORT=str(ports["faceit"]),
               RUN_TELEGRAM_PORT=str(ports["telegram"]), QUEUE_DASHBOARD_PORT=str(ports["dashboard"]),
               QUEUE_DASHBOARD_HOST="127.0.0.1", PYTHONUNBUFFERED="1", RUN_REDIS_DIR=str(tmp_path / "redis"))
    process = subprocess.Popen([sys.executable, str(root / "supervisor.py")], cwd=root, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    stack = Stack(process, tmp_path, ports)

    def relay() -> None:
        for raw in iter(process.stdout.readline, b""):
            stack.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    try:
        yield stack
    finally:
        reset_runtime()  # this process's cached clients may point at the embedded Redis
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pid in stack.survivors():  # only processes this test's supervisor started
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        reader.join(timeout=5)


def test_the_supervised_stack_starts_recovers_runs_jobs_and_stops_cleanly(stack: Stack):
    ports = stack.ports

    def ready() -> bool:
        stack.snapshot()
        if stack.process.poll() is not None:
            raise AssertionError(f"the supervisor exited with {stack.process.returncode}:\n{stack.output()}")
        return _http_ok(f"http://127.0.0.1:{ports['dashboard']}/healthz") and len(live_pools()) == 2

    registry = WorkerRegistry(redis.Redis.from_url(stack.redis_url, decode_responses=True),
                              heartbeat_timeout=float(os.environ.get("QUEUE_HEARTBEAT_TIMEOUT", 15)))

    def live_pools() -> dict[tuple[str, ...], set[int]]:
        pools: dict[tuple[str, ...], set[int]] = {}
        try:
            for worker in registry.workers():
                pools.setdefault(tuple(worker.queues), set()).add(worker.pid)
        except redis.RedisError:
            return {}
        return pools

    wait_until(ready, timeout=90, interval=0.2, what="dashboard /healthz and both worker pools")
    assert set(live_pools()) == {("high",), ("default", "low")}
    assert stack.has_line(rf"Redis: embedded on 127\.0\.0\.1:{ports['redis']}")
    assert (stack.root / "redis").is_dir()  # RUN_REDIS_DIR: the test's AOF, not the checkout's var/redis
    # The sandboxes answer: the FACEIT Data API stand-in and the Bot API stand-in (getMe).
    assert _http_ok(f"http://127.0.0.1:{ports['faceit']}/_sandbox/stats")
    from sandbox.telegram_api import SANDBOX_BOT_TOKEN

    assert _http_ok(f"http://127.0.0.1:{ports['telegram']}/bot{SANDBOX_BOT_TOKEN}/getMe")

    # A SIGKILLed worker pool (its whole process group) is reported and started again.
    old_high = live_pools()[("high",)]
    victim = stack.pool("high")
    os.killpg(victim.pid, signal.SIGKILL)
    wait_until(lambda: stack.has_line(r"worker-high exited with -9; restarting in \d+ s"), timeout=10,
               what="the death reported")
    restarted = re.compile(r"started worker-high \(pid (\d+)\)")
    wait_until(lambda: any((m := restarted.search(line)) and int(m[1]) != victim.pid for line in list(stack.lines)),
               timeout=15, what="the pool restarted")
    wait_until(lambda: (pids := live_pools().get(("high",))) and not pids & old_high, timeout=60,
               interval=0.2, what="the new high pool's heartbeat")
    stack.snapshot()

    # Jobs sent through the embedded Redis run on both pools.
    manager = manager_for(load_settings(redis_url=stack.redis_url))
    handles = [manager.enqueue_job(name, sent_at=time.time()) for name in ("probe_high", "probe_default")]
    for handle in handles:
        record = manager.wait_for(handle.id, timeout=30)
        assert record is not None and record.status == "succeeded", (handle, record)
    assert {h.queue for h in handles} == {"high", "default"}
    stack.snapshot()

    # Every line is prefixed with the name of the process it came from.
    lines = [line for line in list(stack.lines) if line.strip()]
    unprefixed = [line for line in lines if not LINE.match(line) or LINE.match(line)["name"] not in NAMES]
    assert not unprefixed, unprefixed[:5]
    named = {LINE.match(line)["name"] for line in lines}
    assert {"supervisor", "worker-high", "worker-default-low"} <= named, named

    # SIGTERM stops everything: exit 0, no port left open, no process of the tree left.
    assert stack.seen, "no child processes were recorded"
    stack.process.send_signal(signal.SIGTERM)
    assert stack.process.wait(timeout=60) == 0, stack.output()[-3000:]
    assert stack.has_line(r"all stopped")
    still_open = {name: port for name, port in ports.items() if _listening(port)}
    assert not still_open, still_open
    left = stack.survivors()
    assert not left, [psutil.Process(p).cmdline() for p in left if psutil.pid_exists(p)]


def test_an_embedded_redis_that_dies_is_started_again_with_its_data(stack: Stack):
    """Found by a chaos test: a killed embedded Redis was never noticed nor started again, every
    command then got "briefly unavailable" for good, and a Ctrl-C hung on workers retrying to
    record their jobs. It is started again on its port, from its AOF, and the stack works on."""
    _wait_until_up(stack)
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    client.config_set("appendfsync", "always")  # (each write on disk at once: nothing to wait for)
    client.set("chaos:kept", "yes")
    [server] = [p for p in stack.snapshot() if "redis-server" in " ".join(p.cmdline())]
    server.kill()
    wait_until(lambda: stack.has_line(r"Redis exited with -9; starting it again on port"), timeout=10,
               what="the death reported")
    wait_until(lambda: stack.has_line(r"Redis started again \(pid \d+\)"), timeout=20, what="Redis started again")
    assert client.get("chaos:kept") == "yes"  # from its AOF
    manager = manager_for(load_settings(redis_url=stack.redis_url))
    handle = manager.enqueue_job("probe_high", sent_at=time.time())
    record = manager.wait_for(handle.id, timeout=60)
    assert record is not None and record.status == "succeeded", record
    stack.snapshot()
    stack.process.send_signal(signal.SIGTERM)
    assert stack.process.wait(timeout=60) == 0, stack.output()[-3000:]
    assert stack.has_line(r"Redis stopped \(AOF flushed\)") and stack.has_line(r"all stopped")
    assert not stack.survivors()


def test_a_second_run_on_the_same_redis_folder_is_refused_in_one_line(tmp_path: Path):
    """Two embedded Redis servers on one AOF folder would interleave their writes in it."""
    sys.path.insert(0, str(ROOT))
    from supervisor import hold_run_lock

    folder = tmp_path / "redis"
    held = hold_run_lock(folder)  # the first run
    assert held is not None
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(RUN_REDIS_DIR=str(folder), RUN_REDIS_PORT=str(free_port()))
    second = subprocess.run([sys.executable, str(ROOT / "supervisor.py")], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert second.returncode == 2
    assert second.stderr.strip() == (f"make run: another run (pid {os.getpid()}) uses {folder}; stop it first "
                                      "(Ctrl-C there), or give this one its own RUN_REDIS_DIR and ports")
    assert not list(folder.glob("appendonly*")) and not (folder / "appendonlydir").exists()  # no Redis started
    held.close()
    assert hold_run_lock(folder) is not None  # free again once the first run ends



#: The supervisor's line for each child it starts.
STARTED = re.compile(r"^\[supervisor\s*\] started (?P<name>[a-z-]+) \(pid (?P<pid>\d+)\)$")


def _wait_until_up(stack: Stack) -> None:
    """Wait until the whole tree runs, and record every process of it: the end of a test checks
    that none of the recorded ones is left, so one started after the recording would go unchecked.
    Every child the supervisor said it started, the embedded Redis, and each pool's worker
    process (a child of the pool, known once it heartbeats) must be among the recorded."""
    started: dict[str, int] = {}

    def up() -> bool:
        stack.snapshot()
        if stack.process.poll() is not None:
            raise AssertionError(f"the supervisor exited with {stack.process.returncode}:\n{stack.output()}")
        started.update((m["name"], int(m["pid"])) for line in list(stack.lines) if (m := STARTED.match(line)))
        return (set(started) == set(NAMES) - {"supervisor"}
                and _http_ok(f"http://127.0.0.1:{stack.ports['dashboard']}/healthz")
                and _listening(stack.ports["redis"]))

    wait_until(up, timeout=90, interval=0.2, what="every child started, the dashboard and the embedded Redis")
    registry = WorkerRegistry(redis.Redis.from_url(stack.redis_url, decode_responses=True),
                              heartbeat_timeout=float(os.environ.get("QUEUE_HEARTBEAT_TIMEOUT", 15)))

    def pool_workers() -> dict[tuple[str, ...], int] | None:
        """Each pool's worker process (one: ``--workers 1``), once both have heartbeat."""
        pids = {tuple(worker.queues): worker.pid for worker in registry.workers()}
        return pids if set(pids) == {("high",), ("default", "low")} else None

    workers = wait_until(pool_workers, timeout=60, interval=0.2, what="both pools' worker processes")
    [server] = [p for p in psutil.Process(stack.process.pid).children() if "redis-server" in " ".join(p.cmdline())]
    tree = {*started.values(), *workers.values(), server.pid}
    stack.snapshot()
    assert tree <= set(stack.seen), (sorted(tree - set(stack.seen)), stack.output()[-3000:])


def test_a_closed_terminal_stops_everything_in_order(stack: Stack):
    """SIGHUP (the terminal closed, the SSH session dropped): the children run in sessions of
    their own and never heard of it; they kept running unsupervised, and the next ``make run``
    started a second system beside them."""
    _wait_until_up(stack)
    stack.process.send_signal(signal.SIGHUP)
    assert stack.process.wait(timeout=60) == 0, stack.output()[-3000:]
    assert stack.has_line(r"all stopped") and stack.has_line(r"Redis stopped \(AOF flushed\)")
    assert not [name for name, port in stack.ports.items() if _listening(port)]
    assert not stack.survivors()


def test_a_supervisor_killed_outright_takes_its_children_along(stack: Stack):
    """Even a worker pool in the middle of a long job: it waited for the job, with nobody left
    to read its output, and hung on the full pipe (an orphan for as long as anyone let it)."""
    _wait_until_up(stack)
    bulk = _start_a_long_bulk_job(stack)
    stack.snapshot()
    assert len(stack.seen) >= 6
    assert stack.process.poll() is None and bulk
    stack.process.send_signal(signal.SIGKILL)
    stack.process.wait(timeout=10)
    wait_until(lambda: not stack.survivors(), timeout=20, interval=0.2, what="every child gone")
    assert not [name for name, port in stack.ports.items() if _listening(port)]


def _start_a_long_bulk_job(stack: Stack) -> str:
    """A bulk analysis running on the default-low pool, for minutes (FACEIT answers in 2 s)."""
    import json

    registry = WorkerRegistry(redis.Redis.from_url(stack.redis_url, decode_responses=True), heartbeat_timeout=15)
    wait_until(lambda: any("low" in w.queues for w in registry.workers()), timeout=90, interval=0.2,
               what="the default-low pool's heartbeat")
    faceit = f"http://127.0.0.1:{stack.ports['faceit']}/_sandbox"
    with urllib.request.urlopen(f"{faceit}/world", timeout=5) as response:
        matches = [m for status, ids in json.load(response)["matches"].items()
                   if status not in ("CANCELLED", "ABORTED") for m in ids][:8]
    request = urllib.request.Request(f"{faceit}/faults", data=json.dumps({"latency_ms": 2000}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(request, timeout=5).close()
    manager = manager_for(load_settings(redis_url=stack.redis_url))
    bulk = manager.enqueue_bulk_analysis(matches, user_id=None)  # 8 analyses at 2 s a call: minutes
    wait_until(lambda: manager.get_job(bulk.id).status == "started", timeout=30, what="the bulk job running")
    return bulk.id


def test_a_stop_lets_running_jobs_finish_and_a_second_one_hurries(stack: Stack):
    """The workers finish their running jobs on Ctrl-C: a pool got 30 s, then was killed, so a
    job longer than that started over on the next run. Now it gets Dramatiq's own 10 minutes,
    and a second Ctrl-C stops what is left at once."""
    _wait_until_up(stack)
    bulk = _start_a_long_bulk_job(stack)

    stack.process.send_signal(signal.SIGTERM)
    wait_until(lambda: stack.has_line(r"stopping worker-default-low \(its running jobs may take up to 10 min"),
               timeout=30, what="the pool asked to stop, patiently")
    time.sleep(1.5)  # a second signal now is no repeat of the first
    assert stack.process.poll() is None  # still waiting for the job
    hurried = time.monotonic()
    stack.process.send_signal(signal.SIGTERM)
    assert stack.process.wait(timeout=60) == 0, stack.output()[-3000:]
    assert time.monotonic() - hurried < 15, stack.output()[-3000:]
    assert stack.has_line(r"stopping the rest at once") and stack.has_line(r"worker-default-low asked to hurry")
    assert not stack.has_line(rf"job {bulk}: succeeded")
    wait_until(lambda: not stack.survivors(), timeout=10, interval=0.1, what="every process of the tree gone")


def test_a_port_just_let_go_of_is_taken_again():
    """After a stop, the port's last connections linger in TIME_WAIT for a minute: a restart
    then moved Redis, the sandboxes and the chat URL to other ports, though they were free to
    listen there (servers set SO_REUSEADDR)."""
    sys.path.insert(0, str(ROOT))
    from supervisor import pick_port, port_is_free

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server's side closes first: its end waits in TIME_WAIT
    client.close()
    server.close()
    assert port_is_free(port) and pick_port(port) == port


def _settings_from_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **values: str) -> object:
    """Settings loaded as ``make run`` loads them, from a copy of settings.toml with ``values``
    written into it and none of them in the environment."""
    lines = (ROOT / "settings.toml").read_text().splitlines()
    for key, value in values.items():
        lines = [f'{key} = "{value}"' if line.startswith(f"{key} ") else line for line in lines]
    path = tmp_path / "settings.toml"
    path.write_text("\n".join(lines) + "\n")
    for key in ("REDIS_URL", "FACEIT_API_KEY", "FACEIT_API_URL", "TELEGRAM_BOT_TOKEN", "TELEGRAM_API_URL",
                "QUEUE_NAME_PREFIX"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SETTINGS_FILE", str(path))
    return load_settings()


def test_make_run_obeys_what_the_settings_file_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A token, a key and a Redis written in the settings file were ignored: ``make run`` looked
    at the environment only, started both sandboxes and its own Redis, and said none was set."""
    import argparse

    import supervisor

    args = argparse.Namespace(workers=1, faceit_port=free_port(), telegram_port=free_port())
    settings = _settings_from_file(tmp_path, monkeypatch, TELEGRAM_BOT_TOKEN="123456:ABCdefGHIjkl_mnoPQR-stu",
                                   FACEIT_API_KEY="0f8fad5b-d9cb-469f-a165-70867728950e",
                                   REDIS_URL="redis://127.0.0.1:1/0")
    assert not supervisor.uses_own_redis({}, settings)
    children, extra, notes = supervisor.build_children(args, settings)
    assert [c.name for c in children if "sandbox" in c.name] == []
    assert set(extra) == {"QUEUE_DASHBOARD_PORT"} and [n.split(":")[0] for n in notes] == ["dashboard"]

    shipped = _settings_from_file(tmp_path, monkeypatch)
    assert supervisor.uses_own_redis({}, shipped) and not supervisor.uses_own_redis({"REDIS_URL": "redis://x"}, shipped)
    children, extra, _ = supervisor.build_children(args, shipped)
    assert {"faceit-sandbox", "telegram-sandbox"} <= {c.name for c in children}
    assert set(extra) == {"FACEIT_API_URL", "FACEIT_API_KEY", "TELEGRAM_API_URL", "TELEGRAM_BOT_TOKEN",
                          "QUEUE_DASHBOARD_PORT"}


def test_make_run_pools_consume_the_prefixed_queues(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """With ``QUEUE_NAME_PREFIX`` the jobs went to ``x-high`` and so on, the pools read ``high``."""
    import argparse

    import supervisor

    settings = _settings_from_file(tmp_path, monkeypatch, QUEUE_NAME_PREFIX="x-")
    args = argparse.Namespace(workers=1, faceit_port=free_port(), telegram_port=free_port())
    children, _, _ = supervisor.build_children(args, settings)
    pools = {c.name: c.argv[c.argv.index("--queues") + 1:] for c in children if "--queues" in c.argv}
    assert pools == {"worker-high": ["x-high"], "worker-default-low": ["x-default", "x-low"]}


def test_a_child_that_refuses_its_configuration_is_said_once_not_restarted():
    """A dashboard refusing its credentials (exit 2) was restarted every 30 s, for ever."""
    import io

    import supervisor

    out = io.StringIO()
    child = supervisor.Child("refuser", [sys.executable, "-c", "import sys; print('bad setting'); sys.exit(2)"])
    runner = supervisor.Supervisor([child], base_env=dict(os.environ), out=out)
    runner.start(child)
    watcher = threading.Thread(target=runner.watch)
    watcher.start()
    try:
        wait_until(lambda: "not restarted" in out.getvalue(), timeout=20)
        assert child.process is None and child.next_start == 0.0  # nothing will start it again
        assert "refuser refused its configuration (exit 2)" in out.getvalue() and "bad setting" in out.getvalue()
    finally:
        runner.stopping.set()
        watcher.join()


def test_a_second_run_moves_its_dashboard_and_says_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A second ``make run`` beside the first pointed at the first one's dashboard, while its own
    could not listen there and was restarted for ever."""
    import argparse

    import supervisor

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("QUEUE_DASHBOARD_PORT", str(port))
        settings = _settings_from_file(tmp_path, monkeypatch)
        args = argparse.Namespace(workers=1, faceit_port=free_port(), telegram_port=free_port())
        _, extra, notes = supervisor.build_children(args, settings)
    moved = int(extra["QUEUE_DASHBOARD_PORT"])
    assert moved != port and notes[0] == f"dashboard: http://{settings.queue_dashboard_host}:{moved}/"

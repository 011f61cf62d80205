"""The deployment's commands run for real, without Docker: Redis with compose.yaml's exact
command line, the healthchecks compose.yaml declares, and our services' commands with the
environment a container gets (``.env`` + the service's ``environment``).

Only what Docker itself provides is adapted: hosts and ports (everything here binds 127.0.0.1 on
free ports, never 6379), the worker process count, and the tokens (left empty so nothing leaves
this machine). Entry points still being written by others are skipped here; test_entrypoints.py
fails for them instead.
"""

from __future__ import annotations

import http.server
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from redis.backoff import NoBackoff
from redis.retry import Retry

from queues.workers import WorkerRegistry
from tests.deploy.deployfiles import ROOT, command_list
from tests.support.redis_server import free_port, redis_server_binary

START_TIMEOUT = 30
STOP_TIMEOUT = 30


def _require(entry_file: str) -> None:
    if not (ROOT / entry_file).is_file():
        pytest.skip(f"{entry_file} does not exist yet (test_entrypoints.py reports it)")


class ComposeRedis:
    """redis-server started with compose.yaml's command, on a private port and directory."""

    def __init__(self, command: list[str], directory: Path, password: str) -> None:
        self.command = command
        self.directory = directory
        self.password = password
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [redis_server_binary(), *self.command[1:]]
        # Later options win in redis-server: keep it off the network and in a private directory.
        args += ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return
            except redis.RedisError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start with compose.yaml's command")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def client(self, password: str | None = None) -> redis.Redis:
        """A client; no retries, so a refused login fails at once instead of backing off."""
        return redis.Redis(port=self.port, password=self.password if password is None else password,
                           socket_timeout=5, decode_responses=True, retry=Retry(NoBackoff(), 0))


@pytest.fixture(scope="module")
def compose_redis(compose, tmp_path_factory) -> Iterator[ComposeRedis]:
    server = ComposeRedis(
        command_list(compose["services"]["redis"]),
        tmp_path_factory.mktemp("compose-redis"),
        compose["services"]["redis"]["environment"]["REDISCLI_AUTH"],
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_redis(compose_redis: ComposeRedis) -> ComposeRedis:
    if compose_redis.process is None or compose_redis.process.poll() is not None:
        compose_redis.start()
    compose_redis.client().flushall()
    return compose_redis


def container_env(compose: dict[str, Any], filled_env: dict[str, str], service: str,
                  redis_port: int, **local: str) -> dict[str, str]:
    """The environment a container of ``service`` gets, adapted to run on this machine."""
    env = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG", "TMPDIR")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(filled_env)  # env_file: .env
    env.update({key: str(value) for key, value in compose["services"][service]["environment"].items()})
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    env["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"  # the `redis` host is Docker's DNS
    env.update(TELEGRAM_BOT_TOKEN="", FACEIT_API_KEY="", SENTRY_DSN="")  # stay offline
    env.update(local)
    return env


def _run_in_image_dir(
    command: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run like the image does: from the code directory, `python` being our interpreter."""
    if command and command[0] == "python":
        command = [sys.executable, *command[1:]]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    if command[0] == "python":
        command = [sys.executable, *command[1:]]
    elif command[0] == "dramatiq":
        command = [str(Path(sys.executable).parent / "dramatiq"), *command[1:]]
    handle = log.open("wb")
    # A session of its own, as a container's processes are: _kill ends a pool's children with it.
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _kill(process: subprocess.Popen) -> None:
    """End ``process`` and every process it started (a worker pool's children outlived a kill of
    the parent alone when a test failed)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _stop_gracefully(process: subprocess.Popen, log: Path) -> int:
    """SIGTERM, as Docker sends it (stop_signal), and the exit status within STOP_TIMEOUT."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill(process)
        pytest.fail(f"no exit {STOP_TIMEOUT}s after SIGTERM:\n{_tail(log)}")


# --- Redis ----------------------------------------------------------------------------------


def test_redis_runs_with_the_compose_command(fresh_redis: ComposeRedis) -> None:
    """The options are real redis-server options and take effect (a typo would stop it)."""
    client = fresh_redis.client()
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert int(client.config_get("maxmemory")["maxmemory"]) == 1024**3


def test_redis_refuses_clients_without_the_password(fresh_redis: ComposeRedis) -> None:
    with pytest.raises(redis.AuthenticationError):
        fresh_redis.client(password="").set("k", "v")
    with pytest.raises(redis.AuthenticationError):
        fresh_redis.client(password="wrong").ping()


def test_redis_refuses_writes_at_maxmemory_instead_of_evicting(fresh_redis: ComposeRedis) -> None:
    client = fresh_redis.client()
    client.set("queued-job", "must survive")
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", used + 64 * 1024)
    try:
        with pytest.raises(redis.ResponseError, match="maxmemory"):
            for index in range(10_000):
                client.set(f"filler:{index}", "x" * 1024)
        assert client.get("queued-job") == "must survive"
    finally:
        client.config_set("maxmemory", 1024**3)


@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli is not installed")
def test_redis_healthcheck_needs_a_real_pong(compose, fresh_redis: ComposeRedis) -> None:
    test = compose["services"]["redis"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    # The container's redis-cli talks to its own 127.0.0.1:6379; ours must use the private port.
    shell = test[1].replace("redis-cli", f"redis-cli -p {fresh_redis.port}")
    env = {"PATH": os.environ["PATH"], **compose["services"]["redis"]["environment"]}

    def healthcheck(**overrides: str) -> int:
        return subprocess.run(["sh", "-c", shell], env={**env, **overrides}, timeout=10).returncode

    assert healthcheck() == 0
    assert healthcheck(REDISCLI_AUTH="wrong") != 0  # redis-cli itself would exit 0 here
    fresh_redis.stop()
    assert healthcheck() != 0


# --- Healthchecks of our image ---------------------------------------------------------------


class _AuthOnlyHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="dashboard"')
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_dashboard_healthcheck_accepts_a_401_and_rejects_silence(compose) -> None:
    test = compose["services"]["dashboard"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AuthOnlyHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {"PATH": os.environ["PATH"], "QUEUE_DASHBOARD_PORT": str(server.server_address[1])}
        assert _run_in_image_dir(["python", "-c", test[3]], env, timeout=20).returncode == 0
    finally:
        server.shutdown()
        server.server_close()
    env["QUEUE_DASHBOARD_PORT"] = str(free_port())
    assert _run_in_image_dir(["python", "-c", test[3]], env, timeout=20).returncode != 0


@pytest.mark.parametrize("service", ["bot", "scheduler"])
def test_app_healthcheck_passes_only_when_redis_answers(compose, filled_env, fresh_redis, service) -> None:
    """A container's environment (URL without password + REDIS_PASSWORD) reaches the password Redis."""
    test = compose["services"][service]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    env = container_env(compose, filled_env, service, fresh_redis.port)
    result = _run_in_image_dir(test[1:], env)
    assert result.returncode == 0, result.stdout + result.stderr
    wrong = _run_in_image_dir(test[1:], {**env, "REDIS_PASSWORD": "wrong"})
    assert wrong.returncode != 0
    assert filled_env["REDIS_PASSWORD"] not in wrong.stdout + wrong.stderr
    fresh_redis.stop()
    down = _run_in_image_dir(test[1:], env, timeout=30)
    assert down.returncode != 0


# --- Our services' commands ------------------------------------------------------------------


def _wait_for(condition, timeout: float, what: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            pytest.fail(f"{what}: the process exited ({process.returncode}):\n{_tail(log)}")
        time.sleep(0.05)
    pytest.fail(f"{what}: not within {timeout}s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def test_worker_high_pool_runs_high_jobs_only_and_stops_on_sigterm(
    compose, filled_env, fresh_redis, tmp_path
) -> None:
    _require("actors/__init__.py")
    command = command_list(compose["services"]["worker-high"])
    command[command.index("--processes") + 1] = "1"  # one process is enough to prove the flags
    env = container_env(compose, filled_env, "worker-high", fresh_redis.port)
    namespace = env.get("DRAMATIQ_NAMESPACE", "dramatiq")

    sender = RedisBroker(host="127.0.0.1", port=fresh_redis.port, password=fresh_redis.password,
                         namespace=namespace)
    for queue in ("high", "low"):
        sender.declare_queue(queue)
        sender.enqueue(Message(queue_name=queue, actor_name=f"probe_{queue}", args=(time.time(),),
                               kwargs={}, options={}))
    sender.close()
    client = fresh_redis.client()
    assert client.llen(f"{namespace}:high") == 1 and client.llen(f"{namespace}:low") == 1

    healthcheck = compose["services"]["worker-high"]["healthcheck"]["test"]
    assert healthcheck[:3] == ["CMD", "python", "-c"]

    def healthy() -> bool:
        return _run_in_image_dir(healthcheck[1:], env, timeout=30).returncode == 0

    assert not healthy(), "healthy before any worker of this host runs"
    log = tmp_path / "worker-high.log"
    worker = _start(command, env, log)
    try:
        _wait_for(healthy, START_TIMEOUT, "worker healthcheck passing", worker, log)
        # Acked means run to its end: the message leaves the queue's message hash.
        def high_job_done() -> bool:
            return client.hlen(f"{namespace}:high.msgs") == 0

        _wait_for(high_job_done, START_TIMEOUT, "high job done", worker, log)
        # Dramatiq starts a consumer for exactly the queues the worker registers (its --queues):
        # none for `low`, so there is no fetch of it still to come.
        registry = WorkerRegistry(client, prefix=env.get("REDIS_KEY_PREFIX", "fb:"))
        assert [w.queues for w in registry.workers()] == [["high"]]
        # And a second high job run to its end: its consumers went round again after the first
        # job, and `low` (queued before the worker started) was there for all of that time.
        sender = RedisBroker(host="127.0.0.1", port=fresh_redis.port, password=fresh_redis.password,
                             namespace=namespace)
        sender.enqueue(Message(queue_name="high", actor_name="probe_high", args=(time.time(),), kwargs={},
                               options={}))
        sender.close()
        _wait_for(high_job_done, START_TIMEOUT, "the second high job done", worker, log)
        assert client.llen(f"{namespace}:low") == 1, "worker-high took a job from the low queue"
        status = _stop_gracefully(worker, log)
    finally:
        _kill(worker)
    assert status == 0, _tail(log)
    assert client.llen(f"{namespace}:low") == 1 and client.hlen(f"{namespace}:low.msgs") == 1
    assert not healthy(), "still healthy after the pool stopped"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Report a redirect as it is (an HTTPError with its status) instead of following it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def test_dashboard_requires_credentials_with_the_compose_environment(
    compose, filled_env, fresh_redis, tmp_path
) -> None:
    _require("dashboard/__main__.py")
    service = compose["services"]["dashboard"]
    port = free_port()
    # Inside the container it binds 0.0.0.0; tests bind only 127.0.0.1.
    env = container_env(compose, filled_env, "dashboard", fresh_redis.port,
                        QUEUE_DASHBOARD_HOST="127.0.0.1", QUEUE_DASHBOARD_PORT=str(port))
    log = tmp_path / "dashboard.log"
    dashboard = _start(command_list(service), env, log)
    url = f"http://127.0.0.1:{port}/"

    def answers() -> bool:
        try:
            urllib.request.urlopen(url, timeout=2)
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True

    try:
        _wait_for(answers, START_TIMEOUT, "dashboard answering", dashboard, log)
        # Without credentials: refused (401), or sent to the login form, never the page itself.
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.build_opener(_NoRedirect).open(url, timeout=5)
        if refused.value.code != 401:
            assert refused.value.code in (302, 303, 307), refused.value.code
            assert "login" in refused.value.headers.get("Location", ""), refused.value.headers
        user, password = filled_env["DASHBOARD_USER"], filled_env["DASHBOARD_PASSWORD"]
        login = b64encode(f"{user}:{password}".encode()).decode()
        request = urllib.request.Request(url, headers={"Authorization": f"Basic {login}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        healthcheck = _run_in_image_dir(["python", "-c", service["healthcheck"]["test"][3]], env, timeout=20)
        assert healthcheck.returncode == 0
        status = _stop_gracefully(dashboard, log)
    finally:
        _kill(dashboard)
    assert status == 0, _tail(log)


def test_two_scheduler_replicas_run_side_by_side_and_stop_on_sigterm(
    compose, filled_env, fresh_redis, tmp_path
) -> None:
    _require("scheduler.py")
    service = compose["services"]["scheduler"]
    replicas = service["deploy"]["replicas"]
    env = container_env(compose, filled_env, "scheduler", fresh_redis.port)
    logs = [tmp_path / f"scheduler-{n}.log" for n in range(replicas)]
    processes = [_start(command_list(service), env, log) for log in logs]
    try:
        # Both boot and stay up: the one that is not leader must wait, not crash or exit.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            for process, log in zip(processes, logs, strict=True):
                if process.poll() is not None:
                    pytest.fail(f"a scheduler replica exited ({process.returncode}):\n{_tail(log)}")
            time.sleep(0.1)
        statuses = [_stop_gracefully(process, log) for process, log in zip(processes, logs, strict=True)]
    finally:
        for process in processes:
            _kill(process)
    assert statuses == [0] * replicas, [log.read_text()[-2000:] for log in logs]

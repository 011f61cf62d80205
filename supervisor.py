"""``make run``: the whole local system as one supervised process tree.

Reads the settings as every process does (the settings file, the environment over it), then
starts, in order: Redis (embedded, AOF under ``./var/redis``, when no ``REDIS_URL`` is in the
environment and the settings file's is the shipped one), the sandbox FACEIT API (when no
``FACEIT_API_KEY`` is set) and the sandbox Bot API (when no ``TELEGRAM_BOT_TOKEN`` is set), then
a ``high``-only worker pool, a ``default low`` pool (both named with ``QUEUE_NAME_PREFIX``), the
scheduler, the bot and the dashboard. Every output line is prefixed with its process's name. A
process that dies is reported and restarted with a growing pause (1 s … 30 s). Ctrl-C, SIGTERM
or SIGHUP (the terminal closed) stops everything in reverse order: producers first, then the workers (which finish
their running jobs, up to 10 minutes, and put prefetched ones back; a second Ctrl-C stops them
at once, and what they ran comes back on the next start), then the sandboxes, then Redis (its AOF
flushed). A supervisor killed outright takes its children along (:mod:`queues.parent_death`).
It prints where to look: the dashboard and, in sandbox mode, the chat.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from queues.parent_death import END_WITH_PARENT_ENV, stop_with_parent
from queues.priorities import QueuePriority, queue_name

ROOT = Path(__file__).resolve().parent
SANDBOX_FACEIT_KEY = "sandbox-key"
DEFAULT_STOP_TIMEOUT = 10.0
#: Seconds a worker pool may take to stop: Dramatiq's own shutdown timeout (10 minutes: the
#: longest queue time limit) for its running jobs to end, and a margin.
WORKER_STOP_TIMEOUT = 630.0
#: A pool's worker processes end with their dramatiq parent (middleware/stop_signals.py): killed
#: with the supervisor, it takes them along; their jobs come back through the dead-worker sweep.
POOL_ENV = {END_WITH_PARENT_ENV: "1"}
#: Seconds within which a second stop signal is the first one again, not "hurry".
REPEAT_WINDOW = 1.0


@dataclass
class Child:
    """One supervised process: how to start it and its restart bookkeeping."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    #: What it gets when the supervisor dies: SIGTERM (a quick clean stop), or SIGKILL for a worker
    #: pool, whose clean stop waits for its jobs with nobody left to read its output.
    parent_death_signal: int = signal.SIGTERM
    process: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = 0.0
    next_start: float = 0.0


def port_is_free(port: int) -> bool:
    """Whether a server could listen on ``port`` now. As the servers do (Redis, aiohttp), with
    SO_REUSEADDR: a port whose last connections linger in TIME_WAIT after a stop is free; without
    it, a restart within a minute moved every port, the bookmarked chat URL and REDIS_URL too."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


#: The exit status of a process that refused its settings or could not take its address (one
#: line said why): restarting it would only say the same again.
CONFIG_REFUSED = 2


def pick_port(preferred: int) -> int:
    if port_is_free(preferred):
        return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def restart_delay(restarts: int) -> float:
    """Seconds before starting again what exited ``restarts`` times in a row: 1, 2, 4 … at most 30."""
    return min(30.0, 2.0 ** restarts)


class Supervisor:
    """Starts the children, relays their output, restarts the dead, stops all on a signal."""

    def __init__(self, children: list[Child], *, base_env: dict[str, str], out=sys.stdout,
                 redis_server: Any = None) -> None:
        self.children = children
        self.base_env = base_env
        self.out = out
        # The embedded Redis (a queues.redis_server.RedisServer), watched as the children are:
        # started again, on its port and AOF, when it dies (every process waits on it meanwhile).
        self.redis_server = redis_server
        self._redis_restarts = 0
        self._redis_next_start = 0.0
        self.stopping = threading.Event()
        self.hurry = threading.Event()  # a second Ctrl-C: stop what is left at once
        self._first_signal = 0.0
        self._print_lock = threading.RLock()  # say() runs in the signal handler too, maybe inside say()

    def say(self, name: str, line: str) -> None:
        with self._print_lock:
            try:
                self.out.write(f"[{name:<18}] {line.rstrip()}\n")
                self.out.flush()
            except (OSError, ValueError):  # the terminal is gone (closed, SSH dropped): stop all the same
                pass

    def _relay(self, child: Child, stream) -> None:
        for raw in iter(stream.readline, b""):
            self.say(child.name, raw.decode("utf-8", "replace"))
        stream.close()

    def start(self, child: Child) -> None:
        env = {**self.base_env, **child.env}
        child.process = subprocess.Popen(
            child.argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=stop_with_parent(child.parent_death_signal),  # a killed supervisor takes them along
        )
        child.started_at = time.monotonic()
        threading.Thread(target=self._relay, args=(child, child.process.stdout), daemon=True).start()
        self.say("supervisor", f"started {child.name} (pid {child.process.pid})")

    def watch(self) -> None:
        """Restart children that exit, with backoff, until asked to stop."""
        while not self.stopping.is_set():
            now = time.monotonic()
            for child in self.children:
                proc = child.process
                if proc is not None and proc.poll() is not None:
                    code = proc.returncode
                    child.process = None
                    if code == CONFIG_REFUSED:  # it would refuse again: say so once, not every 30 s
                        self.say("supervisor", f"{child.name} refused its configuration (exit {code}); not "
                                 "restarted: fix what it said above and run again")
                        continue
                    if now - child.started_at > 60:
                        child.restarts = 0  # it had been healthy for a while
                    delay = restart_delay(child.restarts)
                    child.restarts += 1
                    child.next_start = now + delay
                    self.say("supervisor", f"{child.name} exited with {code}; restarting in {delay:.0f} s")
                elif proc is None and child.next_start and now >= child.next_start:
                    child.next_start = 0.0
                    self.start(child)
            if self.redis_server is not None:
                self._watch_redis(now)
            self.stopping.wait(0.2)

    def _watch_redis(self, now: float) -> None:
        """Start the embedded Redis again when it died (its AOF brings the data back), with
        backoff when it will not start. Nothing else restarts it: jobs, the bot and the dashboard
        would wait on it for ever, and a Ctrl-C hung on workers retrying to record their jobs."""
        server = self.redis_server
        process = server.process
        if process is not None and process.poll() is not None:
            server.process = None
            self._redis_next_start = now
            self.say("supervisor", f"Redis exited with {process.returncode}; starting it again on port "
                     f"{server.port} (its AOF keeps the data)")
        if server.process is not None or now < self._redis_next_start:
            return
        try:
            server.start()
        except (OSError, RuntimeError) as exc:
            delay = restart_delay(self._redis_restarts)
            self._redis_restarts += 1
            self._redis_next_start = time.monotonic() + delay
            self.say("supervisor", f"Redis did not start ({exc}); trying again in {delay:.0f} s")
            return
        self._redis_restarts = 0
        self.say("supervisor", f"Redis started again (pid {server.process.pid})")

    def on_signal(self, signum: int, frame: object = None) -> None:
        """The first Ctrl-C (SIGTERM, SIGHUP) stops everything in order; another one, a moment
        later, stops what is left at once. A repeat within REPEAT_WINDOW is the same stop (a
        terminal and a process-group kill may deliver one signal twice)."""
        now = time.monotonic()
        if not self.stopping.is_set():
            self._first_signal = now
            self.stopping.set()
        elif now - self._first_signal > REPEAT_WINDOW and not self.hurry.is_set():
            self.hurry.set()
            self.say("supervisor", "stopping the rest at once: running jobs come back on the next start")

    def stop_all(self) -> None:
        """Stop in reverse start order: each gets SIGTERM, then SIGKILL after its timeout (at
        once after a second Ctrl-C)."""
        self.stopping.set()
        for child in reversed(self.children):
            proc = child.process
            if proc is None or proc.poll() is not None:
                continue
            patient = child.stop_timeout > DEFAULT_STOP_TIMEOUT and not self.hurry.is_set()
            self.say("supervisor", f"stopping {child.name}" + (
                f" (its running jobs may take up to {child.stop_timeout / 60:.0f} min to finish; "
                "Ctrl-C again stops it at once)" if patient else ""))
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + child.stop_timeout
            while proc.poll() is None and time.monotonic() < deadline and not self.hurry.wait(0.1):
                pass
            if proc.poll() is None:
                why = "asked to hurry" if self.hurry.is_set() else f"did not stop in {child.stop_timeout:.0f} s"
                self.say("supervisor", f"{child.name} {why}; killing it")
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()


def hold_run_lock(directory: Path) -> IO[str] | None:
    """One run per Redis folder: two embedded Redis servers on one AOF would interleave their
    writes in it. Returns the lock file, held as long as it stays open (this process's life),
    or None when another run holds it (its pid is in the file)."""
    directory.mkdir(parents=True, exist_ok=True)
    handle = open(directory / "run.lock", "a+")  # noqa: SIM115 (held open on purpose)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def run_lock_holder(directory: Path) -> str:
    try:
        return (directory / "run.lock").read_text().strip() or "?"
    except OSError:
        return "?"


def uses_own_redis(env: dict[str, str], settings: Any) -> bool:
    """Whether ``make run`` runs its own Redis: no ``REDIS_URL`` in the environment, and the
    settings file's is the shipped default (an operator's file that names a Redis is obeyed)."""
    if env.get("REDIS_URL"):
        return False
    from settings import DEFAULT_SETTINGS_FILE

    with open(DEFAULT_SETTINGS_FILE, "rb") as shipped:
        return settings.redis_url == tomllib.load(shipped)["REDIS_URL"]


def worker_argv(processes: int, threads: int, queues: list[str]) -> list[str]:
    """The command line of a worker pool: ``processes`` × ``threads`` (QUEUE_WORKER_THREADS, which
    the pools once ignored for a fixed 8) on ``queues`` (every queue when empty); ``admin.py work``
    runs the same."""
    return [sys.executable, "-m", "dramatiq", "actors", "--processes", str(processes), "--threads", str(threads),
            *(["--queues", *queues] if queues else [])]


def build_children(args: argparse.Namespace, settings: Any) -> tuple[list[Child], dict[str, str], list[str]]:
    """Decide what to run from the settings (the settings file and the environment over it):
    returns children, extra env and notes."""
    py = sys.executable
    children: list[Child] = []
    extra: dict[str, str] = {}
    notes: list[str] = []
    if not settings.faceit_api_key.get_secret_value():
        port = pick_port(args.faceit_port)
        children.append(Child("faceit-sandbox", [py, "-m", "sandbox.faceit_api", "--port", str(port)]))
        extra.update(FACEIT_API_URL=f"http://127.0.0.1:{port}/data/v4", FACEIT_API_KEY=SANDBOX_FACEIT_KEY)
        notes.append(f"FACEIT: sandbox Data API on http://127.0.0.1:{port}/data/v4 (no FACEIT_API_KEY set)")
    if not settings.telegram_bot_token.get_secret_value():
        from sandbox.telegram_api import SANDBOX_BOT_TOKEN

        port = pick_port(args.telegram_port)
        children.append(Child("telegram-sandbox", [py, "-m", "sandbox.telegram_api", "--port", str(port)]))
        extra.update(TELEGRAM_API_URL=f"http://127.0.0.1:{port}", TELEGRAM_BOT_TOKEN=SANDBOX_BOT_TOKEN)
        notes.append(f"chat with the bot: http://127.0.0.1:{port}/chat (sandbox Bot API; no TELEGRAM_BOT_TOKEN set)")
    high, default, low = (queue_name(priority, settings) for priority in
                          (QueuePriority.HIGH, QueuePriority.DEFAULT, QueuePriority.LOW))

    def pool(name: str, queues: list[str], env: dict[str, str]) -> Child:
        """A worker pool: Dramatiq's own stop time, and SIGKILL when the supervisor dies."""
        return Child(name, worker_argv(args.workers, settings.queue_worker_threads, queues), env={**env, **POOL_ENV},
                     stop_timeout=WORKER_STOP_TIMEOUT, parent_death_signal=signal.SIGKILL)

    children += [
        # The high pool polls an idle queue every 100 ms (not up to 1 s): analyses start at once.
        pool("worker-high", [high], {"dramatiq_worker_timeout": "100"}),
        pool("worker-default-low", [default, low], {}),
        Child("scheduler", [py, "scheduler.py"]),
        Child("bot", [py, "-m", "bot"]),
    ]
    if settings.queue_dashboard_enabled:
        # Its port moves when taken, as the sandboxes' do (a second run beside this one).
        port = pick_port(settings.queue_dashboard_port)
        extra["QUEUE_DASHBOARD_PORT"] = str(port)
        notes.insert(0, f"dashboard: http://{settings.queue_dashboard_host}:{port}/")
        children.append(Child("dashboard", [py, "-m", "dashboard"]))
    return children, extra, notes


def unread_dotenv_note(folder: Path) -> str | None:
    """What to say when ``folder`` holds a ``.env``: only Compose reads one, so a token or Redis
    written there is not used by ``make run``, which would quietly run the sandboxes instead (the
    first version's guide told operators to put their settings in ``.env``)."""
    if not (folder / ".env").is_file():
        return None
    return ".env: not read by make run (Compose reads it); to use it: set -a; . ./.env; set +a; make run"


#: The exit status of a bad option or RUN_* variable (a usage error, as ``admin.py`` has it).
EXIT_USAGE = 2


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line on stderr and exit status 2, as ``admin.py`` says them."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see: {self.prog} --help)\n")


#: Each port option: the environment variable that gives its default, that default, what it is.
PORT_OPTIONS = (("--redis-port", "RUN_REDIS_PORT", 16379, "port of the embedded Redis"),
                ("--faceit-port", "RUN_FACEIT_PORT", 8081, "port of the sandbox FACEIT Data API"),
                ("--telegram-port", "RUN_TELEGRAM_PORT", 8082, "port of the sandbox Bot API and its chat"))


def port_number(text: str) -> int:
    """A TCP port, 1 to 65535 (argparse's ``type``): ``abc`` raised a ValueError traceback, and
    99999 an OverflowError from bind() after Redis had already been started."""
    try:
        port = int(str(text).strip())
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535 (got {text!r})")
    return port


def parse_args(argv: list[str] | None, prog: str | None = None) -> argparse.Namespace:
    """The options, every port checked (the command line's and the RUN_*_PORT variables') before
    anything starts: a bad one ends the run with one line on stderr and exit status 2."""
    parser = OneLineParser(prog=prog or "supervisor.py", description="Run the whole system locally, supervised "
                           "(what `make run` does). A port that is taken moves to a free one.")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes per worker pool (default 1; threads per process: QUEUE_WORKER_THREADS)")
    parser.add_argument("--redis-dir", type=Path, default=Path(os.environ.get("RUN_REDIS_DIR", ROOT / "var" / "redis")),
                        help="where the embedded Redis keeps its AOF (default RUN_REDIS_DIR, else ./var/redis)")
    for option, variable, default, what in PORT_OPTIONS:
        parser.add_argument(option, type=port_number, default=None, help=f"{what} (default {variable}, else {default})")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"argument --workers: must be 1 or more (got {args.workers})")
    for option, variable, default, _ in PORT_OPTIONS:
        dest = option.removeprefix("--").replace("-", "_")
        text = os.environ.get(variable, "").strip()
        if getattr(args, dest) is None:
            try:
                setattr(args, dest, port_number(text) if text else default)
            except argparse.ArgumentTypeError as exc:
                parser.exit(EXIT_USAGE, f"{parser.prog}: {variable} {exc}\n")
    return args


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = parse_args(argv, prog)

    from settings import SettingsError, load_settings

    env = dict(os.environ)
    try:
        settings = load_settings()  # the settings file with the environment over it: what to run
    except SettingsError as exc:
        print(f"settings error: {exc}", file=sys.stderr)
        return 2
    redis_server = None
    run_lock = None
    if uses_own_redis(env, settings):
        from queues.redis_server import RedisServer

        run_lock = hold_run_lock(args.redis_dir)
        if run_lock is None:
            print(f"make run: another run (pid {run_lock_holder(args.redis_dir)}) uses {args.redis_dir}; stop it "
                  "first (Ctrl-C there), or give this one its own RUN_REDIS_DIR and ports", file=sys.stderr)
            return 2

        redis_server = RedisServer(args.redis_dir, port=pick_port(args.redis_port), stop_with_parent=True)
        redis_server.start()
        env["REDIS_URL"] = redis_server.url
    children, extra, notes = build_children(args, settings)
    env.update(extra)
    os.environ.update(env)
    supervisor = Supervisor(children, base_env=env, redis_server=redis_server)
    if redis_server:
        supervisor.say("supervisor", f"Redis: embedded on 127.0.0.1:{redis_server.port} (AOF in {args.redis_dir})")

    # SIGHUP: the terminal was closed or the SSH session dropped. The children run in sessions
    # of their own and would not hear of it: without this they kept running unsupervised.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, supervisor.on_signal)
    for child in children:
        supervisor.start(child)
        if child.name.endswith("sandbox"):
            port = int(child.argv[-1])
            if not wait_for_port(port):
                supervisor.say("supervisor", f"{child.name} did not open port {port}")
    if redis_server:  # the admin tool reads REDIS_URL, whose default is not this Redis
        from settings import redact_url

        notes.append(f"admin tool: REDIS_URL={redact_url(redis_server.url)} .venv/bin/python admin.py status")
    dotenv = unread_dotenv_note(Path.cwd())
    if dotenv:
        notes.append(dotenv)
    for line in [*notes, "Ctrl-C stops everything (running jobs finish first; Ctrl-C again: at once)."]:
        supervisor.say("supervisor", line)
    try:
        supervisor.watch()
    finally:
        supervisor.stop_all()
        if redis_server and redis_server.process is not None and redis_server.process.poll() is None:
            redis_server.stop()
            supervisor.say("supervisor", "Redis stopped (AOF flushed)")
        elif redis_server:
            supervisor.say("supervisor", "Redis was not running (its AOF holds what it had written)")
        if run_lock is not None:
            run_lock.close()
    supervisor.say("supervisor", "all stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

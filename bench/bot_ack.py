"""How fast the bot acknowledges a burst: N users send ``/analyze`` at the same moment.

``python -m bench.bot_ack [--users 100] [--rounds 3] [--processes 2] [--threads 8]``

The whole system runs as in production, each part in its own process: a private Redis, the
sandbox Bot API and the sandbox FACEIT API, a worker pool (polling every 100 ms and at
``WORKER_NICE``, as the high pool of ``make run``), and ``python -m bot`` (long polling).
After an unmeasured warm-up burst, each round N fresh users send ``/analyze <match>`` at the same
moment (:class:`BurstUsers`: one kept-alive connection per user, opened before the rounds; a
round writes every user's request back to back from one thread; matches drawn from the
sandbox's pre-game and finished rooms, so some requests coalesce onto one job). All times
come from the sandbox's own clock: from a user's message to the bot's first reply (the
queued line with the job id), and to the final result replacing it. Telegram's limits stay at
the shipped 1/s per chat and 30/s overall; the FACEIT rate limit is raised (``--faceit-rate``)
so the final-result figure measures our pipeline, not a quota.

Then ``--solo`` more users ask one at a time, for the latency without a burst around it.

``--floor`` runs :mod:`bench.floor_bot` in place of the bot: the least any bot must do for a
first reply, so the figure shows what the sandbox and the simulated users on the same cores leave
of the target (no job is made: no final results, and the workers stay idle).

``--services`` runs :mod:`bench.services_bot` in place of the bot: our services' work for each
``/analyze`` (language, limits, job start, the queued line, the answer recorded) without aiogram,
every start of a burst at once: the best a first reply outside aiogram could do with our job model.

``--cpu-window`` also reads each process's CPU time every 2 ms and prints what each used from
the burst's first message to its last first reply, from Linux's nanosecond counters (the CPU line above it reads psutil's
10 ms ticks at the 0.2 s polls, so it holds what followed too). The reading costs CPU on the same
cores, so the latencies of such a run are not the reference.

Prints one line per figure; writes ``bench/results/bot_ack.json``.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from bench.common import median, percentile, private_redis, write_results
from queues.redis_server import free_port

ROOT = Path(__file__).resolve().parents[1]
TARGET_P99_MS = 50.0


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _wait(check, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up within {timeout} s")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _is_final(text: str | None) -> bool:
    return bool(text) and not text.startswith("⏳") and not text.startswith("🤝")


def cpu_seconds(roles: dict[str, list[int]]) -> dict[str, float]:
    """CPU time (user + system) each role's processes have used so far; a gone process counts 0."""
    totals = {}
    for role, pids in roles.items():
        total = 0.0
        for pid in pids:
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        totals[role] = total
    return totals


class WindowCpu:
    """Each role's CPU time over a window known only afterwards (``--cpu-window``).

    A thread reads every ``interval`` seconds how long each role's threads have run (Linux
    ``/proc/<pid>/task/<tid>/schedstat``, in ns; psutil's ``cpu_times`` counts 10 ms ticks, a
    tenth of a ms per user of a 100-user burst), stamped with ``time.time()``, the clock the
    sandbox stamps its events with. :meth:`between` interpolates two readings. A thread started
    since is found within 25 readings (50 ms) and counted from its first reading (what it ran before is
    lost, not put in the window as a jump); one that exits loses what it ran since its last
    reading. The reading costs CPU in this process, on the cores the system under test shares:
    the latency figures of a run with it are not the reference.
    """

    def __init__(self, roles: dict[str, list[int]], interval: float = 0.002) -> None:
        if not Path("/proc/self/schedstat").exists():
            raise SystemExit("--cpu-window needs Linux's /proc/<pid>/schedstat, which this system lacks")
        self.roles = roles
        self.interval = interval
        self._files: dict[str, dict[str, int]] = {role: {} for role in roles}  # role → thread's file → fd
        self._gone: dict[str, int] = {role: 0 for role in roles}  # what exited threads had run
        self._last: dict[str, int] = {}  # each open thread's last reading
        self._readings: list[tuple[float, dict[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-window", daemon=True)
        self._thread.start()

    def _open_threads(self) -> None:
        """Open the schedstat file of each thread not yet open (kept open: a read is one pread)."""
        for role, pids in self.roles.items():
            for pid in pids:
                try:
                    tids = os.listdir(f"/proc/{pid}/task")
                except OSError:
                    continue
                for tid in tids:
                    path = f"/proc/{pid}/task/{tid}/schedstat"
                    if path not in self._files[role]:
                        try:
                            fd = os.open(path, os.O_RDONLY)
                            ran = int(os.pread(fd, 64, 0).split()[0])
                        except (OSError, ValueError, IndexError):
                            continue
                        self._files[role][path] = fd
                        self._last[path] = ran
                        if self._readings:  # found late: counted from now on, not as a jump
                            self._gone[role] -= ran

    def _ran_ns(self, role: str) -> int:
        files = self._files[role]
        for path, fd in list(files.items()):
            try:
                self._last[path] = int(os.pread(fd, 64, 0).split()[0])
            except (OSError, ValueError, IndexError):  # the thread exited: what it had run stays counted
                del files[path]
                os.close(fd)
                self._gone[role] += self._last.pop(path, 0)
        return self._gone[role] + sum(self._last.get(path, 0) for path in files)

    def _run(self) -> None:
        count = 0
        while not self._stop.wait(self.interval):
            if count % 25 == 0:  # threads started since (a worker's, lazily); listing every 10 ms cost the p99 ~90 ms here
                self._open_threads()
            count += 1
            self._readings.append((time.time(), {role: self._ran_ns(role) for role in self.roles}))

    def _at(self, t: float) -> dict[str, float]:
        readings = self._readings
        index = min(max(1, bisect.bisect_left(readings, t, key=lambda reading: reading[0])), len(readings) - 1)
        (t0, a), (t1, b) = readings[index - 1], readings[index]
        share = 0.0 if t1 == t0 else min(1.0, max(0.0, (t - t0) / (t1 - t0)))
        return {role: a[role] + (b[role] - a[role]) * share for role in a}

    def between(self, start: float, end: float) -> dict[str, float]:
        """Milliseconds of CPU each role used from ``start`` to ``end`` (epoch seconds), once a
        reading at or after ``end`` is in (read every 2 ms; one past ``end`` would be cut short)."""
        deadline = time.monotonic() + 1.0
        while not self._readings or self._readings[-1][0] < end:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the CPU reading thread stopped: its figures would end early")
            time.sleep(0.002)
        if len(self._readings) < 2 or self._readings[0][0] > start:
            raise RuntimeError("no CPU reading from before the window's start")
        first, last = self._at(start), self._at(end)
        return {role: (last[role] - first[role]) / 1e6 for role in first}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        for files in self._files.values():
            for fd in files.values():
                os.close(fd)


class BurstUsers:
    """Simulated users who send their messages at the same moment.

    Each of ``size`` users has its own kept-alive TCP connection to the sandbox, opened before any
    round. A round writes every user's whole HTTP request, built beforehand, on that user's
    connection, back to back from one thread, and only then reads the answers. So each message
    is a client of its own to the sandbox, as before, but the load generator no longer costs what
    it measures: the earlier version (one thread per user, released by a barrier, each through
    ``http.client``) used as much CPU within the burst as the floor bot itself (session 15:
    66–127 ms against 56–62), on the same two cores as the system under test.
    """

    def __init__(self, port: int, size: int) -> None:
        self.port = port
        self.size = size
        self._socks = [self._connect() for _ in range(size)]

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _request(self, body: bytes) -> bytes:
        return (b"POST /_sandbox/updates HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body)) + body

    @staticmethod
    def _read_answer(sock: socket.socket) -> tuple[int, bytes]:
        """One HTTP response (status, body) from ``sock``; the sandbox answers with Content-Length."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the sandbox closed the connection")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = next((int(line.split(b":", 1)[1]) for line in lines[1:]
                       if line.lower().startswith(b"content-length:")), None)
        if length is None:  # (the sandbox always sends one; without it the body's end is unknown)
            raise RuntimeError(f"the sandbox answered without Content-Length: {head[:200]!r}")
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the sandbox closed the connection")
            body += chunk
        return status, body[:length]

    def send(self, messages: list[tuple[int, str]]) -> None:
        """Each (user id, text) from its own user, all written at once; returns when all were taken."""
        if len(messages) > self.size:
            raise ValueError(f"{len(messages)} messages for {self.size} simulated users")
        requests = [self._request(json.dumps({"user_id": user, "text": text, "language_code": "en"}).encode())
                    for user, text in messages]
        for index, request in enumerate(requests):
            try:
                self._socks[index].sendall(request)
            except ConnectionError:  # the sandbox closed an idle keep-alive connection: open a new one
                self._socks[index].close()
                self._socks[index] = self._connect()
                self._socks[index].sendall(request)
        for index, request in enumerate(requests):
            try:
                status, answer = self._read_answer(self._socks[index])
            except ConnectionError:  # closed idle before it read ours: the message was not taken (a
                # timeout is no such proof, and raises)
                self._socks[index].close()
                self._socks[index] = self._connect()
                self._socks[index].sendall(request)
                status, answer = self._read_answer(self._socks[index])
            if status != 200:
                raise RuntimeError(f"the sandbox refused a message: HTTP {status}: {answer[:200]!r}")

    def close(self) -> None:
        for sock in self._socks:
            sock.close()


def run_round(tg: Any, burst: BurstUsers, users: list[int], matches: list[str], timeout: float,
              roles: dict[str, list[int]] | None = None, want_final: bool = True,
              window_cpu: WindowCpu | None = None) -> dict[str, Any]:
    """Inject one burst and read the latencies back from the sandbox's timeline.

    The timeline is read incrementally (only events after the last one seen): re-reading the
    whole round every 0.2 s made the observer half of the sandbox's CPU during the burst it
    measures, on the same two cores. With ``roles`` (name → pids), also the CPU each used from
    the burst's start until every first reply was seen (read at the 0.2 s polls, so it includes
    up to 0.2 s of what followed). With ``window_cpu``, also what each used from the
    first message to the last first reply. Without ``want_final``, the round ends at the last first reply.
    """
    roles = roles or {}
    cursor = tg.feed(after=2**62)["last_seq"]  # nothing after it: just where the timeline ends now
    cpu_before = cpu_seconds(roles)
    cpu_burst: dict[str, float] = {}
    burst.send([(user, f"/analyze {match}") for user, match in zip(users, matches, strict=True)])
    deadline = time.monotonic() + timeout
    wanted = set(users)
    asked: dict[int, float] = {}
    first: dict[int, float] = {}
    final: dict[int, float] = {}
    while True:
        for event in tg.feed(after=cursor)["events"]:
            cursor = max(cursor, event["seq"])
            chat = event.get("chat_id")
            if chat not in wanted:
                continue
            if event["kind"] == "user_message":
                asked.setdefault(chat, event["ts"])
            elif event["kind"] == "sent":
                first.setdefault(chat, event["ts"])
            elif event["kind"] == "edited" and _is_final(event.get("text")):
                final.setdefault(chat, event["ts"])
        if not cpu_burst and len(first) == len(users):
            cpu_after = cpu_seconds(roles)
            cpu_burst = {role: (cpu_after[role] - cpu_before[role]) * 1000 for role in roles}
        done = len(final) == len(users) if want_final else len(first) == len(users)
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    start = min(asked.values(), default=0.0)
    window_end = max(first.values(), default=start)
    return {
        "window_cpu_ms": window_cpu.between(start, window_end) if window_cpu and first else {},
        # How the burst reached the sandbox, and when the bot's last first reply went out.
        "arrival_spread_ms": (max(asked.values(), default=start) - start) * 1000,
        "last_first_reply_ms": (window_end - start) * 1000,
        "first_ms": [(first[u] - asked[u]) * 1000 for u in users if u in first and u in asked],
        "final_s": [final[u] - asked[u] for u in users if u in final and u in asked],
        "missing_first": [u for u in users if u not in first],
        "missing_final": [u for u in users if u not in final] if want_final else [],
        "cpu_ms": cpu_burst,
    }


def run_solo(tg: Any, users: list[int], matches: list[str], timeout: float = 10) -> list[float]:
    """One user at a time (each waits for its reply): the latency without a burst around it."""
    latencies = []
    for user, match in zip(users, matches, strict=True):
        tg.inject(user, f"/analyze {match}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = tg.feed(chat_id=user, timeout=1)["events"]
            asked = next((e["ts"] for e in events if e["kind"] == "user_message"), None)
            first = next((e["ts"] for e in events if e["kind"] == "sent"), None)
            if asked is not None and first is not None:
                latencies.append((first - asked) * 1000)
                break
    return latencies


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2, help="worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker process")
    parser.add_argument("--faceit-rate", type=float, default=1000.0, help="FACEIT_RATE_LIMIT for the run")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for each round's results")
    parser.add_argument("--solo", type=int, default=20, help="users who then ask one at a time (no burst)")
    parser.add_argument("--cpu-window", action="store_true",
                        help="also print each process's CPU time within the burst (first message to last first "
                             "reply), read every 2 ms: the reading costs CPU here, so such a run's latencies are "
                             "not the reference")
    yardstick = parser.add_mutually_exclusive_group()
    yardstick.add_argument("--floor", action="store_true",
                           help="run bench.floor_bot instead of the bot: what the machine leaves of the target")
    yardstick.add_argument("--services", action="store_true",
                           help="run bench.services_bot instead of the bot: our services' work without aiogram")
    args = parser.parse_args(argv)

    logs = ROOT / "bench" / "results" / "bot_ack-logs"
    logs.mkdir(parents=True, exist_ok=True)
    for old in logs.glob("*.log"):  # readiness is read from these logs: start them empty
        old.unlink()
    server = private_redis()
    tg_port, faceit_port = free_port(), free_port()
    env = {**os.environ, "REDIS_URL": server.url, "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT),
           "TELEGRAM_API_URL": f"http://127.0.0.1:{tg_port}", "TELEGRAM_BOT_TOKEN": "",
           "FACEIT_API_URL": f"http://127.0.0.1:{faceit_port}/data/v4", "FACEIT_API_KEY": "sandbox-key",
           "FACEIT_RATE_LIMIT": str(args.faceit_rate), "FACEIT_RATE_BURST": str(int(args.faceit_rate)),
           "USER_JOBS_PER_MINUTE": "1000", "USER_MAX_ACTIVE_JOBS": "1000"}
    from sandbox.telegram_api import SANDBOX_BOT_TOKEN
    from tests.support.faceit_sandbox import FaceitSandbox
    from tests.support.telegram_sandbox import TelegramSandbox
    from tests.support.workers import WorkerPool

    env["TELEGRAM_BOT_TOKEN"] = SANDBOX_BOT_TOKEN
    procs = [
        _start([sys.executable, "-m", "sandbox.telegram_api", "--port", str(tg_port), "--log-level", "WARNING"], env,
               logs / "telegram.log"),
        _start([sys.executable, "-m", "sandbox.faceit_api", "--port", str(faceit_port)], env, logs / "faceit.log"),
    ]
    tg = TelegramSandbox(port=tg_port)
    faceit = FaceitSandbox()
    faceit.port = faceit_port
    pool = None
    burst = None
    window_cpu: WindowCpu | None = None
    try:
        _wait(lambda: tg.stats() is not None, "the Telegram sandbox")
        _wait(lambda: faceit.world() is not None, "the FACEIT sandbox")
        # Polling an idle queue every 100 ms, as the high pool of `make run` and Compose does: an
        # analysis starts while the burst is still being answered, as in production.
        pool = WorkerPool(queues=["high", "default", "low"], processes=args.processes, threads=args.threads,
                          modules=(), env={**env, "dramatiq_worker_timeout": "100"},
                          log_path=logs / "workers.log").start(wait=False)
        bot_module = "bench.floor_bot" if args.floor else "bench.services_bot" if args.services else "bot"
        bot = _start([sys.executable, "-m", bot_module], {**env, "LOG_LEVEL": "INFO"}, logs / "bot.log")
        procs.append(bot)
        _wait(lambda: "Run polling" in (logs / "bot.log").read_text(errors="replace"), "the bot", 90)
        pool.wait_ready(90)
        roles = {"bot": [bot.pid], "sandbox Bot API": [procs[0].pid], "sandbox FACEIT API": [procs[1].pid],
                 "workers": [pool.process.pid, *pool.worker_pids()], "redis": [server.process.pid],
                 "simulated users (this process)": [os.getpid()]}
        world = faceit.world()["matches"]
        rooms = [m for status, ids in world.items() if status not in ("CANCELLED", "ABORTED") for m in ids]
        ids = itertools.count(10_000_000)
        # A small unmeasured burst first: lazy imports and first-use model building are not latency.
        burst = BurstUsers(tg_port, args.users)
        want_final = not args.floor
        run_round(tg, burst, [next(ids) for _ in range(10)], rooms[:10], args.timeout, want_final=want_final)
        if args.cpu_window:
            window_cpu = WindowCpu(roles)
        rounds = []
        for number in range(args.rounds):
            users = [next(ids) for _ in range(args.users)]
            matches = [rooms[(i * 7 + number) % len(rooms)] for i in range(args.users)]
            rounds.append(run_round(tg, burst, users, matches, args.timeout, roles, want_final, window_cpu))
            time.sleep(1.0)
        if window_cpu is not None:  # its reading would cost the one-at-a-time runs CPU too
            window_cpu.stop()
            window_cpu = None
        solo_users = [next(ids) for _ in range(args.solo)]
        solo = run_solo(tg, solo_users, [rooms[i % len(rooms)] for i in range(args.solo)])
    finally:
        if window_cpu is not None:
            window_cpu.stop()
        if burst is not None:
            burst.close()
        for proc in procs:
            _stop(proc)
        if pool is not None:
            pool.stop(graceful=False)
        server.stop(flush_to_disk=False)

    first = [v for r in rounds for v in r["first_ms"]]
    final = [v for r in rounds for v in r["final_s"]]
    figures = {
        "setup": {**vars(args), "cpus": os.cpu_count(), "telegram_chat_rate": 1.0, "telegram_global_rate": 30.0},
        "first_reply_ms": {"p50": percentile(first, 50), "p99": percentile(first, 99), "max": max(first, default=0),
                           "n": len(first)},
        "final_result_s": {"p50": percentile(final, 50), "p99": percentile(final, 99), "max": max(final, default=0),
                           "n": len(final)},
        "rounds": [{"first_reply_ms_p50": percentile(r["first_ms"], 50), "first_reply_ms_p99": percentile(r["first_ms"], 99),
                    "final_result_s_p50": percentile(r["final_s"], 50), "arrival_spread_ms": r["arrival_spread_ms"],
                    "last_first_reply_ms": r["last_first_reply_ms"], "cpu_ms": r["cpu_ms"],
                    "window_cpu_ms": r["window_cpu_ms"]} for r in rounds],
        "solo_first_reply_ms": {"p50": percentile(solo, 50), "p99": percentile(solo, 99), "n": len(solo)},
        "missing": {"first_reply": sum(len(r["missing_first"]) for r in rounds),
                    "final_result": sum(len(r["missing_final"]) for r in rounds)},
        "target_first_reply_p99_ms": TARGET_P99_MS,
    }
    print(f"first reply p50: {figures['first_reply_ms']['p50']:.1f} ms")
    print(f"first reply p99: {figures['first_reply_ms']['p99']:.1f} ms (target {TARGET_P99_MS:.0f} ms)")
    spread = median([r["arrival_spread_ms"] for r in rounds])
    last = median([r["last_first_reply_ms"] for r in rounds])
    print(f"burst: the {args.users} messages reached the sandbox over {spread:.1f} ms; the last first reply "
          f"went out {last:.1f} ms after the first message (medians over rounds)")
    cpu = {role: median([r["cpu_ms"].get(role, 0.0) for r in rounds]) for role in rounds[0]["cpu_ms"]} if rounds else {}
    print("burst CPU until the last first reply was seen, per user (medians over rounds): "
          + ", ".join(f"{role} {ms / args.users:.2f} ms" for role, ms in cpu.items()))
    if args.cpu_window and rounds:
        window = {role: median([r["window_cpu_ms"].get(role, 0.0) for r in rounds]) for role in roles}
        print(f"CPU from the first message to the last first reply ({last:.1f} ms), medians over rounds, read every "
              "2 ms (this reading adds to the simulated users' figure and to the latencies): "
              + ", ".join(f"{role} {ms:.1f} ms" for role, ms in window.items()))
    if args.floor:
        print("final result: none (the floor bot makes no jobs)")
    else:
        print(f"final result p50: {figures['final_result_s']['p50']:.2f} s")
        print(f"final result p99: {figures['final_result_s']['p99']:.2f} s")
    if solo:
        print(f"first reply, one user at a time, p50: {figures['solo_first_reply_ms']['p50']:.1f} ms")
        print(f"first reply, one user at a time, p99: {figures['solo_first_reply_ms']['p99']:.1f} ms")
    print(f"missing: first reply {figures['missing']['first_reply']}, final result {figures['missing']['final_result']}")
    path = write_results("bot_ack_floor" if args.floor else "bot_ack_services" if args.services else "bot_ack", figures)
    print(f"results: {path.relative_to(ROOT)}")
    return figures


if __name__ == "__main__":
    main()

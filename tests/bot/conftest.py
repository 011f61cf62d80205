"""Fixtures for the bot's tests: the real ``python -m bot`` process, real workers, both sandboxes.

A module that needs the whole system uses :func:`start_stack` from a module-scoped fixture:
one bot process and one worker pool per module, shared by its tests (each test talks as its
own users, so they do not interfere). Timing is scaled (``tests/conftest.py``), and the
Telegram chat rate is raised unless a module asks otherwise.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from sandbox.telegram_api import SANDBOX_BOT_TOKEN
from tests.support.faceit_sandbox import FaceitSandbox
from tests.support.telegram_sandbox import (  # noqa: F401
    TelegramSandbox,
    telegram_sandbox,
    telegram_sandbox_server,
)
from tests.support.workers import WorkerPool

ROOT = Path(__file__).resolve().parents[2]
ADMIN_ID = 900_001
_user_ids = itertools.count(700_000)

Events = list[dict[str, Any]]


def new_user() -> int:
    """A user id no other test of the session uses."""
    return next(_user_ids)


class BotProcess:
    """``python -m bot`` as a subprocess with its log in a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready: str | None = "Run polling", timeout: float = 30) -> BotProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 (closed with the process)
        self.process = subprocess.Popen([sys.executable, "-m", "bot"], cwd=ROOT, env=self.env, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        if ready:
            self.wait_for_log(ready, timeout)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"bot exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"bot log never showed {text!r}:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code


class SandboxProcess(TelegramSandbox):
    """``python -m sandbox.telegram_api`` in a subprocess, driven like the in-thread one.

    For load (the fuzz test, the benchmark): the sandbox's CPU then does not share the test
    process's interpreter lock.
    """

    def __init__(self, log_path: Path, port: int | None = None) -> None:
        super().__init__(port=port)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> SandboxProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 (closed with the process)
        self.process = subprocess.Popen([sys.executable, "-m", "sandbox.telegram_api", "--port", str(self.port),
                                         "--log-level", "WARNING"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                self.stats()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sandbox did not start: {self.log_path.read_text()[-2000:]}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


def base_env(tg: TelegramSandbox, faceit: FaceitSandbox | None = None, **extra: str) -> dict[str, str]:
    env = {**os.environ, "TELEGRAM_API_URL": tg.base_url, "TELEGRAM_BOT_TOKEN": SANDBOX_BOT_TOKEN,
           "ADMIN_USER_IDS": str(ADMIN_ID), "TELEGRAM_CHAT_RATE": "20", "TELEGRAM_GLOBAL_RATE": "200",
           "USER_JOBS_PER_MINUTE": "5", "USER_MAX_ACTIVE_JOBS": "3", "BOT_MODE": "polling",
           "FACEIT_RATE_LIMIT": "1000", "FACEIT_RATE_BURST": "1000",
           "PYTHONPATH": str(ROOT)}
    if faceit is not None:
        env.update(faceit.env())
    env.update(extra)
    return env


@dataclass
class Stack:
    """A running system: sandboxes, Redis, workers and the bot process, with helpers to talk to it."""

    tg: TelegramSandbox
    faceit: FaceitSandbox
    redis: redis.Redis
    bot: BotProcess
    pool: WorkerPool | None
    world: dict[str, Any] = field(default_factory=dict)
    _matches: Iterator[str] | None = None

    # --- the user's side ----------------------------------------------------------------------

    def say(self, user_id: int, text: str, lang: str = "en") -> dict[str, Any]:
        return self.tg.inject(user_id, text, language_code=lang)

    def events(self, user_id: int) -> Events:
        return self.tg.messages(user_id)

    def wait(self, user_id: int, predicate: Callable[[Events], Any], timeout: float = 20) -> Any:
        return self.tg.wait_for(predicate, timeout=timeout, chat_id=user_id)

    def first_reply(self, user_id: int, timeout: float = 10) -> dict[str, Any]:
        return self.wait(user_id, lambda es: next((e for e in es if e["kind"] in ("sent", "photo")), None), timeout)

    def replies(self, user_id: int, count: int, timeout: float = 10) -> Events:
        """The first ``count`` messages the bot sent to the user (waits for them)."""

        def enough(events: Events) -> Events | None:
            sent = [e for e in events if e["kind"] == "sent"]
            return sent[:count] if len(sent) >= count else None

        return self.wait(user_id, enough, timeout)

    def final_of(self, user_id: int, message_id: int, timeout: float = 30) -> dict[str, Any]:
        """The job message once it shows no more progress (the result, or a failure/cancel note)."""
        return self.wait(user_id, lambda es: next((e for e in reversed(es) if e["message_id"] == message_id
                                                   and e["kind"] == "edited" and is_final_text(e["text"])), None),
                         timeout)

    # --- the system's side --------------------------------------------------------------------

    def job_ids_of(self, user_id: int) -> list[str]:
        return self.redis.zrange(f"fb:jobs:user:{user_id}", 0, -1)

    def job(self, job_id: str) -> dict[str, str]:
        return self.redis.hgetall(f"fb:job:{job_id}")

    def wait_job(self, job_id: str, status: str | tuple[str, ...], timeout: float = 30) -> dict[str, str]:
        wanted = (status,) if isinstance(status, str) else status
        deadline = time.monotonic() + timeout
        while True:
            record = self.job(job_id)
            if record.get("status") in wanted:
                return record
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} is {record.get('status')!r}, not {wanted} after {timeout} s")
            time.sleep(0.05)

    def deliveries_of(self, job_id: str) -> list[dict[str, str]]:
        """The ``deliver_result`` job records for ``job_id``."""
        ids = self.redis.zrange("fb:jobs:actor:deliver_result", 0, -1)
        records = [self.job(i) for i in ids]
        return [r for r in records if r.get("args") and job_id in r["args"]]

    def next_match(self) -> str:
        """A pre-game match no other test of the module analysed (players are fetched, progress shows)."""
        if self._matches is None:
            ids = [m for status in ("VOTING", "CHECK_IN", "CONFIGURING", "READY", "ONGOING")
                   for m in self.world["matches"][status]]
            self._matches = iter(ids)
        return next(self._matches)

    def clear_faceit_cache(self) -> None:
        keys = list(self.redis.scan_iter("fb:faceit:cache:*", count=1000))
        if keys:
            self.redis.delete(*keys)


def is_final_text(text: str | None) -> bool:
    return bool(text) and not text.startswith("⏳") and not text.startswith("🤝")


def start_stack(tg: TelegramSandbox, faceit: FaceitSandbox, redis_server: Any, tmp: Path, *,
                pool: bool = True, env: dict[str, str] | None = None) -> Stack:
    """Flush Redis, start a worker pool (all queues) and the bot process against the sandboxes."""
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushall()
    tg.reset()
    full_env = base_env(tg, faceit, **(env or {}))
    workers = None
    if pool:  # both start at once: each spends seconds importing
        workers = WorkerPool(queues=["high", "default", "low"], processes=1, threads=8, modules=(), env=full_env,
                             log_path=tmp / "worker.log").start(wait=False)
    bot = BotProcess(full_env, tmp / "bot.log").start()
    if workers is not None:
        workers.wait_ready()
    return Stack(tg=tg, faceit=faceit, redis=client, bot=bot, pool=workers, world=faceit.world())


def stop_stack(stack: Stack) -> None:
    stack.bot.stop()
    if stack.pool is not None:
        stack.pool.stop(graceful=False)
    stack.redis.close()


@pytest.fixture(scope="module")
def stack(telegram_sandbox_server, faceit_sandbox, redis_server, request,  # noqa: F811 (the fixture imported above)
          tmp_path_factory) -> Iterator[Stack]:
    """The module's whole system (a pool, the bot process, both sandboxes), for the modules that
    ask for it; its logs under a directory named after the module."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    running = start_stack(telegram_sandbox_server, faceit_sandbox, redis_server, tmp_path_factory.mktemp(module))
    yield running
    stop_stack(running)


@pytest.fixture(scope="module")
def quiet_stack(telegram_sandbox_server, faceit_sandbox, redis_server, request,  # noqa: F811 (as above)
                tmp_path_factory) -> Iterator[Stack]:
    """The module's bot process and sandboxes without workers, for tests of what starts no job."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    running = start_stack(telegram_sandbox_server, faceit_sandbox, redis_server, tmp_path_factory.mktemp(module),
                          pool=False)
    yield running
    stop_stack(running)


@pytest.fixture(scope="module")
def faceit_sandbox() -> Iterator[FaceitSandbox]:
    with FaceitSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def faceit_faults(faceit_sandbox: FaceitSandbox) -> Iterator[Callable[..., Any]]:
    """Set FACEIT sandbox faults for one test (cleared afterwards)."""
    yield faceit_sandbox.faults
    faceit_sandbox.faults()


@pytest.fixture
async def delivery_env(telegram_sandbox, redis_url, monkeypatch) -> AsyncIterator[Any]:  # noqa: F811 (imported above)
    """The delivery's resources in this process, against the sandbox (its limits generous)."""
    from bot import delivery
    from settings import get_settings

    monkeypatch.setenv("TELEGRAM_API_URL", telegram_sandbox.base_url)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", SANDBOX_BOT_TOKEN)
    monkeypatch.setenv("TELEGRAM_CHAT_RATE", "20")
    monkeypatch.setenv("TELEGRAM_GROUP_RATE", "600")
    monkeypatch.setenv("TELEGRAM_GLOBAL_RATE", "200")
    get_settings.cache_clear()
    yield await delivery.get_resources()
    await delivery.close_resources()
    telegram_sandbox.reset()  # the service messages of a migration are nobody's updates
    monkeypatch.undo()
    get_settings.cache_clear()

"""The bot token never reaches a log line, however an error quotes it.

aiogram says an aiohttp error as ``TelegramNetworkError("<type>: <error>")``, and for a redirect
loop (or a bad status, a bad URL) that text quotes the request URL, ``…/bot<token>/sendMessage``.
A log line that cut such a text short cut the token too, and the scrubber, which looked for the
whole token, let the rest through. A real aiohttp server in this process answers every request
with a redirect to itself: a misbehaving proxy in front of the Bot API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from aiogram import Bot  # imported here, not in the first test to send: it takes seconds
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiohttp import web

from bot.commands import register_commands
from queues.alerts import Alert
from queues.telegram_alerts import TelegramAlertSink
from tests.support.workers import ROOT

TOKEN = "987654321:AAE-secret-admin-bot-token-value-xyz"
SECRET = TOKEN.split(":")[1]
ADMINS = [7001]


def leaked_slices(text: str, secret: str = SECRET, size: int = 10) -> list[str]:
    """Every ``size``-character slice of ``secret`` that ``text`` shows."""
    return [secret[i:i + size] for i in range(len(secret) - size + 1) if secret[i:i + size] in text]


@contextmanager
def redirect_loop(scoped_only: bool = False) -> Iterator[str]:
    """A Bot API stand-in whose every answer is a redirect to itself, on its own thread and loop;
    yields its base URL. ``scoped_only``: a ``setMyCommands`` for one chat loops, any other call
    answers ``{"ok": true, "result": true}``."""
    ready = threading.Event()
    box: dict[str, object] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        if scoped_only and "again" not in request.query:
            form = await request.post()
            if "scope" not in form:
                return web.json_response({"ok": True, "result": True})
        raise web.HTTPTemporaryRedirect(request.url.update_query(again="1"))

    async def serve() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["url"] = f"http://127.0.0.1:{runner.addresses[0][1]}"
        box["stop"] = stop = asyncio.Event()
        box["loop"] = asyncio.get_running_loop()
        ready.set()
        await stop.wait()
        await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="redirect-loop", daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield str(box["url"])
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)  # type: ignore[attr-defined]
        thread.join(10)


def test_an_alert_send_that_fails_on_a_redirect_loop_logs_no_part_of_the_token(fresh, caplog):
    from queues.runtime import get_redis

    caplog.set_level(logging.WARNING)
    with redirect_loop() as url:
        sink = TelegramAlertSink(get_redis(), admin_ids=ADMINS, api_url=url, token=TOKEN, batch_seconds=60.0,
                                 secrets=[TOKEN])
        sink.send(Alert("error", "pipeline", "job failed", job_id="leak-1"))
    assert sink.send_failures == 1
    assert "could not message admin 7001: TelegramNetworkError" in caplog.text  # the line was written
    assert not leaked_slices(caplog.text), caplog.text
    assert "TooManyRedirects" in caplog.text and "/bot<token>/sendMessage" in caplog.text


async def test_an_admin_menu_that_fails_on_a_redirect_loop_logs_no_part_of_the_token(caplog):
    caplog.set_level(logging.WARNING)
    with redirect_loop(scoped_only=True) as url:
        bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(url), timeout=10))
        try:
            await register_commands(bot, [900001])  # the public menus are set; the admin's loops
        finally:
            await bot.session.close()
    assert "admin command menu for 900001 not set" in caplog.text and "TooManyRedirects" in caplog.text
    assert not leaked_slices(caplog.text), caplog.text


def test_the_log_filter_masks_a_token_cut_short_and_the_token_in_a_traceback():
    """The second line of defence, for log lines that cut an error's text themselves."""
    import io

    from queues.redaction import TokenScrubFilter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(TokenScrubFilter(TOKEN))
    log = logging.getLogger("tests.secret_leaks")
    log.addHandler(handler)
    log.propagate = False
    try:
        url = f"url='http://127.0.0.1:8081/bot{TOKEN}/sendMessage'"
        log.warning("send failed: %s", url[:60])  # cut inside the token
        log.warning("another bot's token: %s", "123456789:BBF-another-token-from-elsewhere-0")
        try:
            raise RuntimeError(f"TooManyRedirects: {url}")
        except RuntimeError:
            log.exception("task failed")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    text = stream.getvalue()
    assert "send failed: url='http://127.0.0.1:8081/bot<token>" in text and "task failed" in text
    assert "RuntimeError: TooManyRedirects: url='http://127.0.0.1:8081/bot<token>/sendMessage'" in text
    assert not leaked_slices(text) and "another-token" not in text, text


#: Run in a child: the scheduler's own ``main`` (standing by, as another scheduler leads), stopped
#: by SIGTERM once it waits; then a line and a traceback logged through the handlers it set up.
SCHEDULER_PROBE = """
import logging, os, signal, sys, threading, time
import scheduler
token = os.environ["TELEGRAM_BOT_TOKEN"]

def stop_when_waiting():
    while signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=stop_when_waiting, daemon=True).start()
assert scheduler.main([]) == 0
log = logging.getLogger("probe")
log.warning("Bot API failed: url='http://api.internal/bot%s/sendMessage'", token[:25])
try:
    raise RuntimeError("redirect loop at http://api.internal/bot" + token + "/getMe")
except RuntimeError:
    log.exception("probe task failed")
print("probe done", file=sys.stderr)
"""


def test_the_scheduler_installs_the_token_scrubber(redis_client, fresh):
    from scheduler import SchedulerKeys

    prefix = "leaks:"
    redis_client.set(SchedulerKeys(prefix).leader, "another-host:1:abc", ex=30)  # this one stands by
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, "REDIS_KEY_PREFIX": prefix, "ADMIN_USER_IDS": "7001",
           "SCHEDULER_LOCK_TTL": "30", "SENTRY_DSN": ""}
    done = subprocess.run([sys.executable, "-c", SCHEDULER_PROBE], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "probe done" in done.stderr and "probe task failed" in done.stderr
    assert "Traceback" in done.stderr and "/bot<token>/getMe" in done.stderr
    assert not leaked_slices(done.stderr), done.stderr


@pytest.mark.parametrize("level", ["bogus", "10"])
def test_a_bad_scheduler_log_level_is_one_line_and_status_2(level):
    done = subprocess.run([sys.executable, "scheduler.py", "--log-level", level], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == (f"scheduler: --log-level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL "
                                   f"(got {level!r})")



async def test_a_task_that_fails_on_a_redirect_loop_keeps_no_part_of_the_token_in_its_history(fresh, redis_client,
                                                                                               monkeypatch):
    """The scheduler keeps each run's error (cut to 200 characters) in Redis, where admin.py shows it."""
    from scheduler import SchedulerService, Task, history
    from settings import load_settings

    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)

    async def send_to_admins(ctx) -> None:
        bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(url), timeout=10))
        try:
            await bot.get_me()
        finally:
            await bot.session.close()

    with redirect_loop() as url:
        service = SchedulerService(load_settings(), tasks=[Task("admin_ping", send_to_admins, interval=60)])
        entry = await service.run_task("admin_ping")
    assert entry["outcome"].startswith("error: TelegramNetworkError: HTTP Client says - TooManyRedirects")
    stored = json.dumps(history(redis_client, load_settings().redis_key_prefix))
    assert "TooManyRedirects" in stored
    assert not leaked_slices(stored), stored


WORKER_PROBE = """
import logging, os
logging.basicConfig(level=logging.INFO)  # as dramatiq sets logging up before it imports the actors
from actors.broker import build_broker
from settings import get_settings
build_broker(get_settings())
logging.getLogger("probe").warning("a delivery failed: %s", "http://h/bot" + os.environ["TELEGRAM_BOT_TOKEN"][:30])
"""


def test_a_worker_process_masks_the_bot_token_in_its_log_lines():
    """Workers deliver results with the bot token, so their log lines are scrubbed as the bot's are."""
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, "SENTRY_DSN": ""}
    done = subprocess.run([sys.executable, "-c", WORKER_PROBE], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "a delivery failed: http://h/bot<token>" in done.stderr, done.stderr[-3000:]
    assert not leaked_slices(done.stderr), done.stderr

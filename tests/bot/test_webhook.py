"""Webhook mode (``BOT_MODE=webhook``) and what the bot registers with Telegram at start.

The real ``python -m bot`` serves an aiohttp webhook; the sandbox Bot API posts updates to it
with the secret header, exactly as Telegram does. Requests without the secret are refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from sandbox.telegram_api import SANDBOX_BOT_TOKEN
from tests.bot.conftest import ADMIN_ID, ROOT, BotProcess, base_env, new_user
from tests.support.redis_server import free_port

SECRET = "webhook-secret-for-tests-0123456789"


@pytest.fixture(scope="module")
def webhook_bot(telegram_sandbox_server, redis_server, tmp_path_factory):
    tg = telegram_sandbox_server
    tg.reset()
    port = free_port()
    url = f"http://127.0.0.1:{port}/tg/updates"
    env = base_env(tg, BOT_MODE="webhook", WEBHOOK_URL=url, WEBHOOK_SECRET=SECRET, WEBHOOK_HOST="127.0.0.1",
                   WEBHOOK_PORT=str(port), LOG_LEVEL="DEBUG")
    bot = BotProcess(env, tmp_path_factory.mktemp("webhook") / "bot.log").start(ready="bot started: webhook")
    yield tg, bot, url
    bot.stop()


def post(url: str, body: dict | bytes, secret: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_updates_arrive_by_webhook_and_get_answers(webhook_bot):
    tg, _, url = webhook_bot
    info = tg.bot_info()
    assert info["webhook"]["url"] == url and info["webhook"]["has_secret_token"] is True
    user = new_user()
    tg.inject(user, "/help", language_code="ru")
    answer = tg.wait_for(lambda es: next((e for e in es if e["kind"] == "sent"), None), chat_id=user)
    assert "Что я умею" in answer["text"]


def test_requests_without_the_secret_are_refused(webhook_bot):
    tg, _, url = webhook_bot
    user = new_user()
    update = {"update_id": 987654321, "message": {
        "message_id": 1, "date": 1700000000, "text": "/start",
        "chat": {"id": user, "type": "private"}, "from": {"id": user, "is_bot": False, "first_name": "Eve"}}}
    assert post(url, update, None) == 401
    assert post(url, update, "wrong-secret") == 401
    # Not ASCII (sent as Latin-1, as http.client sends it): a plain 401 too, no traceback (it was 500)
    assert post(url, update, "é" + SECRET) == 401
    assert tg.messages(user) == []  # nothing was handled
    # The right secret with a body that is no update: 400, not a traceback.
    assert post(url, b"not json", SECRET) == 400
    assert post(url, b"[1, 2]", SECRET) == 400
    assert post(url, {"message": {"text": "no update_id"}}, SECRET) == 400
    assert "Traceback" not in webhook_bot[1].log()
    assert post(url, update, SECRET) == 200
    tg.wait_for(lambda es: es, chat_id=user)


def test_the_command_menu_is_registered_in_both_languages(webhook_bot):
    tg, _, _ = webhook_bot
    commands = tg.bot_info()["commands"]
    menus = {key: {c["command"]: c["description"] for c in value} for key, value in commands.items()}
    english = next(m for key, m in menus.items() if "ru" not in key and "chat" not in key)
    russian = next(m for key, m in menus.items() if "ru" in key and "chat" not in key)
    assert {"analyze", "player", "bulk", "subscribe", "unsubscribe", "subscriptions", "status", "cancel", "report",
            "lang", "tz", "help"} <= set(english)
    assert set(english) == set(russian)
    assert english["analyze"] != russian["analyze"]
    assert "queues" not in english  # admin commands only in the admins' own menus
    assert {"queues", "alerts", "requeue"} <= set(menus[f"chat:{ADMIN_ID}:"]) and f"chat:{ADMIN_ID}:ru" in menus


def test_the_token_never_reaches_the_log_even_at_debug(webhook_bot):
    _, bot, _ = webhook_bot
    log = bot.log()
    assert "bot started: webhook" in log
    assert SANDBOX_BOT_TOKEN not in log and SANDBOX_BOT_TOKEN.split(":")[1] not in log
    assert SECRET not in log


@pytest.mark.parametrize(("extra", "message"), [
    ({"BOT_MODE": "webhook", "WEBHOOK_URL": "https://bot.example/tg", "WEBHOOK_SECRET": ""}, "needs WEBHOOK_SECRET"),
    ({"BOT_MODE": "webhook", "WEBHOOK_URL": "", "WEBHOOK_SECRET": SECRET}, "needs WEBHOOK_URL"),
    ({"TELEGRAM_API_URL": "https://api.telegram.org", "TELEGRAM_BOT_TOKEN": ""}, "TELEGRAM_BOT_TOKEN is empty"),
    ({"BOT_MODE": "webhook", "WEBHOOK_URL": "notaurl", "WEBHOOK_SECRET": SECRET},
     "WEBHOOK_URL must be an http:// or https:// URL with a host (got 'notaurl')"),
    ({"BOT_MODE": "webhook", "WEBHOOK_URL": "https://bot.example/tg", "WEBHOOK_SECRET": "bad secret!"},
     "WEBHOOK_SECRET must be 1 to 256 characters, each A-Z, a-z, 0-9, '_' or '-'"),
    ({"BOT_MODE": "webhook", "WEBHOOK_URL": "http://bot.example/tg", "WEBHOOK_SECRET": SECRET,
      "TELEGRAM_API_URL": "https://api.telegram.org", "TELEGRAM_BOT_TOKEN": "123456:real-looking-token"},
     "WEBHOOK_URL must be an https:// URL: Telegram posts updates only over https"),
    ({"TELEGRAM_BOT_TOKEN": "garbage-token-text"}, "TELEGRAM_BOT_TOKEN must be a bot token as @BotFather gives it"),
])
def test_settings_the_bot_cannot_run_with_stop_it_with_one_line(telegram_sandbox_server, extra, message):
    _stops_with_one_line(telegram_sandbox_server, extra, message, status=2)  # a supervisor leaves it stopped


@pytest.mark.parametrize(("extra", "message"), [
    ({"TELEGRAM_API_URL": "http://127.0.0.1:{free_port}", "BOT_TELEGRAM_WAIT": "0"},
     "the Telegram Bot API at http://127.0.0.1:{free_port} does not answer (ClientConnectorError: "),
    ({"BOT_MODE": "webhook", "WEBHOOK_URL": "http://127.0.0.1:9/tg", "WEBHOOK_SECRET": SECRET,
      "TELEGRAM_API_URL": "http://127.0.0.1:{free_port}", "BOT_TELEGRAM_WAIT": "0"},
     "the Telegram Bot API at http://127.0.0.1:{free_port} does not answer (ClientConnectorError: "),
])
def test_a_bot_api_that_does_not_answer_stops_the_bot_with_one_line_and_a_status_to_restart(
        telegram_sandbox_server, extra, message):
    """Not a refused setting: the Bot API may answer next time, so the status is 1, which a
    supervisor restarts (2 it would leave stopped: ``supervisor.CONFIG_REFUSED``)."""
    _stops_with_one_line(telegram_sandbox_server, extra, message, status=1)


def _stops_with_one_line(telegram_sandbox_server, extra: dict[str, str], message: str, status: int) -> None:
    port = str(free_port())  # nothing listens there: an unreachable Bot API
    extra = {name: value.replace("{free_port}", port) for name, value in extra.items()}
    env = base_env(telegram_sandbox_server, **extra)
    done = subprocess.run([sys.executable, "-m", "bot"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == status
    assert done.stderr.strip().count("\n") == 0 and message.replace("{free_port}", port) in done.stderr
    assert "Traceback" not in done.stderr
    for secret in ("bad secret!", "garbage-token-text", "real-looking-token", SANDBOX_BOT_TOKEN):
        assert secret not in done.stderr


def test_a_bot_api_that_answers_late_at_start_is_waited_for(redis_server, tmp_path):
    """Network trouble at start-up is not a configuration error: the bot asks again (up to
    BOT_TELEGRAM_WAIT) and starts once the Bot API answers, instead of exiting with status 2."""
    from tests.bot.conftest import SandboxProcess

    late = SandboxProcess(tmp_path / "sandbox.log", port=free_port())  # not started yet
    bot = BotProcess(base_env(late, BOT_TELEGRAM_WAIT="60"), tmp_path / "bot.log").start(ready=None)
    try:
        bot.wait_for_log("does not answer (ClientConnectorError", timeout=30)
        late.start()
        bot.wait_for_log("Run polling", timeout=30)
        assert bot.process.poll() is None and SANDBOX_BOT_TOKEN not in bot.log()
    finally:
        bot.stop()
        late.stop()


"""Run the sandbox Telegram Bot API for a test and drive it: inject users' messages and clicks,
read what the bot sent, switch faults on.

The server runs on a free 127.0.0.1 port in a background thread with its own event loop, so
it keeps answering while a test blocks, and a bot in the test's own loop or in a subprocess
reaches it over real HTTP::

    with TelegramSandbox() as tg:
        bot = Bot("123456:TEST", session=AiohttpSession(api=TelegramAPIServer.from_base(tg.base_url)))
        tg.inject(1001, "/start")
        tg.wait_for(lambda ms: any(m["kind"] == "sent" for m in ms), chat_id=1001)

The control calls are blocking (stdlib HTTP). From ``async`` tests whose bot runs in the same
event loop, use the ``*_async`` variants so the loop keeps running while you wait.

Other test areas get the fixtures by importing them into their ``conftest.py``::

    from tests.support.telegram_sandbox import telegram_sandbox, telegram_sandbox_server  # noqa: F401

(fixtures in the same conftest that take ``telegram_sandbox`` need ``# noqa: F811``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp import web

from sandbox.telegram_api import create_app, make_runner
from tests.support.redis_server import free_port

Events = list[dict[str, Any]]


class SandboxControlError(RuntimeError):
    """A control call was refused (bad arguments, unknown message...)."""


class TelegramSandbox:
    """A sandbox Bot API server on a free port, with a small client for its control endpoints."""

    def __init__(
        self, token: str | None = None, port: int | None = None, webhook_retry_pause: float = 0.2
    ) -> None:
        self.token = token
        self.port = port or free_port()
        self.webhook_retry_pause = webhook_retry_pause
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What ``TelegramAPIServer.from_base`` takes (and ``TELEGRAM_API_URL`` for the bot)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/chat"

    def start(self) -> TelegramSandbox:
        self._thread = threading.Thread(target=self._serve, name=f"telegram-sandbox-{self.port}", daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the Telegram sandbox did not start within 10 s")
        if self._error:
            raise RuntimeError("the Telegram sandbox failed to start") from self._error
        return self

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._runner = make_runner(create_app(self.token, webhook_retry_pause=self.webhook_retry_pause))
            loop.run_until_complete(self._runner.setup())
            loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._started.set()
            loop.close()
            return
        self._started.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def stop(self) -> None:
        if self._loop and self._thread and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(15)
        self._thread = None

    def __enter__(self) -> TelegramSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- raw HTTP -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
        timeout: float = 30,
    ) -> dict[str, Any]:
        """One control call; raises :class:`SandboxControlError` when the sandbox refuses it."""
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace")
            try:
                detail = json.loads(detail).get("error", detail)
            except ValueError:
                pass
            raise SandboxControlError(f"{method} {path}: HTTP {error.code}: {detail}") from None

    # --- the user's side ------------------------------------------------------------------

    def inject(self, user_id: int, text: str, language_code: str = "en", **extra: Any) -> dict[str, Any]:
        """A user sends ``text``; returns ``update_id`` and ``message_id``."""
        return self.request(
            "POST",
            "/_sandbox/updates",
            {"user_id": user_id, "text": text, "language_code": language_code, **extra},
        )

    def send_photo(self, user_id: int, caption: str | None = None, language_code: str = "en",
                   **extra: Any) -> dict[str, Any]:
        """A user sends a photo, with ``caption`` when given (a message without text)."""
        body = {"user_id": user_id, "photo": True, "caption": caption, "language_code": language_code, **extra}
        return self.request("POST", "/_sandbox/updates", {k: v for k, v in body.items() if v is not None})

    def click(self, user_id: int, message_id: int | None, callback_data: str, **extra: Any) -> dict[str, Any]:
        """A user presses the button ``callback_data`` on ``message_id`` (None: the newest one showing it)."""
        body = {"user_id": user_id, "callback_data": callback_data, "message_id": message_id, **extra}
        return self.request("POST", "/_sandbox/updates", body)

    def block(self, user_id: int, blocked: bool = True, chat_id: int | None = None) -> dict[str, Any]:
        """The user blocks the bot (``chat_id``: removes it from that group instead)."""
        body: dict[str, Any] = {"user_id": user_id, "blocked": blocked}
        if chat_id is not None:
            body["chat_id"] = chat_id
        return self.request("POST", "/_sandbox/block", body)

    def unblock(self, user_id: int) -> dict[str, Any]:
        return self.block(user_id, blocked=False)

    # --- faults and bookkeeping -----------------------------------------------------------

    def migrate(self, chat_id: int, user_id: int) -> int:
        """``user_id`` upgrades the group ``chat_id`` to a supergroup; returns its new id."""
        return self.request("POST", "/_sandbox/migrate", {"chat_id": chat_id, "user_id": user_id})["migrate_to_chat_id"]

    def flood(self, n: int, retry_after: int = 1, methods: list[str] | None = None) -> dict[str, Any]:
        """The next ``n`` Bot API calls (all but getUpdates, or only ``methods``) get 429."""
        return self.request(
            "POST", "/_sandbox/flood", {"n": n, "retry_after": retry_after, "methods": methods}
        )

    def limits(self, enabled: bool = True, **rates: float) -> dict[str, Any]:
        """Switch real per-chat/overall flood control on or off (see ``/_sandbox/limits``)."""
        return self.request("POST", "/_sandbox/limits", {"enabled": enabled, **rates})

    def reset(self) -> None:
        self.request("POST", "/_sandbox/reset", {})

    def stats(self) -> dict[str, Any]:
        return self.request("GET", "/_sandbox/stats")

    def bot_info(self) -> dict[str, Any]:
        return self.request("GET", "/_sandbox/bot")

    def callbacks(self) -> list[dict[str, Any]]:
        return self.request("GET", "/_sandbox/callbacks")["callback_queries"]

    def pending_updates(self) -> list[dict[str, Any]]:
        return self.request("GET", "/_sandbox/updates")["updates"]

    # --- what the bot did -------------------------------------------------------------------

    def messages(self, chat_id: int | None = None, after: int = 0) -> Events:
        """What the bot sent, edited and deleted (in order), for one chat or all."""
        return self.request("GET", "/_sandbox/messages", query={"chat_id": chat_id, "after": after})[
            "messages"
        ]

    def feed(self, chat_id: int | None = None, after: int = 0, timeout: float = 0) -> dict[str, Any]:
        return self.request(
            "GET",
            "/_sandbox/feed",
            query={"chat_id": chat_id, "after": after, "timeout": timeout},
            timeout=timeout + 30,
        )

    def wait_for(
        self,
        predicate: Callable[[Events], Any],
        timeout: float = 10,
        chat_id: int | None = None,
        interval: float = 0.05,
    ) -> Any:
        """Poll :meth:`messages` until ``predicate(messages)`` is truthy; return that value.

        Raises ``TimeoutError`` listing what the bot did, so a failing test shows why.
        """
        deadline = time.monotonic() + timeout
        while True:
            events = self.messages(chat_id)
            result = predicate(events)
            if result:
                return result
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout} s; bot events: {_summary(events)}")
            time.sleep(interval)

    # --- async variants (for a bot running in the test's own event loop) --------------------

    async def inject_async(
        self, user_id: int, text: str, language_code: str = "en", **extra: Any
    ) -> dict[str, Any]:
        return await asyncio.to_thread(self.inject, user_id, text, language_code, **extra)

    async def click_async(self, user_id: int, message_id: int | None, callback_data: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.click, user_id, message_id, callback_data)

    async def messages_async(self, chat_id: int | None = None, after: int = 0) -> Events:
        return await asyncio.to_thread(self.messages, chat_id, after)

    async def wait_for_async(
        self,
        predicate: Callable[[Events], Any],
        timeout: float = 10,
        chat_id: int | None = None,
        interval: float = 0.05,
    ) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            events = await self.messages_async(chat_id)
            result = predicate(events)
            if result:
                return result
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout} s; bot events: {_summary(events)}")
            await asyncio.sleep(interval)


def _summary(events: Events, last: int = 10) -> str:
    shown = []
    for e in events[-last:]:
        content = (e.get("text") or e.get("caption") or "")[:80]
        shown.append(f"{e['kind']}#{e['message_id']} chat={e['chat_id']}: {content!r}")
    return "; ".join(shown) or "none"


@pytest.fixture(scope="session")
def telegram_sandbox_server() -> Iterator[TelegramSandbox]:
    """One sandbox server for the whole test session."""
    with TelegramSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def telegram_sandbox(telegram_sandbox_server: TelegramSandbox) -> TelegramSandbox:
    """The session's sandbox, reset: no messages, updates, blocks or flood left from other tests.

    Update and message ids keep increasing across resets, so a bot that keeps polling stays valid.
    """
    telegram_sandbox_server.reset()
    return telegram_sandbox_server

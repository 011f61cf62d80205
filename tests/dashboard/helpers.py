"""A dashboard on a free 127.0.0.1 port in a background thread, and a small HTTP client for it.

The server thread has its own event loop, so sync tests (and the sync Playwright API) can call
it over real HTTP while it keeps answering. The client is stdlib ``http.client``: it never
follows redirects and keeps cookies, so tests see exactly what the server answered.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.client import HTTPConnection
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from dashboard.app import create_app
from queues.jobstore import JobStore
from tests.support.redis_server import free_port


def no_monitor() -> Any:
    """A monitor factory for tests that want the dashboard's own health computation."""
    raise ImportError("monitor disabled for this test")


class DashboardServer:
    """``create_app(settings)`` served on a free port until :meth:`stop`."""

    def __init__(self, settings: Any, monitor_factory: Callable[[], Any] | None = no_monitor) -> None:
        self.settings = settings
        self.monitor_factory = monitor_factory
        self.port = free_port()
        self.app: web.Application | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> DashboardServer:
        self.app = create_app(self.settings, host="127.0.0.1", monitor_factory=self.monitor_factory)
        self._thread = threading.Thread(target=self._serve, name=f"dashboard-{self.port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the dashboard did not start within 10 s")
        if self._error:
            raise RuntimeError("the dashboard failed to start") from self._error
        return self

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            assert self.app is not None
            self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1)
            loop.run_until_complete(self._runner.setup())
            loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        # Requests still in flight (the chat's long poll through the proxy) end here, not in a
        # finalizer after the loop is gone.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def client(self, **auth: str) -> Client:
        return Client(self.port, **auth)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def location(self) -> str:
        return self.headers.get("location", "")


@dataclass
class Client:
    """HTTP to the dashboard with optional basic (``user``/``password``) or bearer (``token``) auth."""

    port: int
    user: str = ""
    password: str = ""
    token: str = ""
    host: str = ""
    cookies: dict[str, str] = field(default_factory=dict)

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        elif self.user:
            raw = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            headers["Authorization"] = f"Basic {raw}"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.host:
            headers["Host"] = self.host
        headers.update(extra or {})
        return headers

    def request(self, method: str, path: str, *, query: dict[str, Any] | None = None, json_body: Any = None,
                form: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> Reply:
        body = None
        extra = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            extra.setdefault("Content-Type", "application/json")
        elif form is not None:
            body = urlencode(form).encode()
            extra.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if query:
            path += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        conn = HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=self.headers(extra))
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
            for name, value in response.getheaders():
                if name.lower() == "set-cookie":
                    cookie, _, _attrs = value.partition(";")
                    key, _, val = cookie.partition("=")
                    if val in ('""', ""):
                        self.cookies.pop(key.strip(), None)
                    else:
                        self.cookies[key.strip()] = val.strip()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, text)
        finally:
            conn.close()

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Reply:
        return self.request("POST", path, **kwargs)

    def csrf(self) -> str:
        """A CSRF token for this client's identity, as a page or ``/api/me`` gives it."""
        reply = self.get("/api/me")
        assert reply.status == 200, reply.text
        return reply.json()["csrf_token"]


def page_csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(
        r'<meta name="csrf-token" content="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


# --- job records in known states, written through the real job store --------------------------

def make_job(store: JobStore, *, actor: str = "t_noop", queue: str = "default", status: str = "queued",
             kwargs: dict[str, Any] | None = None, user_id: int | None = None, error: dict[str, Any] | None = None,
             result: Any = None, job_id: str | None = None) -> str:
    """A record that went through the store's own transitions up to ``status``."""
    job_id = job_id or f"job-{time.time_ns()}"
    store.create(job_id, actor=actor, queue=queue, kwargs=kwargs or {},
                 requester={"user_id": user_id, "chat_id": user_id, "lang": "en"} if user_id else None)
    if status == "queued":
        return job_id
    if status == "canceled":
        store.cancel(job_id)
        return job_id
    begin = store.begin(job_id, max_deliveries=5, worker="host:1:test")
    if status == "started":
        return job_id
    if status == "failed" and error is None:
        error = {"type": "UpstreamError", "code": "upstream", "message": "upstream 503", "retryable": False,
                 "traceback": "Traceback (most recent call last):\n  ...\nUpstreamError: upstream 503"}
    store.finish(job_id, attempt=begin.attempt, status=status, error=error,
                 result=result if result is not None else ({"ok": True} if status == "succeeded" else None))
    return job_id


def wait_until(predicate: Callable[[], Any], timeout: float = 15, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(interval)

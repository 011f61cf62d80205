"""A local Sentry ingest endpoint for tests: point ``SENTRY_DSN`` at it and read what arrived.

``sentry-sdk`` posts envelopes to ``http://<key>@127.0.0.1:<port>/<project>`` →
``POST /api/<project>/envelope/`` (gzip or brotli compressed). The server keeps each raw body
(decompressed) so a test can assert that no secret left the process, and the parsed items so
it can assert what did::

    with SentryServer() as sentry:
        env = {"SENTRY_DSN": sentry.dsn}
        ...
        events = sentry.wait_for_events(lambda evs: len(evs) >= 2)
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.redis_server import free_port


def parse_envelope(body: bytes) -> list[tuple[dict[str, Any], Any]]:
    """``[(item header, payload)]`` of one envelope (payloads parsed as JSON when they are)."""
    items = []
    header_end = body.find(b"\n")
    rest = body[header_end + 1:] if header_end >= 0 else b""
    while rest.strip():
        line_end = rest.find(b"\n")
        item_header = json.loads(rest[:line_end] if line_end >= 0 else rest)
        rest = rest[line_end + 1:] if line_end >= 0 else b""
        length = item_header.get("length")
        if length is not None:
            payload_raw, rest = rest[:length], rest[length:]
            rest = rest[1:] if rest.startswith(b"\n") else rest
        else:
            end = rest.find(b"\n")
            payload_raw, rest = (rest, b"") if end < 0 else (rest[:end], rest[end + 1:])
        try:
            payload: Any = json.loads(payload_raw)
        except ValueError:
            payload = payload_raw
        items.append((item_header, payload))
    return items


class SentryServer:
    """A threaded HTTP server on a free 127.0.0.1 port that records Sentry envelopes."""

    def __init__(self, key: str = "publickey", project: int = 1) -> None:
        self.port = free_port()
        self.key = key
        self.project = project
        self.bodies: list[bytes] = []
        self.items: list[tuple[dict[str, Any], Any]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def dsn(self) -> str:
        return f"http://{self.key}@127.0.0.1:{self.port}/{self.project}"

    def start(self) -> SentryServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                elif encoding == "br":
                    import brotli  # type: ignore[import-not-found]

                    body = brotli.decompress(body)
                with owner._lock:
                    owner.bodies.append(body)
                    if self.path.rstrip("/").endswith("/envelope"):
                        owner.items.extend(parse_envelope(body))
                    else:  # the legacy store endpoint: one event per body
                        owner.items.append(({"type": "event"}, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"id":"0"}')

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="sentry-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SentryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def events(self) -> list[dict[str, Any]]:
        """Every error/message event received so far (transactions and sessions left out)."""
        with self._lock:
            return [payload for header, payload in self.items
                    if header.get("type") == "event" and isinstance(payload, dict)]

    def raw_text(self) -> str:
        with self._lock:
            return "\n".join(body.decode("utf-8", "replace") for body in self.bodies)

    def wait_for_events(self, predicate: Callable[[list[dict[str, Any]]], Any], timeout: float = 15) -> list[
            dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            events = self.events()
            if predicate(events):
                return events
            if time.monotonic() > deadline:
                summary = [(e.get("level"), (e.get("message") or {}) if isinstance(e.get("message"), str)
                            else e.get("logentry", {}).get("message"), e.get("exception", {}).get("values", [{}])[0]
                            .get("type") if e.get("exception") else None) for e in events]
                raise AssertionError(f"Sentry events not as expected within {timeout} s: {summary}")
            time.sleep(0.05)

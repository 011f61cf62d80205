"""Run the sandbox FACEIT Data API for tests and benchmarks, in a thread or a subprocess.

    sandbox = FaceitSandbox().start()        # background thread, free port on 127.0.0.1
    sandbox.api_url                          # "http://127.0.0.1:<port>/data/v4"
    sandbox.key                              # "sandbox-key"
    sandbox.world()["matches"]["VOTING"]     # sample ids by status
    sandbox.faults(latency_ms=100)           # inject latency / errors / 429s
    sandbox.stats()["calls"]["match"]        # calls per endpoint since the last reset
    sandbox.reset()
    sandbox.stop()

``FaceitSandbox(subprocess=True)`` runs ``python -m sandbox.faceit_api`` instead (its own
interpreter: no GIL shared with the code under test, as benchmarks want). Both are context
managers. ``env()`` gives the variables that point our settings at it.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FaceitSandbox:
    """A running sandbox Data API (see the module docstring)."""

    def __init__(self, key: str = "sandbox-key", seed: int = 42, players: int = 300, *,
                 lobbies: int = 1, subprocess: bool = False) -> None:
        self.key = key
        self.seed = seed
        self.players = players
        self.lobbies = lobbies
        self.use_subprocess = subprocess
        self.port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.api: Any = None  # the in-thread SandboxFaceitAPI (thread mode only)

    # Lifecycle ----------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/data/v4"

    def env(self) -> dict[str, str]:
        """Settings that point the FACEIT client at this sandbox."""
        return {"FACEIT_API_URL": self.api_url, "FACEIT_API_KEY": self.key}

    def start(self, timeout: float = 15.0) -> FaceitSandbox:
        if self.use_subprocess:
            self._start_process(timeout)
        else:
            self._start_thread(timeout)
        return self

    def _start_thread(self, timeout: float) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(ready))
            except BaseException as exc:  # reported to start()
                failure.append(exc)
                ready.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="faceit-sandbox", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or failure:
            raise RuntimeError(f"sandbox did not start: {failure[0] if failure else 'timeout'}")

    async def _serve(self, ready: threading.Event) -> None:
        from aiohttp import web

        from sandbox.faceit_api import create_app

        app, self.api = create_app(key=self.key, seed=self.seed, players=self.players, lobbies=self.lobbies)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(runner, sock).start()
        self._stop = asyncio.Event()
        ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def _start_process(self, timeout: float) -> None:
        self.port = free_port()
        cmd = [sys.executable, "-m", "sandbox.faceit_api", "--port", str(self.port), "--key", self.key,
               "--seed", str(self.seed), "--players", str(self.players), "--lobbies", str(self.lobbies)]
        self._process = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                         env={**os.environ, "PYTHONPATH": str(ROOT)})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                raise RuntimeError(f"sandbox exited: {err[-2000:]}")
            try:
                self.world()
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("sandbox subprocess did not come up")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
            self._process = None
        if self._thread is not None and self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> FaceitSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Control ---------------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body or {}).encode() if method == "POST" else None
        request = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read().decode())

    def world(self) -> dict[str, Any]:
        return self._call("GET", "/_sandbox/world")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_sandbox/stats")

    def calls(self, endpoint: str | None = None) -> int:
        """Data API calls since the last reset (all, or of one endpoint such as ``"match"``)."""
        calls = self.stats()["calls"]
        return int(calls.get(endpoint or "total", 0))

    def reset(self, world: bool = False) -> None:
        self._call("POST", "/_sandbox/reset", {"world": world})

    def faults(self, **spec: Any) -> dict[str, Any]:
        """Replace the injected faults (no arguments clears them)."""
        return self._call("POST", "/_sandbox/faults", spec)

    def finish_match(self, **body: Any) -> dict[str, Any]:
        return self._call("POST", "/_sandbox/finish_match", body)

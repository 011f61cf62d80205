"""A TCP proxy to Redis that loses one reply: Redis runs the command, the client never hears.

That is what a client sees when Redis goes away between executing a command and answering it
(a restart, a crash, a network cut), and redis-py then resends the command on a new
connection. Tests use it to check which of our Redis calls are safe to run twice.

``drop_reply_to(marker)`` arms it: the next command whose bytes contain ``marker`` is passed
to Redis, and when Redis's reply comes back the proxy closes that connection instead of
forwarding it. ``hold_reply_to(marker, seconds)`` holds that reply back for ``seconds`` instead
(a stalled connection). ``marker_seen`` is set once the armed command has gone on to Redis, so
a test can order its next step after it. Every other command passes through untouched.
"""

from __future__ import annotations

import socket
import threading
import time


class ReplyDroppingProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._marker: bytes | None = None
        self._hold = 0.0
        self.dropped = 0
        self.marker_seen = threading.Event()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def drop_reply_to(self, marker: bytes) -> None:
        with self._lock:
            self._marker, self._hold = marker, 0.0
            self.marker_seen.clear()

    def hold_reply_to(self, marker: bytes, seconds: float) -> None:
        with self._lock:
            self._marker, self._hold = marker, seconds
            self.marker_seen.clear()

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            pair = {"drop": False, "hold": 0.0}
            threading.Thread(target=self._to_redis, args=(client, upstream, pair), daemon=True).start()
            threading.Thread(target=self._to_client, args=(upstream, client, pair), daemon=True).start()

    def _to_redis(self, client: socket.socket, upstream: socket.socket, pair: dict) -> None:
        try:
            while data := client.recv(65536):
                with self._lock:
                    if self._marker is not None and self._marker in data:
                        self._marker = None
                        if self._hold:
                            pair["hold"] = self._hold
                        else:
                            pair["drop"] = True
                        upstream.sendall(data)
                        self.marker_seen.set()
                        continue
                upstream.sendall(data)
        except OSError:
            pass
        _close(client, upstream)

    def _to_client(self, upstream: socket.socket, client: socket.socket, pair: dict) -> None:
        try:
            while data := upstream.recv(65536):
                if pair["drop"]:
                    with self._lock:
                        self.dropped += 1
                    break
                if pair["hold"]:
                    time.sleep(pair["hold"])
                    pair["hold"] = 0.0
                client.sendall(data)
        except OSError:
            pass
        _close(client, upstream)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

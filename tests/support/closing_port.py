"""A port that takes every connection and closes it at once, counting them.

It stands in for a server that is gone (a dead sentinel) where a test needs to know how many
times a client tried it: a refused connection leaves no trace, an accepted one is counted here.
The client sees the connection closed before any reply, as redis-py reports a dead server.
"""

from __future__ import annotations

import socket
import threading


class ClosingPort:
    """Listens on ``127.0.0.1:port`` (0: a free one); ``accepted`` counts the connections taken.

    Use it as a context manager, or call :meth:`close` when done.
    """

    def __init__(self, port: int = 0) -> None:
        self._listener = socket.create_server(("127.0.0.1", port))  # SO_REUSEADDR: a just-freed port
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._accepted = 0
        self._thread = threading.Thread(target=self._accept, name=f"closing-port-{self.port}", daemon=True)
        self._thread.start()

    @property
    def accepted(self) -> int:
        """Connections taken (and closed) so far."""
        with self._lock:
            return self._accepted

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # closed
                return
            with self._lock:  # counted before the client can see the close
                self._accepted += 1
            connection.close()

    def close(self) -> None:
        """Stop listening (the port refuses connections again)."""
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept (close alone does not)
        except OSError:
            pass
        self._listener.close()
        self._thread.join(5)

    def __enter__(self) -> ClosingPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

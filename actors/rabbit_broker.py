"""The RabbitMQ broker with each thread's connection renewed before RabbitMQ drops it for idling.

Why: Dramatiq keeps one ``BlockingConnection`` per thread for publishing. pika sends heartbeats
only while a connection does I/O, so a thread that publishes now and then (the bot's, the
scheduler's, a worker's retry and delivery sends) leaves its connection silent, and RabbitMQ
closes it after its heartbeat timeout (60 s by default: "missed heartbeats from client"). The
next publish then failed on the dead socket: Dramatiq reconnected and the message went out, but
pika logged three ERROR lines and two tracebacks each time (a Sentry event each, with the
logging integration), every few idle minutes of a healthy system.

Here a thread's connection unused for :data:`IDLE_RENEW` seconds, or half the heartbeat timeout
it negotiated when that is shorter (60 s by default), is closed and replaced before the call that
wants it; a connection that was dropped all the same (a restart) is closed without pika's noise,
in this thread: nothing of it is still needed. A connection in use is never touched.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dramatiq.brokers.rabbitmq import RabbitmqBroker

logger = logging.getLogger(__name__)

#: Seconds a thread's publishing connection may stay unused before it is renewed.
IDLE_RENEW = 25.0


class _QuietWhileClosing(logging.Filter):
    """Drops pika's records made by a thread while it closes a connection nobody needs any more
    (its socket may be dead: pika logs each failed write as an ERROR with a traceback). Other
    threads' records, and this thread's at any other time, pass."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.closing, "active", False)


_QUIET = _QuietWhileClosing()


@contextmanager
def _pika_quiet() -> Iterator[None]:
    """pika's log silenced, in this thread only, for the block. (A logger's filters see only the
    records made on it, so the filter goes on every pika logger there is by now: their modules
    are imported once a connection was opened.)"""
    for name in [*logging.root.manager.loggerDict, "pika"]:
        if name == "pika" or name.startswith("pika."):
            pika_logger = logging.getLogger(name)
            if _QUIET not in pika_logger.filters:
                pika_logger.addFilter(_QUIET)
    _QUIET.closing.active = True
    try:
        yield
    finally:
        _QUIET.closing.active = False


class IdleSafeRabbitmqBroker(RabbitmqBroker):
    """:class:`RabbitmqBroker` whose per-thread connection is renewed after :data:`IDLE_RENEW`
    seconds unused (see the module docstring)."""

    idle_renew = IDLE_RENEW

    @property
    def channel(self) -> Any:
        now = time.monotonic()
        used_at = getattr(self.state, "used_at", None)
        if used_at is not None and now - used_at > self._renew_after():
            self._renew(now - used_at)
        self.state.used_at = now
        return RabbitmqBroker.channel.fget(self)  # type: ignore[attr-defined]

    @channel.deleter
    def channel(self) -> None:
        RabbitmqBroker.channel.fdel(self)  # type: ignore[attr-defined]

    def _renew_after(self) -> float:
        """Seconds this thread's connection may stay unused: :attr:`idle_renew`, or half the
        heartbeat timeout it negotiated when that is shorter (RabbitMQ may be set to a few
        seconds, or the URL ask for it: ``?heartbeat=10``)."""
        connection = getattr(self.state, "connection", None)
        params = getattr(getattr(connection, "_impl", None), "params", None)
        heartbeat = getattr(params, "heartbeat", None)  # (negotiated once open; 0: none)
        if isinstance(heartbeat, int | float) and heartbeat > 0:
            return min(self.idle_renew, heartbeat / 2)
        return self.idle_renew

    def _renew(self, idle: float) -> None:
        """Forget this thread's channel and connection (Dramatiq opens new ones on next use) and
        close them, quietly: a failure to close one already dropped changes nothing."""
        channel = self.state.__dict__.pop("channel", None)
        connection = self.state.__dict__.pop("connection", None)
        self.channels.discard(channel)
        self.connections.discard(connection)
        with _pika_quiet():
            for closable in (channel, connection):
                if closable is not None and closable.is_open:
                    try:
                        closable.close()
                    except Exception:  # its socket was dead: nothing is left to close
                        pass
        logger.debug("RabbitMQ connection unused for %.0f s renewed", idle)

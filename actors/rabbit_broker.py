"""The RabbitMQ broker with each thread's connection renewed before RabbitMQ drops it for idling.

Why: Dramatiq keeps one ``BlockingConnection`` per thread for publishing. pika sends heartbeats
only while a connection does I/O, so a thread that publishes now and then (the bot's, the
scheduler's, a worker's retry and delivery sends) leaves its connection silent, and RabbitMQ
closes it after its heartbeat timeout (60 s by default: "missed heartbeats from client"). The
next publish then failed on the dead socket: Dramatiq reconnected and the message went out, but
pika logged three ERROR lines and two tracebacks each time (a Sentry event each, with the
logging integration), every few idle minutes of a healthy system.

Here a thread's connection unused for :data:`IDLE_RENEW` seconds (well inside any heartbeat
timeout RabbitMQ negotiates, 60 s by default) is closed and replaced before the call that wants
it; a connection that was dropped all the same (a timeout set lower, a restart) is closed
without pika's noise: nothing of it is still needed. A connection in use is never touched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dramatiq.brokers.rabbitmq import RabbitmqBroker

logger = logging.getLogger(__name__)

#: Seconds a thread's publishing connection may stay unused before it is renewed.
IDLE_RENEW = 25.0


@contextmanager
def _pika_quiet() -> Iterator[None]:
    """pika's log silenced while a connection nobody needs any more is closed (its socket may be
    dead: pika logs each failed write as an ERROR with a traceback)."""
    pika_logger = logging.getLogger("pika")
    level = pika_logger.level
    pika_logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        pika_logger.setLevel(level)


class IdleSafeRabbitmqBroker(RabbitmqBroker):
    """:class:`RabbitmqBroker` whose per-thread connection is renewed after :data:`IDLE_RENEW`
    seconds unused (see the module docstring)."""

    idle_renew = IDLE_RENEW

    @property
    def channel(self) -> Any:
        now = time.monotonic()
        used_at = getattr(self.state, "used_at", None)
        if used_at is not None and now - used_at > self.idle_renew:
            self._renew(now - used_at)
        self.state.used_at = now
        return RabbitmqBroker.channel.fget(self)  # type: ignore[attr-defined]

    @channel.deleter
    def channel(self) -> None:
        RabbitmqBroker.channel.fdel(self)  # type: ignore[attr-defined]

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

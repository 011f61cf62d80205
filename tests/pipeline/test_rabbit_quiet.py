"""The RabbitMQ broker's closing of an idle connection silences pika for its own thread only
(:mod:`actors.rabbit_broker`): it used to lower the process-wide ``pika`` level and put it back,
so two threads renewing at once could leave pika silenced for good, and another thread's real
error was dropped while one closed."""

from __future__ import annotations

import logging
import threading

import pytest

from actors.rabbit_broker import _pika_quiet


def test_a_thread_closing_a_connection_silences_pika_for_itself_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    log = logging.getLogger("pika.adapters.blocking_connection")
    inside, logged, leave = threading.Event(), threading.Event(), threading.Event()

    def closing(name: str) -> None:
        with _pika_quiet():
            log.error("%s: a dead socket's noise", name)
            inside.set()
            leave.wait(5)

    threads = [threading.Thread(target=closing, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    inside.wait(5)

    def other() -> None:
        log.error("another connection's real error")
        logged.set()

    threading.Thread(target=other).start()
    logged.wait(5)
    leave.set()
    for thread in threads:
        thread.join(5)
    log.error("after the renewals")
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("pika")]
    assert messages == ["another connection's real error", "after the renewals"], messages
    assert logging.getLogger("pika").getEffectiveLevel() <= logging.ERROR

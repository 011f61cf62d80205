"""The local RabbitMQ the RabbitMQ tests use when it answers (they skip, saying why, when not)."""

from __future__ import annotations

import os

import pytest

from settings import redact_url

RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
BASES = ("high", "default", "low")


def rabbit_problem(url: str) -> str | None:
    """None when RabbitMQ accepts a connection at ``url``, else why not (one line)."""
    import pika

    params = pika.URLParameters(url)
    params.socket_timeout = 2
    params.blocked_connection_timeout = 2
    params.connection_attempts = 1
    try:
        pika.BlockingConnection(params).close()
    except Exception as exc:
        return repr(exc)[:200]
    return None


def skip_unless_rabbitmq(url: str = RABBITMQ_URL) -> None:
    """Skip the test, with the reason, when RabbitMQ does not answer at ``url``."""
    problem = rabbit_problem(url)
    if problem:
        pytest.skip(f"RabbitMQ does not answer on {redact_url(url)} ({problem})")


def delete_queues(url: str, prefix: str) -> None:
    """Delete a test's queues (``prefix`` + each base, with its delay and dead-letter queues)."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        for base in BASES:
            for suffix in ("", ".DQ", ".XQ"):
                channel.queue_delete(queue=f"{prefix}{base}{suffix}")
    finally:
        connection.close()


def ready_messages(url: str, queue: str) -> list[bytes]:
    """The bodies of the messages ready in ``queue``, oldest first, left in the queue: each is
    taken unacknowledged and all are given back (requeued in their places) before returning."""
    import pika
    import pika.exceptions

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        bodies: list[bytes] = []
        last_tag = None
        try:
            channel.queue_declare(queue=queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 404:  # never declared: nothing was queued there
                return []
            raise
        while True:
            method, _, body = channel.basic_get(queue=queue, auto_ack=False)
            if method is None:
                break
            bodies.append(body)
            last_tag = method.delivery_tag
        if last_tag is not None:
            channel.basic_nack(delivery_tag=last_tag, multiple=True, requeue=True)
        return bodies
    finally:
        connection.close()

"""Admin commands that send messages, with RabbitMQ configured but down: one line on stderr
naming the broker (password masked) and exit 1, as ``status`` and ``clear`` already did, never
Dramatiq's traceback. No RabbitMQ server needed: the URL points at a port nobody listens on."""

from __future__ import annotations

import pytest

from tests.ops.test_admin import admin_process

FAILED_JOB = "0b6f4c2e-7d1a-4f5e-9c3b-2a1d4e5f6a7b"


def _failed_job() -> str:
    """A failed job's record, for ``requeue`` to send again (records live in Redis, which is up)."""
    from queues.runtime import get_job_store

    store = get_job_store()
    store.create(FAILED_JOB, actor="player_report", queue="default", kwargs={"player_id": "s1mple"})
    store.finish(FAILED_JOB, attempt=store.begin(FAILED_JOB, max_deliveries=1).attempt, status="failed",
                 error={"type": "UpstreamError", "code": "upstream", "message": "upstream 503"})
    return FAILED_JOB


@pytest.mark.parametrize("args", [
    ("test", "--timeout", "5"),
    ("test", "--json"),
    ("requeue", "--all"),
    ("requeue", "--job", FAILED_JOB),
    ("requeue", "--queue", "default", "--json"),
    ("clear", "all", "--yes"),
])
def test_commands_that_send_say_rabbitmq_is_unreachable_in_one_line(redis_server, fresh, args):
    from queues.runtime import get_job_store
    from tests.support.redis_server import free_port

    job_id = _failed_job()
    port = free_port()
    done = admin_process(*args, BROKER="rabbitmq", RABBITMQ_URL=f"amqp://u:s3cretpw@127.0.0.1:{port}/")
    assert done.returncode == 1, (args, done.stdout, done.stderr)
    assert done.stderr.strip() == f"error: RabbitMQ at amqp://u:***@127.0.0.1:{port}/ is unreachable " \
                                  "(AMQPConnectionError)", done.stderr
    assert "s3cretpw" not in done.stdout + done.stderr
    # Nothing left pretending otherwise: the failed job is still failed (its requeue undone), and
    # no probe's record says "queued" for a message that was never sent.
    store = get_job_store()
    assert store.get(job_id).status == "failed"
    assert store.list_jobs(status="queued")[1] == 0

"""Admin commands that send messages, with RabbitMQ configured but down: one line on stderr
naming the broker (password masked) and exit 1, as ``status`` and ``clear`` already did, never
Dramatiq's traceback. No RabbitMQ server needed: the URL points at a port nobody listens on.
A RabbitMQ that answers but refuses the login or the virtual host says that instead (the local
server; skipped, saying why, when it does not answer)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from settings import redact_url
from tests.ops.test_admin import admin_process
from tests.support.rabbitmq import RABBITMQ_URL, skip_unless_rabbitmq
from tests.support.workers import ROOT

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


@pytest.mark.parametrize(("where", "said"), [
    ("password", "refused the login: check the user and password in RABBITMQ_URL"),
    ("vhost", "refused the virtual host: check it in RABBITMQ_URL, and the user's permissions on it"),
])
def test_a_rabbitmq_that_refuses_the_login_or_the_vhost_is_not_called_unreachable(redis_server, fresh, where, said):
    """A wrong password read "RabbitMQ at … is unreachable (ProbableAuthenticationError)": the
    operator went looking at the network while the broker answered and said no."""
    import pika

    skip_unless_rabbitmq()
    params = pika.URLParameters(RABBITMQ_URL)
    user, host, port = params.credentials.username, params.host, params.port
    url = (f"amqp://{user}:wr0ng-s3cret@{host}:{port}/" if where == "password"
           else f"amqp://{user}:{params.credentials.password}@{host}:{port}/no-such-vhost-here")
    for args in (("clear", "all", "--yes"), ("test", "--timeout", "5")):
        done = admin_process(*args, BROKER="rabbitmq", RABBITMQ_URL=url)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert done.stderr.strip() == f"error: RabbitMQ at {redact_url(url)} {said}", done.stderr
        assert "wr0ng-s3cret" not in done.stdout + done.stderr


@pytest.fixture
def rabbit_user_without_permissions(redis_server) -> Iterator[str]:
    """A RabbitMQ URL of a user made for this test who may open the vhost and touch no queue
    (``rabbitmqctl``, on the local server; skipped, saying why, where that cannot be done)."""
    import pika

    skip_unless_rabbitmq()
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed: no user without permissions can be made")
    user, password = f"t{uuid.uuid4().hex[:8]}_noperms", uuid.uuid4().hex

    def ctl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)

    made = ctl("add_user", user, password)
    if made.returncode != 0:
        pytest.skip(f"rabbitmqctl cannot add a user here: {(made.stderr or made.stdout).strip()[:200]}")
    try:
        assert ctl("set_permissions", "-p", "/", user, "^$", "^$", "^$").returncode == 0
        params = pika.URLParameters(RABBITMQ_URL)
        yield f"amqp://{user}:{password}@{params.host}:{params.port}/"
    finally:
        ctl("delete_user", user)


def test_a_rabbitmq_user_without_permissions_is_told_so_not_unreachable(rabbit_user_without_permissions, fresh):
    """Login and vhost accepted, the queues refused (403 ACCESS_REFUSED on the channel)."""
    url = rabbit_user_without_permissions
    for args in (("clear", "all", "--yes"), ("test", "--timeout", "5")):
        done = admin_process(*args, BROKER="rabbitmq", RABBITMQ_URL=url)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        line = done.stderr.strip()
        assert line.startswith(f"error: RabbitMQ at {redact_url(url)} refused the operation (ACCESS_REFUSED"), line
        assert line.endswith("): the user lacks a permission on the queues") and "\n" not in line, line


def test_a_closed_pipe_is_not_called_rabbitmq_unreachable(redis_server, fresh):
    """``admin.py alerts --json | head -c0`` with RabbitMQ configured: a catch-all for RabbitMQ's
    errors took the closed pipe (an ``OSError``) for RabbitMQ and said "RabbitMQ … is
    unreachable", from a command that never speaks to it. The reader left: exit 1, no message."""
    from tests.support.redis_server import free_port

    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will ever read: the first write meets a closed pipe
    try:
        done = subprocess.run([sys.executable, "admin.py", "alerts", "--json"], cwd=ROOT, stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=60,
                              env={**os.environ, "BROKER": "rabbitmq",
                                   "RABBITMQ_URL": f"amqp://u:s3cretpw@127.0.0.1:{free_port()}/"})
    finally:
        os.close(write_end)
    assert done.returncode == 1, done.stderr
    assert "RabbitMQ" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert done.stderr == "", done.stderr  # no message at all
    assert "BrokenPipeError" not in done.stderr, done.stderr

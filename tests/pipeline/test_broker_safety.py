"""Broker settings that keep a live worker's jobs from running twice, and a published message
from being lost: checked on the brokers as the workers build them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import redis

from actors.broker import sweep_dead_workers
from actors.brokers import TrackedRedisBroker
from queues.dramatiq_keys import acks_key, heartbeats_key
from tests.support.workers import ROOT


def test_no_redis_command_runs_dramatiqs_random_dead_worker_maintenance(redis_url: str) -> None:
    """After a Redis outage longer than the heartbeat timeout, every live process's heartbeat is
    stale. Dramatiq's own maintenance, rolled on 1 command in 1,000, then put a live worker's
    running jobs back in the queue: run twice, and counted as lost workers. Only the presence
    sweep does that work now, a heartbeat timeout after the outage. A process whose heartbeat
    is stale here holds one message; 20,000 commands later it still holds it (on the old broker
    the chance of that was about 2 in a billion)."""
    namespace = f"safety-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    broker = TrackedRedisBroker(client=client, namespace=namespace, middleware=[], heartbeat_timeout=1000)
    broker.declare_queue("high")
    held = acks_key(namespace, "stale-but-alive", "high")
    client.zadd(heartbeats_key(namespace), {"stale-but-alive": 0})
    client.sadd(held, "message-1")
    client.hset(f"{namespace}:high.msgs", "message-1", json.dumps({"message_id": "job-1"}))
    try:
        for _ in range(20_000):
            broker.do_qsize("high")
        assert client.smembers(held) == {b"message-1"}
        assert client.llen(f"{namespace}:high") == 0
    finally:
        for key in client.scan_iter(f"{namespace}*"):
            client.delete(key)
        broker.close()


def test_rabbitmq_publishes_wait_for_the_servers_confirm() -> None:
    """A retry is published, then its original acked: without publisher confirms, a publish just
    before RabbitMQ went down could be lost after the ack, and the job stayed "retrying" with
    nothing to run it. (Built as a worker builds it; nothing connects.)"""
    probe = ("from actors.broker import build_broker\nfrom settings import get_settings\n"
             "broker = build_broker(get_settings())\nprint(type(broker).__name__, broker.confirm_delivery)")
    env = {**os.environ, "BROKER": "rabbitmq", "RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:5672/",
           "SENTRY_DSN": ""}
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["IdleSafeRabbitmqBroker", "True"], done.stdout  # (a RabbitmqBroker)


def test_the_sweep_drops_dead_letters_older_than_their_ttl(redis_url: str) -> None:
    """Dramatiq drops old dead letters only in its maintenance, which the broker no longer rolls:
    the sweep does it now (once a minute per process, its first sweep at once), or the dead-letter
    queues grew for ever and QUEUE_FAILURE_TTL meant nothing for them."""
    namespace = f"safety-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    broker = TrackedRedisBroker(client=client, namespace=namespace, middleware=[], heartbeat_timeout=1000,
                                dead_message_ttl=60_000)
    broker.declare_queue("low")
    dead = f"{namespace}:low.XQ"
    now = int(time.time() * 1000)
    client.zadd(dead, {"old": now - 120_000, "fresh": now - 1_000})
    client.hset(f"{dead}.msgs", mapping={"old": "{}", "fresh": "{}"})
    try:
        sweep_dead_workers(broker, ["low", "low.DQ"])
        assert client.zrange(dead, 0, -1) == [b"fresh"]
        assert client.hkeys(f"{dead}.msgs") == [b"fresh"]
    finally:
        for key in client.scan_iter(f"{namespace}*"):
            client.delete(key)
        broker.close()

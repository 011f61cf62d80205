"""The delivery trigger against a Redis that goes away: a job's delivery is enqueued once Redis
is back, not lost (the job has ended; nothing else would send it)."""

from __future__ import annotations

import logging
import threading
import time

import redis
from dramatiq import Message

from actors.brokers import TrackedRedisBroker
from middleware.delivery_trigger import DeliveryTrigger
from queues.dramatiq_keys import messages_key, queue_key


def test_a_delivery_is_enqueued_once_the_broker_is_back(redis_server, redis_url, redis_client, caplog):
    broker = TrackedRedisBroker(client=redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=1),
                                namespace="trigger", middleware=[])
    broker.declare_queue("high")
    trigger = DeliveryTrigger(queue_name="high")
    caplog.set_level(logging.WARNING, logger="middleware.delivery_trigger")
    redis_server.stop(flush_to_disk=False)
    try:
        sender = threading.Thread(target=trigger.enqueue_delivery, args=(broker, "job-1"), daemon=True)
        sender.start()
        deadline = time.monotonic() + 20
        while "cannot enqueue its delivery yet" not in caplog.text:  # it met the outage
            assert time.monotonic() < deadline and sender.is_alive(), caplog.text
            time.sleep(0.02)
    finally:
        redis_server.start()
    sender.join(30)
    assert not sender.is_alive()
    assert "delivery enqueued after" in caplog.text
    [redis_id] = redis_client.lrange(queue_key("trigger", "high"), 0, -1)
    body = Message.decode(redis_client.hget(messages_key("trigger", "high"), redis_id).encode())
    assert (body.actor_name, body.args) == ("deliver_result", ("job-1",))
    broker.close()

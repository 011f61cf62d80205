"""The per-thread script path of job tracking: script cache flushes, Redis restarts, Sentinel."""

from __future__ import annotations

import os
import threading
import uuid

import pytest
import redis
from redis.sentinel import Sentinel

from queues.connection import CheckedSentinelPool
from queues.direct_scripts import DirectScripts, direct_scripts_for

INCR = "return redis.call('INCRBY', ARGV[1], ARGV[2])"


@pytest.fixture
def client(redis_url: str):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def test_runs_a_script_and_loads_it_again_after_a_script_flush(client):
    direct = direct_scripts_for(client)
    assert isinstance(direct, DirectScripts)
    script = client.register_script(INCR)
    assert direct.run(script, ["n", 2]) == 2
    client.script_flush()
    assert direct.run(script, ["n", 3]) == 5


def test_each_thread_keeps_its_own_connection(client, redis_url):
    # A client name of its own: other test processes share this Redis and open connections too.
    name = f"direct-{uuid.uuid4().hex[:8]}"
    named = redis.Redis.from_url(redis_url, decode_responses=True, client_name=name)
    direct = direct_scripts_for(named)
    script = named.register_script(INCR)
    ran, release = threading.Barrier(4), threading.Event()

    def work() -> None:
        for _ in range(5):
            direct.run(script, ["n", 1])
        ran.wait()
        release.wait(10)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    ran.wait(10)
    try:
        assert sum(1 for c in client.client_list() if c.get("name") == name) == 3  # 15 calls, 3 connections
        assert client.get("n") == "15"
    finally:
        release.set()
        for t in threads:
            t.join()
        named.close()


def test_a_redis_restart_raises_a_connection_error_then_reconnects(client, redis_server):
    direct = direct_scripts_for(client)
    script = client.register_script(INCR)
    assert direct.run(script, ["n", 1]) == 1
    redis_server.stop()
    with pytest.raises(redis.ConnectionError):
        direct.run(script, ["n", 1])
    redis_server.start()
    assert direct.run(script, ["n", 1]) == 2  # AOF kept n; the script cache was lost and reloaded


def test_sentinel_pools_keep_their_master_checks():
    sentinel = Sentinel([("127.0.0.1", 1)])
    pool = CheckedSentinelPool("mymaster", sentinel)
    assert direct_scripts_for(redis.Redis(connection_pool=pool)) is None


def test_a_forked_child_opens_its_own_connection(client, redis_url):
    name = f"direct-{uuid.uuid4().hex[:8]}"
    named = redis.Redis.from_url(redis_url, decode_responses=True, client_name=name)
    direct = direct_scripts_for(named)
    script = named.register_script("return redis.call('INCR', ARGV[1])")
    assert direct.run(script, ["n"]) == 1
    pid = os.fork()
    if pid == 0:  # the child: its call must go out on a socket of its own
        code = 3
        try:
            ok = direct.run(script, ["n"]) == 2
            own = sum(1 for c in client.client_list() if c.get("name") == name) == 2
            code = 0 if ok and own else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert direct.run(script, ["n"]) == 3  # the parent's connection was not disturbed
    named.close()

"""The bot's script batcher (:mod:`bot.scriptbatch`) on the test Redis: calls that wait together
travel together, and each caller still gets exactly what awaiting the script would give it."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from bot.scriptbatch import ScriptBatcher
from queues.redis_server import free_port
from tests.support.reply_dropper import ReplyDroppingProxy

# KEYS: a counter. ARGV: a number; refuses negative ones. → the counter after adding it.
ADD = """
if tonumber(ARGV[1]) < 0 then return redis.error_reply('negative ' .. ARGV[1]) end
return redis.call('INCRBY', KEYS[1], ARGV[1])
"""


@pytest.fixture
async def client(redis_url):
    made = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield made
    await made.aclose()


def connected_clients(redis_client) -> int:
    return int(redis_client.info("clients")["connected_clients"])


async def test_concurrent_calls_share_round_trips_on_one_connection(client, redis_client):
    batcher = ScriptBatcher(client)
    add = client.register_script(ADD)
    await batcher.run(add, ["warm"], [1])  # loads the script (a first call finds it unknown)
    before = connected_clients(redis_client)
    results = await asyncio.gather(*(batcher.run(add, ["n"], [1]) for _ in range(50)))
    assert sorted(results) == list(range(1, 51))  # every call ran once, each got its own reply
    assert connected_clients(redis_client) == before  # all on the warm call's connection
    direct = await asyncio.gather(*(add(keys=["m"], args=[1]) for _ in range(50)))
    assert sorted(direct) == list(range(1, 51)) and connected_clients(redis_client) > before + 10  # one each


async def test_each_caller_gets_its_own_error_and_a_forgotten_script_is_loaded_again(client, redis_client):
    batcher = ScriptBatcher(client)
    add = client.register_script(ADD)
    await batcher.run(add, ["n"], [1])
    redis_client.script_flush()  # as after a Redis restart: the script's sha is unknown
    before = connected_clients(redis_client)
    results = await asyncio.gather(batcher.run(add, ["n"], [2]), batcher.run(add, ["n"], [-1]),
                                   batcher.run(add, ["n"], [3]), return_exceptions=True)
    assert connected_clients(redis_client) == before  # loaded once and run again on the same connection
    assert isinstance(results[1], redis.ResponseError) and "negative -1" in str(results[1])
    assert sorted(results[0::2]) == [3, 6] and redis_client.get("n") == "6"


async def test_a_broken_connection_fails_every_call_of_the_pipeline():
    unreachable = aioredis.Redis(port=free_port(), socket_connect_timeout=1, decode_responses=True,
                                 retry=Retry(NoBackoff(), 0))
    batcher = ScriptBatcher(unreachable)
    add = unreachable.register_script(ADD)
    results = await asyncio.gather(*(batcher.run(add, ["n"], [1]) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, redis.ConnectionError) for r in results), results
    await unreachable.aclose()


@pytest.fixture
def proxy(redis_server):
    made = ReplyDroppingProxy(redis_server.port)
    yield made
    made.close()


async def test_a_stalled_pipeline_holds_other_calls_back_only_briefly(redis_url, redis_client, proxy):
    """A connection that stops answering (until its socket timeout) must not stall every update;
    and a caller that gave up while waiting sends nothing."""
    client = aioredis.Redis(port=proxy.port, decode_responses=True)
    batcher = ScriptBatcher(client)
    add = client.register_script(ADD)
    await batcher.run(add, ["warm"], [1])
    proxy.hold_reply_to(b"slow", 1.0)
    slow = asyncio.ensure_future(batcher.run(add, ["slow"], [1]))
    assert await asyncio.to_thread(proxy.marker_seen.wait, 10)  # the slow pipeline is out
    gave_up = asyncio.ensure_future(batcher.run(add, ["never"], [1]))
    await asyncio.sleep(0)
    gave_up.cancel()
    # Answered while the slow pipeline's reply is still held back, not after it.
    assert await batcher.run(add, ["fast"], [1]) == 1
    assert not slow.done()
    assert await slow == 1
    assert redis_client.get("never") is None
    await client.aclose()

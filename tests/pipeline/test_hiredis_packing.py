"""Our asyncio Redis clients write commands with hiredis's packer (``queues.connection.HiredisPacking``):
the same bytes and errors as redis-py's Python packer, against a real Redis."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from bot.redisclient import bot_redis_client
from queues.connection import HiredisPacking, async_redis_client
from settings import get_settings

# Every kind of argument our code sends: text (not ASCII too), bytes, whole and real numbers,
# a buffer, and a value long enough that redis-py's own packer sends it as a chunk of its own.
ARGUMENTS = ("EVALSHA", "a" * 40, 2, "fjq:job:é", b"\x00\xffraw", 10**20, -3, 1.5, 1733500000.123456,
             float("inf"), memoryview(b"view"), bytearray(b"array"), "x" * 10_000, "")


def python_packed(*args: object) -> bytes:
    """What redis-py's asyncio connection writes for ``args`` without hiredis."""
    return b"".join(bytes(chunk) for chunk in Connection().pack_command(*args))


def connection_of(client: aioredis.Redis) -> Connection:
    return client.connection_pool.make_connection()


def test_the_clients_connections_pack_with_hiredis_and_write_the_same_bytes(redis_url: str) -> None:
    for client in (async_redis_client(get_settings()), bot_redis_client(get_settings()),
                   async_redis_client(get_settings(), decode=False)):
        connection = connection_of(client)
        assert isinstance(connection, HiredisPacking)
        packed = connection.pack_command(*ARGUMENTS)
        assert len(packed) == 1  # one buffer, not redis-py's chunks for long values
        assert packed[0] == python_packed(*ARGUMENTS)
        # A command name of two words is split as redis-py splits it, as text or bytes.
        assert connection.pack_command("CONFIG GET", "maxmemory") == [python_packed("CONFIG GET", "maxmemory")]
        assert connection.pack_command(b"CLIENT SETNAME", "bot") == [python_packed(b"CLIENT SETNAME", "bot")]
        pipelined = connection.pack_commands([("SET", "k", 1.25), ("GET", "k")])
        assert b"".join(pipelined) == python_packed("SET", "k", 1.25) + python_packed("GET", "k")


@pytest.mark.parametrize("bad", [True, None, object(), [1]])
def test_an_argument_redis_cannot_take_is_a_data_error_as_before(redis_url: str, bad: object) -> None:
    connection = connection_of(async_redis_client(get_settings()))
    with pytest.raises(DataError):
        Connection().pack_command("SET", "k", bad)
    with pytest.raises(DataError):
        connection.pack_command("SET", "k", bad)


def test_an_encoding_other_than_utf8_keeps_redis_pys_packer(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url, encoding="latin-1")
    from queues.connection import with_hiredis_packing

    connection = connection_of(with_hiredis_packing(client))
    assert isinstance(connection, HiredisPacking)
    assert b"".join(connection.pack_command("SET", "k", "é")) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n\xe9\r\n"


async def test_commands_scripts_and_pipelines_round_trip_through_a_real_redis(redis_url: str) -> None:
    client = bot_redis_client(get_settings())
    try:
        big = "ё" * 50_000
        await client.set("text", big)
        assert await client.get("text") == big
        await client.set("number", 1733500000.123456)
        assert await client.get("number") == "1733500000.123456"
        echo = client.register_script("return ARGV")
        args = [f"arg-{i}-é" for i in range(60)]
        assert await echo(keys=["k1", "k2"], args=args) == args
        async with client.pipeline(transaction=True) as pipe:
            replies = await pipe.rpush("list", "a", b"b", 3).lrange("list", 0, -1).execute()
        assert replies == [3, ["a", "b", "3"]]
    finally:
        await client.aclose()

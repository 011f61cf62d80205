"""The low fetches a process leads are watched for waiting interactive callers together.

A bulk keeps hundreds of fetches waiting in the low lane. Each looked for an interactive caller of
another process by itself, every second: hundreds of Redis calls a second for as long as the bulk
waited. Now one ``MGET`` a second reads the ``wanted`` keys of them all, and a fetch a user waits
on is still raised within that second. The cache's ``wanted_poll`` (``WANTED_POLL``, 1 s) is
scaled down here through its constructor.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
from redis.asyncio import Redis

from faceit.cache import SingleFlightCache
from faceit.keys import FaceitKeys
from faceit.ratelimit import LOW_PRIORITY_WORK, LowPriority
from tests.support.waiting import async_wait_until

FLIGHTS = 40
POLL = 0.05  # the cache's wanted_poll, scaled down from WANTED_POLL (1 s)


@pytest.fixture(params=[True, False], ids=["str replies", "bytes replies"])
async def cache(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[SingleFlightCache]:
    client = Redis.from_url(redis_url, decode_responses=request.param)
    # No renewal within the test (lock_ttl), a look for ``wanted`` each POLL.
    cache = SingleFlightCache(client, FaceitKeys("lw:"), lock_ttl=120.0, wanted_poll=POLL)
    yield cache
    await cache.close()
    await client.aclose()


def _calls(redis_client: redis.Redis, command: str) -> int:
    return int(redis_client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_many_low_fetches_cost_one_call_per_poll_and_a_waited_one_is_still_raised(
        cache: SingleFlightCache, redis_client: redis.Redis) -> None:
    keys = FaceitKeys("lw:")
    release = asyncio.Event()
    raised: list[int] = []

    async def low_fetch(number: int) -> Any:
        flight = LOW_PRIORITY_WORK.get()  # the fetch's own LowPriority (the cache gives each its own)
        await release.wait()
        if flight is not None and flight.raised:
            raised.append(number)
        return {"n": number}

    async def bulk_get(number: int) -> Any:
        LOW_PRIORITY_WORK.set(LowPriority())  # low work, as a job of the low queue
        return await cache.get(keys.cache("player", f"p{number}"), lambda: low_fetch(number), lambda _: 60)

    fetches = [asyncio.ensure_future(bulk_get(number)) for number in range(FLIGHTS)]
    try:
        await async_wait_until(lambda: all(redis_client.exists(keys.lock(keys.cache("player", f"p{n}")))
                                           for n in range(FLIGHTS)), "every low fetch leading")
        redis_client.config_resetstat()
        await async_wait_until(lambda: _calls(redis_client, "mget") >= 10 or _calls(redis_client, "evalsha") >= 3 * FLIGHTS,
                               "ten looks at the wanted keys")
        looks, renewals = _calls(redis_client, "mget"), _calls(redis_client, "evalsha")
        # Each look was one call for all the fetches; each fetch looking for itself made FLIGHTS.
        assert looks >= 10 and renewals < FLIGHTS, f"{renewals} lock calls during {looks} looks"
        # A user in another process waits on one of them (what _HELD writes): raised at the next look.
        lock = keys.lock(keys.cache("player", "p7"))
        redis_client.set(f"{lock}:wanted", redis_client.get(lock), px=15000)
        await async_wait_until(lambda: _calls(redis_client, "mget") >= looks + 2, "two more looks")
    finally:
        release.set()
        results = await asyncio.gather(*fetches)
    assert [r["n"] for r in results] == list(range(FLIGHTS))
    assert raised == [7]


async def test_closing_the_client_stops_the_watcher(cache: SingleFlightCache, redis_client: redis.Redis) -> None:
    """A worker's loop closes its FACEIT client (``FaceitContext.close``): no watcher may go on
    reading the wanted keys on a closed Redis client, or be left pending on the loop."""
    keys = FaceitKeys("lw:")
    release = asyncio.Event()

    async def bulk_get() -> Any:
        LOW_PRIORITY_WORK.set(LowPriority())

        async def fetch() -> Any:
            await release.wait()
            return {}

        return await cache.get(keys.cache("player", "closing"), fetch, lambda _: 60)

    fetch = asyncio.ensure_future(bulk_get())
    try:
        redis_client.config_resetstat()
        await async_wait_until(lambda: _calls(redis_client, "mget") >= 1, "the watcher looking")
        watcher = cache._watcher
        assert watcher is not None and not watcher.done()
        await cache.close()
        await asyncio.wait({watcher}, timeout=1)
        assert watcher.cancelled()
    finally:
        release.set()
        await fetch


"""The delivery lease on real Redis: a live holder keeps it past its ttl, a dead one loses it
within the ttl, and only the holder ends it. (The race it closes is in test_end_to_end.py.)"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from bot.delivery_lease import MAX_WAIT, DeliveryBusy, DeliveryLeases

TTL = 0.6


@pytest.fixture
async def client(redis_url):
    made = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield made
    await made.aclose()


async def test_a_live_holder_keeps_the_lease_past_its_ttl_and_the_other_is_retried_later(client):
    leases = DeliveryLeases(client, ttl=TTL)
    key = "fb:test:lease:live"
    async with leases.hold(key, "job-a"):
        started = time.monotonic()
        with pytest.raises(DeliveryBusy) as busy:  # waits 1.5 ttl: the holder renews meanwhile
            async with leases.hold(key, "job-a"):
                pytest.fail("two holders at once")
        assert time.monotonic() - started >= TTL * 1.5 - 0.05
        assert busy.value.retryable and busy.value.retry_after == TTL
        assert await client.exists(key)
    assert not await client.exists(key)  # ended by its holder


async def test_a_dead_holders_lease_ends_within_its_ttl_and_the_next_delivery_takes_it(client):
    """The next delivery waits for the dead holder's lease to end, then holds it itself.

    No upper bound on the time: the lease's own wait (1.5 ttl) is the bound. Had the dead
    lease outlived it, ``hold`` would have raised :class:`DeliveryBusy` instead of taking it."""
    leases = DeliveryLeases(client, ttl=TTL)
    key = "fb:test:lease:dead"
    await client.set(key, "a worker that died", px=int(TTL * 1000))  # nobody renews it
    started = time.monotonic()
    async with leases.hold(key, "job-b") as lease:
        assert await client.get(key) == lease.token  # ours now, not the dead worker's
        assert await client.pttl(key) > 0  # a lease that ends by itself if we die too
    assert time.monotonic() - started > TTL * 0.5  # it waited: the dead holder's lease was not overwritten
    assert not await client.exists(key)  # and it ended its own lease


async def test_only_the_holder_ends_its_lease(client):
    leases = DeliveryLeases(client, ttl=TTL)
    key = "fb:test:lease:owner"
    async with leases.hold(key, "job-c"):
        await client.set(key, "someone else", px=5000)  # ours was lost (a stall past the ttl)
        await asyncio.sleep(TTL / 2)  # a renewal runs meanwhile and must not take it back
        assert await client.get(key) == "someone else"
    assert await client.get(key) == "someone else"


async def test_a_lease_of_no_time_is_refused_and_a_long_one_is_not_waited_for_past_the_cap(client):
    with pytest.raises(ValueError):
        DeliveryLeases(client, ttl=0)
    assert DeliveryLeases(client, ttl=80).wait == MAX_WAIT  # inside the delivery job's time limit

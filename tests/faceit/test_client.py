"""The Data API client against the sandbox: errors, cache, single-flight, shared rate limit."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio import Redis

from faceit import errors
from faceit.client import KEY_MISSING, SANDBOX_API_KEY, CacheTTLs, FaceitClient, parse_retry_after
from faceit.keys import FaceitKeys
from faceit.metrics import faceit_call_counts
from tests.support.faceit_sandbox import FaceitSandbox, free_port
from tests.support.redis_server import RedisServer
from tests.support.reply_dropper import ReplyDroppingProxy
from tests.support.waiting import async_wait_until

ROOT = Path(__file__).resolve().parents[2]
MakeClient = Callable[..., FaceitClient]


@pytest.fixture
async def make_client(sandbox: FaceitSandbox, redis_url: str) -> AsyncIterator[MakeClient]:
    made: list[FaceitClient] = []

    def make(**overrides: Any) -> FaceitClient:
        options: dict[str, Any] = {
            "api_url": sandbox.api_url, "api_key": sandbox.key,
            "redis": Redis.from_url(redis_url, decode_responses=True), "keys": FaceitKeys("fb:"),
            "timeout": 5.0, "rate": 1000.0, "burst": 1000,
        }
        options.update(overrides)
        client = FaceitClient(**options)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()
        await client.redis.aclose()


async def test_our_redis_not_answering_is_told_as_ours_not_as_faceits(make_client: MakeClient) -> None:
    """A chaos test: with the FACEIT cache's Redis down, users read "FACEIT is not answering"
    while FACEIT answered. The error is still an outage, retried, with a code of its own."""
    client = make_client(redis=Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1))
    with pytest.raises(errors.StorageUnavailableError) as down:
        await client.get_player_by_nickname("s1mple")
    assert isinstance(down.value, errors.UpstreamError) and down.value.retryable
    assert down.value.code == "storage" and client.upstream_calls == 0
    await client.redis.aclose()


async def test_an_error_text_quoting_the_key_is_masked_before_it_is_cut(make_client: MakeClient) -> None:
    """A proxy or API error that quotes the request's key, past the 200 characters kept: the text
    was cut first, so the part of the key before the cut escaped the masking after it and reached
    the job record, the dashboard and ``admin.py job``. (A stand-in upstream: the sandbox never
    quotes a key.)"""
    from aiohttp import web

    key = "FACEITKEYfakeQ7w3e9"

    async def echo(request: web.Request) -> web.Response:
        sent = request.headers.get("Authorization", "")
        return web.json_response({"errors": [{"message": "x" * 175 + f" sent {sent}"}]}, status=400)

    from tests.support.local_http import serving

    app = web.Application()
    app.router.add_get("/{tail:.*}", echo)
    async with serving(app) as port:
        client = make_client(api_url=f"http://127.0.0.1:{port}/data/v4", api_key=key)
        with pytest.raises(errors.BadInputError) as refused:
            await client.get_match("1-b6305d90-2ffa-40f7-b50c-f7403a6f8411")
    assert "sent Bearer ***" in str(refused.value)
    assert "KEYfak" not in str(refused.value)


async def test_no_key_against_faceits_own_api_fails_at_once_naming_the_setting(make_client: MakeClient) -> None:
    """An operator who starts workers by hand without ``FACEIT_API_KEY`` (only ``make run`` points
    them at the sandbox): no request leaves with the sandbox's key, and the error says what to set."""
    for url in ("https://open.faceit.com/data/v4", "https://OPEN.FACEIT.COM/data/v4/"):
        client = make_client(api_url=url, api_key=SANDBOX_API_KEY)
        for _ in range(2):  # the second read would meet the failure cache, which keeps only the code
            with pytest.raises(errors.KeyMissingError) as missing:
                await client.get_player_by_nickname("s1mple")
            assert str(missing.value) == KEY_MISSING and client.upstream_calls == 0
    for url in ("https://open.faceit.com.example.org/data/v4", "http://127.0.0.1:8081/data/v4"):
        assert not make_client(api_url=url, api_key=SANDBOX_API_KEY).key_missing  # a sandbox: fine
    assert not make_client(api_url="https://open.faceit.com/data/v4", api_key="a-real-key").key_missing


def _player(sandbox: FaceitSandbox, index: int = 0) -> dict[str, Any]:
    return sandbox.world()["players"][index]


async def test_calls_parse_the_sandbox_shapes(make_client: MakeClient, sandbox: FaceitSandbox) -> None:
    client = make_client()
    world = sandbox.world()
    player = world["players"][0]
    profile = await client.get_player_by_nickname(player["nickname"])
    assert profile.player_id == player["player_id"] and profile.elo == player["elo"] and profile.has_cs2
    assert profile.faceit_url and "{lang}" not in profile.faceit_url
    lifetime = await client.get_lifetime_stats(profile.player_id)
    assert lifetime.matches and lifetime.kd and 0 < lifetime.kd < 5  # the average, not the running sum
    assert lifetime.maps and all(seg.map.startswith("de_") for seg in lifetime.maps)  # Wingman left out
    recent = await client.get_recent_stats(profile.player_id)
    assert len(recent) == 30 and recent[0].finished_at > recent[-1].finished_at  # seconds, newest first
    assert recent[0].finished_at < time.time() + 86400
    history = await client.get_history(profile.player_id, limit=5)
    assert history and history[0]["status"] == "finished"
    match = await client.get_match(recent[0].match_id)
    assert match.status == "FINISHED" and len(match.players) == 10
    rounds = await client.get_match_stats(match.match_id)
    assert rounds[0].map and rounds[0].rounds and rounds[0].winner_team_id in {t.faction_id for t in match.teams.values()}


async def test_error_mapping(make_client: MakeClient, sandbox: FaceitSandbox) -> None:
    client = make_client()
    with pytest.raises(errors.NotFoundError) as caught:
        await client.get_player_by_nickname("no-such-nick")
    assert caught.value.key == "player_not_found"
    assert "nickname=no-such-nick" in caught.value.message  # operators see which one (records, dashboard)
    with pytest.raises(errors.NotFoundError):
        await client.get_match("1-00000000-0000-4000-8000-000000000000")
    with pytest.raises(errors.NotFoundError) as no_cs2:  # a CS:GO-only account has no cs2 block
        await client.get_player_by_nickname(sandbox.world()["no_cs2_nicknames"][0])
    assert no_cs2.value.key == "player_no_cs2"  # told as that: the nickname itself is right

    bad_key = make_client(api_key="wrong-key")
    with pytest.raises(errors.AuthError) as auth:
        await bad_key.get_player(_player(sandbox)["player_id"])
    assert "wrong-key" not in str(auth.value) and "wrong-key" not in repr(bad_key)

    sandbox.reset()
    sandbox.faults(error_rate=1.0, status=503)
    with pytest.raises(errors.UpstreamError):
        await client.get_player(_player(sandbox, 1)["player_id"])
    assert sandbox.calls("player") == 2  # one quick internal retry, then the job's retry schedule

    dead = make_client(api_url=f"http://127.0.0.1:{free_port()}/data/v4")
    with pytest.raises(errors.UpstreamError):
        await dead.get_player(_player(sandbox, 2)["player_id"])


async def test_timeout_is_transient_and_not_retried_inside(make_client: MakeClient, sandbox: FaceitSandbox) -> None:
    """A request FACEIT does not answer within the client's timeout fails as a transient outage
    (the job's retry schedule tries again), after that timeout, with no second request inside."""
    client = make_client(timeout=0.3)
    # The sandbox answers with the profile after 3 s (ten times the timeout): a client that waited
    # it out would return that profile instead of raising, so the raise proves the timeout cut it.
    sandbox.faults(timeout_rate=1.0, timeout_ms=3000)
    started = time.monotonic()
    with pytest.raises(errors.UpstreamError) as caught:
        await client.get_player(_player(sandbox)["player_id"])
    assert time.monotonic() - started >= 0.29  # it waited its timeout, not less
    assert caught.value.retryable and caught.value.code == "upstream"
    assert "did not answer" in caught.value.message and "0.3" in caught.value.message
    assert sandbox.calls("player") == 1


async def test_429_sets_retry_after_and_holds_back_every_client(
    make_client: MakeClient, sandbox: FaceitSandbox, redis_client: redis.Redis
) -> None:
    first = make_client(rate_limit_retries=0)
    other = make_client()  # another client (own connection): stands for another process
    ids = [p["player_id"] for p in sandbox.world()["players"][:2]]
    sandbox.faults(error_rate=1.0, status=429, retry_after=2, count=1)
    with pytest.raises(errors.RateLimitedError) as caught:
        await first.get_player(ids[0])
    assert caught.value.retry_after == 2
    # The push-back every client of the key obeys: Retry-After and a 0.1 s margin, no longer (the
    # block marker, and the bucket's next slot, both on Redis' clock).
    pushed_back_ms = redis_client.pttl(first.limiter.block_key)
    seconds, micros = redis_client.time()
    next_slot_in_ms = float(redis_client.hget(first.limiter.bucket_key, "ts")) - (seconds * 1000 + micros / 1000)
    assert 0 < pushed_back_ms <= 2100 and 0 < next_slot_in_ms <= 2100, (pushed_back_ms, next_slot_in_ms)
    started = time.monotonic()
    profile = await other.get_player(ids[1])
    waited = time.monotonic() - started
    assert profile.player_id == ids[1]
    assert waited >= 1.9  # the other client waited out the push-back before its request left
    counts = faceit_call_counts(60)  # the reader the ops monitor uses (Redis from the settings)
    assert counts["rate_limited"] == 1 and counts["ok"] == 1 and counts["requests"] == 2


async def test_one_429_is_retried_inside_after_retry_after(make_client: MakeClient, sandbox: FaceitSandbox) -> None:
    client = make_client()
    sandbox.faults(error_rate=1.0, status=429, retry_after=1, count=1)
    started = time.monotonic()
    await client.get_player(_player(sandbox)["player_id"])
    assert time.monotonic() - started >= 0.95
    assert sandbox.calls("player") == 2


def test_retry_after_parsing() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("junk") is None and parse_retry_after(None) is None
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past


async def test_cache_refresh_and_ttls(make_client: MakeClient, sandbox: FaceitSandbox, redis_client: redis.Redis) -> None:
    client = make_client()
    world = sandbox.world()
    nick = world["players"][0]["nickname"]
    profile = await client.get_player_by_nickname(nick)
    await client.get_player_by_nickname(nick)
    await client.get_player(profile.player_id)  # primed by the nickname lookup
    assert sandbox.calls() == 1
    await client.get_player(profile.player_id, refresh=True)
    assert sandbox.calls("player") == 1 and sandbox.calls() == 2
    await client.get_match(world["matches"]["VOTING"][0])
    await client.get_match(world["matches"]["FINISHED"][0])
    await client.get_recent_stats(profile.player_id)
    await client.get_lifetime_stats(profile.player_id)
    with pytest.raises(errors.NotFoundError):
        await client.get_player_by_nickname("nobody-here")
    # One call for the profile above; two for the unknown nickname (in CS2, then in any game: an
    # account without CS2 is told as such).
    assert sandbox.calls("player_by_nickname") == 3
    with pytest.raises(errors.NotFoundError):  # remembered briefly: no second call
        await client.get_player_by_nickname("nobody-here")
    assert sandbox.calls("player_by_nickname") == 3
    keys = redis_client.keys("*")
    assert keys and all(k.startswith("fb:faceit:") for k in keys)
    assert all(redis_client.ttl(k) > 0 for k in keys), {k: redis_client.ttl(k) for k in keys}
    k = FaceitKeys("fb:")
    assert 0 < redis_client.ttl(k.cache("match", world["matches"]["VOTING"][0])) <= 60
    assert redis_client.ttl(k.cache("match", world["matches"]["FINISHED"][0])) > 29 * 86400
    assert 290 < redis_client.ttl(k.cache("player", profile.player_id)) <= 300
    assert 1790 < redis_client.ttl(k.cache("lifetime", profile.player_id)) <= 1800


async def test_a_profile_found_by_nickname_primes_the_lookup_by_id_as_old_as_it_is(
        make_client: MakeClient, sandbox: FaceitSandbox, redis_client: redis.Redis) -> None:
    """A cached nickname lookup copied its profile under the player's id with a whole new
    lifetime: a profile minutes old passed for a fresh one, and a report checking whether its Elo
    predates the newest match never read it again. Nor may it replace a newer copy."""
    client = make_client()
    nick = sandbox.world()["players"][1]["nickname"]
    k = FaceitKeys("fb:")
    profile = await client.get_player_by_nickname(nick)
    by_nick, by_id = k.cache("player_nick", nick), k.cache("player", profile.player_id)
    redis_client.expire(by_nick, redis_client.ttl(by_nick) - 60)  # the lookup was cached a minute ago
    redis_client.delete(by_id)
    await client.get_player_by_nickname(nick)  # from the cache
    assert 59 <= await client.cached_age("player", profile.player_id) <= 61
    await client.get_player(profile.player_id, refresh=True)  # read fresh by id (as monitoring does)
    await client.get_player_by_nickname(nick)  # the older copy stays out of its way
    assert await client.cached_age("player", profile.player_id) < 5


async def test_a_transient_failure_is_remembered_for_the_failure_ttl_then_asked_again(
        make_client: MakeClient, sandbox: FaceitSandbox, redis_client: redis.Redis) -> None:
    client = make_client(ttls=CacheTTLs(failure=0.3))
    player_id = _player(sandbox)["player_id"]
    remembered = FaceitKeys("fb:").failure(FaceitKeys("fb:").cache("player", player_id))
    sandbox.faults(error_rate=1.0, status=503)
    with pytest.raises(errors.UpstreamError):
        await client.get_player(player_id)
    assert sandbox.calls("player") == 2  # the call and its one internal retry
    assert 0 < redis_client.pttl(remembered) <= 300
    with pytest.raises(errors.UpstreamError):  # within the TTL: the same error, no call
        await client.get_player(player_id)
    assert sandbox.calls("player") == 2
    deadline = time.monotonic() + 10
    while redis_client.exists(remembered) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    sandbox.faults()
    assert (await client.get_player(player_id)).player_id == player_id  # forgotten: FACEIT asked again
    assert sandbox.calls("player") == 3
    with pytest.raises(errors.NotFoundError):  # a stable answer keeps its own, longer memory
        await client.get_player_by_nickname("nobody-here")
    not_found = FaceitKeys("fb:").failure(FaceitKeys("fb:").cache("player_nick", "nobody-here"))
    assert 29_000 < redis_client.pttl(not_found) <= 30_000


async def test_single_flight_in_one_process(make_client: MakeClient, sandbox: FaceitSandbox) -> None:
    clients = [make_client(), make_client()]  # two clients share only Redis
    sandbox.faults(latency_ms=200)
    pid = _player(sandbox)["player_id"]
    results = await asyncio.gather(*(clients[i % 2].get_player(pid) for i in range(50)))
    assert {r.player_id for r in results} == {pid}
    assert sandbox.calls("player") == 1


async def test_single_flight_across_two_processes(sandbox: FaceitSandbox, redis_url: str, make_client: MakeClient) -> None:
    sandbox.faults(latency_ms=400)
    pid = _player(sandbox, 3)["player_id"]
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.faceit.single_flight_worker", sandbox.api_url, sandbox.key, redis_url, pid, "25"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "ready"
        client = make_client()
        child.stdin.write("go\n")
        child.stdin.flush()
        results = await asyncio.gather(*(client.get_player(pid) for _ in range(25)))
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err
    assert out.strip() == "25 ok"
    assert len(results) == 25
    assert sandbox.calls("player") == 1


async def test_shared_bucket_paces_a_flood(make_client: MakeClient, sandbox: FaceitSandbox) -> None:
    clients = [make_client(rate=20.0, burst=5), make_client(rate=20.0, burst=5)]
    ids = [p["player_id"] for p in sandbox.world()["players"][:20]]
    started = time.monotonic()
    await asyncio.gather(*(clients[i % 2].get_lifetime_stats(pid) for i, pid in enumerate(ids)))
    await asyncio.gather(*(clients[i % 2].get_player(pid) for i, pid in enumerate(ids[:5])))
    elapsed = time.monotonic() - started
    # 25 requests, 5 at once, then 20 per second across both clients: at least 1 s
    assert 0.95 <= elapsed < 5.0
    assert sandbox.calls() == 25


async def test_burst_goes_out_at_once(make_client: MakeClient, sandbox: FaceitSandbox) -> None:
    client = make_client(rate=1.0, burst=30)
    ids = [p["player_id"] for p in sandbox.world()["players"][:10]]
    started = time.monotonic()
    await asyncio.gather(*(client.get_player(pid) for pid in ids))
    assert time.monotonic() - started < 3.0  # paced at 1/s these 10 would take 9 s


async def test_low_priority_work_never_queues_ahead_of_interactive_calls(make_client: MakeClient,
                                                                           sandbox: FaceitSandbox) -> None:
    """A bulk analysis (a low-queue job) asks for 40 calls at once. It used to reserve every slot
    of the bucket for the next seconds, and a user's analysis asked meanwhile waited behind all of
    them. Now low work takes a token only while the bucket holds more than half its burst: the
    interactive calls asked after find those tokens and finish while the bulk still runs, and
    the bulk's calls all go, at the bucket's pace."""
    from faceit.ratelimit import low_reserve

    rate, burst = 20.0, 10
    client = make_client(rate=rate, burst=burst)
    players = [p["player_id"] for p in sandbox.world()["players"]]
    matches = [m for ids in sandbox.world()["matches"].values() for m in ids if m.startswith("1-")][:low_reserve(burst)]
    done: Done = []

    async def interactive(call: Any) -> None:
        await call
        done.append((time.monotonic(), "interactive"))

    lows = _start_bulk(client, players, done)
    await async_wait_until(lambda: sum(1 for _, kind in done if kind == "low") >= burst - low_reserve(burst),
                 "the bulk's first calls")  # the bulk is under way
    await asyncio.gather(*(interactive(client.get_match(m)) for m in matches))
    await asyncio.gather(*lows)
    order = [kind for _, kind in sorted(done)]
    assert order.count("low") == 2 * len(players) and order.count("interactive") == len(matches)
    last_interactive = max(i for i, kind in enumerate(order) if kind == "interactive")
    assert order[last_interactive + 1:].count("low") >= len(players), order  # the bulk was far from done
    assert sandbox.calls() == 2 * len(players) + len(matches)


def _as_low_job() -> None:
    """Mark the running task's FACEIT calls as a low-queue job's (``actors.base`` does it per job;
    a task has a context of its own)."""
    from faceit.ratelimit import LOW_PRIORITY_WORK, LowPriority

    LOW_PRIORITY_WORK.set(LowPriority())


Done = list[tuple[float, str]]


async def _low_call(call: Any, done: Done, kind: str = "low") -> None:
    """``call`` as a low-queue job makes it; ``done`` gets (when it finished, ``kind``)."""
    _as_low_job()
    await call
    done.append((time.monotonic(), kind))


def _start_bulk(client: FaceitClient, players: list[str], done: Done) -> list[asyncio.Future[None]]:
    """A bulk's 40 low-priority calls (each player's lifetime stats, then each profile), started."""
    calls = [client.get_lifetime_stats(pid) for pid in players] + [client.get_player(pid) for pid in players]
    return [asyncio.ensure_future(_low_call(call, done)) for call in calls]


async def test_an_interactive_caller_joining_a_fetch_led_by_low_work_leaves_the_low_lane(
        make_client: MakeClient, sandbox: FaceitSandbox) -> None:
    """A /bulk (low queue) leads the fetch of a match and a user's /analyze of that match joins it
    (single-flight). The user waited in the low lane with the bulk's fetch, behind every call the
    bulk had queued before it (up to the lane's max_wait, and then failed with the lane's error).
    Now the joiner raises that fetch's priority: it takes a slot as interactive work does, and the
    user has the match while the bulk still has most of its calls to make."""
    rate, burst = 20.0, 10
    client = make_client(rate=rate, burst=burst)
    players = [p["player_id"] for p in sandbox.world()["players"]]
    match = sandbox.world()["matches"]["FINISHED"][0]
    done: Done = []
    lows = _start_bulk(client, players, done)
    await async_wait_until(lambda: len(done) >= 3, "the bulk's first calls")  # the bulk is under way, its calls queued
    # The bulk asks for the match too: its fetch queues behind the bulk's other calls in the lane.
    key = FaceitKeys("fb:").cache("match", match)
    led = asyncio.ensure_future(_low_call(client.get_match(match), done, "bulk's match"))
    await async_wait_until(lambda: key in client.cache._inflight, "the bulk's fetch of the match")
    assert (await client.get_match(match)).match_id == match  # the user's /analyze joins that fetch
    done.append((time.monotonic(), "interactive"))
    await asyncio.gather(*lows, led)
    order = [kind for _, kind in sorted(done)]
    assert order.count("low") == 2 * len(players)
    after = order[order.index("interactive") + 1:]
    assert after.count("low") >= len(players), order  # the bulk was far from done
    assert sandbox.calls("match") == 1 and sandbox.calls() == 2 * len(players) + 1


async def test_the_low_lanes_give_up_is_neither_retried_inside_nor_remembered_for_the_key(
        make_client: MakeClient, sandbox: FaceitSandbox, redis_client: redis.Redis) -> None:
    """Low work that finds no slot within the limiter's max_wait gives up. Its retry_after (the
    next slot, under a second away) is below the client's internal retry limit, so the client
    queued for a second max_wait; and the cache stored the give-up as the key's failure, so a
    user's call of that key (here from another process) failed with the bulk's error. Now it is
    the lane's own error, the job's retry schedule tries again, and the next caller fetches."""
    bulk = make_client(rate=4.0, burst=4, max_wait=1.0)
    user = make_client(rate=4.0, burst=4)  # another client: stands for another process
    pid = _player(sandbox, 4)["player_id"]
    keys = FaceitKeys("fb:")
    asks = 0
    acquire = bulk.limiter.acquire

    async def counted() -> float:
        nonlocal asks
        asks += 1
        return await acquire()

    bulk.limiter.acquire = counted  # type: ignore[method-assign]

    drained = 0

    async def drain() -> None:  # interactive work keeps the bucket below the low lane's share
        nonlocal drained
        while True:
            await user.limiter.acquire()
            drained += 1

    async def bulk_call() -> Any:
        _as_low_job()
        return await bulk.get_player(pid)

    draining = asyncio.ensure_future(drain())
    try:
        await async_wait_until(lambda: drained >= 4, "interactive work taking the burst")
        with pytest.raises(errors.RateLimitedError) as caught:
            await asyncio.ensure_future(bulk_call())
    finally:
        draining.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await draining
    # Queued once: the lane gave up its max_wait, and the client did not queue for a second one.
    assert asks == 1, f"queued {asks} times"
    assert isinstance(caught.value, errors.LowPriorityBudgetExhaustedError), repr(caught.value)
    assert caught.value.retry_after is None  # the job's retry schedule, not an immediate requeue
    assert caught.value.code == "rate_limited" and "low-priority FACEIT budget" in caught.value.message
    assert sandbox.calls() == 0
    key = keys.cache("player", pid)
    assert not redis_client.exists(keys.failure(key)) and not redis_client.exists(keys.lock(key))
    assert (await user.get_player(pid)).player_id == pid  # right after: fetched, not the bulk's error
    assert sandbox.calls("player") == 1


async def test_an_interactive_joiner_fetches_itself_when_the_low_leader_gave_up_as_it_joined(
        make_client: MakeClient, sandbox: FaceitSandbox) -> None:
    """The low leader may give up (the lane's max_wait passed) just as a user's call joins its
    fetch, before the raise reaches it: the user then fetches at its own priority instead of
    failing with the bulk's error (a low joiner gets that error: its job retries)."""
    client = make_client()
    pid = _player(sandbox, 6)["player_id"]
    key = client.keys.cache("player", pid)
    gate = asyncio.Event()

    async def gives_up() -> Any:  # the bulk's fetch: its lane gives up once the user has joined
        await gate.wait()
        raise errors.LowPriorityBudgetExhaustedError("the low-priority FACEIT budget is exhausted")

    async def lead() -> Any:
        _as_low_job()
        return await client.cache.get(key, gives_up, lambda _raw: 60)

    async def low_joiner() -> Any:
        _as_low_job()
        return await client.cache.get(key, lambda: client.request(f"/players/{pid}"), lambda _raw: 60)

    peeked: list[str] = []
    peek = client.cache.peek

    async def counted_peek(cache_key: str) -> tuple[bool, Any]:
        try:
            return await peek(cache_key)
        finally:
            peeked.append(cache_key)

    client.cache.peek = counted_peek  # type: ignore[method-assign]
    led = asyncio.ensure_future(lead())
    await async_wait_until(lambda: key in client.cache._inflight, "the bulk's fetch")
    joined_low = asyncio.ensure_future(low_joiner())
    # Its cache read done (the bulk's was the first), the joiner goes on to wait on the bulk's
    # fetch without yielding in between: once seen here, it waits there.
    await async_wait_until(lambda: len(peeked) >= 2, "the low joiner waiting on the bulk's fetch")
    user = asyncio.ensure_future(client.cache.get(key, lambda: client.request(f"/players/{pid}"), lambda _raw: 60))
    await async_wait_until(lambda: client.cache._inflight[key][1].raised, "the user joining the bulk's fetch")
    gate.set()
    joined = [user, joined_low]
    results = await asyncio.gather(led, *joined, return_exceptions=True)
    assert isinstance(results[0], errors.LowPriorityBudgetExhaustedError)
    assert isinstance(results[1], dict) and results[1]["player_id"] == pid, results[1]
    assert isinstance(results[2], errors.LowPriorityBudgetExhaustedError)
    assert sandbox.calls("player") == 1


async def test_an_interactive_caller_in_another_process_raises_a_fetch_led_by_low_work(
        make_client: MakeClient, sandbox: FaceitSandbox, redis_client: redis.Redis) -> None:
    """The interactive analyses and the bulks run in different worker processes. A user's /analyze
    of a match that a bulk's fetch leads waited on the bulk's lock while that fetch waited in the
    low lane, behind every call the bulk had queued (up to the lane's max_wait). Now the bulk's
    lock says it is low, the user asks for the fetch, and the bulk's process raises it: the user
    has the match while the bulk still has most of its calls to make."""
    rate, burst = 8.0, 10
    bulk = make_client(rate=rate, burst=burst, max_wait=600.0)  # the lane never gives up here: it waits its turn
    user = make_client(rate=rate, burst=burst)  # another client: stands for another worker process
    players = [p["player_id"] for p in sandbox.world()["players"]]
    match = sandbox.world()["matches"]["FINISHED"][0]
    keys = FaceitKeys("fb:")
    key = keys.cache("match", match)
    done: Done = []
    lows = _start_bulk(bulk, players, done)
    await async_wait_until(lambda: len(done) >= 3, "the bulk's first calls")  # the bulk is under way, its calls queued
    led = asyncio.ensure_future(_low_call(bulk.get_match(match), done, "bulk's match"))
    await async_wait_until(lambda: redis_client.exists(keys.lock(key)), "the bulk leading the fetch of the match")
    assert str(redis_client.get(keys.lock(key))).startswith("low:")  # its lock says it is low
    assert (await user.get_match(match)).match_id == match  # the user's /analyze, in the other process
    done.append((time.monotonic(), "interactive"))
    await asyncio.gather(*lows, led)
    order = [kind for _, kind in sorted(done)]
    assert order.count("low") == 2 * len(players)
    after = order[order.index("interactive") + 1:]
    assert after.count("low") >= len(players) // 2, order  # the bulk was far from done
    assert sandbox.calls("match") == 1 and sandbox.calls() == 2 * len(players) + 1


async def test_the_low_lanes_give_up_leaves_the_retry_to_the_jobs_schedule(
        make_client: MakeClient, sandbox: FaceitSandbox, redis_client: redis.Redis) -> None:
    """The lane's give-up carried the next low slot (under a second, or 0.0) as retry_after, which
    overrides the job's retry schedule (10/30/90 s, ``middleware.backoff``): a bulk was requeued at
    once, again and again, while the budget was used up. Now it carries none. The low lane is
    emptied for real: a user's reads take the tokens above its share of the shared bucket."""
    from faceit.ratelimit import low_reserve

    rate, burst = 0.1, 4  # a token every 10 s: the lane stays empty for the whole test
    bulk = make_client(rate=rate, burst=burst, max_wait=1.0)
    user = make_client(rate=rate, burst=burst)  # another client: stands for another process
    players = [p["player_id"] for p in sandbox.world()["players"]]
    for pid in players[:burst - low_reserve(burst)]:  # interactive work takes what low work may use
        await user.get_player(pid)
    tokens_left = float(redis_client.hget(bulk.limiter.bucket_key, "tokens"))
    assert tokens_left < low_reserve(burst) + 1  # no low token: the next is ~10 s away, past max_wait

    async def bulk_call() -> Any:
        _as_low_job()
        return await bulk.get_player(players[8])

    with pytest.raises(errors.LowPriorityBudgetExhaustedError) as caught:
        await asyncio.ensure_future(bulk_call())
    assert caught.value.retry_after is None, caught.value.retry_after
    assert float(redis_client.hget(bulk.limiter.bucket_key, "tokens")) >= tokens_left  # it took none
    assert sandbox.calls() == burst - low_reserve(burst)  # the user's reads, none of the bulk's


async def test_a_raise_while_the_lane_asks_redis_is_no_give_up(
        redis_server: RedisServer, redis_url: str, redis_client: redis.Redis) -> None:
    """An interactive caller may raise a low fetch while its call, holding the lane, waits for
    Redis' answer to take_low. With no slot within max_wait that call gave up (the user then got
    the lane's error, or fetched again); now it sees the raise first and takes a slot as
    interactive work does. The lane's Redis connection goes through a proxy that holds back
    Redis' real answer (no low token) until the raise has happened."""
    from faceit.ratelimit import LOW_PRIORITY_WORK, LowPriority, SharedRateLimiter, low_reserve

    rate, burst = 0.1, 4  # a token every 10 s: the lane stays empty for the whole test
    keys = FaceitKeys("fb:")
    proxy = ReplyDroppingProxy(redis_server.port)
    through_proxy = Redis(host="127.0.0.1", port=proxy.port, decode_responses=True)
    direct = Redis.from_url(redis_url, decode_responses=True)
    try:
        bulk = SharedRateLimiter(through_proxy, keys, "one-key", rate=rate, burst=burst, max_wait=1.0)
        user = SharedRateLimiter(direct, keys, "one-key", rate=rate, burst=burst)  # another process
        for _ in range(burst - low_reserve(burst)):  # interactive work takes what low work may use
            assert await user.acquire() == 0.0
        tokens_left = float(redis_client.hget(bulk.bucket_key, "tokens"))
        assert tokens_left < low_reserve(burst) + 1  # no low token: the next is ~10 s away

        low = LowPriority()

        async def bulk_call() -> float:
            LOW_PRIORITY_WORK.set(low)
            return await bulk.acquire()

        proxy.hold_reply_to(b"take_low", 1.5)
        asking = asyncio.ensure_future(bulk_call())
        await async_wait_until(proxy.marker_seen.is_set, "the lane asking Redis for a low token")
        low.promote()  # the user joins the bulk's fetch while Redis' answer is held back
        assert not asking.done()  # still waiting for that answer
        await asking  # no give-up: the raised call took a slot as interactive work does
        tokens_now = float(redis_client.hget(bulk.bucket_key, "tokens"))
        assert tokens_left - 1 <= tokens_now < tokens_left - 0.5, (tokens_left, tokens_now)  # one token
    finally:
        proxy.close()
        await through_proxy.aclose()
        await direct.aclose()


async def test_an_interactive_joiner_fetches_itself_when_the_low_leader_is_cancelled(
        make_client: MakeClient, sandbox: FaceitSandbox) -> None:
    """A bulk's job may be cancelled (or time out) while it leads a fetch a user's call joined:
    the user got "FACEIT fetch was cancelled" for a failure that was not theirs. Now a joiner
    fetches again itself."""
    client = make_client()
    pid = _player(sandbox, 7)["player_id"]
    key = client.keys.cache("player", pid)
    fetching = asyncio.Event()

    async def hangs() -> Any:  # the bulk's fetch: under way until its job is cancelled
        fetching.set()
        await asyncio.Event().wait()

    async def lead() -> Any:
        _as_low_job()
        return await client.cache.get(key, hangs, lambda _raw: 60)

    led = asyncio.ensure_future(lead())
    await asyncio.wait_for(fetching.wait(), 5.0)
    user = asyncio.ensure_future(client.cache.get(key, lambda: client.request(f"/players/{pid}"), lambda _raw: 60))
    await async_wait_until(lambda: client.cache._inflight[key][1].raised, "the user joining the bulk's fetch")
    led.cancel()
    result = await asyncio.wait_for(user, 10.0)
    assert isinstance(result, dict) and result["player_id"] == pid, result
    with pytest.raises(asyncio.CancelledError):
        await led
    assert sandbox.calls("player") == 1


async def test_a_push_back_holds_low_work_back_too(make_client: MakeClient, sandbox: FaceitSandbox) -> None:
    """After a 429 (the bucket pushed back), low work waits out the block as interactive work
    does, and so does a low fetch an interactive caller raised (which then goes before the low
    lane, as interactive work)."""
    client = make_client(rate=20.0, burst=10)
    ids = [p["player_id"] for p in sandbox.world()["players"][5:8]]
    await client.limiter.block(1.0)
    started = time.monotonic()
    finished: dict[str, float] = {}

    async def call(kind: str, pid: str, low: bool) -> None:
        if low:
            _as_low_job()
        await client.get_player(pid)
        finished[kind] = time.monotonic() - started

    bulk = asyncio.ensure_future(call("low", ids[0], True))
    led = asyncio.ensure_future(call("low, then joined", ids[1], True))
    await async_wait_until(lambda: client.keys.cache("player", ids[1]) in client.cache._inflight, "the low fetch")
    await asyncio.gather(bulk, led, call("joiner", ids[1], False), call("interactive", ids[2], False))
    assert min(finished.values()) >= 0.95, finished
    # Behind the block the low lane still comes last; the raised fetch goes with interactive work.
    assert max(finished["interactive"], finished["joiner"]) < finished["low"], finished
    assert sandbox.calls("player") == 3


def test_call_counts_reader_without_a_client(redis_client: redis.Redis) -> None:
    from settings import get_settings

    key = FaceitKeys(get_settings().redis_key_prefix).calls(int(time.time() // 60))
    redis_client.hset(key, mapping={"requests": 5, "ok": 2, "auth": 1, "rate_limited": 2})
    counts = faceit_call_counts(30)
    assert counts["requests"] == 5 and counts["auth_errors"] == 1 and counts["rate_limited"] == 2
    assert counts["errors"] == {"auth": 1, "rate_limited": 2} and counts["error_total"] == 3


async def test_every_map_line_of_a_best_of_three_is_kept_and_counted_as_one_match(make_client: MakeClient) -> None:
    """FACEIT lists a line per map. The paging kept one line per match id, so a summary had one map
    of a best of three, while the report's form counted the same series as three matches."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from faceit import analysis

    def line(match: str, map_name: str, won: bool, at: int) -> dict[str, Any]:
        return {"stats": {"Match Id": match, "Map": map_name, "Result": "1" if won else "0", "Game Mode": "5v5",
                          "Kills": "20", "Deaths": "15", "Rounds": "24", "Match Finished At": at * 1000}}

    now = int(time.time())
    items = [line("1-bo3", "de_nuke", True, now - 100), line("1-bo3", "de_inferno", False, now - 200),
             line("1-bo3", "de_mirage", True, now - 300), line("1-bo1", "de_ancient", False, now - 900)]

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"items": items, "start": 0, "end": len(items)})

    app = web.Application()
    app.router.add_get("/players/{pid}/games/cs2/stats", stats)
    async with TestServer(app, host="127.0.0.1") as server:
        client = make_client(api_url=f"http://127.0.0.1:{server.port}")
        rows, complete_from = await client.get_stats_since("p", now - 3600)
    assert complete_from == 0.0 and sorted(r.map for r in rows if r.match_id == "1-bo3") == [
        "de_inferno", "de_mirage", "de_nuke"]
    form = analysis.recent_form(rows)
    assert form["matches"] == 2 and form["results"] == "WL"  # the series won 2:1, then the older loss
    assert analysis.tracked_player_period("p", "nick", rows, now - 3600, 1500, [], now)["matches"] == 2


async def test_a_series_cut_by_the_last_page_read_is_left_out_of_the_period(make_client: MakeClient) -> None:
    """``get_stats_since`` stops after ``max_pages``. When the last page read ended inside a best
    of three (its first map on the page not read), the series was counted from its later maps:
    won 2-0 where it was won 2-1, with two maps' kills, and the list said it was complete back to
    that series."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from faceit.client import STATS_PAGE

    def line(match: str, won: bool, at: int, best_of: int = 1, match_round: int = 1) -> dict[str, Any]:
        return {"stats": {"Match Id": match, "Map": f"de_map{match_round}", "Result": "1" if won else "0",
                          "Game Mode": "5v5", "Best Of": str(best_of), "Match Round": str(match_round),
                          "Kills": "20", "Deaths": "15", "Rounds": "24", "Match Finished At": at * 1000}}

    now = int(time.time())
    singles = [line(f"bo1-{i}", True, now - 3600 * (i + 1)) for i in range(STATS_PAGE - 2)]
    oldest_single = now - 3600 * (STATS_PAGE - 2)
    # A best of three won 2-1: maps 3 and 2 (both won) close the first page, map 1 (lost) opens the second.
    series = [line("bo3", True, oldest_single - 600, 3, 3), line("bo3", True, oldest_single - 1800, 3, 2),
              line("bo3", False, oldest_single - 3000, 3, 1)]
    items = singles + series + [line("bo1-old", False, oldest_single - 7200)]

    async def stats(request: web.Request) -> web.Response:
        offset, limit = int(request.query["offset"]), int(request.query["limit"])
        page = items[offset:offset + limit]
        return web.json_response({"items": page, "start": offset, "end": offset + len(page)})

    app = web.Application()
    app.router.add_get("/players/{pid}/games/cs2/stats", stats)
    async with TestServer(app, host="127.0.0.1") as server:
        client = make_client(api_url=f"http://127.0.0.1:{server.port}")
        cut, cut_from = await client.get_stats_since("p", now - 90 * 86400, max_pages=1)
        whole, whole_from = await client.get_stats_since("p", now - 90 * 86400, max_pages=2)
        # Periods that start after the series, and inside it (between maps 2 and 3): the first
        # page's oldest line is older than either, but it is the cut series', so paging goes on.
        periods = {since: await client.get_stats_since("p", since, max_pages=5)
                   for since in (oldest_single - 300, oldest_single - 1200)}
        recent = await client.get_recent_stats("p", limit=STATS_PAGE)  # one full page: the series cut
    assert "bo3" not in {r.match_id for r in cut} and len(cut) == STATS_PAGE - 2
    # Complete back to the last map of the series left out: every match after it is in the list.
    assert cut_from == oldest_single - 600
    assert sorted(r.match_round for r in whole if r.match_id == "bo3") == [1, 2, 3] and whole_from == 0.0
    for since, (period, period_from) in periods.items():
        assert sorted(r.match_round for r in period if r.match_id == "bo3") == [1, 2, 3], since
        assert period_from <= since  # the period is whole: its week-before comparison is not dropped
    assert "bo3" not in {r.match_id for r in recent} and len(recent) == STATS_PAGE - 2


async def test_maps_of_a_series_that_do_not_name_their_map_are_each_kept(make_client: MakeClient) -> None:
    """Repeats across pages are dropped by match and map round: by match and map, two maps of a
    series whose map FACEIT did not name were one line, and the series counted from one map."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    now = int(time.time())
    items = [{"stats": {"Match Id": "bo3", "Result": "1", "Game Mode": "5v5", "Best Of": "3", "Match Round": str(r),
                        "Kills": "20", "Deaths": "15", "Rounds": "24", "Match Finished At": (now - 600 * r) * 1000}}
             for r in (2, 1)]

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"items": items, "start": 0, "end": len(items)})

    app = web.Application()
    app.router.add_get("/players/{pid}/games/cs2/stats", stats)
    async with TestServer(app, host="127.0.0.1") as server:
        rows, _ = await make_client(api_url=f"http://127.0.0.1:{server.port}").get_stats_since("p", now - 3600)
    assert sorted(r.match_round for r in rows) == [1, 2] and {r.map for r in rows} == {None}

"""Subscriptions, user activity and Elo snapshots in a real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable

import pytest
import redis
from redis.asyncio import Redis

from faceit import store as store_api
from faceit.errors import BadInputError
from faceit.keys import FaceitKeys
from faceit.store import ELO_SNAPSHOT_MIN_GAP, MAX_SUBSCRIPTIONS, READ_BATCH, FaceitStore


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[FaceitStore]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield FaceitStore(client, FaceitKeys("fb:"))
    await client.aclose()


async def test_subscriptions(store: FaceitStore) -> None:
    assert await store.subscribe(1, "pid-a", "Alpha") is True
    assert await store.subscribe(1, "pid-a", "Alpha2") is False  # already followed: renamed
    await store.subscribe(1, "pid-b", "beta")
    await store.subscribe(2, "pid-a", "Alpha")
    assert await store.list_subscriptions(1) == [{"player_id": "pid-a", "nickname": "Alpha2"},
                                                 {"player_id": "pid-b", "nickname": "beta"}]
    assert await store.all_subscribed_players() == {"pid-a": "Alpha2", "pid-b": "beta"}
    assert await store.subscribers("pid-a") == [1, 2]
    assert await store.unsubscribe(1, "BETA") == "beta"  # by nickname, any case: named as stored
    assert await store.unsubscribe(1, "beta") is None
    assert await store.unsubscribe(1, "pid-a") == "Alpha2"  # by id
    assert await store.all_subscribed_players() == {"pid-a": "Alpha"}  # user 2 still follows it
    assert await store.unsubscribe(2, "Alpha") == "Alpha"
    assert await store.all_subscribed_players() == {}


async def test_every_followed_player_is_read_in_a_few_round_trips(store: FaceitStore,
                                                                  redis_client: redis.Redis) -> None:
    """Monitoring reads every followed player each run, and the summaries every follower: one
    round trip per player and per follower made a run of thousands of players take seconds."""
    players = 3 * READ_BATCH // 2  # two pipelines' worth
    for index in range(players):
        for user in (index % 40, 100 + index % 40):  # two followers each, up to 19 players per user
            await store.subscribe(user, f"pid-{index:04d}", f"Nick{index}")
    redis_client.hdel(FaceitKeys("fb:").user_subscriptions(0), "pid-0000")  # its first follower's entry is gone
    redis_client.sadd(FaceitKeys("fb:").subscribed_players(), "pid-nobody")  # followed by no one any more

    def reads() -> int:
        return int(redis_client.info("stats")["total_reads_processed"])

    before = reads()
    named = await store.all_subscribed_players()
    everyone = await store.all_subscribers()
    round_trips = reads() - before
    # Reads of the socket, as Redis counts them: a pipeline of 500 takes a few (16 KB each); one
    # round trip a command (a player, then its first follower) took 3,758 here.
    assert round_trips <= 40, round_trips
    assert len(named) == players + 1 and list(named) == sorted(named)
    assert named["pid-0000"] == "Nick0"  # from its second follower
    assert named["pid-0749"] == "Nick749" and named["pid-nobody"] == "pid-nobody"
    assert everyone == set(range(40)) | set(range(100, 140))


async def test_a_runs_marks_move_on_in_a_few_round_trips(store: FaceitStore, redis_client: redis.Redis) -> None:
    """A monitoring run marks every followed player; its delivery wrote the marks one round trip
    each. Now a pipeline per 500, with a later run's mark still kept."""
    players = 3 * READ_BATCH // 2
    followers = redis_client.pipeline(transaction=False)
    for index in range(players):  # followed, as a run's players are (a mark of nobody's is not kept)
        followers.sadd(FaceitKeys("fb:").player_subscribers(f"pid-{index:04d}"), index % 40)
    followers.execute()
    await store.set_monitor_state("pid-0007", {"match_id": "later", "finished_at": 2000.0})
    redis_client.script_flush()  # as after a Redis restart: the pipeline loads the script again
    marks = {f"pid-{index:04d}": {"match_id": f"m{index}", "finished_at": 1000.0} for index in range(players)}
    before = int(redis_client.info("stats")["total_reads_processed"])
    assert await store.advance_monitoring({**marks, "pid-junk": "not a mark"}) == players - 1
    assert int(redis_client.info("stats")["total_reads_processed"]) - before <= 20
    assert (await store.monitor_state("pid-0007"))["match_id"] == "later"
    assert (await store.monitor_state(f"pid-{players - 1:04d}"))["match_id"] == f"m{players - 1}"
    assert await store.advance_monitoring(None) == 0 and await store.advance_monitoring(["x"]) == 0


async def test_a_players_mark_is_not_written_back_after_their_last_follower_left(store: FaceitStore) -> None:
    """A run's delivery moved monitoring on after ``/unsubscribe`` of the player's last follower had
    deleted its state: the state came back, and a later ``/subscribe`` (which keeps a state already
    there) counted its first notice from it ("Elo +140 over the last 23 matches")."""
    await store.subscribe(31, "pid-left", "Left")
    await store.subscribe(31, "pid-kept", "Kept")
    await store.subscribe(32, "pid-kept", "Kept")
    await store.set_monitor_state("pid-left", {"match_id": "m0", "finished_at": 900.0})
    assert await store.unsubscribe(31, "Left") == "Left"  # the last follower: its state is gone
    assert await store.unsubscribe(31, "Kept") == "Kept"  # another follower stays
    marks = {pid: {"match_id": "m1", "finished_at": 1000.0, "elo": 1500} for pid in ("pid-left", "pid-kept")}
    assert await store.advance_monitoring(marks) == 1
    assert await store.monitor_state("pid-left") is None
    assert (await store.monitor_state("pid-kept"))["match_id"] == "m1"


async def test_a_passed_over_players_mark_is_dropped_only_while_their_followers_are_those_read(
        store: FaceitStore) -> None:
    """Monitoring reads a player's followers (only a user who blocked the bot), then drops the
    player's mark. Someone who followed the player in between wrote a fresh baseline with their
    /subscribe: dropping it lost the match they were to hear of next. The drop is one script that
    checks the followers are still those read."""
    keys = FaceitKeys("fb:")
    await store.subscribe(61, "pid-idle", "Idle")
    await store.set_user_inactive(61)
    await store.set_monitor_state("pid-idle", {"match_id": "m-old", "finished_at": 1.0})
    assert await store.watched_players({61}) == {}
    assert await store.monitor_state("pid-idle") is not None  # a plain read (the cache refresh's) keeps it
    assert await store.watched_players({61}, drop_idle_marks=True) == {}
    assert await store.monitor_state("pid-idle") is None  # passed over: its mark goes
    read = ["61"]  # what the next run read, just before a newcomer followed the player
    await store.subscribe(62, "pid-idle", "Idle")
    await store.set_monitor_state("pid-idle", {"match_id": "m-base", "finished_at": 2.0}, if_absent=True)
    dropped = await store._forget_mark(keys=[keys.player_subscribers("pid-idle"), keys.monitor_state("pid-idle")],
                                       args=read)  # that run's drop, after the newcomer's baseline
    assert dropped == 0 and (await store.monitor_state("pid-idle"))["match_id"] == "m-base"
    assert await store.watched_players({61}) == {"pid-idle": "Idle"}  # the newcomer is active: scanned


async def test_subscription_limit(store: FaceitStore) -> None:
    for i in range(MAX_SUBSCRIPTIONS):
        await store.subscribe(7, f"pid-{i}", f"n{i}")
    await store.subscribe(7, "pid-0", "n0")  # re-following one you have is fine
    with pytest.raises(BadInputError) as caught:
        await store.subscribe(7, "pid-new", "new")
    assert caught.value.key == "too_many_subscriptions"


async def test_two_subscribes_at_once_cannot_pass_the_limit_together(store: FaceitStore, redis_client: redis.Redis) -> None:
    """Two ``/subscribe`` deliveries for a user at 19 follows: both read 19 before either wrote,
    and the user ended at 21. Redis holds writes for a moment (``CLIENT PAUSE WRITE``) so both
    reads come first, as they would in the race; one follow must be refused."""
    for i in range(MAX_SUBSCRIPTIONS - 1):
        await store.subscribe(8, f"pid-{i}", f"n{i}")
    redis_client.execute_command("CLIENT", "PAUSE", 300, "WRITE")
    outcomes = await asyncio.gather(store.subscribe(8, "pid-x", "x"), store.subscribe(8, "pid-y", "y"),
                                    return_exceptions=True)
    refused = [o for o in outcomes if isinstance(o, BadInputError)]
    assert len(refused) == 1 and refused[0].key == "too_many_subscriptions", outcomes
    assert len(await store.list_subscriptions(8)) == MAX_SUBSCRIPTIONS


async def test_unfollowing_a_players_last_follower_keeps_them_scanned_for_one_who_follows_at_once(
        store: FaceitStore) -> None:
    """``/unsubscribe`` of a player's last follower racing another user's ``/subscribe`` of the
    same player: a follow that landed between the unfollow's "nobody follows them now" and its
    removal of the player left the new follower with a player monitoring never scans, and their
    followed-since deleted. Each round races the two, the follow started a few event-loop turns
    later than the one before (so some round puts it in that gap); after each, whoever follows is
    scanned."""
    keys = FaceitKeys("fb:")

    async def later(turns: int, step: Awaitable[bool]) -> bool:
        for _ in range(turns):
            await asyncio.sleep(0)
        return await step

    for round_no in range(30):
        player = f"pid-race-{round_no}"
        newcomer = 1000 + round_no
        await store.subscribe(51, player, "Racer")
        gone, _ = await asyncio.gather(store.unsubscribe(51, player), later(round_no, store.subscribe(newcomer, player, "Racer")))
        assert gone == "Racer"
        assert await store.subscribers(player) == [newcomer]
        assert player in await store.redis.smembers(keys.subscribed_players()), round_no
        assert newcomer in await store.followed_since(player), round_no


async def test_users_and_activity(store: FaceitStore, redis_client: redis.Redis) -> None:
    assert await store.is_user_active(5)
    await store.set_user_inactive(5)
    assert not await store.is_user_active(5)
    await store.set_user_active(5)
    assert await store.is_user_active(5)
    now = time.time()
    await store.record_analysis(5, "match", now)
    await store.record_analysis(5, "match", now - 3 * 86400)
    await store.record_analysis(5, "player", now - 10 * 86400)
    assert await store.activity(5, now - 7 * 86400, now) == {"match": 2}
    assert await store.activity(5, now - 30 * 86400, now) == {"match": 2, "player": 1}
    # To the second, not by calendar day: a window that starts after the one three days ago
    assert await store.activity(5, now - 3 * 86400 + 1, now) == {"match": 1}
    assert await store.activity(5, now - 10 * 86400 - 1, now - 3 * 86400) == {"match": 1, "player": 1}
    # A period and the one before, in one read: an analysis at the boundary is in the later one only
    assert await store.activity_split(5, now - 10 * 86400, now - 3 * 86400, now) == ({"player": 1}, {"match": 2})
    assert await store.active_users_since(now - 60) == [5]
    assert 0 < redis_client.ttl("fb:faceit:activity:5") <= 62 * 86400  # a month and the month before it
    assert redis_client.ttl("fb:faceit:activity:5") > 40 * 86400
    await store.record_analysis(5, "match", now + 41 * 86400)  # 51 days after the oldest: still there
    assert await store.activity(5, now - 11 * 86400, now - 9 * 86400) == {"player": 1}
    await store.record_analysis(5, "bulk", now + 63 * 86400)  # 63 days on: the old ones are gone
    assert await store.activity(5, 0, now + 63 * 86400) == {"match": 1, "bulk": 1}  # the +41 days one stays


async def test_elo_snapshots_are_deduplicated_bounded_and_expire(store: FaceitStore,
                                                                 redis_client: redis.Redis) -> None:
    t0 = 1_700_000_000
    assert await store.record_elo("p", 1500, t0)
    assert not await store.record_elo("p", 1500, t0 + 60)  # same Elo, too soon
    assert await store.record_elo("p", 1525, t0 + 120)  # changed
    assert await store.record_elo("p", 1525, t0 + 120 + ELO_SNAPSHOT_MIN_GAP)  # same Elo, but later
    assert await store.elo_history("p") == [(t0, 1500), (t0 + 120, 1525), (t0 + 120 + ELO_SNAPSHOT_MIN_GAP, 1525)]
    assert await store.elo_history("p", since=t0 + 100) == [(t0 + 120, 1525),
                                                            (t0 + 120 + ELO_SNAPSHOT_MIN_GAP, 1525)]
    key = FaceitKeys("fb:").elo_history("p")
    assert 0 < redis_client.ttl(key) <= 62 * 86400
    from faceit import store as module

    for i in range(module.ELO_SNAPSHOTS_MAX + 20):
        await store.record_elo("q", 1000 + i, t0 + i)
    history = await store.elo_history("q")
    assert len(history) == module.ELO_SNAPSHOTS_MAX and history[-1][1] == 1000 + module.ELO_SNAPSHOTS_MAX + 19
    assert not await store.record_elo("q", None)


async def test_elo_snapshots_keep_the_last_62_days_and_an_unchanged_elo_once_a_day(store: FaceitStore) -> None:
    """A followed player's profile is read every hour: an unchanged Elo was written each hour,
    filling the 500 kept in three weeks (short of a monthly report's start), and the key, renewed
    by each write, kept snapshots of half a year. Now an unchanged Elo is written once a day, and
    a write drops what is older than 62 days."""
    t0, hour, day = 1_700_000_000, 3600, 86400
    for h in range(48):  # two days of hourly reads, the Elo the same
        await store.record_elo("r", 1500, t0 + h * hour)
    assert [t for t, _ in await store.elo_history("r")] == [t0, t0 + day]
    await store.record_elo("r", 1510, t0 + 63 * day)  # after a long break
    assert await store.elo_history("r") == [(t0 + day, 1500), (t0 + 63 * day, 1510)]  # t0: past 62 days


async def test_module_functions_use_the_loop_context(redis_url: str, env_override: object) -> None:
    from faceit.context import close_faceit_context

    try:
        await store_api.subscribe(42, "pid-z", "zed")
        assert await store_api.list_subscriptions(42) == [{"player_id": "pid-z", "nickname": "zed"}]
        assert await store_api.all_subscribed_players() == {"pid-z": "zed"}
        await store_api.set_user_inactive(42)
        assert await store_api.is_user_active(42) is False
        await store_api.record_analysis(42, "match")
        assert await store_api.unsubscribe(42, "zed") == "zed"
    finally:
        await close_faceit_context()

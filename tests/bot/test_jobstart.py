"""The bot's job start (:mod:`bot.jobstart`), in process on the test Redis with the real broker.

One Lua call checks the user's limits, writes or joins the job and queues its message; the
general path (limits, then the manager's enqueue in a thread) must leave Redis in the same state,
so both run the same checks here. Each path is chosen as in production, by the broker: the Redis
broker starts jobs in one call, ``BROKER=rabbitmq`` takes the general path (those cases run on
the local RabbitMQ, ``RABBITMQ_URL``, with a queue prefix of their own, and skip, saying why,
when it does not answer).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import dramatiq
import pytest
import redis
import redis.asyncio as aioredis

from bot.services import BotServices, Requester, UserFacingError
from faceit.links import parse_match_ref
from queues.manager import QueueManager
from queues.priorities import QueuePriority, queue_name
from settings import get_settings
from tests.scaleout.helpers import manager_for
from tests.support.rabbitmq import RABBITMQ_URL, delete_queues, ready_messages, skip_unless_rabbitmq
from tests.support.reply_dropper import ReplyDroppingProxy
from tests.support.waiting import async_wait_until

ROOM = "https://www.faceit.com/en/cs2/room/1-0b9a4c1e-5b5e-4c8e-9f51-3a1b2c3d4e5f"
OTHER_ROOM = "https://www.faceit.com/en/cs2/room/1-1b9a4c1e-5b5e-4c8e-9f51-3a1b2c3d4e5f"
THIRD_ROOM = "https://www.faceit.com/en/cs2/room/1-2b9a4c1e-5b5e-4c8e-9f51-3a1b2c3d4e5f"
BIG_ID = 4503599627370495  # 52 bits: Telegram's largest ids (cjson would write 4.5035996273705e+15)


async def _services(client: aioredis.Redis,
                    manager: QueueManager | None = None) -> AsyncIterator[BotServices]:
    """The bot's services on ``client``, with ``manager`` (by default one on the settings' broker)."""
    import actors  # noqa: F401
    from queues.runtime import reset_runtime

    reset_runtime()
    made = BotServices(get_settings(), client, manager)
    yield made
    await made.drain(stop=True)
    await client.aclose()
    reset_runtime()


@pytest.fixture
async def services(redis_url, env_override):
    env_override(USER_JOBS_PER_MINUTE="3", USER_MAX_ACTIVE_JOBS="2")
    async for made in _services(aioredis.Redis.from_url(redis_url, decode_responses=True)):
        yield made


@pytest.fixture
async def services_via_proxy(redis_server, redis_url, env_override):
    """Services whose Redis connection goes through a proxy that can lose a reply."""
    env_override(USER_JOBS_PER_MINUTE="3", USER_MAX_ACTIVE_JOBS="1")
    proxy = ReplyDroppingProxy(redis_server.port)
    async for made in _services(aioredis.Redis(port=proxy.port, decode_responses=True)):
        yield made, proxy
    proxy.close()


@dataclass
class Starts:
    """The bot's services on one broker, and what that broker's ``high`` queue holds."""

    services: BotServices
    redis_client: redis.Redis

    @property
    def one_call(self) -> bool:
        """Whether this broker is the Redis one, whose starts take one call (else the general path)."""
        return self.services.manager.settings.broker == "redis"

    @property
    def queue(self) -> str:
        return queue_name(QueuePriority.HIGH, self.services.manager.settings)

    def messages(self) -> list[dramatiq.Message]:
        """The messages waiting in the queue, oldest first (read from the broker, left there)."""
        if self.one_call:
            ids = self.redis_client.lrange(f"dramatiq:{self.queue}", 0, -1)
            bodies = [self.redis_client.hget(f"dramatiq:{self.queue}.msgs", i).encode() for i in ids]
        else:
            bodies = ready_messages(RABBITMQ_URL, self.queue)
        return [dramatiq.Message.decode(body) for body in bodies]

    def waiting(self) -> int:
        return len(self.messages())


@pytest.fixture(params=["one-call", "general"])
async def starts(request: pytest.FixtureRequest, redis_url: str, redis_client: redis.Redis,
                 env_override) -> AsyncIterator[Starts]:
    """:func:`services` on the Redis broker (the one-call start), or with ``BROKER=rabbitmq`` (the
    general path: what a bot on RabbitMQ runs)."""
    env_override(USER_JOBS_PER_MINUTE="3", USER_MAX_ACTIVE_JOBS="2")
    if request.param == "one-call":
        async for made in _services(aioredis.Redis.from_url(redis_url, decode_responses=True)):
            yield Starts(made, redis_client)
        return
    skip_unless_rabbitmq()
    # Every actor declared before the prefix is set: one declared under it (the test actors,
    # which ``manager_for`` imports) keeps its queue names on the global broker for the rest of
    # the session's tests, which then queued their jobs where no test looked.
    import actors  # noqa: F401
    import tests.support.job_actors  # noqa: F401

    prefix = f"t{uuid.uuid4().hex[:8]}_"
    env_override(BROKER="rabbitmq", RABBITMQ_URL=RABBITMQ_URL, QUEUE_NAME_PREFIX=prefix)
    manager = manager_for(get_settings())
    try:
        async for made in _services(aioredis.Redis.from_url(redis_url, decode_responses=True), manager):
            yield Starts(made, redis_client)
    finally:
        manager.broker.close()
        delete_queues(RABBITMQ_URL, prefix)


def queue_length(redis_client, queue: str = "high") -> int:
    return redis_client.llen(f"dramatiq:{queue}")


def asker(user_id: int) -> Requester:
    return Requester(user_id=user_id, chat_id=user_id, lang="en")


async def test_a_job_start_writes_the_record_the_message_and_the_limits(starts, redis_client):
    services, one_call = starts.services, starts.one_call
    assert services.starter.available() is one_call  # the broker chooses the path
    first = await services.start_match_analysis(asker(BIG_ID), parse_match_ref(ROOM))
    joined = await services.start_match_analysis(asker(2), parse_match_ref(ROOM))
    other = await services.start_match_analysis(asker(2), parse_match_ref(OTHER_ROOM))
    assert (first.coalesced, joined.coalesced, other.coalesced) == (False, True, False)
    assert joined.job_id == first.job_id != other.job_id
    assert (first.position, joined.position, other.position) == (1, 1, 2)
    assert starts.waiting() == 2  # one message per job, none for the joined request
    assert bool(first.token) is not one_call  # only the general path holds a reservation
    for job in (first, joined, other):
        await services.confirm(job, job.user_id, 700 + job.position)
    record = services.manager.get_job(first.job_id)
    assert record.status == "queued" and record.user_ids == [BIG_ID, 2]
    assert {r["user_id"]: r["message_id"] for r in record.requesters} == {BIG_ID: 701, 2: 701}
    assert [r["chat_id"] for r in record.requesters] == [BIG_ID, 2]  # all 16 digits kept
    assert redis_client.zrange(f"fb:bot:active:{BIG_ID}", 0, -1) == [first.job_id]
    assert sorted(redis_client.zrange("fb:bot:active:2", 0, -1)) == sorted({first.job_id, other.job_id})
    # The message is Dramatiq's, for the record's job, on the record's queue.
    message = starts.messages()[0]
    assert (message.message_id, message.actor_name, message.queue_name) == (
        first.job_id, "match_analysis", starts.queue) == (record.id, record.actor, record.queue)
    assert message.kwargs["user_id"] == BIG_ID


async def test_asking_again_for_an_in_flight_job_keeps_the_first_message_showing_it(starts, redis_client):
    services = starts.services
    first = await services.start_match_analysis(asker(5), parse_match_ref(ROOM))
    await services.confirm(first, 5, 801)
    again = await services.start_match_analysis(Requester(user_id=5, chat_id=-1005, lang="en"),
                                                parse_match_ref(ROOM))
    joined = await services.start_match_analysis(asker(6), parse_match_ref(ROOM))
    assert again.job_id == first.job_id and again.coalesced and again.again
    assert again.again_in_chat == 5  # their first answer is in their private chat, not this group
    assert joined.coalesced and not joined.again and not first.again
    await services.confirm(again, -1005, None)  # what the bot does after its "you already asked" reply
    record = services.manager.get_job(first.job_id)
    assert [(r["user_id"], r["chat_id"], r["message_id"]) for r in record.requesters] == [(5, 5, 801), (6, 6, None)]
    assert redis_client.zrange("fb:bot:active:5", 0, -1) == [first.job_id]
    # The other user's first answer is not recorded yet (the link sent twice at once: two updates
    # served together): the second is a repeat too, or the first answer would stay at "queued".
    retry = await services.start_match_analysis(asker(6), parse_match_ref(ROOM))
    assert retry.coalesced and retry.again and retry.again_in_chat == 6
    assert [r["user_id"] for r in services.manager.get_job(first.job_id).requesters] == [5, 6]


async def test_asking_again_is_neither_refused_nor_counted_by_the_limits(starts, redis_client):
    """The limits (2 active, 3 a minute here) are for new work: a repeat of a job already theirs
    is answered "you already asked", even at the limit, and does not use up the minute."""
    services = starts.services
    jobs = [await services.start_match_analysis(asker(7), parse_match_ref(room)) for room in (ROOM, OTHER_ROOM)]
    for job in jobs:
        await services.confirm(job, 7, 900 + job.position)
    again = await services.start_match_analysis(asker(7), parse_match_ref(ROOM))
    assert again.again and again.job_id == jobs[0].job_id
    assert redis_client.zcard("fb:bot:rate:7") == 2  # the repeat was not counted
    with pytest.raises(UserFacingError) as refused:  # new work is still refused at the limit
        await services.start_match_analysis(asker(7), parse_match_ref(THIRD_ROOM))
    assert refused.value.key == "too_many_active"


async def test_in_a_group_a_second_member_is_pointed_at_the_message_already_showing_the_job(
        starts, redis_client):
    """One copy of a result per group: a member asking for what a message in the group already
    shows is not added to the job (nor counted by the limits); elsewhere they join as before."""
    services = starts.services
    group, other_group = -1_000_000_002_001, -1_000_000_002_002
    owner = await services.start_match_analysis(Requester(user_id=21, chat_id=group, lang="en"), parse_match_ref(ROOM))
    early = await services.start_match_analysis(Requester(user_id=22, chat_id=group, lang="en"), parse_match_ref(ROOM))
    assert early.coalesced and early.shown_here == 0  # the group's answer is being sent: pointed above it
    await services.confirm(early, group, None)  # as the bot does after pointing them
    await services.confirm(owner, group, 3001)
    member = await services.start_match_analysis(Requester(user_id=23, chat_id=group, lang="en"),
                                                 parse_match_ref(ROOM))
    assert member.job_id == owner.job_id and member.shown_here == 3001 and not member.again
    await services.confirm(member, group, None)  # what the bot does after pointing them at it
    elsewhere = [await services.start_match_analysis(Requester(user_id=user, chat_id=chat, lang="en"),
                                                     parse_match_ref(ROOM)) for user, chat in ((24, other_group),
                                                                                               (25, 25))]
    assert all(job.coalesced and job.shown_here is None for job in elsewhere)
    record = services.manager.get_job(owner.job_id)
    assert [r["user_id"] for r in record.requesters] == [21, 24, 25]
    assert record.watchers == [22, 23] and 23 in record.user_ids  # may see it (/status), gets no copy
    for watcher in (22, 23):
        assert redis_client.zcard(f"fb:bot:active:{watcher}") == 0 and redis_client.zcard(f"fb:bot:rate:{watcher}") == 0
    assert starts.waiting() == 1


async def test_a_group_member_at_their_limits_is_still_pointed_at_the_message(starts, redis_client):
    services = starts.services
    group = -1_000_000_003_001
    owner = await services.start_match_analysis(Requester(user_id=31, chat_id=group, lang="en"), parse_match_ref(ROOM))
    await services.confirm(owner, group, 4001)
    busy = [await services.start_match_analysis(asker(32), parse_match_ref(room)) for room in (OTHER_ROOM, THIRD_ROOM)]
    for job in busy:
        await services.confirm(job, 32, 4100 + job.position)
    with pytest.raises(UserFacingError):  # 2 active: new work is refused
        await services.start_match_analysis(asker(32), parse_match_ref(ROOM.replace("1-0b9a", "1-9b9a")))
    pointed = await services.start_match_analysis(Requester(user_id=32, chat_id=group, lang="en"),
                                                  parse_match_ref(ROOM))
    assert pointed.shown_here == 4001 and not pointed.token
    assert redis_client.zcard("fb:bot:rate:32") == 2  # not counted


async def test_in_a_forum_a_member_is_pointed_only_at_a_message_of_their_own_topic(services):
    """Telegram cannot reply across forum topics: another topic's member joins and gets their copy there."""
    group = -1_000_000_005_001
    owner = await services.start_match_analysis(Requester(user_id=51, chat_id=group, lang="en", thread_id=3),
                                                parse_match_ref(ROOM))
    await services.confirm(owner, group, 6001)
    elsewhere = await services.start_match_analysis(Requester(user_id=52, chat_id=group, lang="en", thread_id=4),
                                                    parse_match_ref(ROOM))
    general = await services.start_match_analysis(Requester(user_id=53, chat_id=group, lang="en"),
                                                  parse_match_ref(ROOM))
    same_topic = await services.start_match_analysis(Requester(user_id=54, chat_id=group, lang="en", thread_id=3),
                                                     parse_match_ref(ROOM))
    assert elsewhere.shown_here is None and general.shown_here is None and same_topic.shown_here == 6001
    record = services.manager.get_job(owner.job_id)
    assert [(r["user_id"], r.get("thread_id")) for r in record.requesters] == [(51, 3), (52, 4), (53, None)]


def run_to_success(services, job_id: str) -> None:
    """What a worker records for a job that ran and succeeded."""
    jobs = services.manager.jobs
    attempt = jobs.begin(job_id, max_deliveries=1).attempt
    jobs.finish(job_id, attempt=attempt, status="succeeded", result={"kind": "test"})


async def test_a_repeat_just_after_the_job_succeeded_is_pointed_at_its_answer(starts, redis_client):
    """A link sent twice, or a second member a moment later: the job may already be done (a cached
    analysis takes milliseconds). For a minute the repeat is pointed at the answer; anyone else
    gets a job of their own."""
    services = starts.services
    group = -1_000_000_006_001
    first = await services.start_match_analysis(asker(61), parse_match_ref(ROOM))
    await services.confirm(first, 61, 7001)
    in_group = await services.start_match_analysis(Requester(user_id=62, chat_id=group, lang="en"),
                                                   parse_match_ref(ROOM))
    await services.confirm(in_group, group, 7002)
    run_to_success(services, first.job_id)
    again = await services.start_match_analysis(asker(61), parse_match_ref(ROOM))
    pointed = await services.start_match_analysis(Requester(user_id=63, chat_id=group, lang="en"),
                                                  parse_match_ref(ROOM))
    assert (again.job_id, again.again, again.status) == (first.job_id, True, "succeeded")
    assert (pointed.job_id, pointed.shown_here, pointed.status) == (first.job_id, 7002, "succeeded")
    for job in (again, pointed):
        await services.confirm(job, job.user_id, None)
    assert services.manager.get_job(first.job_id).watchers == [63]  # so /status <id> answers them
    assert (await services.job_of_user(first.job_id, 63)).status == "succeeded"
    assert redis_client.zcard("fb:bot:rate:61") == 1 and redis_client.zcard("fb:bot:rate:63") == 0
    assert 0 < redis_client.ttl(f"fb:coalesce:match_analysis:{parse_match_ref(ROOM).match_id}") <= 60  # a minute
    fresh = await services.start_match_analysis(asker(64), parse_match_ref(ROOM))  # not theirs: a new job
    assert fresh.job_id != first.job_id and not fresh.coalesced
    assert starts.waiting() == 2


async def test_a_watched_job_is_not_cancelled_by_whoever_asked_first(services):
    """The group waits for it too: as with two requesters, one member's Cancel does not end it."""
    group = -1_000_000_004_001
    owner = await services.start_match_analysis(Requester(user_id=41, chat_id=group, lang="en"), parse_match_ref(ROOM))
    await services.confirm(owner, group, 5001)
    await services.start_match_analysis(Requester(user_id=42, chat_id=group, lang="en"), parse_match_ref(ROOM))
    assert (await services.cancel(owner.job_id, 41)).outcome == "shared"
    assert (await services.job_of_user(owner.job_id, 42)).id == owner.job_id  # /status works for the watcher


async def test_a_refused_start_writes_nothing(starts, redis_client):
    services = starts.services
    rooms = [ROOM.replace("1-0b9a", f"1-{i}b9a") for i in range(4)]
    started = [await services.start_match_analysis(asker(5), parse_match_ref(room)) for room in rooms[:2]]
    for job in started:  # as the bot does after its reply (the general path's reservation becomes the job)
        await services.confirm(job, 5, 1)
    with pytest.raises(UserFacingError) as refused:  # 2 active jobs already
        await services.start_match_analysis(asker(5), parse_match_ref(rooms[2]))
    assert refused.value.key == "too_many_active"
    assert starts.waiting() == 2 and len(redis_client.keys("fb:job:*")) == 2
    services.manager.cancel_job(started[0].job_id)  # frees one active slot; the minute window is 2 of 3
    third = await services.start_match_analysis(asker(5), parse_match_ref(rooms[2]))
    await services.confirm(third, 5, 2)
    services.manager.cancel_job(third.job_id)
    with pytest.raises(UserFacingError) as refused:  # 3 requests this minute
        await services.start_match_analysis(asker(5), parse_match_ref(rooms[3]))
    assert refused.value.key == "rate_limited" and 55 <= refused.value.params["seconds"] <= 60
    assert len(redis_client.keys("fb:job:*")) == 3


async def test_a_start_whose_reply_was_lost_is_resent_and_counted_once(services_via_proxy, redis_client):
    """redis-py resends the script on a new connection. Run twice, the resend would find the job it
    had just made among the user's active jobs and refuse it ("too many active", limit 1)."""
    services, proxy = services_via_proxy
    await services.start_match_analysis(asker(9), parse_match_ref(OTHER_ROOM))  # Redis now knows the script
    proxy.drop_reply_to(b"bot:started:")
    job = await services.start_match_analysis(asker(8), parse_match_ref(ROOM))
    assert proxy.dropped == 1
    assert not job.coalesced and queue_length(redis_client) == 2
    assert redis_client.zrange("fb:bot:active:8", 0, -1) == [job.job_id]
    assert redis_client.zcard("fb:bot:rate:8") == 1
    assert len(redis_client.keys("fb:job:*")) == 2
    assert 0 < redis_client.pttl(f"fb:bot:started:{redis_client.zrange('fb:bot:rate:8', 0, 0)[0]}") <= 15 * 60 * 1000


async def test_a_repeat_whose_reply_was_lost_is_still_a_repeat(services_via_proxy, redis_client):
    services, proxy = services_via_proxy
    first = await services.start_match_analysis(asker(11), parse_match_ref(ROOM))
    await services.confirm(first, 11, 950)
    proxy.drop_reply_to(b"bot:started:")
    again = await services.start_match_analysis(asker(11), parse_match_ref(ROOM))
    assert proxy.dropped == 1
    assert again.again and again.job_id == first.job_id  # the resend returned what the first call did
    assert again.again_in_chat == 11


async def test_the_one_call_start_runs_the_brokers_enqueue_hooks(services, redis_client):
    """Sentry's middleware (``SENTRY_DSN`` set) watches enqueues, to put its trace headers into
    each message. The one-call start bypassed the hooks, so it turned itself off whenever a
    middleware had them: with Sentry on in production, every start took the general path. Now the
    start runs them as Dramatiq's enqueue does: before the message is written (what the hook
    adds is in the queued message), and after, only when something was queued."""
    seen: list[tuple[str, str]] = []

    class Watcher(dramatiq.Middleware):
        def before_enqueue(self, broker, message, delay):
            message.options["trace_headers"] = {"sentry-trace": "abc-1"}
            seen.append(("before", message.message_id))

        def after_enqueue(self, broker, message, delay):
            seen.append(("after", message.message_id))

    broker = services.manager.broker  # the real one
    broker.middleware.append(Watcher())
    try:
        assert services.starter.available()
        first = await services.start_match_analysis(asker(21), parse_match_ref(ROOM))
        joined = await services.start_match_analysis(asker(22), parse_match_ref(ROOM))
    finally:
        broker.middleware.pop()
    assert not first.token  # the one-call start, though a middleware has hooks (the general path reserves)
    assert joined.coalesced and joined.job_id == first.job_id
    assert seen[:2] == [("before", first.job_id), ("after", first.job_id)]
    assert ("after", first.job_id) not in seen[2:]  # the join queued nothing
    queued = [json.loads(data) for data in redis_client.hvals("dramatiq:high.msgs")]
    assert [m["options"].get("trace_headers") for m in queued if m["message_id"] == first.job_id] == [
        {"sentry-trace": "abc-1"}]


async def test_a_bare_uuid_does_not_join_the_job_of_its_new_style_id(services):
    """A bare UUID is tried as ``1-<uuid>`` and then as the very old ``<uuid>``; a job for
    ``1-<uuid>`` alone (which may not exist) must not answer it."""
    new_style = await services.start_match_analysis(asker(71), parse_match_ref("1-0be29ae9-1111-4222-8333-444455556666"))
    bare = await services.start_match_analysis(asker(72), parse_match_ref("0be29ae9-1111-4222-8333-444455556666"))
    same_bare = await services.start_match_analysis(asker(73), parse_match_ref("0be29ae9-1111-4222-8333-444455556666"))
    assert bare.job_id != new_style.job_id and not bare.coalesced
    assert same_bare.job_id == bare.job_id and same_bare.coalesced


async def test_player_reports_lists_and_subscriptions_are_shared_and_repeats_recognised(services):
    """As for a match: a second user's request shares the job, the same user's repeat is told so."""
    from faceit.links import parse_player_ref

    player = parse_player_ref("https://www.faceit.com/en/players/Akro")
    report = await services.start_player_report(asker(81), player)
    shared = await services.start_player_report(asker(82), player)
    repeat = await services.start_player_report(asker(81), parse_player_ref("Akro"))
    assert shared.job_id == report.job_id and shared.coalesced and not shared.again
    assert repeat.job_id == report.job_id and repeat.again
    other_case = await services.start_player_report(asker(81), parse_player_ref("akro"))  # another player
    assert other_case.job_id != report.job_id
    rooms = [parse_match_ref(room) for room in (ROOM, OTHER_ROOM)]
    bulk = await services.start_bulk_analysis(asker(83), rooms)
    reordered = await services.start_bulk_analysis(asker(83), list(reversed(rooms)))
    assert reordered.job_id == bulk.job_id and reordered.again
    follow = await services.start_subscription(asker(84), player)
    assert (await services.start_subscription(asker(84), player)).again
    assert (await services.start_subscription(asker(85), player)).job_id == follow.job_id


async def test_cancelling_a_shared_job_lets_go_of_it_and_the_last_one_cancels_it(services, redis_client):
    """Two users in their private chats wait for one job: the first Cancel lets that user go (their
    message, their limits; the other still gets it), the last one cancels the job."""
    first = await services.start_match_analysis(asker(91), parse_match_ref(ROOM))
    second = await services.start_match_analysis(asker(92), parse_match_ref(ROOM))
    for job in (first, second):
        await services.confirm(job, job.user_id, 9000 + job.user_id)
    assert second.job_id == first.job_id
    assert (await services.cancel(first.job_id, 91)).outcome == "left"
    record = services.manager.get_job(first.job_id)
    assert record.status == "queued" and [r["user_id"] for r in record.requesters] == [92]
    assert redis_client.zcard("fb:bot:active:91") == 0 and redis_client.zcard("fb:bot:active:92") == 1
    # No longer theirs to wait for or count, yet theirs to ask about: their message shows its id.
    seen = await services.job_of_user(first.job_id, 91)
    assert 91 not in seen.user_ids and seen.left_user_ids == [91]
    assert (await services.cancel(first.job_id, 91)).outcome == "left"  # said again; the job goes on
    assert services.manager.get_job(first.job_id).status == "queued"
    assert (await services.cancel(first.job_id, 92)).outcome == "canceled"
    assert services.manager.get_job(first.job_id).status == "canceled"


async def test_a_second_cancel_of_a_running_job_says_it_is_already_stopping(services):
    job = await services.start_match_analysis(asker(95), parse_match_ref(THIRD_ROOM))
    await services.confirm(job, 95, 9095)
    services.manager.jobs.begin(job.job_id, max_deliveries=4)  # a worker runs it
    assert (await services.cancel(job.job_id, 95)).outcome == "canceling"
    assert (await services.cancel(job.job_id, 95)).outcome == "already_canceling"  # a second press
    assert services.manager.get_job(job.job_id).status == "started"  # the worker stops it at its next await


async def test_a_started_job_recorded_after_the_fact_counts_in_both_limits(services, redis_client):
    """What the general path does when a request let through as a repeat started a job after all
    (its job ended between the check and the write): counted as a committed reservation is."""
    await services.limits.record_started(95, "job-95")
    assert redis_client.zrange("fb:bot:active:95", 0, -1) == ["job-95"]
    assert redis_client.zcard("fb:bot:rate:95") == 1
    assert 0 < redis_client.ttl("fb:bot:rate:95") <= 61 and redis_client.ttl("fb:bot:active:95") > 61


async def test_a_user_who_joins_between_the_read_and_the_cancel_keeps_the_job(services, redis_client):
    """User 93's Cancel read the record (only 93 asked), then user 94 asked for the same match,
    then the cancel ran: it cancelled 94's job too. Made exact with Redis: while writes are paused
    (``CLIENT PAUSE WRITE``) reads answer, and held scripts run in the order they came, so 94's
    join is held first, 93's read passes, and 93's cancel runs after the join."""
    first = await services.start_match_analysis(asker(93), parse_match_ref(ROOM))
    await services.confirm(first, 93, 9093)

    def held_scripts() -> int:
        return sum(1 for c in redis_client.client_list() if "b" in c["flags"] and c["cmd"] == "evalsha")

    redis_client.client_pause(10_000, all=False)  # writes only; it ends by itself if the test dies
    try:
        join = asyncio.ensure_future(services.start_match_analysis(asker(94), parse_match_ref(ROOM)))
        await async_wait_until(lambda: held_scripts() == 1)
        cancel = asyncio.ensure_future(services.cancel(first.job_id, 93))
        await async_wait_until(lambda: held_scripts() == 2)
    finally:
        redis_client.client_unpause()
    joined, outcome = await join, await cancel
    assert joined.job_id == first.job_id and joined.coalesced
    assert outcome.outcome == "left"
    record = services.manager.get_job(first.job_id)
    assert record.status == "queued" and [r["user_id"] for r in record.requesters] == [94]


async def test_only_an_update_in_their_own_chat_marks_a_user_active_again(services, redis_client):
    """Someone who writes to the bot has not blocked it; someone who writes in a group (or is
    throttled there: the notice's language lookup) may have, or never started it at all."""
    inactive = services.faceit_keys.inactive_users()
    redis_client.sadd(inactive, "41")
    await services.set_language(41, "ru")
    assert await services.seen_user(41) == "ru"  # the throttle's lookup: no chat said
    assert await services.seen_user(41, private=False) == "ru"
    assert redis_client.sismember(inactive, "41")
    assert await services.seen_user(41, private=True) == "ru"
    assert not redis_client.sismember(inactive, "41")


async def test_the_queues_health_is_judged_now_as_their_counts_are(services, redis_client):
    """Just after a restart the monitor's last snapshot (fresh for two intervals) said no worker
    served the queues, beside lines that each counted one: /queues judges health on what it reads."""
    from queues.monitoring import get_queue_monitor

    monitor = get_queue_monitor()
    stale = {"time": time.time(), "workers": {"live": 0},
             "health": {"health_score": 13, "reasons": ["queue high is served by no live worker"],
                        "components": [{"name": "workers", "reason": "queue high is served by no live worker"}]}}
    redis_client.set(monitor.keys.latest, json.dumps(stale))
    assert monitor.get_system_health_summary()["health_score"] == 13  # what the dashboard shows until the next tick
    overview = await services.queue_overview()
    assert overview["health"]["health_score"] != 13
    assert overview["health"]["time"] > stale["time"]  # collected now, not the snapshot read back
    assert "queue high is served by no live worker" not in overview["health"]["reasons"]


async def test_a_cancel_says_whose_it_was(services):
    """A user's own Cancel is theirs; the dashboard's, the admin tool's, a cleared queue's are the
    operator's, and only those are told to the users as the operator's doing."""
    from bot.views import canceled_text

    own = await services.start_match_analysis(asker(71), parse_match_ref(ROOM))
    assert (await services.cancel(own.job_id, 71)).outcome == "canceled"
    theirs = await services.start_match_analysis(asker(72), parse_match_ref(OTHER_ROOM))
    assert services.manager.cancel_job(theirs.job_id) == "canceled"
    assert services.manager.get_job(own.job_id).raw["canceled_by"] == "user"
    assert services.manager.get_job(theirs.job_id).raw["canceled_by"] == "operator"
    assert canceled_text("j", "match_analysis", "ru", by_operator=True).startswith(
        "✖ Анализ матча: остановлено оператором бота.")

"""Redis state the FACEIT layer keeps: subscriptions, user activity, Elo snapshots, monitor marks.

:class:`FaceitStore` works on any async Redis client; the bot (``bot.services``), the delivery
workers (``bot.delivery``), the scheduler and the FACEIT jobs (through :mod:`faceit.context`)
each hold an instance. The module-level functions (``await subscribe(user_id, player_id,
nickname)`` …) wrap the per-loop store of :mod:`faceit.context`; only the tests call them.

Layout (all under ``<prefix>faceit:``, see :mod:`faceit.keys`):

* ``subs:user:<uid>`` hash player_id → nickname; ``subs:player:<pid>`` set of user ids;
  ``subs:players`` set of every followed player. Subscriptions are user data and do not
  expire; they are removed by :func:`unsubscribe`. At most :data:`MAX_SUBSCRIPTIONS` per user.
* ``subs:since:<pid>`` hash user id → when they began following (monitoring tells each follower
  only of matches finished since).
* ``users:inactive`` set: users who blocked the bot (monitoring skips them).
* ``activity:<uid>`` sorted set of the user's analyses (``<kind>:<random>`` by time; 62 days,
  bounded to :data:`MAX_ACTIVITY_PER_USER`), so a report counts its own window to the second;
  ``activity:users`` sorted set of users by last activity (bounded to :data:`MAX_ACTIVE_USERS`).
* ``elo:<pid>`` sorted set of ``<ts>:<elo>`` snapshots by time: bounded to
  :data:`ELO_SNAPSHOTS_MAX` and to the last :data:`ELO_SNAPSHOT_TTL` (62 days; the key expires
  that long after its last write), one snapshot per :data:`ELO_SNAPSHOT_MIN_GAP` (a day) unless
  the Elo changed.
* ``monitor:<pid>`` JSON of the last finished match seen for a player (90 days TTL), kept only
  while someone follows them.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from faceit.errors import BadInputError
from faceit.i18n import ERROR_TEXTS, with_key
from faceit.keys import FaceitKeys

MAX_SUBSCRIPTIONS = 20
#: Calls sent in one pipeline when a whole set is read (every followed player, every follower) or
#: written (a monitoring run's marks).
READ_BATCH = 500
MAX_ACTIVE_USERS = 100_000
ACTIVITY_TTL = 62 * 86400  # a monthly report's window and the month before it, which it compares with
MAX_ACTIVITY_PER_USER = 10_000  # analyses remembered per user (a bound, far above the limits)
ELO_SNAPSHOTS_MAX = 500
#: How long Elo snapshots are kept: a monthly report needs the player's Elo when its 30 days
#: began, and nothing reads further back. (180 days kept every opponent ever analysed, millions
#: of keys a year at scale, and a followed player's key, renewed each hour, never went.)
ELO_SNAPSHOT_TTL = ACTIVITY_TTL
#: An unchanged Elo is recorded again at most once a day: a report reads the last snapshot before
#: its period only when no match came between (:func:`faceit.analysis.tracked_player_period`), so
#: more of the same value tell it nothing (hourly ones filled the 500 of a followed player in
#: three weeks, short of a month).
ELO_SNAPSHOT_MIN_GAP = 86400
MONITOR_TTL = 90 * 86400

# KEYS: the player's monitor state, their followers. ARGV: the new state (JSON), its finished_at,
# the TTL. Written unless the state there is of a later match (a later monitoring run got there
# first), or nobody follows the player any more: /unsubscribe of the last follower deleted the
# state, and a run's delivery that wrote it back left a later /subscribe counting from it ("Elo
# +140 over the last 23 matches") instead of from its own baseline.
_ADVANCE_MONITOR_STATE = """
if redis.call("SCARD", KEYS[2]) == 0 then return 0 end
local current = redis.call("GET", KEYS[1])
if current then
  local ok, old = pcall(cjson.decode, current)
  if ok and type(old) == "table" and (tonumber(old["finished_at"]) or 0) > tonumber(ARGV[2]) then return 0 end
end
redis.call("SET", KEYS[1], ARGV[1], "EX", ARGV[3])
return 1
"""

# KEYS: the user's follows, the player's followers, every followed player, the player's
# followed-since. ARGV: player id, nickname, user id, now, the most follows a user may have.
# One script, so two /subscribes at once cannot both read 19 and take the user to 21. Answers 1
# when new, 0 when already followed (the nickname is updated), -1 when at the limit.
_SUBSCRIBE = """
local already = redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1
if not already and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[5]) then return -1 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('HSETNX', KEYS[4], ARGV[3], ARGV[4])
if already then return 0 end
return 1
"""

# KEYS: the user's follows, the player's followers, the player's followed-since, every followed
# player, the player's monitor state. ARGV: player id, user id. Answers the nickname as stored
# (false: not followed). One script, so a /subscribe of the same player by someone else cannot
# land between "nobody follows them now" and taking them out of the scan set (they would follow
# a player monitoring never looks at, their followed-since deleted with the state).
_UNSUBSCRIBE = """
local nickname = redis.call('HGET', KEYS[1], ARGV[1])
if not nickname then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
if redis.call('SCARD', KEYS[2]) == 0 then
  redis.call('SREM', KEYS[4], ARGV[1])
  redis.call('DEL', KEYS[5], KEYS[3])
end
return nickname
"""

# KEYS: a player's followers, their monitor state. ARGV: the followers as read. Deletes the state
# only while the followers are still exactly those: someone who followed the player since (their
# /subscribe wrote a fresh baseline) keeps it. Returns 1 when deleted.
_FORGET_MARK = """
if redis.call('SCARD', KEYS[1]) ~= #ARGV then return 0 end
for i = 1, #ARGV do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 0 then return 0 end
end
return redis.call('DEL', KEYS[2])
"""

# KEYS[1] snapshots. ARGV: now, elo, min gap, max entries, ttl. Adds unless the newest snapshot
# has the same Elo and is younger than the gap; drops snapshots older than the ttl; returns 1 when
# added.
_RECORD_ELO = """
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local now = tonumber(ARGV[1])
if last[1] then
  local sep = string.find(last[1], ':', 1, true)
  local last_elo = string.sub(last[1], sep + 1)
  if last_elo == ARGV[2] and now - tonumber(last[2]) < tonumber(ARGV[3]) then
    redis.call('EXPIRE', KEYS[1], ARGV[5])
    return 0
  end
end
redis.call('ZADD', KEYS[1], now, string.format('%d', now) .. ':' .. ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', now - tonumber(ARGV[5])))
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[4]) + 1))
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class FaceitStore:
    """The FACEIT layer's durable state on one Redis (``decode_responses=True`` client)."""

    def __init__(self, redis: Redis, keys: FaceitKeys) -> None:
        self.redis = redis
        self.keys = keys
        self._record_elo = redis.register_script(_RECORD_ELO)
        self._advance_monitor_state = redis.register_script(_ADVANCE_MONITOR_STATE)
        self._subscribe = redis.register_script(_SUBSCRIBE)
        self._forget_mark = redis.register_script(_FORGET_MARK)
        self._unsubscribe = redis.register_script(_UNSUBSCRIBE)

    # Subscriptions ---------------------------------------------------------------------------

    async def subscribe(self, user_id: int, player_id: str, nickname: str) -> bool:
        """Follow a player; True when new (False when already followed: the nickname is updated).
        The limit is checked and the follow written in one script (:data:`_SUBSCRIBE`)."""
        uid = str(int(user_id))
        added = await self._subscribe(
            keys=[self.keys.user_subscriptions(user_id), self.keys.player_subscribers(player_id),
                  self.keys.subscribed_players(), self.keys.followed_since(player_id)],
            args=[player_id, nickname, uid, repr(time.time()), MAX_SUBSCRIPTIONS])
        if int(added) < 0:
            raise with_key(
                BadInputError(ERROR_TEXTS["too_many_subscriptions"]["en"].format(limit=MAX_SUBSCRIPTIONS)),
                "too_many_subscriptions", limit=MAX_SUBSCRIPTIONS,
            )
        return bool(int(added))

    async def unsubscribe(self, user_id: int, nickname_or_id: str) -> str | None:
        """Stop following (by player id or nickname, case-insensitive); returns the nickname as
        stored (as FACEIT spells it, not as typed), None when not followed. The name is matched
        here; the unfollow, and the player's removal when nobody follows them any more, are one
        script (:data:`_UNSUBSCRIBE`)."""
        subs = await self.redis.hgetall(self.keys.user_subscriptions(user_id))
        wanted = nickname_or_id.strip()
        player_id = wanted if wanted in subs else next(
            (pid for pid, nick in subs.items() if nick.lower() == wanted.lower()), None
        )
        if player_id is None:
            return None
        nickname = await self._unsubscribe(
            keys=[self.keys.user_subscriptions(user_id), self.keys.player_subscribers(player_id),
                  self.keys.followed_since(player_id), self.keys.subscribed_players(),
                  self.keys.monitor_state(player_id)],
            args=[player_id, str(int(user_id))])
        if nickname is None:  # unfollowed meanwhile (another /unsubscribe of theirs)
            return None
        return nickname or player_id

    async def follows(self, user_id: int, player_id: str) -> bool:
        """Whether ``user_id`` follows ``player_id`` now (a notice about them is still theirs)."""
        return bool(await self.redis.hexists(self.keys.user_subscriptions(user_id), player_id))

    async def list_subscriptions(self, user_id: int) -> list[dict[str, str]]:
        """``[{"player_id", "nickname"}]`` sorted by nickname."""
        subs = await self.redis.hgetall(self.keys.user_subscriptions(user_id))
        return [{"player_id": pid, "nickname": nick}
                for pid, nick in sorted(subs.items(), key=lambda kv: kv[1].lower())]

    async def all_subscribed_players(self) -> dict[str, str]:
        """Every followed player id → a nickname (as one of its followers saved it):
        :meth:`watched_players` with nobody passed over.

        In a few round trips however many players are followed: each player's followers, then the
        first follower's saved nickname, each step one pipeline per :data:`READ_BATCH` players; the
        next followers are asked only where the first one's entry is gone (a race with
        ``/unsubscribe``)."""
        return await self.watched_players(set())

    async def watched_players(self, inactive: set[int], *, drop_idle_marks: bool = False) -> dict[str, str]:
        """:meth:`all_subscribed_players` without the players whose every follower is in
        ``inactive`` (blocked the bot): monitoring and the cache refresh pass over them, since
        nobody is told of them and each costs FACEIT calls every run, for good (a blocked user
        never unfollows).

        ``drop_idle_marks`` (monitoring, the one reader that moves the marks): the monitoring
        marks of those passed over are dropped too. A mark left where it was would, once a
        follower comes back, tell weeks of matches at once (up to five notices a player, "Elo −140
        over the last 60 matches"); without one, the first scan after takes a quiet baseline, as
        for a new follow. Each drop checks the followers are still those read (:data:`_FORGET_MARK`)."""
        followers = await self._followers_of(sorted(await self.redis.smembers(self.keys.subscribed_players())))
        idle = [pid for pid, users in followers.items() if users and all(u in inactive for u in users)]
        if drop_idle_marks:
            await self._drop_marks({pid: followers[pid] for pid in idle})
        passed_over = set(idle)
        return await self._named({pid: users for pid, users in followers.items() if pid not in passed_over})

    async def _drop_marks(self, followers: dict[str, list[int]]) -> None:
        """Drop each player's monitoring mark while its followers are still those given."""
        idle = list(followers)
        for start in range(0, len(idle), READ_BATCH):
            async with self.redis.pipeline(transaction=False) as pipe:
                for pid in idle[start:start + READ_BATCH]:
                    await self._forget_mark(keys=[self.keys.player_subscribers(pid), self.keys.monitor_state(pid)],
                                            args=[str(u) for u in followers[pid]], client=pipe)
                await pipe.execute()

    async def _named(self, followers: dict[str, list[int]]) -> dict[str, str]:
        """Each player of ``followers`` (id → its followers) → a nickname one of them saved."""
        out = {pid: pid for pid, users in followers.items() if not users}  # followed by nobody any more
        pending = {pid: users for pid, users in followers.items() if users}
        while pending:
            asked = list(pending.items())
            nicks = await self._pipelined([(self.keys.user_subscriptions(users[0]), pid) for pid, users in asked], "hget")
            pending = {}
            for (pid, users), nick in zip(asked, nicks, strict=True):
                if nick or len(users) == 1:
                    out[pid] = nick or pid
                else:
                    pending[pid] = users[1:]
        return dict(sorted(out.items()))

    async def all_subscribers(self) -> set[int]:
        """Every user who follows at least one player (inactive ones too), in a few round trips."""
        followers = await self._followers_of(list(await self.redis.smembers(self.keys.subscribed_players())))
        return {uid for users in followers.values() for uid in users}

    async def _followers_of(self, player_ids: list[str]) -> dict[str, list[int]]:
        """Each player's followers (sorted), one pipeline per :data:`READ_BATCH` players."""
        sets = await self._pipelined([(self.keys.player_subscribers(pid),) for pid in player_ids], "smembers")
        return {pid: sorted(int(u) for u in users) for pid, users in zip(player_ids, sets, strict=True)}

    async def _pipelined(self, calls: list[tuple[Any, ...]], command: str) -> list[Any]:
        """``command(*args)`` for each of ``calls``, :data:`READ_BATCH` to a pipeline; the replies in order."""
        replies: list[Any] = []
        for start in range(0, len(calls), READ_BATCH):
            async with self.redis.pipeline(transaction=False) as pipe:  # its connection back to the pool, whatever happens
                for args in calls[start:start + READ_BATCH]:
                    getattr(pipe, command)(*args)
                replies.extend(await pipe.execute())
        return replies

    async def subscribers(self, player_id: str) -> list[int]:
        return sorted(int(u) for u in await self.redis.smembers(self.keys.player_subscribers(player_id)))

    async def followed_since(self, player_id: str) -> dict[int, float]:
        """When each follower began following the player (those who followed before this was
        recorded are missing: since always)."""
        return {int(uid): float(at) for uid, at in (await self.redis.hgetall(self.keys.followed_since(player_id))).items()}

    async def rename(self, player_id: str, nickname: str) -> None:
        """Keep the saved nickname current after a player renames (seen by monitoring)."""
        for uid in await self.subscribers(player_id):
            key = self.keys.user_subscriptions(uid)
            if await self.redis.hexists(key, player_id):
                await self.redis.hset(key, player_id, nickname)

    # Users ------------------------------------------------------------------------------------

    async def set_user_inactive(self, user_id: int) -> None:
        await self.redis.sadd(self.keys.inactive_users(), int(user_id))

    async def set_user_active(self, user_id: int) -> None:
        await self.redis.srem(self.keys.inactive_users(), int(user_id))

    async def is_user_active(self, user_id: int) -> bool:
        return not await self.redis.sismember(self.keys.inactive_users(), int(user_id))

    async def inactive_users(self) -> set[int]:
        return {int(u) for u in await self.redis.smembers(self.keys.inactive_users())}

    async def record_analysis(self, user_id: int, kind: str, now: float | None = None) -> None:
        """Record one analysis of ``kind`` (``match``, ``player``, ``bulk`` …) by the user, at its
        time: a report counts those of its own window, to the second (as it counts matches)."""
        now = time.time() if now is None else now
        key = self.keys.activity(user_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(key, {f"{str(kind)[:32]}:{uuid.uuid4().hex[:12]}": now})
        pipe.zremrangebyscore(key, 0, now - ACTIVITY_TTL)
        pipe.zremrangebyrank(key, 0, -(MAX_ACTIVITY_PER_USER + 1))
        pipe.expire(key, ACTIVITY_TTL)
        pipe.zadd(self.keys.active_users(), {str(int(user_id)): now}, gt=True)
        pipe.zremrangebyrank(self.keys.active_users(), 0, -(MAX_ACTIVE_USERS + 1))
        await pipe.execute()

    async def activity(self, user_id: int, since: float, now: float | None = None) -> dict[str, int]:
        """Analyses per kind the user asked for from ``since`` to ``now`` (epoch seconds)."""
        return (await self.activity_split(user_id, since, since, now))[1]

    async def activity_split(self, user_id: int, start: float, split: float,
                             now: float | None = None) -> tuple[dict[str, int], dict[str, int]]:
        """Analyses per kind in ``[start, split)`` and in ``[split, now]``, in one read: a period
        and the one before it, each analysis in one of them only."""
        now = time.time() if now is None else now
        periods: tuple[dict[str, int], dict[str, int]] = ({}, {})
        for member, score in await self.redis.zrangebyscore(self.keys.activity(user_id), start, now,
                                                            withscores=True):
            totals = periods[score >= split]
            kind = str(member).rsplit(":", 1)[0]
            totals[kind] = totals.get(kind, 0) + 1
        return periods

    async def active_users_since(self, since: float) -> list[int]:
        return sorted(int(u) for u in await self.redis.zrangebyscore(self.keys.active_users(), since, "+inf"))

    # Elo snapshots --------------------------------------------------------------------------

    async def record_elo(self, player_id: str, elo: int | None, now: float | None = None) -> bool:
        if elo is None or not player_id:
            return False
        now = time.time() if now is None else now
        added = await self._record_elo(
            keys=[self.keys.elo_history(player_id)],
            args=[int(now), int(elo), ELO_SNAPSHOT_MIN_GAP, ELO_SNAPSHOTS_MAX, ELO_SNAPSHOT_TTL],
        )
        return bool(added)

    async def elo_history(self, player_id: str, since: float = 0) -> list[tuple[float, int]]:
        """Oldest-first ``(epoch seconds, elo)`` snapshots."""
        rows = await self.redis.zrangebyscore(self.keys.elo_history(player_id), since, "+inf", withscores=True)
        out = []
        for member, score in rows:
            try:
                out.append((float(score), int(str(member).split(":", 1)[1])))
            except (IndexError, ValueError):
                continue
        return out

    # Monitoring marks -------------------------------------------------------------------------

    async def monitor_state(self, player_id: str) -> dict[str, Any] | None:
        raw = await self.redis.get(self.keys.monitor_state(player_id))
        if not raw:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    async def sweep_resume(self, sweep: str) -> str | None:
        """Where the next ``sweep`` of every followed player starts (:meth:`FaceitKeys.sweep_resume`)."""
        return await self.redis.get(self.keys.sweep_resume(sweep))

    async def set_sweep_resume(self, sweep: str, player_id: str | None) -> None:
        """Start the next ``sweep`` of every followed player at ``player_id`` (None: at the first)."""
        if player_id is None:
            await self.redis.delete(self.keys.sweep_resume(sweep))
        else:
            await self.redis.set(self.keys.sweep_resume(sweep), player_id, ex=MONITOR_TTL)

    async def set_monitor_state(self, player_id: str, state: dict[str, Any], *, if_absent: bool = False) -> None:
        """Where monitoring of ``player_id`` stands; ``if_absent`` keeps one already there (the
        player's other followers are notified from it)."""
        await self.redis.set(self.keys.monitor_state(player_id), json.dumps(state), ex=MONITOR_TTL, nx=if_absent)

    async def advance_monitoring(self, marks: Any) -> int:
        """Move monitoring on past the matches a monitoring result tells (its ``marks``: player
        id → state, as stored in the result: anything else moves nothing); its delivery does it
        before the notices go out. A player a later run already moved further keeps its state,
        and one nobody follows any more gets none (their last follower left meanwhile).
        A run marks each player it took a baseline of or found new matches for (every followed
        player on the first run), so the writes go :data:`READ_BATCH` to a pipeline, not one
        round trip each. Returns how many moved."""
        if not isinstance(marks, dict):
            return 0
        items = [(str(pid), state) for pid, state in marks.items() if isinstance(state, dict)]
        moved = 0
        for start in range(0, len(items), READ_BATCH):
            moved += await self._advance_batch(items[start:start + READ_BATCH])
        return moved

    async def _advance_batch(self, items: list[tuple[str, dict[str, Any]]]) -> int:
        """One pipeline of :meth:`advance_monitoring`'s script calls. The pipeline loads the
        script first when Redis lacks it; should Redis lose it between that check and the calls
        (a restart, a failover), the batch goes once more: each write is idempotent."""
        try:
            return await self._advance_pipeline(items)
        except NoScriptError:
            return await self._advance_pipeline(items)

    async def _advance_pipeline(self, items: list[tuple[str, dict[str, Any]]]) -> int:
        async with self.redis.pipeline(transaction=False) as pipe:  # its connection back to the pool, whatever happens
            for player_id, state in items:
                await self._advance_monitor_state(
                    keys=[self.keys.monitor_state(player_id), self.keys.player_subscribers(player_id)],
                    args=[json.dumps(state), repr(float(state.get("finished_at") or 0)), MONITOR_TTL], client=pipe)
            return sum(int(written) for written in await pipe.execute())


# Shortcuts to the per-loop store of faceit.context (only the tests call them) ------------------


async def _store() -> FaceitStore:
    from faceit.context import get_faceit_context

    return (await get_faceit_context()).store


async def subscribe(user_id: int, player_id: str, nickname: str) -> bool:
    return await (await _store()).subscribe(user_id, player_id, nickname)


async def unsubscribe(user_id: int, nickname_or_id: str) -> str | None:
    return await (await _store()).unsubscribe(user_id, nickname_or_id)


async def list_subscriptions(user_id: int) -> list[dict[str, str]]:
    return await (await _store()).list_subscriptions(user_id)


async def all_subscribed_players() -> dict[str, str]:
    return await (await _store()).all_subscribed_players()


async def set_user_inactive(user_id: int) -> None:
    await (await _store()).set_user_inactive(user_id)


async def set_user_active(user_id: int) -> None:
    await (await _store()).set_user_active(user_id)


async def is_user_active(user_id: int) -> bool:
    return await (await _store()).is_user_active(user_id)


async def record_analysis(user_id: int, kind: str) -> None:
    await (await _store()).record_analysis(user_id, kind)

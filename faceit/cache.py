"""Redis cache of Data API responses with single-flight across tasks and processes.

A read goes: cached value → return it. Otherwise one task per process joins an in-process
future for the key, and across processes a Redis lock (``SET NX PX``) elects one leader that
fetches upstream; the others wait for the lock to go and read what the leader stored. So 50
concurrent requests for one player from two processes make one upstream call.

The leader renews its lock while it fetches (the fetch may queue behind the rate limiter), so a
slow fetch is never duplicated, while a crashed leader's lock expires within ``lock_ttl``.
A failed fetch is remembered briefly (``failure`` key) so that waiters, and repeats of a bad
nickname, get the same error instead of each trying again.

Priority (:mod:`faceit.ratelimit`): a fetch that low-priority work leads runs under a
:class:`~faceit.ratelimit.LowPriority` of its own, and an interactive caller that joins it in the
process raises it, so the user does not wait in the low lane. A give-up of the low lane
(:class:`~faceit.errors.LowPriorityBudgetExhaustedError`) is not remembered: the lock is released,
and a caller waiting in another process fetches at its own priority; an interactive joiner in the
process that gets it anyway (the leader gave up as it joined) fetches itself.

Across processes (the interactive analyses and the bulks run in different workers) the lock of a
fetch that low work leads says so (its token starts with ``low:``). An interactive caller waiting
on such a lock asks for it (``<lock>:wanted`` holds that token for ``lock_ttl``), and the leader
raises its fetch as an in-process joiner would: the user waits for one interactive call, not for
the bulk. The low fetches of a process are watched together: once a second one ``MGET`` reads the
``wanted`` key of every one of them (a bulk has hundreds waiting in the low lane; each looking for
itself made as many Redis calls a second).
A leader that is cancelled is no failure of the key either: its joiners fetch again themselves.

Values are JSON; every key is written with a TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from faceit import errors
from faceit.keys import FaceitKeys
from faceit.ratelimit import LOW_PRIORITY_WORK, LowPriority, low_priority_work

log = logging.getLogger(__name__)

Fetch = Callable[[], Awaitable[Any]]
TtlFor = Callable[[Any], int]

# Seconds a failure is remembered: not-found answers and bad input are stable; the rest (5xx,
# timeouts, refused keys) should be tried again soon, so they are kept ``failure_ttl`` seconds
# (``FACEIT_CACHE_FAILURE_TTL``), long enough for the waiters of that fetch and quick repeats,
# shorter than the first retry of a job (10 s), which then asks FACEIT again.
FAILURE_TTL = {"not_found": 30, "bad_input": 30}
DEFAULT_FAILURE_TTL = 2.0

_STORE = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('DEL', KEYS[3])
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
"""
_FAIL = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS: lock, wanted. ARGV: token, lock ms. 0: the lock is not ours; 1: renewed; 2: renewed, and
# an interactive caller waits on this (low) fetch in another process.
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[1] then return 2 end
return 1
"""
# KEYS: lock, wanted. ARGV: "1" to ask a low holder for its fetch, wanted ms. 0: not locked;
# 1: locked; 2: locked by low work, asked (wanted holds its token).
_HELD = """
local holder = redis.call('GET', KEYS[1])
if not holder then return 0 end
if ARGV[1] == '1' and string.sub(holder, 1, 4) == 'low:' then
  redis.call('SET', KEYS[2], holder, 'PX', ARGV[2])
  return 2
end
return 1
"""

#: How a lock's token says that low work leads its fetch.
LOW_TOKEN_PREFIX = "low:"
#: Seconds between two looks for ``wanted``: at the low fetches a process leads (one ``MGET`` for
#: all of them), and between two asks of a waiting interactive caller (one call per waiter).
WANTED_POLL = 1.0

_ERRORS: dict[str, type[errors.FaceitBotError]] = {
    cls.code: cls
    for cls in (
        errors.NotFoundError,
        errors.AuthError,
        errors.BadInputError,
        errors.RateLimitedError,
        errors.UpstreamError,
        errors.MatchNotAnalysableError,
        errors.PermanentError,
        errors.TransientError,
    )
}


def _encode_failure(exc: errors.FaceitBotError) -> str:
    return json.dumps({"code": exc.code, "message": exc.message, "retry_after": exc.retry_after,
                       "key": getattr(exc, "key", None), "params": getattr(exc, "params", None)})


def _decode_failure(text: str) -> errors.FaceitBotError:
    try:
        data = json.loads(text)
    except ValueError:
        return errors.UpstreamError("unreadable cached failure")
    cls = _ERRORS.get(data.get("code"), errors.UpstreamError)
    exc = cls(data.get("message") or "", retry_after=data.get("retry_after"))
    if data.get("key"):
        exc.key = data["key"]  # type: ignore[attr-defined]
        exc.params = data.get("params") or {}  # type: ignore[attr-defined]
    return exc


class SingleFlightCache:
    """Cache-aside with single-flight (see the module docstring)."""

    def __init__(
        self,
        redis: Redis,
        keys: FaceitKeys,
        *,
        lock_ttl: float = 15.0,
        max_wait: float = 300.0,
        failure_ttl: float = DEFAULT_FAILURE_TTL,
        wanted_poll: float = WANTED_POLL,
    ) -> None:
        """``wanted_poll``: seconds between two looks for ``wanted`` (:data:`WANTED_POLL` unless
        given; tests scale it down to see many looks in a short run)."""
        self.redis = redis
        self.keys = keys
        self.lock_ttl = lock_ttl
        self.failure_ttl = failure_ttl
        self.max_wait = max_wait
        self.wanted_poll = wanted_poll
        # Each fetch under way: its future, and its own LowPriority when low work leads it.
        self._inflight: dict[str, tuple[asyncio.Future[Any], LowPriority | None]] = {}
        self._store = redis.register_script(_STORE)
        self._fail = redis.register_script(_FAIL)
        self._release = redis.register_script(_RELEASE)
        self._renew = redis.register_script(_RENEW)
        self._held = redis.register_script(_HELD)
        # The low fetches this process leads, watched for a waiting interactive caller: lock → (its
        # token, the fetch's LowPriority); and the one task that watches them while there are any.
        self._low_leads: dict[str, tuple[str, LowPriority]] = {}
        self._watcher: asyncio.Task[None] | None = None

    async def close(self) -> None:
        """Stop watching the low fetches (before the Redis client closes). The watcher is only
        cancelled, not awaited: a wait here could swallow a cancel of the caller's own."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()

    async def peek(self, key: str) -> tuple[bool, Any]:
        """(hit, value) without fetching; raises a remembered failure."""
        value, failure = await self.redis.mget(key, self.keys.failure(key))
        if value is not None:
            return True, json.loads(value)
        if failure is not None:
            raise _decode_failure(failure)
        return False, None

    async def age(self, key: str, ttl: float) -> float | None:
        """Seconds since ``key`` was stored with ``ttl`` (read from the time it has left); None
        when it is not cached."""
        left = await self.redis.pttl(key)
        return None if left is None or left < 0 else max(0.0, float(ttl) - left / 1000)

    async def put(self, key: str, value: Any, ttl: float) -> None:
        await self.redis.set(key, json.dumps(value, separators=(",", ":")), px=max(1, int(ttl * 1000)))

    async def get(self, key: str, fetch: Fetch, ttl_for: TtlFor, *, refresh: bool = False) -> Any:
        """The cached value of ``key``, fetching it (once across processes) when absent.

        ``refresh=True`` skips the cached value and fetches anew (still single-flight).
        """
        if not refresh:
            hit, value = await self.peek(key)
            if hit:
                return value
        low = low_priority_work()
        while True:
            running = self._inflight.get(key)
            if running is None:
                return await self._fly(key, fetch, ttl_for, low)
            future, flight = running
            if flight is not None and low is None:
                flight.promote()  # an interactive caller waits on it now: out of the low lane
            try:
                return await asyncio.shield(future)
            except errors.FetchCancelledError:
                pass  # the leader's task was cancelled: not this caller's failure, fetch again
            except errors.LowPriorityBudgetExhaustedError:
                if low is not None:
                    raise
                # The low leader gave up before it saw this caller: fetch at our own priority.

    async def _fly(self, key: str, fetch: Fetch, ttl_for: TtlFor, low: LowPriority | None) -> Any:
        """Fetch ``key`` for this process, its joiners waiting on the future; low-priority work
        fetches under a :class:`LowPriority` of this fetch's own, which a joiner may raise."""
        flight = LowPriority() if low is not None else None
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = (future, flight)
        marked = LOW_PRIORITY_WORK.set(flight) if flight is not None else None
        try:
            value = await self._lead_or_follow(key, fetch, ttl_for)
        except BaseException as exc:
            # Waiters must not see a CancelledError that was not theirs.
            shared = exc if isinstance(exc, Exception) else errors.FetchCancelledError("FACEIT fetch was cancelled")
            future.set_exception(shared)
            future.exception()  # mark retrieved: nobody else may be waiting
            raise
        else:
            future.set_result(value)
            return value
        finally:
            if marked is not None:
                LOW_PRIORITY_WORK.reset(marked)
            if self._inflight.get(key, (None, None))[0] is future:
                del self._inflight[key]

    async def _lead_or_follow(self, key: str, fetch: Fetch, ttl_for: TtlFor) -> Any:
        lock = self.keys.lock(key)
        deadline = time.monotonic() + self.max_wait
        while True:
            low = low_priority_work()  # this fetch's own LowPriority (see _fly) while it is low
            token = (LOW_TOKEN_PREFIX if low is not None else "") + uuid.uuid4().hex
            if await self.redis.set(lock, token, nx=True, px=int(self.lock_ttl * 1000)):
                return await self._lead(key, lock, token, fetch, ttl_for, low)
            # Someone else is fetching it: wait for their lock to go, then read their answer.
            await self._wait_unlocked(lock, deadline)
            hit, value = await self.peek(key)
            if hit:
                return value
            if time.monotonic() > deadline:
                raise errors.UpstreamError("timed out waiting for another FACEIT fetch")

    async def _lead(self, key: str, lock: str, token: str, fetch: Fetch, ttl_for: TtlFor,
                    low: LowPriority | None = None) -> Any:
        renewer = asyncio.create_task(self._keep_lock(lock, token, low))
        if low is not None:
            self._watch_low_lead(lock, token, low)
        try:
            value = await fetch()
        except errors.LowPriorityBudgetExhaustedError:
            # Not the key's failure: a caller of another priority may fetch it now.
            with contextlib.suppress(Exception):
                await self._release(keys=[lock], args=[token])
            raise
        except errors.FaceitBotError as exc:
            ttl_ms = max(1, int(FAILURE_TTL.get(exc.code, self.failure_ttl) * 1000))
            with contextlib.suppress(Exception):
                await self._fail(keys=[self.keys.failure(key), lock], args=[_encode_failure(exc), ttl_ms, token])
            raise
        except BaseException:
            with contextlib.suppress(Exception):
                await self._release(keys=[lock], args=[token])
            raise
        finally:
            renewer.cancel()
            if self._low_leads.get(lock, ("", None))[0] == token:
                del self._low_leads[lock]
        payload = json.dumps(value, separators=(",", ":"))
        await self._store(
            keys=[key, lock, self.keys.failure(key)], args=[payload, max(1, int(ttl_for(value))), token]
        )
        return value

    async def _keep_lock(self, lock: str, token: str, low: LowPriority | None = None) -> None:
        """Renew the lock every ``lock_ttl / 3``. :meth:`_watch_wanted` looks each
        :attr:`wanted_poll` for an interactive caller of another process waiting on a low fetch
        (``low``, its own); the renewal says so too, and raises it then: the fallback should the
        watcher be gone (cancelled with its loop's work)."""
        interval = self.lock_ttl / 3
        while True:
            await asyncio.sleep(interval)
            try:
                held = await self._renew(keys=[lock, _wanted(lock)], args=[token, int(self.lock_ttl * 1000)])
            except Exception:  # the fetch itself will report Redis trouble
                log.debug("could not renew single-flight lock %s", lock)
                continue
            if int(held or 0) == 2 and low is not None and not low.raised:
                log.debug("single-flight %s: an interactive caller of another process waits: raised", lock)
                low.promote()

    def _watch_low_lead(self, lock: str, token: str, low: LowPriority) -> None:
        """Have :meth:`_watch_wanted` look after this low fetch until it ends (its lead removes it)."""
        self._low_leads[lock] = (token, low)
        if self._watcher is None or self._watcher.done():
            # A context of its own: it outlives the job whose fetch started it (and its log context).
            self._watcher = asyncio.get_running_loop().create_task(self._watch_wanted(), context=contextvars.Context())

    async def _watch_wanted(self) -> None:
        """Each :attr:`wanted_poll` while this process leads low fetches: one ``MGET`` of their
        ``wanted`` keys, and each fetch an interactive caller of another process waits on is
        raised. Ends when none is left (the next low lead starts it again)."""
        while self._low_leads:
            await asyncio.sleep(self.wanted_poll)
            watched = []
            for lock, (token, low) in list(self._low_leads.items()):
                if low.raised:  # raised by a joiner meanwhile: nothing left to watch for
                    del self._low_leads[lock]
                else:
                    watched.append((lock, token, low))
            if not watched:
                continue
            try:
                asked = await self.redis.mget([_wanted(lock) for lock, _, _ in watched])
            except Exception as exc:  # Redis trouble: the fetches report it themselves; look again later
                log.debug("could not read the wanted keys of %d low fetches: %s", len(watched), type(exc).__name__)
                continue
            for (lock, token, low), value in zip(watched, asked, strict=True):
                if (value.decode() if isinstance(value, bytes) else value) == token and not low.raised:
                    log.debug("single-flight %s: an interactive caller of another process waits: raised", lock)
                    low.promote()

    async def _wait_unlocked(self, lock: str, deadline: float) -> None:
        """Wait for ``lock`` to go. An interactive caller (this fetch is not low) asks a low
        holder for its fetch (``wanted``), again each :attr:`wanted_poll` while it waits."""
        delay = 0.005
        asked_at: float | None = None
        wanted_ms = max(1, int(self.lock_ttl * 1000))
        while True:
            now = time.monotonic()
            ask = low_priority_work() is None and (asked_at is None or now - asked_at >= self.wanted_poll)
            held = int(await self._held(keys=[lock, _wanted(lock)], args=["1" if ask else "0", wanted_ms]) or 0)
            if not held:
                return
            if held == 2:
                asked_at = now
            if time.monotonic() > deadline:
                raise errors.UpstreamError("timed out waiting for another FACEIT fetch")
            await asyncio.sleep(delay)
            delay = min(delay * 1.6, 0.1)


def _wanted(lock: str) -> str:
    """Where an interactive caller asks the low holder of ``lock`` (its token) for its fetch."""
    return f"{lock}:wanted"

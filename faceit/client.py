"""Async client of the FACEIT Data API v4: cached, single-flight, paced, with mapped errors.

One :class:`FaceitClient` per event loop (see :mod:`faceit.context`), one aiohttp session in it,
opened on first use. Every method goes through the Redis cache (:mod:`faceit.cache`) unless
called with ``refresh=True``; every upstream request first takes a slot from the shared token
bucket (:mod:`faceit.ratelimit`) and is counted (:mod:`faceit.metrics`).

Errors map onto :mod:`faceit.errors`: 404 → :class:`NotFoundError`, 401/403 → :class:`AuthError`,
429 → :class:`RateLimitedError` (``retry_after`` from ``Retry-After``; the shared bucket is pushed
back so no process sends anything until then), 5xx/timeouts/connection errors →
:class:`UpstreamError`. A 429 is retried once internally after the push-back (``rate_limit_retries``)
and a 5xx/connection error once after a short pause, so a brief hiccup does not fail a job. The
low lane's give-up (:class:`LowPriorityBudgetExhaustedError`: low-priority work found no slot
within the limiter's ``max_wait``) is not retried inside: the job's retry schedule handles it.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
from redis.asyncio import Redis
from redis.exceptions import RedisError

from faceit import errors
from faceit.cache import DEFAULT_FAILURE_TTL, SingleFlightCache
from faceit.i18n import with_key
from faceit.keys import FaceitKeys, key_fingerprint
from faceit.metrics import CallCounter
from faceit.models import (
    FINISHED,
    NOT_ANALYSABLE,
    LifetimeStats,
    Match,
    MatchRound,
    PlayerMatchStats,
    PlayerProfile,
    as_dict,
    as_list,
    parse_match_stats,
    parse_recent,
    without_cut_series,
)
from faceit.ratelimit import SharedRateLimiter

log = logging.getLogger(__name__)

SANDBOX_API_KEY = "sandbox-key"  # used when FACEIT_API_KEY is empty (the sandbox's default key)
KEY_MISSING = "FACEIT_API_KEY is empty: set it, or point FACEIT_API_URL at a sandbox Data API"


def is_faceits_own(api_url: str) -> bool:
    """Whether ``api_url`` is FACEIT's Data API (not a sandbox or a proxy of one's own)."""
    host = (urlsplit(api_url).hostname or "").lower()
    return host == "faceit.com" or host.endswith(".faceit.com")
RECENT_FETCH_LIMIT = 30  # one call fetches enough to keep the last 20 5v5 matches
STATS_PAGE = 100  # the most matches one /games/cs2/stats call returns
STATS_MAX_PAGES = 5  # get_stats_since reads at most this many pages (500 matches)
DEFAULT_RETRY_AFTER = 2.0  # seconds to pause on a 429 without Retry-After
MAX_INTERNAL_RETRY_WAIT = 10.0  # longer Retry-After values go back to the job's retry schedule


@dataclass(frozen=True, slots=True)
class CacheTTLs:
    """Seconds each kind of response is cached (``FACEIT_CACHE_*_TTL``)."""

    match: int = 60
    profile: int = 300
    recent: int = 600
    lifetime: int = 1800
    finished: int = 2_592_000
    #: Transient failures (5xx, timeouts): seconds the cache gives waiters the same error.
    failure: float = DEFAULT_FAILURE_TTL


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: ``"2"`` → 2.0, an HTTP date → seconds from now, junk → None."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _page_lines(raw: Any, size: int) -> tuple[list[PlayerMatchStats], bool]:
    """A page of ``/games/cs2/stats`` as lines (newest first), and whether it came back full
    (``size`` items): then its oldest series may go on to the next page."""
    return parse_recent(raw), len(as_list(as_dict(raw).get("items"))) >= size


class FaceitClient:
    """The Data API calls the bot needs (each returns a parsed model, see :mod:`faceit.models`)."""

    def __init__(
        self,
        *,
        api_url: str,
        api_key: str,
        redis: Redis,
        keys: FaceitKeys,
        timeout: float = 10.0,
        rate: float = 8.0,
        burst: int = 30,
        ttls: CacheTTLs | None = None,
        rate_limit_retries: int = 1,
        transient_retries: int = 1,
        max_wait: float | None = None,
    ) -> None:
        """``max_wait``: the longest a call waits for the shared rate limit's slot (the limiter's
        own default, 120 s, when None); tests scale it down to see the low lane give up."""
        self.api_url = api_url.rstrip("/")
        self._api_key = api_key
        # No key set, and the URL is FACEIT's own: every call would be a 401 (see :meth:`request`).
        self.key_missing = api_key == SANDBOX_API_KEY and is_faceits_own(self.api_url)
        self.redis = redis
        self.keys = keys
        self.timeout = timeout
        self.ttls = ttls or CacheTTLs()
        self.rate_limit_retries = rate_limit_retries
        self.transient_retries = transient_retries
        self.cache = SingleFlightCache(redis, keys, failure_ttl=self.ttls.failure)
        waits = {} if max_wait is None else {"max_wait": max_wait}
        self.limiter = SharedRateLimiter(redis, keys, key_fingerprint(api_key), rate=rate, burst=burst, **waits)
        self.counter = CallCounter(redis, keys)
        self._session: aiohttp.ClientSession | None = None
        self.upstream_calls = 0  # requests this client sent (for tests and benchmarks)

    def __repr__(self) -> str:  # never show the key
        return f"FaceitClient(api_url={self.api_url!r})"

    @classmethod
    def from_settings(cls, settings: Any, redis: Redis) -> FaceitClient:
        return cls(
            api_url=settings.faceit_api_url,
            api_key=settings.faceit_api_key.get_secret_value() or SANDBOX_API_KEY,
            redis=redis,
            keys=FaceitKeys(settings.redis_key_prefix),
            timeout=settings.faceit_request_timeout,
            rate=settings.faceit_rate_limit,
            burst=settings.faceit_rate_burst,
            ttls=CacheTTLs(
                match=settings.faceit_cache_match_ttl,
                profile=settings.faceit_cache_profile_ttl,
                recent=settings.faceit_cache_recent_ttl,
                lifetime=settings.faceit_cache_lifetime_ttl,
                finished=settings.faceit_cache_finished_ttl,
                failure=settings.faceit_cache_failure_ttl,
            ),
        )

    async def close(self) -> None:
        await self.cache.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"},
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(limit=64),
            )
        return self._session

    # Raw requests --------------------------------------------------------------------------

    async def request(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET ``path`` (relative to the API URL) with pacing, retries and mapped errors."""
        rate_retries = self.rate_limit_retries
        transient_retries = self.transient_retries
        while True:
            try:
                return await self._request_once(path, params)
            except errors.RateLimitedError as exc:
                wait = exc.retry_after if exc.retry_after is not None else DEFAULT_RETRY_AFTER
                # The low lane's give-up already waited its max_wait: queueing for another would
                # double it; the job's retry schedule tries again.
                if (rate_retries <= 0 or wait > MAX_INTERNAL_RETRY_WAIT
                        or isinstance(exc, errors.LowPriorityBudgetExhaustedError)):
                    raise
                rate_retries -= 1  # the bucket already holds every client back for `wait`
            except errors.UpstreamError as exc:
                if transient_retries <= 0 or getattr(exc, "outcome", "") == "timeout":
                    raise
                transient_retries -= 1
                await asyncio.sleep(0.3)

    async def _request_once(self, path: str, params: dict[str, Any] | None) -> Any:
        try:
            await self.limiter.acquire()
        except RedisError as exc:
            raise errors.StorageUnavailableError(f"Redis unavailable for the FACEIT rate limit: {exc}") from None
        url = f"{self.api_url}{path}"
        self.upstream_calls += 1
        outcome = "ok"
        try:
            async with self._http().get(url, params=params) as response:
                status = response.status
                if status == 200:
                    try:
                        return await response.json(content_type=None)
                    except (ValueError, aiohttp.ContentTypeError):
                        outcome = "bad_response"
                        raise _upstream(f"FACEIT sent unreadable JSON for {path}", outcome) from None
                body = await _error_message(response, self._api_key)
                if status == 429:
                    outcome = "rate_limited"
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    await self._push_back(retry_after if retry_after is not None else DEFAULT_RETRY_AFTER)
                    raise errors.RateLimitedError(f"FACEIT rate limit on {path}", retry_after=retry_after)
                if status == 404:
                    outcome = "not_found"
                    # With the query: "/players" alone does not say which nickname was missing.
                    asked = f"{path}?{urlencode(params)}" if params else path
                    raise errors.NotFoundError(f"FACEIT has no {asked} ({body})")
                if status in (401, 403):
                    outcome = "auth"
                    log.error("FACEIT refused the API key (HTTP %s) on %s", status, path)
                    raise errors.AuthError(f"FACEIT refused the API key (HTTP {status})")
                if status >= 500:
                    outcome = "upstream"
                    raise _upstream(f"FACEIT HTTP {status} on {path}", outcome)
                outcome = "client_error"
                if status == 400:
                    raise with_key(errors.BadInputError(f"FACEIT rejected {path}: {body}"), "bad_request")
                raise errors.PermanentError(f"FACEIT HTTP {status} on {path}: {body}")
        except TimeoutError:
            outcome = "timeout"
            raise _upstream(f"FACEIT did not answer {path} within {self.timeout:g}s", outcome) from None
        except aiohttp.ClientError as exc:
            outcome = "connection"
            raise _upstream(f"cannot reach FACEIT for {path}: {type(exc).__name__}", outcome) from None
        finally:
            await self._count(outcome)

    async def _push_back(self, seconds: float) -> None:
        try:
            await self.limiter.block(seconds + 0.1)  # a little margin over the server's window
        except RedisError:
            log.warning("could not push the shared FACEIT bucket back (Redis unavailable)")

    async def _count(self, outcome: str) -> None:
        try:
            await self.counter.record(outcome)
        except RedisError:
            log.warning("could not record a FACEIT call outcome (Redis unavailable)")

    async def _cached(self, key: str, path: str, params: dict[str, Any] | None, ttl: Any, refresh: bool) -> Any:
        """The cached value of ``key``, else ``path`` fetched once across processes. With no
        ``FACEIT_API_KEY`` against FACEIT's own API nothing is sent and nothing cached: the job
        fails at once with the error that names the setting (the failure cache would keep only
        its code, and a follower would read a key FACEIT refused), counted as an auth error that
        names its cause (``no_key``: the monitor's alert then says the key is not set)."""
        if self.key_missing:
            await self._count("no_key")
            raise errors.KeyMissingError(KEY_MISSING)
        ttl_for = ttl if callable(ttl) else (lambda _value: ttl)
        try:
            return await self.cache.get(key, lambda: self.request(path, params), ttl_for, refresh=refresh)
        except RedisError as exc:
            raise errors.StorageUnavailableError(f"Redis unavailable for the FACEIT cache: {exc}") from None

    async def _account_exists(self, nickname: str) -> bool:
        """Whether FACEIT knows an account of this exact nickname, in any game (cached as profiles
        are); False too when it cannot say now (the first answer, "not found", stands)."""
        try:
            await self._cached(self.keys.cache("account_nick", nickname), "/players", {"nickname": nickname},
                               self.ttls.profile, False)
        except errors.FaceitBotError:
            return False
        return True

    # The calls ---------------------------------------------------------------------------------

    async def get_player_by_nickname(self, nickname: str, *, refresh: bool = False) -> PlayerProfile:
        """``/players?nickname=…&game=cs2`` (nicknames are case-sensitive). Not found there, the
        nickname is asked for once more without the game: an account that exists, spelled so, but
        has no CS2 profile is told as that (``player_no_cs2``), not as a nickname to check."""
        key = self.keys.cache("player_nick", nickname)
        try:
            raw = await self._cached(key, "/players", {"nickname": nickname, "game": "cs2"},
                                     self.ttls.profile, refresh)
        except errors.NotFoundError as exc:
            if await self._account_exists(nickname):
                raise with_key(errors.NotFoundError(f"{nickname} has a FACEIT account but no CS2 profile"),
                               "player_no_cs2", ref=nickname) from None
            raise with_key(exc, "player_not_found", ref=nickname) from None
        profile = PlayerProfile.from_api(raw)
        by_id = self.keys.cache("player", profile.player_id) if profile.player_id else None
        try:  # the two ages in one go: this copy's, and the copy by id's
            ages = await asyncio.gather(*(self.cache.age(k, self.ttls.profile) for k in (key, by_id) if k))
        except RedisError:
            return profile  # its time not known: no snapshot of it, and no copy by id
        profile.fetched_at = self._fetched_at(ages[0], refresh)
        # The same profile answers a later lookup by id, as old as it is here.
        if by_id is not None:
            age, by_id_age = time.time() - profile.fetched_at, ages[1]
            # Never over a newer copy (monitoring reads by id), and never made younger than it
            # is: an old profile passed for a fresh one hid the Elo of a match since.
            if age < self.ttls.profile and (by_id_age is None or by_id_age > age):
                with contextlib.suppress(RedisError):
                    await self.cache.put(by_id, raw, self.ttls.profile - age)
        return profile

    def _fetched_at(self, age: float | None, refresh: bool) -> float:
        """When a profile just read came from FACEIT, from its cache entry's ``age``: now when it
        was fetched for this read (``refresh``); the profile TTL ago when the entry has expired
        since it was read."""
        return time.time() - (0.0 if refresh else self.ttls.profile if age is None else age)

    async def cached_age(self, kind: str, *parts: object) -> float | None:
        """Seconds since the cached response of ``kind`` (``player``, ``player_nick``,
        ``lifetime``, ``recent``) and ``parts`` was fetched; None when it is not cached."""
        ttl = {"player": self.ttls.profile, "player_nick": self.ttls.profile, "lifetime": self.ttls.lifetime,
               "recent": self.ttls.recent}[kind]
        return await self.cache.age(self.keys.cache(kind, *parts), ttl)

    async def get_player(self, player_id: str, *, refresh: bool = False) -> PlayerProfile:
        key = self.keys.cache("player", player_id)
        try:
            raw = await self._cached(key, f"/players/{_seg(player_id)}", None, self.ttls.profile, refresh)
        except errors.NotFoundError as exc:
            raise with_key(exc, "player_not_found", ref=player_id) from None
        profile = PlayerProfile.from_api(raw)
        try:  # a refresh was fetched for this read: no need to ask its age
            age = None if refresh else await self.cache.age(key, self.ttls.profile)
        except RedisError:
            return profile  # its time not known: no snapshot of it
        profile.fetched_at = self._fetched_at(age, refresh)
        return profile

    async def get_lifetime_stats(self, player_id: str, *, refresh: bool = False) -> LifetimeStats:
        key = self.keys.cache("lifetime", player_id)
        raw = await self._cached(key, f"/players/{_seg(player_id)}/stats/cs2", None, self.ttls.lifetime, refresh)
        return LifetimeStats.from_api(raw)

    async def get_recent_stats(
        self, player_id: str, *, limit: int = RECENT_FETCH_LIMIT, refresh: bool = False
    ) -> list[PlayerMatchStats]:
        """The player's last ``limit`` lines of per-match stats (one per map), newest first (one
        call). A series the page cuts (its other maps are older) is left out: :func:`without_cut_series`."""
        limit = max(1, min(100, int(limit)))
        key = self.keys.cache("recent", player_id, limit)
        raw = await self._cached(key, f"/players/{_seg(player_id)}/games/cs2/stats",
                                 {"limit": limit, "offset": 0}, self.ttls.recent, refresh)
        rows, full = _page_lines(raw, limit)
        return without_cut_series(rows) if full else rows  # a short page is the whole history

    async def get_stats_since(
        self, player_id: str, since: float, *, max_pages: int = STATS_MAX_PAGES, fresh: bool = False
    ) -> tuple[list[PlayerMatchStats], float]:
        """Every match with per-match stats finished since ``since`` (epoch s), newest first,
        paging ``/games/cs2/stats`` a hundred at a time (one call holds at most 100 matches; a
        month of a regular player's is more). Returns the matches and the time back to which the
        list is complete: 0 when FACEIT has no older match, else the oldest finish kept (it may
        be after ``since`` when ``max_pages`` ran out). Older matches on the last page are kept:
        a caller may look past ``since``. ``fresh``: the first page too is read anew (a user's
        own report: a match that ended minutes ago counts). A series whose first map is on a page
        not read is left out (:func:`without_cut_series`), so paging goes on until a line older
        than ``since`` is kept; when pages run out first, the list is complete back to the last
        map of the series left out (a player plays one match at a time: every match after it is
        in the list)."""
        found: dict[tuple[str, int | str | None], PlayerMatchStats] = {}
        fetched: list[PlayerMatchStats] = []
        rows: list[PlayerMatchStats] = []
        for page in range(max(1, max_pages)):
            key = self.keys.cache("recent", player_id, STATS_PAGE, page * STATS_PAGE)
            # Pages after the first are read fresh: a match finished since a cached first page
            # shifts the offsets, so a cached later page could miss the match at the boundary
            # (fresh later pages can only repeat one, and repeats are dropped by match and map round).
            raw = await self._cached(key, f"/players/{_seg(player_id)}/games/cs2/stats",
                                     {"limit": STATS_PAGE, "offset": page * STATS_PAGE}, self.ttls.recent,
                                     fresh or page > 0)
            batch, full = _page_lines(raw, STATS_PAGE)
            for match in batch:  # a line per map: a best of three's maps share the match id
                found.setdefault((match.match_id, match.match_round or match.map), match)
            fetched = list(found.values())
            if not full:
                return fetched, 0.0
            # The page was full: its oldest match may go on to the next page.
            rows = without_cut_series(fetched)
            oldest = min((m.finished_at for m in rows if m.finished_at), default=None)
            if oldest is not None and oldest < since:
                break
        kept = {m.match_id for m in rows}
        cut = [m.finished_at for m in fetched if m.match_id not in kept and m.finished_at]
        if cut:  # not the oldest line kept: that would leave out the time the cut series took
            return rows, max(cut)
        return rows, min((m.finished_at for m in rows if m.finished_at), default=0.0)

    async def get_history(
        self,
        player_id: str,
        *,
        limit: int = 20,
        offset: int = 0,
        since: int | None = None,
        refresh: bool = False,
    ) -> list[dict[str, Any]]:
        """``/players/{id}/history`` items (raw dicts; ``since`` is epoch seconds)."""
        params: dict[str, Any] = {"game": "cs2", "offset": max(0, min(1000, offset)),
                                  "limit": max(1, min(100, limit))}
        if since is not None:
            params["from"] = int(since)
        key = self.keys.cache("history", player_id, params["offset"], params["limit"], since or "")
        raw = await self._cached(key, f"/players/{_seg(player_id)}/history", params, self.ttls.recent, refresh)
        return [as_dict(item) for item in (as_dict(raw).get("items") or []) if isinstance(item, dict)]

    async def get_match(self, match_id: str, *, refresh: bool = False) -> Match:
        """``/matches/{id}``; finished and cancelled matches are cached as immutable."""

        def ttl_for(raw: Any) -> int:
            status = str(as_dict(raw).get("status", "")).upper()
            return self.ttls.finished if status == FINISHED or status in NOT_ANALYSABLE else self.ttls.match

        key = self.keys.cache("match", match_id)
        try:
            raw = await self._cached(key, f"/matches/{_seg(match_id)}", None, ttl_for, refresh)
        except errors.NotFoundError as exc:
            raise with_key(exc, "match_not_found", ref=match_id) from None
        return Match.from_api(raw)

    async def get_match_stats(self, match_id: str, *, refresh: bool = False) -> list[MatchRound]:
        """``/matches/{id}/stats`` (only finished matches have them; cached 30 days)."""
        key = self.keys.cache("match_stats", match_id)
        raw = await self._cached(key, f"/matches/{_seg(match_id)}/stats", None, self.ttls.finished, refresh)
        return parse_match_stats(raw)


def _seg(value: str) -> str:
    return quote(str(value), safe="-_.")


def _upstream(message: str, outcome: str) -> errors.UpstreamError:
    exc = errors.UpstreamError(message)
    exc.outcome = outcome  # type: ignore[attr-defined]
    return exc


#: What stands for the API key where an error text quoted it.
KEY_MASK = "***"


async def _error_message(response: aiohttp.ClientResponse, api_key: str) -> str:
    """The API's error text (``{"errors":[{"message"}]}`` or ``{"message"}``), the ``api_key``
    masked in it and then shortened: cut first, a key quoted across the cut escaped every masking
    after it (the job record, the dashboard and ``admin.py job`` showed the part before the cut)."""
    try:
        data = await response.json(content_type=None)
    except Exception:
        return f"HTTP {response.status}"
    data = as_dict(data)
    items = data.get("errors")
    if isinstance(items, list) and items and isinstance(items[0], dict):
        text = str(items[0].get("message", ""))
    else:
        text = str(data.get("message", f"HTTP {response.status}"))
    return (text.replace(api_key, KEY_MASK) if api_key else text)[:200]

"""THE CONTRACT the pipeline's actors call: a coroutine for each job type's work.

Six job types get their whole result from one coroutine: ``match_analysis`` from
:func:`analyze_match`, ``player_report`` from :func:`build_player_report`, ``bulk_analysis`` from
:func:`analyze_bulk`, ``match_monitoring`` from :func:`monitor_matches`, ``cache_update`` from
:func:`update_cache` and ``analytics_report`` from :func:`build_analytics_report`. The seventh,
``player_lookup`` (/subscribe's), is not one of them: its actor assembles its result
(``{"kind": "player_lookup", "data": …, "subscribe": …}``) from :func:`resolve_player`, the
player's plain dict, and :func:`monitoring_baseline`, where monitoring starts.

Each of the six returns a JSON-serialisable dict::

    {"kind": "match_analysis" | "player_report" | "bulk_analysis" | "match_monitoring"
             | "cache_update" | "analytics_report",
     "data": {...structured result...},
     "texts": {"en": ["<html part>", ...], "ru": [...]},          # each part <= 4096 chars
     "photos": [{"png_b64": "...", "caption": {"en": "...", "ru": "..."}}],
     "notifications": [{"user_id": 123, "texts": {"en": [...], "ru": [...]}}]}

(``"quiet": True`` besides: nothing for the requesters, as a scheduled summary with nothing to
report; the bot's delivery then sends them nothing.)

and raises the errors of :mod:`faceit.errors` (with a translatable ``key`` where it helps, see
:mod:`faceit.i18n`). ``progress`` is awaited as ``progress(percent, stage, done=…, total=…)``
with a short stage code the bot translates (:func:`faceit.i18n.stage_text`); an exception it
raises propagates (that is how an actor may stop a cancelled job).

Clients and Redis come from the running loop's :mod:`faceit.context`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import partial
from typing import Any

from faceit import analysis, render
from faceit.client import RECENT_FETCH_LIMIT, FaceitClient
from faceit.context import FaceitContext, get_faceit_context
from faceit.errors import (
    REQUEST_ERROR_CODES,
    BadInputError,
    FaceitBotError,
    MatchNotAnalysableError,
    NotFoundError,
    TransientError,
)
from faceit.i18n import ERROR_TEXTS, LANGS, error_payload, with_key
from faceit.links import MatchRef, parse_match_ref, parse_player_ref
from faceit.models import FINISHED, NOT_ANALYSABLE, Match, PlayerProfile, matches_of, series_stats
from faceit.sweep import Sweep

log = logging.getLogger(__name__)

Progress = Callable[..., Awaitable[None]]

BULK_CONCURRENCY = 4
MONITOR_CONCURRENCY = 8
CACHE_UPDATE_CONCURRENCY = 4
MAX_NOTIFICATIONS_PER_PLAYER = 5
#: A match that ended this many seconds before a user followed the player is still told to them
#: (finish times are whole seconds, and FACEIT's clock is not ours).
FOLLOW_SLACK = 60.0
#: A player report's recent matches cached this much longer (seconds) than its profile or lifetime
#: stats are fetched again.
REPORT_FETCH_SPREAD = 60.0
#: How much of a win streak a report compares between lifetime stats and recent matches (some
#: sources count "Current Win Streak" from the last five results only).
STREAK_COMPARED = 5
REPORT_DAYS = {"weekly": 7, "monthly": 30}
CACHE_TYPES = {
    "players": ("profile", "lifetime", "recent"),
    "player": ("profile", "lifetime", "recent"),
    "all": ("profile", "lifetime", "recent"),
    "profiles": ("profile",),
    "profile": ("profile",),
    "stats": ("lifetime", "recent"),
    "matches": ("match",),
    "match": ("match",),
}


def _result(kind: str, data: dict[str, Any], texts: dict[str, list[str]], photos: list[dict[str, Any]] | None = None,
            notifications: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "data": data, "texts": texts, "photos": photos or [], "notifications": notifications or [],
            **extra}


def _bad(key: str, **params: Any) -> BadInputError:
    return with_key(BadInputError(ERROR_TEXTS[key]["en"].format(**params)), key, **params)


async def _gather_all(coros: Sequence[Awaitable[Any]]) -> list[Any]:
    """Run all to the end (so every fetched part lands in the cache), then raise the first error."""
    results = await asyncio.gather(*coros, return_exceptions=True)
    for item in results:
        if isinstance(item, BaseException):
            raise item
    return results


async def _optional(coro: Awaitable[Any], default: Any = None) -> Any:
    """A part of the picture that may legitimately be missing (404) without sinking the job."""
    try:
        return await coro
    except NotFoundError:
        return default


# Matches ------------------------------------------------------------------------------------------


async def _fetch_match(client: FaceitClient, ref: MatchRef) -> Match:
    """Try the reference's candidate ids in order (``1-<uuid>`` before a bare UUID)."""
    last: NotFoundError | None = None
    for candidate in ref.candidates:
        try:
            return await client.get_match(candidate)
        except NotFoundError as exc:
            last = exc
    assert last is not None
    raise with_key(last, "match_not_found", ref=ref.match_id)


def _check_analysable(match: Match) -> None:
    if match.status in NOT_ANALYSABLE:
        key = "match_cancelled" if match.status == "CANCELLED" else "match_aborted"
        raise with_key(MatchNotAnalysableError(f"match {match.match_id} is {match.status.lower()}"), key,
                       ref=match.match_id)
    if not match.players:
        raise with_key(MatchNotAnalysableError(f"match {match.match_id} has no players"), "match_empty")


async def _load_players(ctx: FaceitContext, match: Match, progress: Progress | None,
                        start: float, span: float) -> dict[str, analysis.PlayerData]:
    client = ctx.client
    roster = match.players
    done = 0

    async def load(player: Any) -> analysis.PlayerData:
        nonlocal done
        profile, lifetime, recent = await _gather_all([
            _optional(client.get_player(player.player_id)),
            _optional(client.get_lifetime_stats(player.player_id)),
            _optional(client.get_recent_stats(player.player_id), []),
        ])
        done += 1
        if progress is not None:
            await progress(start + span * done / len(roster), "players", done=done, total=len(roster))
        return analysis.PlayerData(player, profile, lifetime, recent)

    loaded = await _gather_all([load(p) for p in roster])
    await _record_elos(ctx, [d.profile for d in loaded if d.profile])
    return {d.roster.player_id: d for d in loaded}


async def _record_elos(ctx: FaceitContext, profiles: Sequence[PlayerProfile]) -> None:
    """Elo snapshots, each at the time FACEIT sent its profile: a cached copy read after a newer
    snapshot (monitoring's) goes in before it, not after it as a dip that never was. A profile
    whose time is not known is left out."""
    try:
        await asyncio.gather(*(ctx.store.record_elo(p.player_id, p.elo, p.fetched_at)
                               for p in profiles if p.fetched_at is not None))
    except Exception:  # snapshots are a bonus: never fail an analysis over them
        log.warning("could not record Elo snapshots", exc_info=True)


async def _analyse_one(ctx: FaceitContext, ref: MatchRef, progress: Progress | None) -> tuple[str, dict[str, Any]]:
    """("pre_game", analysis) or ("finished", result) for one match reference."""
    match = await _fetch_match(ctx.client, ref)
    _check_analysable(match)
    if match.status == FINISHED:
        if progress is not None:  # one match's result, not a list of matches: "loading the result"
            await progress(40, "result")
        rounds = await _optional(ctx.client.get_match_stats(match.match_id), [])
        return "finished", analysis.finished_match_result(match, rounds)
    data = await _load_players(ctx, match, progress, 10, 75)
    if progress is not None:
        await progress(88, "maps")
    return "pre_game", analysis.analyse_match(match, data)


async def analyze_match(match_ref: str, progress: Progress) -> dict[str, Any]:
    """Pre-game analysis of one lobby; a finished match gets its result, a cancelled one an error."""
    ref = parse_match_ref(match_ref)
    ctx = await get_faceit_context()
    await progress(2, "match")
    state, data = await _analyse_one(ctx, ref, progress)
    await progress(95, "render")
    if state == "finished":
        return _result("match_analysis", {"state": "finished", **data},
                       render.texts(render.render_finished_match, data))
    return _result("match_analysis", {"state": "pre_game", **data}, render.texts(render.render_match_analysis, data))


# Players ------------------------------------------------------------------------------------------


async def _fetch_profile(ctx: FaceitContext, player_ref: str, *, refresh: bool = False) -> PlayerProfile:
    ref = parse_player_ref(player_ref)
    client = ctx.client
    if ref.is_id:
        profile = await client.get_player(ref.value, refresh=refresh)
    else:
        profile = await client.get_player_by_nickname(ref.value, refresh=refresh)
    if not profile.has_cs2 or not profile.player_id:
        raise with_key(NotFoundError(f"{ref.value} has a FACEIT account but no CS2 profile"), "player_no_cs2",
                       ref=ref.value)
    return profile


async def resolve_player(player_ref: str) -> dict[str, Any]:
    """A nickname, id or profile link → ``{"player_id", "nickname", "elo", "level", …}``."""
    ctx = await get_faceit_context()
    profile = await _fetch_profile(ctx, player_ref)
    await _record_elos(ctx, [profile])
    return {
        "player_id": profile.player_id,
        "nickname": profile.nickname,
        "elo": profile.elo,
        "level": profile.level,
        "country": profile.country,
        "region": profile.region,
        "avatar": profile.avatar,
        "faceit_url": profile.faceit_url,
    }


async def build_player_report(player_ref: str, progress: Progress) -> dict[str, Any]:
    """Profile, level progress, lifetime and recent stats, map table, trend and a chart."""
    parse_player_ref(player_ref)  # bad input fails before any I/O
    ctx = await get_faceit_context()
    await progress(5, "profile")
    profile = await _fetch_profile(ctx, player_ref)
    await progress(30, "stats")
    lifetime, recent = await _player_stats(ctx, profile.player_id)
    stale = await _stale_parts(ctx, profile, recent, lifetime)
    if "recent" in stale:
        recent = await _optional(ctx.client.get_recent_stats(profile.player_id, refresh=True), [])
        stale |= await _stale_parts(ctx, profile, recent)
    if "lifetime" in stale:
        lifetime = await _optional(ctx.client.get_lifetime_stats(profile.player_id, refresh=True))
        if "recent" not in stale and not _same_streak(lifetime, recent):  # they know a match the list does not
            recent = await _optional(ctx.client.get_recent_stats(profile.player_id, refresh=True), [])
            stale.add("profile")  # the match it brings may be newer than the profile
    if "profile" in stale:
        profile = await _fetch_profile(ctx, player_ref, refresh=True)
    await _record_elos(ctx, [profile])
    history = await ctx.store.elo_history(profile.player_id)
    report = analysis.player_report(profile, lifetime, recent, history)
    photos = []
    if report["chart"]["kd"]:
        await progress(75, "chart")
        png = await asyncio.to_thread(_chart, report["chart"], profile.nickname)
        if png:
            photos.append({
                "png_b64": base64.b64encode(png).decode("ascii"),
                "caption": {lang: render.chart_caption(report, lang) for lang in ("en", "ru")},
            })
    await progress(95, "render")
    return _result("player_report", report, render.texts(render.render_player_report, report), photos)


async def _player_stats(ctx: FaceitContext, player_id: str) -> tuple[Any, Any]:
    """A player's lifetime stats (None when FACEIT has none) and recent matches (cached)."""
    return await _gather_all([
        _optional(ctx.client.get_lifetime_stats(player_id)),
        _optional(ctx.client.get_recent_stats(player_id), []),
    ])


async def _stale_parts(ctx: FaceitContext, profile: PlayerProfile, recent: list[Any],
                       lifetime: Any = None) -> set[str]:
    """Which cached parts of a player report would contradict the others (one report, one
    moment): the profile and lifetime stats when the newest recent match finished after they
    were fetched (monitoring reads a followed player's matches fresh: the old Elo and match
    count sat beside the new matches), and the recent matches when they were fetched more than
    :data:`REPORT_FETCH_SPREAD` seconds before the profile or lifetime stats (a match finished in
    between would be counted there and missing here), or before lifetime stats (given as
    ``lifetime``) whose current win streak they contradict (a match finished seconds after
    they were cached: "streak 2" over a list that ends in a loss). A part not cached (just
    fetched, or missing at FACEIT) is current; the profile's time is the one it carries."""
    client, now, player_id = ctx.client, time.time(), profile.player_id
    ages = await asyncio.gather(client.cached_age("lifetime", player_id),
                                client.cached_age("recent", player_id, RECENT_FETCH_LIMIT))
    fetched = {part: now - age for part, age in zip(("lifetime", "recent"), ages, strict=True) if age is not None}
    if profile.fetched_at is not None:
        fetched["profile"] = profile.fetched_at
    newest = max((m.finished_at for m in recent if m.finished_at), default=0.0)
    stale = {part for part in ("profile", "lifetime") if part in fetched and fetched[part] < newest}
    others = [fetched[part] for part in ("profile", "lifetime") if part in fetched]
    if "recent" in fetched and others and fetched["recent"] < max(others) - REPORT_FETCH_SPREAD:
        stale.add("recent")
    newer_lifetime = "recent" in fetched and fetched.get("lifetime", now) > fetched["recent"] + 1.0
    if newer_lifetime and not _same_streak(lifetime, recent):
        stale.add("recent")
    return stale


def _same_streak(lifetime: Any, recent: list[Any]) -> bool:
    """Whether the lifetime stats' current win streak agrees with the recent matches (newest
    first), up to :data:`STREAK_COMPARED` (a new match changes the head of both); True when
    either cannot tell."""
    streak = getattr(lifetime, "current_streak", None)
    if streak is None or not recent:
        return True
    wins = 0
    for match in recent[:STREAK_COMPARED]:
        if match.won is not True:
            break
        wins += 1
    return wins == min(int(streak), STREAK_COMPARED, len(recent))


def _chart(chart: dict[str, Any], nickname: str) -> bytes | None:
    from faceit.charts import player_chart_png

    try:
        return player_chart_png(chart, nickname)
    except Exception:  # a report without a picture beats no report
        log.warning("could not draw the player chart", exc_info=True)
        return None


# Bulk ----------------------------------------------------------------------------------------------


def bulk_summary(state: str, data: dict[str, Any]) -> dict[str, Any]:
    """One match's line of a bulk analysis, from its full analysis (``state`` ``finished``: the
    winner and each map's score, the winner's first as in the finished match's own text (the
    line names the winner); else the pre-game figures)."""
    if state == "finished":
        winner = data["teams"].get(data.get("winner") or "", {}).get("name")
        maps = [{"label": m["label"],
                 "score": [side["score"] for side in render.winner_first(m["teams"], data.get("winner"))]}
                for m in data["maps"]]
        return {"match_id": data["match_id"], "faceit_url": data.get("faceit_url"), "winner_name": winner,
                "maps": maps}
    teams = data["teams"]
    picked = data["maps"].get("picked") or []
    return {
        "match_id": data["match_id"],
        "faceit_url": data.get("faceit_url"),
        "faction1": teams["faction1"]["name"],
        "faction2": teams["faction2"]["name"],
        "elo1": teams["faction1"]["avg_elo"],
        "elo2": teams["faction2"]["avg_elo"],
        "p1": teams["faction1"]["win_probability"],
        "probability_source": data.get("probability_source", "none"),
        "favourite": data.get("favourite"),
        "maps": list(picked),  # every map picked (a best of three has three)
    }


async def analyze_bulk(match_refs: list[str], progress: Progress) -> dict[str, Any]:
    """Up to ``BULK_MAX_MATCHES`` matches, a few at a time over the shared cache, one summary.

    A match that fails is reported in the summary. When every match failed, the job fails with
    the first transient error if there is one (the pipeline retries), else the first error not
    caused by the request (our key refused: alerted), or the error of a list of one; a longer
    list whose every match was refused for itself (no such match, cancelled) is still the
    summary, so the user reads why each one failed, not only the first.
    """
    from settings import get_settings

    limit = getattr(get_settings(), "bulk_max_matches", 20)
    refs: list[tuple[str, MatchRef | None, BadInputError | None]] = []
    seen: set[str] = set()
    for text in match_refs:
        try:
            ref = parse_match_ref(text)
        except BadInputError as exc:
            refs.append((str(text)[:80], None, exc))
            continue
        if ref.match_id not in seen:
            seen.add(ref.match_id)
            refs.append((ref.match_id, ref, None))
    if not refs:
        raise _bad("no_match_refs")
    if len(refs) > limit:
        raise _bad("too_many_matches", limit=limit)
    ctx = await get_faceit_context()
    total = len(refs)
    done = 0
    semaphore = asyncio.Semaphore(BULK_CONCURRENCY)
    await progress(1, "matches", done=0, total=total)

    async def one(text: str, ref: MatchRef | None, bad: BadInputError | None) -> dict[str, Any]:
        nonlocal done
        item: dict[str, Any]
        if bad is not None:
            item = {"ref": text, "match_id": None, "outcome": "failed", "error": error_payload(bad), "_exc": bad}
        else:
            try:
                async with semaphore:
                    state, data = await _analyse_one(ctx, ref, None)  # type: ignore[arg-type]
                item = {"ref": text, "match_id": data["match_id"],
                        "outcome": "analysed" if state == "pre_game" else "finished",
                        "summary": bulk_summary(state, data)}
            except FaceitBotError as exc:
                error = error_payload(exc)
                if isinstance(exc, TransientError):  # the others made it: the list is not retried for this one
                    error["texts"] = {lang: ERROR_TEXTS["bulk_item_unavailable"][lang] for lang in LANGS}
                item = {"ref": text, "match_id": ref.match_id if ref else None, "outcome": "failed",
                        "error": error, "_exc": exc}
        done += 1
        await progress(2 + 93 * done / total, "matches", done=done, total=total)
        return item

    items = await _gather_all([one(*r) for r in refs])
    failures = [item.pop("_exc") for item in items if "_exc" in item]
    if len(failures) == total:
        # Every match refused for itself (cancelled, no such match): the list says why, each.
        # Anything else (FACEIT not answering, our key refused) fails the job: retried, alerted.
        ours = [f for f in failures if getattr(f, "code", None) not in REQUEST_ERROR_CODES]
        transient = [f for f in ours if isinstance(f, TransientError)]
        if total == 1 or ours:
            raise (transient or ours or failures)[0]
    data = {
        "total": total,
        "analysed": sum(1 for i in items if i["outcome"] in ("analysed", "finished")),
        "failed": len(failures),
        "matches": items,
    }
    await progress(97, "render")
    return _result("bulk_analysis", data, render.texts(render.render_bulk, data))


# Monitoring ---------------------------------------------------------------------------------------


async def _baseline(ctx: FaceitContext, client: FaceitClient, games: list[Any], player_id: str) -> dict[str, Any]:
    """Where monitoring starts for a player: their newest finished match (of ``games``, newest
    first) and their Elo now. Fresh, as those matches: a profile cached before the newest of them
    would put that match's Elo change into the next notification."""
    profile = await _optional(client.get_player(player_id, refresh=True))
    if profile is not None:
        await _record_elos(ctx, [profile])
    newest = games[0] if games else None
    return {"match_id": newest.match_id if newest else None, "finished_at": newest.finished_at if newest else 0,
            "elo": profile.elo if profile else None}


async def monitoring_baseline(player_id: str) -> dict[str, Any] | None:
    """The baseline of a player being followed now (taken by the ``/subscribe`` lookup): the
    matches they finish from here on are the ones notified, including any before the next scan.
    None when FACEIT could not tell their matches: the subscription still goes through, and the
    next monitoring scan takes the baseline, as before."""
    ctx = await get_faceit_context()
    try:
        recent = await ctx.client.get_recent_stats(player_id, refresh=True)
        return await _baseline(ctx, ctx.client, [g for g in recent if g.finished_at], player_id)
    except FaceitBotError as exc:
        log.info("no monitoring baseline for %s now (%s); the next scan takes it", player_id, exc.code)
        return None


async def monitor_matches(user_ids: list[int] | None, progress: Progress,
                          budget: float | None = None) -> dict[str, Any]:
    """New finished matches of followed players since the last one seen, as notifications.

    ``user_ids`` picks whose subscriptions are scanned (all when None); every active follower
    of a scanned player is notified, so nobody misses a match because of the filter. The first
    scan of a player only records a baseline. A player's mark advances past the matches told
    only when the result's delivery sends the notices (the result's ``marks``), so a failed run,
    or a worker dying before the result was stored, loses none: the retry finds them again.

    ``budget``: seconds after which no further player's scan starts (the job's time limit less
    room for the scans under way and the result). The run then tells what it found, and the
    next run of everyone starts with the players this one did not reach (``left`` in the
    result). Without it, more followed players than the FACEIT rate limit scans within the time
    limit (about 600 s × 8/s) had every run killed at its limit, none telling anything, for good.
    """
    ctx = await get_faceit_context()
    store, client = ctx.store, ctx.client
    sweep = Sweep(store, "monitoring" if user_ids is None else None, budget)
    inactive = await store.inactive_users()
    if user_ids is None:
        players = await store.watched_players(inactive, drop_idle_marks=True)  # none followed by blocked users alone
        players = await sweep.ordered(players)
    else:
        players = {}
        for uid in user_ids:
            for sub in await store.list_subscriptions(uid):
                players[sub["player_id"]] = sub["nickname"]
    total = len(players)
    await progress(2, "players", done=0, total=total)
    semaphore = asyncio.Semaphore(MONITOR_CONCURRENCY)
    done = 0
    marks: dict[str, dict[str, Any]] = {}
    renames: dict[str, str] = {}
    notifications: list[dict[str, Any]] = []
    counts = {"baselined": 0, "new_matches": 0}
    errors: list[dict[str, Any]] = []

    async def scan(player_id: str, nickname: str) -> None:
        nonlocal done
        try:
            async with semaphore:
                if not sweep.begins(player_id):
                    return
                await _scan_player(ctx, client, player_id, nickname, inactive, marks, renames,
                                   notifications, counts)
        except FaceitBotError as exc:
            errors.append({"player_id": player_id, "nickname": nickname, **error_payload(exc), "_exc": exc})
        done += 1
        await progress(2 + 93 * done / max(1, total), "players", done=done, total=total)

    await _gather_all([scan(pid, nick) for pid, nick in players.items()])
    failures = [err.pop("_exc") for err in errors]
    if failures and len(failures) == total - len(sweep.left):  # every player it reached failed
        raise failures[0]
    await sweep.end(list(players))
    # A player whose new matches are told moves on only once the notices are safe: the delivery
    # of this job's result commits those marks (FaceitStore.advance_monitoring) before it sends them. Moved
    # on here, a worker dying before the result was stored lost the notices: the retry found
    # nothing new. (Found twice, by a retry or an overlapping run, a match is told once: the
    # delivery's claim per follower and match.) The others move on now: nothing to lose.
    told = {note["player_id"] for note in notifications}
    # (Through the same guard as the delivery's: an older, overlapping run never moves one back.)
    await store.advance_monitoring({pid: mark for pid, mark in marks.items() if pid not in told})
    for player_id, nickname in renames.items():
        await store.rename(player_id, nickname)
    data = {
        "players": total,
        "checked": total - len(sweep.left) - len(failures),
        "left": len(sweep.left),
        "baselined": counts["baselined"],
        "new_matches": counts["new_matches"],
        "notifications": len(notifications),
        "errors": errors,
    }
    return _result("match_monitoring", data, render.texts(render.render_monitoring, data), notifications=notifications,
                   marks={pid: mark for pid, mark in marks.items() if pid in told})



async def _scan_player(
    ctx: FaceitContext,
    client: FaceitClient,
    player_id: str,
    nickname: str,
    inactive: set[int],
    marks: dict[str, dict[str, Any]],
    renames: dict[str, str],
    notifications: list[dict[str, Any]],
    counts: dict[str, int],
) -> None:
    recent = await client.get_recent_stats(player_id, refresh=True)
    games = [g for g in recent if g.finished_at]
    state = await ctx.store.monitor_state(player_id)
    if state is None:  # followed before subscriptions took their baseline, or it expired
        marks[player_id] = await _baseline(ctx, client, games, player_id)
        counts["baselined"] += 1
        return
    seen_at = float(state.get("finished_at") or 0)
    rows = [g for g in games if (g.finished_at or 0) > seen_at and g.match_id != state.get("match_id")]
    if not rows:
        return
    # 5v5 only, as everything else the bot counts: a Wingman match moves no 5v5 Elo, so notified
    # and counted it made the next 5v5 notice say "Elo +25 over the last 2 matches". Passed over
    # (the mark moves past it), it is not met again.
    last_seen = max(rows, key=lambda g: g.finished_at or 0)
    five = [g for g in rows if g.is_5v5]
    if not five:
        marks[player_id] = {**state, "match_id": last_seen.match_id, "finished_at": last_seen.finished_at}
        return
    matches = matches_of(five)  # the maps of a best of three make one match, and one notice
    played = len(matches)  # the Elo change below covers all of them, even those not notified
    matches = matches[-MAX_NOTIFICATIONS_PER_PLAYER:]  # oldest first; the newest are told
    new = [series_stats(maps) for maps in matches]
    profile = await _optional(client.get_player(player_id, refresh=True))
    elo = profile.elo if profile else None
    if profile is not None:
        await _record_elos(ctx, [profile])
        if profile.nickname and profile.nickname != nickname:
            renames[player_id] = profile.nickname
            nickname = profile.nickname
    before = state.get("elo")
    # Matches whose Elo change was not seen yet: FACEIT's profile can lag behind the match stats.
    covered = played + int(state.get("elo_pending") or 0)
    delta = elo - before if elo is not None and isinstance(before, int) else None  # over all ``covered``
    # A ranked match moves Elo by at least 1: no change means FACEIT has not counted the matches
    # yet, or they did not count (a hub), or a win and a loss cancelled out. The notice shows the
    # Elo without a change, and the next change says how many matches it covers.
    held = delta == 0
    subscribers, since = await asyncio.gather(ctx.store.subscribers(player_id), ctx.store.followed_since(player_id))
    followers = [uid for uid in subscribers if uid not in inactive]
    for index, game in enumerate(new):
        last = index == len(new) - 1
        payload = analysis.match_notification(player_id, nickname, game, elo if last else None,
                                              delta if last and not held else None, covered, matches[index])
        texts = render.texts(render.render_notification, payload)
        # Each follower hears of the matches finished since they began following (another
        # follower's older starting point may include earlier ones).
        told = [uid for uid in followers if since.get(uid, 0.0) - FOLLOW_SLACK <= (game.finished_at or 0.0)]
        notifications.extend({"user_id": uid, "texts": texts, "match_id": game.match_id,
                              "player_id": player_id} for uid in told)
    counts["new_matches"] += played
    marks[player_id] = {"match_id": last_seen.match_id, "finished_at": last_seen.finished_at, "elo": elo}
    if held:  # the next change covers these matches too, and says so
        marks[player_id].update(elo=before, elo_pending=covered)


# Cache update --------------------------------------------------------------------------------------


async def update_cache(cache_type: str, identifiers: list[str] | None, progress: Progress,
                       budget: float | None = None) -> dict[str, Any]:
    """Refresh cached profiles/stats of the given players (default: every followed player) or matches.

    ``budget``: seconds after which nothing more is begun (:class:`~faceit.sweep.Sweep`); the
    next sweep of every followed player starts with those this one left (``left``)."""
    parts = CACHE_TYPES.get((cache_type or "").lower())
    if parts is None:
        raise _bad("bad_cache_type", ref=cache_type)
    ctx = await get_faceit_context()
    client = ctx.client
    everyone = identifiers is None and parts != ("match",)
    sweep = Sweep(ctx.store, f"cache:{'+'.join(parts)}" if everyone else None, budget)
    if identifiers is None:
        identifiers = list(await sweep.ordered(await ctx.store.watched_players(await ctx.store.inactive_users()))
                           ) if everyone else []
    total = len(identifiers)
    await progress(1, "players" if parts != ("match",) else "matches", done=0, total=total)
    semaphore = asyncio.Semaphore(CACHE_UPDATE_CONCURRENCY)
    done = 0
    failed: list[dict[str, Any]] = []

    async def refresh(identifier: str) -> None:
        nonlocal done
        try:
            async with semaphore:
                if not sweep.begins(identifier):
                    return
                if parts == ("match",):
                    match = await _fetch_match_refresh(client, parse_match_ref(identifier))
                    if match.status == FINISHED:
                        await _optional(client.get_match_stats(match.match_id))
                else:
                    ref = parse_player_ref(identifier)
                    if ref.is_id:
                        player_id = ref.value
                        if "profile" in parts:
                            profile = await client.get_player(player_id, refresh=True)
                            await _record_elos(ctx, [profile])
                    else:
                        profile = await client.get_player_by_nickname(ref.value, refresh="profile" in parts)
                        player_id = profile.player_id
                        await _record_elos(ctx, [profile])
                    jobs = []
                    if "lifetime" in parts:
                        jobs.append(_optional(client.get_lifetime_stats(player_id, refresh=True)))
                    if "recent" in parts:
                        jobs.append(_optional(client.get_recent_stats(player_id, refresh=True)))
                    await _gather_all(jobs)
        except FaceitBotError as exc:
            failed.append({"id": str(identifier)[:80], **error_payload(exc)})
        done += 1
        await progress(1 + 97 * done / max(1, total), "players" if parts != ("match",) else "matches",
                       done=done, total=total)

    await _gather_all([refresh(i) for i in identifiers])
    await sweep.end(identifiers)
    data = {"cache_type": cache_type, "total": total, "refreshed": total - len(sweep.left) - len(failed),
            "failed": failed, **({"left": len(sweep.left)} if sweep.left else {})}
    return _result("cache_update", data, render.texts(render.render_cache_update, data))


async def _fetch_match_refresh(client: FaceitClient, ref: MatchRef) -> Match:
    last: NotFoundError | None = None
    for candidate in ref.candidates:
        try:
            return await client.get_match(candidate, refresh=True)
        except NotFoundError as exc:
            last = exc
    assert last is not None
    raise last


# Analytics -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportPeriod:
    """A summary's period, ``[start, end)``, and where the period before it starts (as long, in
    the reader's days)."""

    start: float
    end: float
    before: float


def report_period(report_type: str, now: float, end: float | None = None, zone: tzinfo = UTC,
                  start: float | None = None) -> ReportPeriod:
    """The days of a ``report_type`` summary up to ``now`` (one asked for), or up to ``end`` counted
    in the reader's ``zone``, or from ``start`` to ``end`` when both are given: the scheduler's
    summary runs from the user's Monday 09:00 before to the one it is for, so each week starts
    where the one before ended. Seven times 86,400 s before the run dropped a match played in the
    hour a week gains when clocks go back (and counted one twice in spring), and minutes every
    week, hours after a run retried later. The period before it is as long."""
    days = REPORT_DAYS[report_type]
    if end is None:
        return ReportPeriod(now - days * 86400, now, now - 2 * days * 86400)
    if start is not None:
        return ReportPeriod(start, end, start - (end - start))
    local = datetime.fromtimestamp(end, zone)  # (wall-clock days back: 09:00 stays 09:00 across a change)
    return ReportPeriod((local - timedelta(days=days)).timestamp(), end,
                        (local - timedelta(days=2 * days)).timestamp())


async def _user_analytics(ctx: FaceitContext, user_id: int, report_type: str, now: float, period: ReportPeriod,
                          fresh: bool = False, comparisons: bool = True,
                          periods: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """One user's report over ``period`` (``fresh``: each player's newest matches are read anew,
    for a user who asked now and for the scheduler's weekly run of one user, whose week must end
    with every match up to its end; the run for everyone, ``user_id=None``, takes what the cache
    has, minutes old at most). ``comparisons``: each figure also for the period before, of the
    same length.
    ``periods``: the followed players' periods worked out so far, by player id (the run for
    everyone shares them: a player with many followers is read once, not once per follower)."""
    since = period.start
    before = period.before if comparisons else None
    # The same windows as the matches' (none before ``since`` without comparisons)
    earlier, analyses = await ctx.store.activity_split(user_id, since if before is None else before, since,
                                                       period.end)
    previous = None if before is None else earlier
    periods = {} if periods is None else periods
    players = []
    for sub in await ctx.store.list_subscriptions(user_id):
        pid = sub["player_id"]
        if pid not in periods:
            periods[pid] = await _player_period(ctx, pid, sub["nickname"], now, period, before, fresh)
        players.append(periods[pid])
    return {"user_id": user_id, "report_type": report_type, "days": REPORT_DAYS[report_type], "since": since,
            "until": period.end, "analyses": analyses, "previous_analyses": previous, "players": players}


async def _player_period(ctx: FaceitContext, player_id: str, nickname: str, now: float, period: ReportPeriod,
                         before: float | None, fresh: bool) -> dict[str, Any]:
    """A followed player's matches over ``period`` and Elo up to ``now`` (and the period before,
    from ``before``)."""
    since = period.start
    # Back past the period's start: the newest match before it tells whether the last Elo
    # snapshot before the period still held when the period began.
    history, profile, (recent, complete_from) = await _gather_all([
        ctx.store.elo_history(player_id),
        _optional(ctx.client.get_player(player_id)),
        _optional(ctx.client.get_stats_since(player_id, before or since, fresh=fresh), ([], now)),
    ])
    newest = max((m.finished_at for m in recent if m.finished_at), default=0.0)
    profile = await _profile_after(ctx, player_id, profile, newest)
    return analysis.tracked_player_period(
        player_id, profile.nickname if profile else nickname, recent, since,
        profile.elo if profile else None, history, now, complete_from, before,
        until=period.end if period.end < now else math.inf)  # (a period up to now has no "after")


async def _profile_after(ctx: FaceitContext, player_id: str, profile: Any, newest: float) -> Any:
    """``profile``, fetched again when it was cached before ``newest`` (the finish time of the
    player's newest match): its Elo predates that match ("Elo 941" beside the win that made it
    965)."""
    if profile is None or not newest or profile.fetched_at is None or profile.fetched_at >= newest:
        return profile
    return await _optional(ctx.client.get_player(player_id, refresh=True)) or profile


#: A user's time zone by their id (the one chosen with the bot's ``/tz``, UTC when none): the
#: actor reads it where the bot keeps it, which this layer knows nothing of.
ZoneLookup = Callable[[int], Awaitable[tzinfo]]


async def _zone_of_user(zone_of_user: ZoneLookup | None, user_id: int) -> tzinfo:
    """``user_id``'s time zone by ``zone_of_user``; UTC without one, or when it fails: a date
    said in UTC is a smaller harm than a summary not sent."""
    if zone_of_user is None:
        return UTC
    try:
        return await zone_of_user(user_id)
    except Exception:
        log.warning("could not read the time zone of user %s: dates in UTC", user_id, exc_info=True)
        return UTC


def _analytics_texts(data: dict[str, Any], zone: tzinfo) -> dict[str, list[str]]:
    """A summary's texts with its dates in the reader's ``zone`` (named in ``data`` too, for the
    job's record: which zone its dates were said in)."""
    data["time_zone"] = str(zone)
    return render.texts(partial(render.render_analytics, zone=zone), data)


async def build_analytics_report(user_id: int | None, report_type: str, progress: Progress,
                                 include_comparisons: bool = True, scheduled: bool = False,
                                 zone_of_user: ZoneLookup | None = None,
                                 period_end: float | None = None, period_start: float | None = None) -> dict[str, Any]:
    """A user's weekly/monthly summary; with ``user_id=None``, one per active user as notifications.
    ``include_comparisons``: set beside each figure how it moved since the period before.
    ``scheduled``: the scheduler's run for the user, not their request: with nothing to report
    (:func:`render.analytics_empty`) the result is ``quiet`` and says nothing, where a summary of
    zeros every Monday would be noise; a user who asks gets one either way. ``zone_of_user``: each
    reader's time zone, the one the summary's dates are said in ("+25 since Dec 7": the day as
    they count days, as the Monday their summary comes on is); UTC without it. ``period_end``: the
    user's summary covers the days up to it (from ``period_start`` when given: :func:`report_period`),
    else up to now."""
    report_type = (report_type or "").lower()
    if report_type not in REPORT_DAYS:
        raise _bad("bad_report_type", ref=report_type)
    ctx = await get_faceit_context()
    now = time.time()
    if user_id is not None:
        await progress(10, "players")
        zone = await _zone_of_user(zone_of_user, int(user_id))
        period = report_period(report_type, now, period_end, zone, period_start)
        data = await _user_analytics(ctx, int(user_id), report_type, now, period, fresh=True,
                                     comparisons=include_comparisons)
        if scheduled and render.analytics_empty(data):
            return _result("analytics_report", data, {}, quiet=True)
        await progress(95, "render")
        return _result("analytics_report", data, _analytics_texts(data, zone))
    period = report_period(report_type, now)
    users = set(await ctx.store.active_users_since(period.start))
    users |= await ctx.store.all_subscribers()
    users -= await ctx.store.inactive_users()
    ordered = sorted(users)
    notifications = []
    totals: dict[str, int] = {}
    periods: dict[str, dict[str, Any]] = {}  # each followed player's, read once for all followers
    for index, uid in enumerate(ordered, start=1):
        data = await _user_analytics(ctx, uid, report_type, now, period, comparisons=include_comparisons,
                                     periods=periods)
        for kind, count in data["analyses"].items():
            totals[kind] = totals.get(kind, 0) + count
        zone = await _zone_of_user(zone_of_user, uid)
        notifications.append({"user_id": uid, "texts": _analytics_texts(data, zone)})
        await progress(5 + 90 * index / len(ordered), "players", done=index, total=len(ordered))
    summary = {"user_id": None, "report_type": report_type, "days": REPORT_DAYS[report_type], "users": len(ordered),
               "analyses": totals}
    return _result("analytics_report", summary, render.texts(render.render_analytics, summary),
                   notifications=notifications)

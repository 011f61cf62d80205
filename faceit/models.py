"""Tolerant models of the Data API responses.

Every stat is an optional float parsed from a string (the API sends ``"1.12"``); a missing or
malformed value is ``None`` (unknown), never zero. Deprecated fields are optional, unknown fields
are ignored, and a wrong type anywhere degrades to "unknown" instead of raising, because a single
odd profile must not sink a ten-player analysis. Each model has ``from_api(raw)`` and the
dataclasses are plain enough for :func:`dataclasses.asdict` to give JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from faceit.gamedata import map_id

FINISHED = "FINISHED"
NOT_ANALYSABLE = frozenset({"CANCELLED", "ABORTED"})


def to_float(value: Any) -> float | None:
    """``"1.12"`` → 1.12; ``"55%"`` → 55.0; numbers pass; ``None``/junk/NaN → None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip().rstrip("%").strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def to_int(value: Any) -> int | None:
    number = to_float(value)
    return int(round(number)) if number is not None else None


def iso_seconds(value: Any) -> float | None:
    """An ISO 8601 time (``2024-05-01T12:00:00Z``) as epoch seconds (UTC when it names no zone);
    None when it is not one."""
    text = to_str(value)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def to_str(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def faceit_url(value: Any, lang: str = "en") -> str | None:
    """``faceit_url`` fields carry a literal ``{lang}``."""
    text = to_str(value)
    return text.replace("{lang}", lang) if text else None


# Players -------------------------------------------------------------------------------------


@dataclass(slots=True)
class PlayerProfile:
    player_id: str
    nickname: str
    elo: int | None = None
    level: int | None = None
    country: str | None = None
    avatar: str | None = None
    region: str | None = None
    faceit_url: str | None = None
    steam_nickname: str | None = None
    verified: bool = False
    has_cs2: bool = False
    # When FACEIT sent it (epoch seconds; None: not known): a cached copy may be minutes old, and
    # an Elo snapshot must carry the time its Elo was read, not the time it was looked at.
    fetched_at: float | None = None

    @classmethod
    def from_api(cls, raw: Any) -> PlayerProfile:
        raw = as_dict(raw)
        cs2 = as_dict(as_dict(raw.get("games")).get("cs2"))
        return cls(
            player_id=to_str(raw.get("player_id")) or "",
            nickname=to_str(raw.get("nickname")) or "?",
            elo=to_int(cs2.get("faceit_elo")),
            level=to_int(cs2.get("skill_level")),
            country=to_str(raw.get("country")),
            avatar=to_str(raw.get("avatar")) or None,
            region=to_str(cs2.get("region")),
            faceit_url=faceit_url(raw.get("faceit_url")),
            steam_nickname=to_str(cs2.get("game_player_name")),
            verified=raw.get("verified") is True,
            has_cs2=bool(cs2),
        )


@dataclass(slots=True)
class MapSegment:
    """One map's lifetime 5v5 totals."""

    map: str
    matches: float | None = None
    wins: float | None = None
    win_rate: float | None = None
    kd: float | None = None
    kr: float | None = None
    hs_pct: float | None = None
    adr: float | None = None
    avg_kills: float | None = None

    @classmethod
    def from_api(cls, raw: Any) -> MapSegment | None:
        raw = as_dict(raw)
        if str(raw.get("type", "Map")).lower() != "map" or str(raw.get("mode", "5v5")).lower() != "5v5":
            return None
        mid = map_id(raw.get("label"))
        if mid is None:
            return None
        stats = as_dict(raw.get("stats"))
        return cls(
            map=mid,
            matches=to_float(stats.get("Matches")),
            wins=to_float(stats.get("Wins")),
            win_rate=to_float(stats.get("Win Rate %")),
            kd=to_float(stats.get("Average K/D Ratio")),
            kr=to_float(stats.get("Average K/R Ratio")),
            hs_pct=to_float(stats.get("Average Headshots %")),
            adr=to_float(stats.get("ADR")),
            avg_kills=to_float(stats.get("Average Kills")),
        )


@dataclass(slots=True)
class LifetimeStats:
    """``/players/{id}/stats/cs2``: averages (never the running sums) and 5v5 map segments."""

    player_id: str
    matches: float | None = None
    wins: float | None = None
    win_rate: float | None = None  # percent 0..100
    kd: float | None = None
    hs_pct: float | None = None
    adr: float | None = None
    current_streak: float | None = None
    longest_streak: float | None = None
    recent_results: list[int] = field(default_factory=list)
    entry_rate: float | None = None  # fractions 0..1 from here on
    entry_success: float | None = None
    clutch_1v1: float | None = None
    clutch_1v2: float | None = None
    flash_success: float | None = None
    utility_damage_per_round: float | None = None
    sniper_kill_rate: float | None = None
    maps: list[MapSegment] = field(default_factory=list)

    @classmethod
    def from_api(cls, raw: Any) -> LifetimeStats:
        raw = as_dict(raw)
        life = as_dict(raw.get("lifetime"))
        recent = [to_int(v) for v in as_list(life.get("Recent Results"))]
        segments = [MapSegment.from_api(s) for s in as_list(raw.get("segments"))]
        return cls(
            player_id=to_str(raw.get("player_id")) or "",
            matches=to_float(life.get("Matches", life.get("Total Matches"))),
            wins=to_float(life.get("Wins")),
            win_rate=to_float(life.get("Win Rate %")),
            kd=to_float(life.get("Average K/D Ratio")),
            hs_pct=to_float(life.get("Average Headshots %")),
            adr=to_float(life.get("ADR")),
            current_streak=to_float(life.get("Current Win Streak")),
            longest_streak=to_float(life.get("Longest Win Streak")),
            recent_results=[r for r in recent if r in (0, 1)],
            entry_rate=to_float(life.get("Entry Rate")),
            entry_success=to_float(life.get("Entry Success Rate")),
            clutch_1v1=to_float(life.get("1v1 Win Rate")),
            clutch_1v2=to_float(life.get("1v2 Win Rate")),
            flash_success=to_float(life.get("Flash Success Rate")),
            utility_damage_per_round=to_float(life.get("Utility Damage per Round")),
            sniper_kill_rate=to_float(life.get("Sniper Kill Rate")),
            maps=[s for s in segments if s is not None],
        )

    def segment(self, mid: str) -> MapSegment | None:
        for seg in self.maps:
            if seg.map == mid:
                return seg
        return None


@dataclass(slots=True)
class PlayerMatchStats:
    """One item of ``/players/{id}/games/cs2/stats``: the player's line of one map of a match (a
    best of three has up to three, with the same ``match_id``; :func:`series_stats` joins them)."""

    match_id: str
    finished_at: float | None = None  # epoch seconds (the API sends milliseconds)
    mode: str | None = None
    map: str | None = None
    won: bool | None = None
    score: str | None = None
    team: str | None = None
    rounds: float | None = None
    kills: float | None = None
    deaths: float | None = None
    assists: float | None = None
    kd: float | None = None
    kr: float | None = None
    adr: float | None = None
    headshots: float | None = None
    hs_pct: float | None = None
    mvps: float | None = None
    first_kills: float | None = None
    entry_count: float | None = None
    entry_wins: float | None = None
    clutch_1v1_count: float | None = None
    clutch_1v1_wins: float | None = None
    clutch_1v2_count: float | None = None
    clutch_1v2_wins: float | None = None
    best_of: int | None = None  # the match's maps at most ("Best Of"): 3 for a best of three
    match_round: int | None = None  # which map of the match this is ("Match Round"): 1 for the first

    @classmethod
    def from_api(cls, raw: Any) -> PlayerMatchStats | None:
        stats = as_dict(as_dict(raw).get("stats"))
        match_id = to_str(stats.get("Match Id"))
        if not match_id:
            return None
        finished_ms = to_float(stats.get("Match Finished At"))
        # Some rows lack it: the row's own creation time (ISO) comes right after the match ends
        # ("Updated At" may move later when FACEIT reprocesses the row: only if there is no other).
        fallback = iso_seconds(stats.get("Created At")) or iso_seconds(stats.get("Updated At"))
        result = to_int(stats.get("Result"))
        rounds = to_float(stats.get("Rounds"))
        if rounds is None:
            rounds = _rounds_from_score(to_str(stats.get("Score")))
        kills, deaths = to_float(stats.get("Kills")), to_float(stats.get("Deaths"))
        kd = to_float(stats.get("K/D Ratio"))
        if kd is None and kills is not None and deaths:  # some rows lack the ratio, not its parts
            kd = kills / deaths
        return cls(
            match_id=match_id,
            finished_at=finished_ms / 1000 if finished_ms is not None else fallback,
            mode=to_str(stats.get("Game Mode")),
            map=map_id(stats.get("Map")),
            won=None if result not in (0, 1) else result == 1,
            score=to_str(stats.get("Score")),
            team=to_str(stats.get("Team")),
            rounds=rounds,
            kills=kills,
            deaths=deaths,
            assists=to_float(stats.get("Assists")),
            kd=kd,
            kr=to_float(stats.get("K/R Ratio")),
            adr=to_float(stats.get("ADR")),
            headshots=to_float(stats.get("Headshots")),
            hs_pct=to_float(stats.get("Headshots %")),
            mvps=to_float(stats.get("MVPs")),
            first_kills=to_float(stats.get("First Kills")),
            entry_count=to_float(stats.get("Entry Count")),
            entry_wins=to_float(stats.get("Entry Wins")),
            clutch_1v1_count=to_float(stats.get("1v1Count")),
            clutch_1v1_wins=to_float(stats.get("1v1Wins")),
            clutch_1v2_count=to_float(stats.get("1v2Count")),
            clutch_1v2_wins=to_float(stats.get("1v2Wins")),
            best_of=to_int(stats.get("Best Of")),
            match_round=to_int(stats.get("Match Round")),
        )

    @property
    def is_5v5(self) -> bool:
        return (self.mode or "5v5").lower() == "5v5"


def _sum(values: list[float | None]) -> float | None:
    """The sum, or None when any part is unknown (a total of some maps would pass for all)."""
    return None if not values or None in values else float(sum(v for v in values if v is not None))


def matches_of(rows: list[PlayerMatchStats]) -> list[list[PlayerMatchStats]]:
    """A player's match lines, newest first as FACEIT lists them, as matches oldest first, each
    the lines of its maps oldest first (one line per map: a best of three has up to three)."""
    by_match: dict[str, list[PlayerMatchStats]] = {}
    for row in reversed(rows):
        by_match.setdefault(row.match_id, []).append(row)
    return list(by_match.values())


def decided(maps: list[PlayerMatchStats]) -> bool:
    """Whether one match's lines hold its result: a single map of a best of one (or of a match
    that does not say), or maps enough for a side to have won the series (two of a best of three)."""
    best_of = max((m.best_of or 1 for m in maps), default=1)
    # "Best Of" 2 is one map too: there is no best of two in CS2, and single-map matches have been
    # seen to say 2.
    if best_of <= 2 or len(maps) >= best_of:
        return True
    won = sum(1 for m in maps if m.won is True)
    lost = sum(1 for m in maps if m.won is False)
    return max(won, lost) > best_of // 2


def without_cut_series(rows: list[PlayerMatchStats]) -> list[PlayerMatchStats]:
    """A full page of a player's lines (newest first) without its oldest match when the page cuts
    it: some of its maps are on the next page. Joined from the maps on this page it would count
    with a wrong score, even a wrong result (2-0 for a series won 2-1, 1-1 for one lost 1-2).

    Whole: its maps run from ``Match Round`` 1 with none missing, and decide the series
    (:func:`decided`): the first two maps of a series at 1-1 are cut too, whichever way FACEIT
    orders the maps of one finish time. Lines that do not say their round: whole when decided."""
    if not rows:
        return rows
    oldest = rows[-1].match_id
    maps = [row for row in rows if row.match_id == oldest]
    rounds = [m.match_round for m in maps]
    from_the_first = None in rounds or sorted(rounds) == list(range(1, len(rounds) + 1))
    whole = from_the_first and decided(maps)
    return rows if whole else [row for row in rows if row.match_id != oldest]


def series_stats(maps: list[PlayerMatchStats]) -> PlayerMatchStats:
    """The player's lines of the maps of one match as one line: maps won against maps lost as
    its score and result (a draw of maps: no result), the totals of the counts (entries and
    clutches too: the recent form's rates read them), and K/D, K/R, ADR and HS% from those
    totals. One map's line is itself."""
    if len(maps) == 1:
        return maps[0]
    won = sum(1 for m in maps if m.won is True)
    lost = sum(1 for m in maps if m.won is False)
    kills, deaths, rounds = _sum([m.kills for m in maps]), _sum([m.deaths for m in maps]), _sum([m.rounds for m in maps])
    damage = _sum([m.adr * m.rounds if m.adr is not None and m.rounds else None for m in maps])
    headshots = _sum([m.headshots for m in maps])
    return PlayerMatchStats(
        match_id=maps[0].match_id,
        finished_at=max((m.finished_at for m in maps if m.finished_at), default=None),
        mode=maps[0].mode,
        won=None if won == lost else won > lost,
        score=f"{won} / {lost}",
        team=maps[0].team,
        rounds=rounds,
        kills=kills,
        deaths=deaths,
        assists=_sum([m.assists for m in maps]),
        kd=kills / deaths if kills is not None and deaths else None,
        adr=damage / rounds if damage is not None and rounds else None,
        headshots=headshots,
        hs_pct=headshots / kills * 100 if headshots is not None and kills else None,
        mvps=_sum([m.mvps for m in maps]),
        kr=kills / rounds if kills is not None and rounds else None,
        best_of=maps[0].best_of,
        match_round=maps[0].match_round,  # its first map's (the maps are oldest first)
        **{count: _sum([getattr(m, count) for m in maps]) for count in _SERIES_COUNTS},
    )


#: The per-map counts a best of three adds up as they are (kills, deaths and the rest are above).
_SERIES_COUNTS = ("first_kills", "entry_count", "entry_wins", "clutch_1v1_count", "clutch_1v1_wins",
                  "clutch_1v2_count", "clutch_1v2_wins")


def _rounds_from_score(score: str | None) -> float | None:
    """``"13 / 9"`` → 22 (used only when ``Rounds`` is missing)."""
    if not score:
        return None
    parts = [to_float(p) for p in score.split("/")]
    if len(parts) != 2 or None in parts:
        return None
    return float(sum(p for p in parts if p is not None))


def parse_recent(raw: Any) -> list[PlayerMatchStats]:
    """``{items:[{stats}]}`` → newest-first list (sorted by finish time when known)."""
    items = [PlayerMatchStats.from_api(item) for item in as_list(as_dict(raw).get("items"))]
    found = [item for item in items if item is not None]
    # Newest first; the maps of a series that share one finish time, last map first (FACEIT's
    # own order of them is not documented).
    found.sort(key=lambda m: (m.finished_at or 0.0, m.match_round or 0), reverse=True)
    return found


# Matches ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class RosterPlayer:
    player_id: str
    nickname: str
    level: int | None = None


@dataclass(slots=True)
class Faction:
    key: str  # "faction1" / "faction2"
    faction_id: str
    name: str
    roster: list[RosterPlayer] = field(default_factory=list)
    rating: float | None = None
    win_probability: float | None = None

    @classmethod
    def from_api(cls, key: str, raw: Any) -> Faction:
        raw = as_dict(raw)
        roster = []
        # /matches says "roster"; /history says "players" — accept both.
        for entry in as_list(raw.get("roster")) or as_list(raw.get("players")):
            entry = as_dict(entry)
            pid = to_str(entry.get("player_id"))
            if not pid:
                continue
            level = entry.get("game_skill_level", entry.get("skill_level"))
            roster.append(RosterPlayer(pid, to_str(entry.get("nickname")) or "?", to_int(level)))
        stats = as_dict(raw.get("stats"))
        probability = to_float(stats.get("winProbability"))
        if probability is not None and not 0.0 <= probability <= 1.0:
            probability = None
        return cls(
            key=key,
            faction_id=to_str(raw.get("faction_id", raw.get("team_id"))) or key,
            name=to_str(raw.get("name", raw.get("nickname"))) or key,
            roster=roster,
            rating=to_float(stats.get("rating")),
            win_probability=probability,
        )


@dataclass(slots=True)
class Match:
    """``/matches/{id}``."""

    match_id: str
    status: str
    game: str | None = None
    region: str | None = None
    competition: str | None = None
    best_of: int | None = None
    calculate_elo: bool | None = None
    started_at: float | None = None
    finished_at: float | None = None
    winner: str | None = None  # "faction1"/"faction2"
    score: dict[str, int] = field(default_factory=dict)
    faceit_url: str | None = None
    teams: dict[str, Faction] = field(default_factory=dict)
    map_pool: list[str] = field(default_factory=list)
    map_picks: list[str] = field(default_factory=list)
    location: str | None = None

    @classmethod
    def from_api(cls, raw: Any) -> Match:
        raw = as_dict(raw)
        teams_raw = as_dict(raw.get("teams"))
        teams = {key: Faction.from_api(key, teams_raw.get(key)) for key in ("faction1", "faction2")}
        voting = as_dict(raw.get("voting"))
        map_vote = as_dict(voting.get("map"))
        pool: list[str] = []
        for entity in as_list(map_vote.get("entities")):
            entity = as_dict(entity)
            mid = map_id(entity.get("game_map_id") or entity.get("class_name") or entity.get("name"))
            if mid and mid not in pool:
                pool.append(mid)
        picks = [m for m in (map_id(p) for p in as_list(map_vote.get("pick"))) if m]
        location = [to_str(p) for p in as_list(as_dict(voting.get("location")).get("pick"))]
        results = as_dict(raw.get("results"))
        score = {k: v for k, v in ((k, to_int(v)) for k, v in as_dict(results.get("score")).items())
                 if v is not None}
        return cls(
            match_id=to_str(raw.get("match_id")) or "",
            status=(to_str(raw.get("status")) or "UNKNOWN").upper(),
            game=to_str(raw.get("game")),
            region=to_str(raw.get("region")),
            competition=to_str(raw.get("competition_name")),
            best_of=to_int(raw.get("best_of")),
            calculate_elo=raw.get("calculate_elo") if isinstance(raw.get("calculate_elo"), bool) else None,
            started_at=to_float(raw.get("started_at")),
            finished_at=to_float(raw.get("finished_at")),
            winner=to_str(results.get("winner")),
            score=score,
            faceit_url=faceit_url(raw.get("faceit_url")),
            teams=teams,
            map_pool=pool,
            map_picks=picks,
            location=next((loc for loc in location if loc), None),
        )

    @property
    def players(self) -> list[RosterPlayer]:
        return [p for team in self.teams.values() for p in team.roster]


@dataclass(slots=True)
class MatchPlayerLine:
    player_id: str
    nickname: str
    kills: float | None = None
    deaths: float | None = None
    assists: float | None = None
    kd: float | None = None
    kr: float | None = None
    adr: float | None = None
    hs_pct: float | None = None
    mvps: float | None = None


@dataclass(slots=True)
class MatchTeamLine:
    team_id: str
    name: str
    final_score: int | None = None
    won: bool | None = None
    players: list[MatchPlayerLine] = field(default_factory=list)


@dataclass(slots=True)
class MatchRound:
    """One map of ``/matches/{id}/stats``."""

    map: str | None
    rounds: float | None
    winner_team_id: str | None
    teams: list[MatchTeamLine] = field(default_factory=list)

    @classmethod
    def from_api(cls, raw: Any) -> MatchRound:
        raw = as_dict(raw)
        rs = as_dict(raw.get("round_stats"))
        teams = []
        for t in as_list(raw.get("teams")):
            t = as_dict(t)
            ts = as_dict(t.get("team_stats"))
            players = []
            for p in as_list(t.get("players")):
                p = as_dict(p)
                ps = as_dict(p.get("player_stats"))
                players.append(MatchPlayerLine(
                    player_id=to_str(p.get("player_id")) or "",
                    nickname=to_str(p.get("nickname")) or "?",
                    kills=to_float(ps.get("Kills")),
                    deaths=to_float(ps.get("Deaths")),
                    assists=to_float(ps.get("Assists")),
                    kd=to_float(ps.get("K/D Ratio")),
                    kr=to_float(ps.get("K/R Ratio")),
                    adr=to_float(ps.get("ADR")),
                    hs_pct=to_float(ps.get("Headshots %")),
                    mvps=to_float(ps.get("MVPs")),
                ))
            win = to_int(ts.get("Team Win"))
            teams.append(MatchTeamLine(
                team_id=to_str(t.get("team_id")) or "",
                name=to_str(ts.get("Team")) or "?",
                final_score=to_int(ts.get("Final Score")),
                won=None if win not in (0, 1) else win == 1,
                players=players,
            ))
        rounds = to_float(rs.get("Rounds"))
        if rounds is None and teams and all(t.final_score is not None for t in teams):
            rounds = float(sum(t.final_score or 0 for t in teams))
        return cls(map=map_id(rs.get("Map")), rounds=rounds, winner_team_id=to_str(rs.get("Winner")),
                   teams=teams)


def parse_match_stats(raw: Any) -> list[MatchRound]:
    return [MatchRound.from_api(r) for r in as_list(as_dict(raw).get("rounds"))]

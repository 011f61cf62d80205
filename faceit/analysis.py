"""Pure computations over parsed FACEIT data: no I/O, no clock, no randomness.

Everything returns plain JSON-able dicts (the shape stored in job records and rendered by
:mod:`faceit.render`). The formulas are documented where they live; the figures are checked
against hand-computed fixtures in ``tests/faceit/test_analysis.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from faceit.gamedata import ACTIVE_MAP_POOL, level_for_elo, level_progress, map_label
from faceit.htmltext import shown_favourite, whole_percent
from faceit.links import room_url
from faceit.models import (
    Faction,
    LifetimeStats,
    Match,
    MatchRound,
    PlayerMatchStats,
    PlayerProfile,
    RosterPlayer,
    matches_of,
    series_stats,
    to_float,
)

ELO_K = 50  # FACEIT's K factor for 5v5 matchmaking
FORM_MATCHES = 20  # "recent form" is the last 20 5v5 matches
MAP_PRIOR_MATCHES = 10  # shrinkage strength: a map win rate counts as 10 extra games at 50%
TARGETS_PER_TEAM = 2
DANGER_WEIGHTS = {"elo": 0.35, "rating": 0.30, "kd": 0.15, "adr": 0.10, "win_rate": 0.10}
#: Recent-form figures weigh n/(n + this) of their z-score: one match counts 1/6, twenty 4/5.
FORM_PRIOR_MATCHES = 5
#: Below this spread of danger scores a side has no standout player to name (about a quarter of
#: a standard deviation: closer than that, who is "first" is noise).
DANGER_MIN_SPREAD = 0.25
#: A map is advised (picked, banned) only on an edge of at least this many points as shown (the
#: two whole percents' difference) and with at least this many games of both sides' players.
MAP_MIN_EDGE = 2
MAP_MIN_GAMES = 10
#: Specialists are named from at least this many recent entries / 1v1 clutches, or from lifetime
#: rates of a player with at least this many matches.
MIN_ENTRIES = 5
MIN_CLUTCHES = 3
MIN_LIFETIME_MATCHES = 50
ADR_PER_KPR = 105.0  # stand-in ADR for old matches without ADR: a typical damage per kill


def round_half_up(value: float) -> int:
    """Round like a person does (``22.5`` → 23, ``-0.5`` → -1), unlike Python's banker's rounding.

    The value is first cleaned of float noise (``50 * (1 - 0.55)`` is ``22.499999999999996``).
    """
    cleaned = round(value, 9)
    return int(math.floor(abs(cleaned) + 0.5)) * (1 if cleaned >= 0 else -1)


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _mean(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


# Elo --------------------------------------------------------------------------------------------


def elo_expectation(rating: float, opponent: float) -> float:
    """Expected score of a side: ``E_A = 1 / (1 + 10^((R_B − R_A)/400))``."""
    return 1.0 / (1.0 + 10 ** ((opponent - rating) / 400.0))


def elo_change(win_probability: float, k: int = ELO_K) -> dict[str, int]:
    """Elo a side gains on a win and loses on a loss: win ``round(K·(1−p))``, loss ``−round(K·p)``,
    at least 1 either way (FACEIT never gives a ranked match for nothing).

    ±25 for equal sides; FACEIT's real figures are sometimes one point off.
    """
    p = min(1.0, max(0.0, win_probability))
    return {"win": max(1, round_half_up(k * (1 - p))), "loss": -max(1, round_half_up(k * p))}



# Player form and rating -------------------------------------------------------------------------


def estimate_rating(kpr: float, dpr: float, apr: float, adr: float) -> float:
    """An HLTV-2.0-style rating from per-round figures (the Data API has no rating).

    The community regression of HLTV Rating 2.0 on its inputs:

        Rating ≈ 0.0073·KAST + 0.3591·KPR − 0.5329·DPR + 0.2372·Impact + 0.0032·ADR + 0.1587
        Impact ≈ 2.13·KPR + 0.42·APR − 0.41

    FACEIT gives no KAST, so it is estimated as the share of rounds that are not "died without
    a kill or an assist", treating them as independent Poisson events:
    ``KAST% ≈ 100·(1 − DPR·e^(−KPR)·e^(−APR))``. A typical player (KPR 0.7, DPR 0.68, APR 0.15,
    ADR 80) comes out near 1.09; the scale reads like HLTV's (1.00 average, 1.20 strong).
    """
    kast = 100.0 * (1.0 - min(1.0, max(0.0, dpr)) * math.exp(-kpr) * math.exp(-apr))
    impact = 2.13 * kpr + 0.42 * apr - 0.41
    return 0.0073 * kast + 0.3591 * kpr - 0.5329 * dpr + 0.2372 * impact + 0.0032 * adr + 0.1587


def five_v_five(recent: Sequence[PlayerMatchStats], limit: int = FORM_MATCHES) -> list[PlayerMatchStats]:
    """The newest ``limit`` 5v5 matches (Wingman and other modes are left out), the lines of a best
    of three's maps joined into one match (:func:`~faceit.models.series_stats`): every count of
    matches, results and form counts a series once, as its notice does."""
    lines = [m for m in recent if m.is_5v5]
    return [series_stats(maps) for maps in reversed(matches_of(lines))][:limit]


def recent_form(recent: Sequence[PlayerMatchStats], limit: int = FORM_MATCHES) -> dict[str, Any]:
    """Form over the newest ``limit`` 5v5 matches (:func:`form_of` them, joined)."""
    return form_of(five_v_five(recent, limit))


def form_of(games: Sequence[PlayerMatchStats]) -> dict[str, Any]:
    """Form over ``games``: 5v5 matches, a best of three already one line (:func:`five_v_five`).

    K/D, K/R and HS% are ratios of totals (not means of per-match ratios); ADR is the mean over
    matches that report it (missing before about August 2024). Entry and clutch rates are
    computed only from matches that carry those keys, else left ``None`` (unknown, not zero).
    """
    results = "".join("W" if m.won else "L" for m in games if m.won is not None)
    kills = deaths = assists = rounds = 0.0
    counted = 0
    for m in games:
        if m.kills is not None and m.deaths is not None and m.rounds:
            kills += m.kills
            deaths += m.deaths
            assists += m.assists or 0.0
            rounds += m.rounds
            counted += 1
    kd = kills / deaths if deaths else (kills if counted else _mean(m.kd for m in games))
    kr = kills / rounds if rounds else _mean(m.kr for m in games)
    adr = _mean(m.adr for m in games)
    hs_known = [m for m in games if m.headshots is not None and m.kills is not None]
    hs_kills = sum(m.kills or 0.0 for m in hs_known)
    hs_pct = (100.0 * sum(m.headshots or 0.0 for m in hs_known) / hs_kills) if hs_kills else _mean(
        m.hs_pct for m in games
    )
    rating = None
    if rounds:
        kpr, dpr, apr = kills / rounds, deaths / rounds, assists / rounds
        rating = estimate_rating(kpr, dpr, apr, adr if adr is not None else ADR_PER_KPR * kpr)
    entry_games = [m for m in games if m.entry_count is not None and m.rounds]
    entry_count = sum(m.entry_count or 0.0 for m in entry_games)
    entry_rounds = sum(m.rounds or 0.0 for m in entry_games)
    entry_wins = sum(m.entry_wins or 0.0 for m in entry_games)
    c11 = [m for m in games if m.clutch_1v1_count is not None]
    c12 = [m for m in games if m.clutch_1v2_count is not None]
    c11_n = sum(m.clutch_1v1_count or 0.0 for m in c11)
    c12_n = sum(m.clutch_1v2_count or 0.0 for m in c12)
    wins = results.count("W")
    return {
        "matches": len(games),
        "results": results,
        "wins": wins,
        "losses": len(results) - wins,
        "win_rate": _r(100.0 * wins / len(results), 1) if results else None,
        "kd": _r(kd),
        "kr": _r(kr),
        "adr": _r(adr, 1),
        "hs_pct": _r(hs_pct, 1),
        "rating": _r(rating),
        "entry_rate": _r(entry_count / entry_rounds, 3) if entry_rounds else None,
        "entry_success": _r(entry_wins / entry_count, 3) if entry_count else None,
        "entry_count": int(entry_count) if entry_games else None,
        "clutch_1v1_count": int(c11_n) if c11 else None,
        "clutch_1v1": _r(sum(m.clutch_1v1_wins or 0.0 for m in c11) / c11_n, 3) if c11_n else None,
        "clutch_1v2": _r(sum(m.clutch_1v2_wins or 0.0 for m in c12) / c12_n, 3) if c12_n else None,
    }


def shrunk_rate(wins: float | None, matches: float | None, strength: float = MAP_PRIOR_MATCHES) -> float:
    """Win rate pulled toward 50% for small samples: ``(W + 0.5·m) / (N + m)``.

    A player 3/3 on a map gets (3 + 5)/(3 + 10) = 61.5%, not 100%; with 200 games the data wins.
    """
    n = max(0.0, matches or 0.0)
    w = min(n, max(0.0, wins or 0.0))
    return (w + 0.5 * strength) / (n + strength)


# Match analysis ---------------------------------------------------------------------------------


@dataclass(slots=True)
class PlayerData:
    """Everything fetched for one lobby player (any part may be missing)."""

    roster: RosterPlayer
    profile: PlayerProfile | None = None
    lifetime: LifetimeStats | None = None
    recent: list[PlayerMatchStats] = field(default_factory=list)


def player_summary(data: PlayerData) -> dict[str, Any]:
    """One lobby player's line: Elo, level, recent form, rating, entry and clutch (lifetime rates
    when the recent matches lack them, listed in ``lifetime_rates``)."""
    profile, life = data.profile, data.lifetime
    form = recent_form(data.recent)
    elo = profile.elo if profile else None
    level = (profile.level if profile and profile.level else None) or data.roster.level or level_for_elo(elo)
    from_lifetime: list[str] = []  # the form's rates filled from lifetime stats: the texts must say so
    for name, fallback, count_field in (
        ("entry_rate", life.entry_rate if life else None, None),
        ("entry_success", life.entry_success if life else None, "entry_count"),
        ("clutch_1v1", life.clutch_1v1 if life else None, "clutch_1v1_count"),
        ("clutch_1v2", life.clutch_1v2 if life else None, None),
    ):
        if form[name] is None and fallback is not None:
            form[name] = _r(fallback, 3)
            from_lifetime.append(name)
            if count_field:  # a lifetime rate: its weight is the lifetime matches, not recent attempts
                form[count_field] = None
    return {
        "player_id": data.roster.player_id,
        "nickname": profile.nickname if profile and profile.nickname != "?" else data.roster.nickname,
        "country": profile.country if profile else None,
        "elo": elo,
        "level": level,
        "lifetime_matches": int(life.matches) if life and life.matches is not None else None,
        "lifetime_kd": _r(life.kd) if life else None,
        "lifetime_win_rate": _r(life.win_rate, 1) if life else None,
        "form": form,
        # Which of the form's rates are lifetime figures, not over the recent matches the table
        # and its hint speak of (a player without recent entry or clutch data still gets one).
        "lifetime_rates": from_lifetime,
    }


def team_win_probabilities(team1: Faction, team2: Faction, elo1: float | None, elo2: float | None) -> tuple[
    float, float, str
]:
    """(p1, p2, source): FACEIT's own ``winProbability`` when present, else the Elo expectation."""
    if team1.win_probability is not None:
        return team1.win_probability, 1 - team1.win_probability, "faceit"
    if team2.win_probability is not None:
        return 1 - team2.win_probability, team2.win_probability, "faceit"
    if elo1 is not None and elo2 is not None:
        p1 = elo_expectation(elo1, elo2)
        return p1, 1 - p1, "elo"
    return 0.5, 0.5, "none"


def map_table(
    pool: Sequence[str], lifetimes: dict[str, list[LifetimeStats | None]]
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per faction and map: the mean of the players' shrunk win rates and the games behind it.

    A player without lifetime stats counts as 50% (no information).
    """
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for faction, players in lifetimes.items():
        rows: dict[str, dict[str, Any]] = {}
        for mid in pool:
            rates, games, wins = [], 0.0, 0.0
            for life in players:
                seg = life.segment(mid) if life else None
                n = seg.matches if seg and seg.matches is not None else 0.0
                w = seg.wins if seg and seg.wins is not None else (
                    (seg.win_rate or 0.0) / 100 * n if seg else 0.0)
                rates.append(shrunk_rate(w, n))
                games += n
                wins += min(w, n)
            rate = sum(rates) / len(rates) if rates else 0.5
            rows[mid] = {"rate": round(rate, 4), "matches": int(games),
                         "raw_rate": round(wins / games, 4) if games else None}
        table[faction] = rows
    return table


def _shown_edge(row: dict[str, Any]) -> int:
    """A map row's Δ as the table shows it: the difference of the two whole percents."""
    return whole_percent(row["faction1"]["rate"]) - whole_percent(row["faction2"]["rate"])


def _both_played(row: dict[str, Any]) -> bool:
    """Whether both sides have games on a map row: a side without any shows no rate ("—", its
    50% being the prior alone), so no advice may rest on an edge against it."""
    return row["faction1"].get("matches") != 0 and row["faction2"].get("matches") != 0


def map_suggestions(
    pool: Sequence[str], table: dict[str, dict[str, dict[str, Any]]], picked: Sequence[str] = ()
) -> dict[str, Any]:
    """Pick and ban advice for each side from the map table.

    ``advantage`` of a map for faction1 is its rate minus faction2's. A map counts for advice only
    when it has an edge of at least :data:`MAP_MIN_EDGE` points as shown and :data:`MAP_MIN_GAMES`
    games of both sides' players behind it, some of each side's: with no map history every map is
    50/50, and naming one is noise.
    Each side picks its highest-advantage map that counts and bans up to three that count against
    it, worst first, never its own pick; ``None`` and ``[]`` when nothing counts. Ties break
    alphabetically so the advice is stable. ``picked_favours`` names, for each map of ``picked``
    in its order, the side it favours (or None).
    """
    f1, f2 = table.get("faction1", {}), table.get("faction2", {})
    maps = []
    for mid in pool:
        r1 = f1.get(mid, {}).get("rate", 0.5)
        r2 = f2.get(mid, {}).get("rate", 0.5)
        maps.append({
            "map": mid,
            "label": map_label(mid),
            "faction1": f1.get(mid, {"rate": 0.5, "matches": 0, "raw_rate": None}),
            "faction2": f2.get(mid, {"rate": 0.5, "matches": 0, "raw_rate": None}),
            "advantage": round(r1 - r2, 4),
            "picked": mid in picked,
        })
    telling = [m for m in maps if abs(_shown_edge(m)) >= MAP_MIN_EDGE and _both_played(m)
               and (m["faction1"].get("matches") or 0) + (m["faction2"].get("matches") or 0) >= MAP_MIN_GAMES]
    advice = {}
    for side, sign in (("faction1", 1), ("faction2", -1)):
        # Ranked by the Δ shown (then the exact edge): the pick is the biggest Δ on screen.
        good = sorted((m for m in telling if sign * _shown_edge(m) > 0),
                      key=lambda m: (-sign * _shown_edge(m), -sign * m["advantage"], m["map"]))
        bad = sorted((m for m in telling if sign * _shown_edge(m) < 0),
                     key=lambda m: (sign * _shown_edge(m), sign * m["advantage"], m["map"]))
        advice[side] = {"pick": good[0]["map"] if good else None, "ban": [m["map"] for m in bad[:3]]}
    rows = {m["map"]: m for m in maps}
    # Each picked map on its own (a best of three has three, which can favour different sides), by
    # the figures shown and the same edge advice needs: "48% 49% −1" favours nobody.
    favoured = [_favoured(rows[mid]) if mid in rows else None for mid in picked]
    return {"maps": maps, "advice": advice, "picked": list(picked), "picked_favours": favoured}


def _favoured(row: dict[str, Any]) -> str | None:
    """The side a map row favours by its Δ as shown, or None under :data:`MAP_MIN_EDGE` (or when
    a side has no games on it: its row shows no Δ)."""
    shown = _shown_edge(row)
    if abs(shown) < MAP_MIN_EDGE or not _both_played(row):
        return None
    return "faction1" if shown > 0 else "faction2"


def danger_scores(players: Sequence[dict[str, Any]]) -> dict[str, float]:
    """A danger score per player: weighted z-scores of Elo, rating, K/D, ADR and win rate.

    Standardised within the lobby (mean 0, sd 1 over the ten players), so it says who is
    strong *here*; a missing figure counts as the lobby average (z = 0). The recent-form figures
    (all but Elo) of a player with few matches say little: their z-score weighs
    ``n / (n + FORM_PRIOR_MATCHES)`` (and counts as much in the lobby's mean and spread), so one
    25-8 win does not outrank twenty good matches.
    """
    features = {
        "elo": [p.get("elo") for p in players],
        "rating": [p["form"].get("rating") for p in players],
        "kd": [p["form"].get("kd") for p in players],
        "adr": [p["form"].get("adr") for p in players],
        "win_rate": [p["form"].get("win_rate") for p in players],
    }
    scores = {p["player_id"]: 0.0 for p in players}
    for name, values in features.items():
        known = [(player, float(v), 1.0 if name == "elo" else _form_weight(player))
                 for player, v in zip(players, values, strict=True) if v is not None]
        total = sum(w for _, _, w in known)
        if len(known) < 2 or total <= 0:
            continue
        # Mean and spread weighted the same way: one lucky match neither moves the lobby's
        # average nor widens its spread (which would squeeze everyone else's scores).
        mean = sum(w * v for _, v, w in known) / total
        sd = math.sqrt(sum(w * (v - mean) ** 2 for _, v, w in known) / total)
        if sd == 0:
            continue
        for player, value, weight in known:
            scores[player["player_id"]] += DANGER_WEIGHTS[name] * weight * (value - mean) / sd
    return {pid: round(score, 3) for pid, score in scores.items()}


def _form_weight(player: dict[str, Any]) -> float:
    n = float(player["form"].get("matches") or 0)
    return n / (n + FORM_PRIOR_MATCHES)


def has_figures(player: dict[str, Any]) -> bool:
    """Whether anything is known of a lobby player's strength: their Elo or a recent-form figure
    the danger score weighs. Without any, their score is the lobby's average by default."""
    form = player.get("form") or {}
    return player.get("elo") is not None or any(form.get(name) is not None
                                                 for name in DANGER_WEIGHTS if name != "elo")


def standouts(players: Sequence[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """A side's players to watch (most dangerous first) and its weakest (weakest first), by
    danger score; both empty when the scores are too close to tell (:data:`DANGER_MIN_SPREAD`).
    The caller passes only players with figures (:func:`has_figures`)."""
    ranked = sorted(players, key=lambda p: (-p["danger"], p["nickname"].lower()))
    if len(ranked) < 2 or ranked[0]["danger"] - ranked[-1]["danger"] < DANGER_MIN_SPREAD:
        return [], []
    named = min(TARGETS_PER_TEAM, len(ranked) // 2)  # a side of 2 or 3: one of each, never the same
    return [p["player_id"] for p in ranked[:named]], [p["player_id"] for p in reversed(ranked[-named:])]


def _enough_attempts(player: dict[str, Any], count_field: str, least: int) -> bool:
    count = player["form"].get(count_field)
    if count is not None:
        return count >= least
    return (player.get("lifetime_matches") or 0) >= MIN_LIFETIME_MATCHES  # a lifetime rate


def specialists(players: Sequence[dict[str, Any]]) -> dict[str, str | None]:
    """A side's best entry fragger and 1v1 clutcher (player ids), from enough attempts to mean
    something: :data:`MIN_ENTRIES` recent entries or :data:`MIN_CLUTCHES` recent clutches, or a
    lifetime rate over :data:`MIN_LIFETIME_MATCHES` matches when the recent matches lack the keys."""
    best: dict[str, str | None] = {}
    for rate, count_field, least in (("entry_success", "entry_count", MIN_ENTRIES),
                                     ("clutch_1v1", "clutch_1v1_count", MIN_CLUTCHES)):
        known = [p for p in players if p["form"].get(rate) is not None and _enough_attempts(p, count_field, least)]
        best[rate] = max(known, key=lambda p, rate=rate: (p["form"][rate], p["nickname"]))["player_id"] if known else None
    return best


def analyse_match(match: Match, data: dict[str, PlayerData]) -> dict[str, Any]:
    """The pre-game analysis of a lobby (see :mod:`faceit.render` for how it is shown)."""
    teams: dict[str, dict[str, Any]] = {}
    for key, faction in match.teams.items():
        players = [player_summary(data.get(p.player_id) or PlayerData(p)) for p in faction.roster]
        elos = [p["elo"] for p in players if p["elo"] is not None]
        teams[key] = {
            "name": faction.name,
            "faction_id": faction.faction_id,
            "players": players,
            # FACEIT's own team rating (the average over all five) when some player's Elo is
            # unknown (left FACEIT, no profile): the average of the rest would be biased.
            "avg_elo": round(sum(elos) / len(elos)) if elos and (len(elos) == len(players) or faction.rating is None)
            else (round(faction.rating) if faction.rating is not None else None),
            "avg_level": _r(_mean(p["level"] for p in players), 1),
            "avg_rating": _r(_mean(p["form"]["rating"] for p in players)),
            "avg_kd": _r(_mean(p["form"]["kd"] for p in players)),
            "avg_adr": _r(_mean(p["form"]["adr"] for p in players), 1),
            "avg_win_rate": _r(_mean(p["form"]["win_rate"] for p in players), 1),
        }
    t1, t2 = match.teams["faction1"], match.teams["faction2"]
    p1, p2, source = team_win_probabilities(t1, t2, teams["faction1"]["avg_elo"], teams["faction2"]["avg_elo"])
    for key, p in (("faction1", p1), ("faction2", p2)):
        # To 4 decimals, and an uncertain chance stays uncertain: 0.99996 is not stored as 1.0.
        teams[key]["win_probability"] = min(0.9999, max(0.0001, round(p, 4))) if 0 < p < 1 else p
        # A hub or tournament room may not count for Elo (``calculate_elo`` false): nothing at stake.
        teams[key]["elo_change"] = None if match.calculate_elo is False else elo_change(p)
    pool = list(match.map_pool) or list(ACTIVE_MAP_POOL)
    pool += [m for m in match.map_picks if m not in pool]  # a pick without its pool still gets its row
    lifetimes = {key: [(data.get(p.player_id) or PlayerData(p)).lifetime for p in f.roster]
                 for key, f in match.teams.items()}
    maps = map_suggestions(pool, map_table(pool, lifetimes), match.map_picks)
    maps["pool_source"] = "veto" if match.map_pool else "active_duty"
    everyone = teams["faction1"]["players"] + teams["faction2"]["players"]
    danger = danger_scores(everyone)
    for player in everyone:
        player["danger"] = danger[player["player_id"]]
    for key, other in (("faction1", "faction2"), ("faction2", "faction1")):
        # Only opponents with figures are ranked: one FACEIT told nothing of scores the lobby's
        # average, and was named "weakest" beside players known to be better, or a threat beside
        # worse ones. None with figures: nothing to name for lack of data, and the text says so.
        known = [p for p in teams[other]["players"] if has_figures(p)]
        teams[key]["threats"], teams[key]["targets"] = standouts(known)
        teams[key]["opponents_unknown"] = len(known) < 2  # standouts needs two to compare
        teams[key]["specialists"] = specialists(teams[key]["players"])
    # By the chances shown (as stored, to 4 decimals): "win 50% / win 50%" has no favourite,
    # whatever a further decimal says.
    favourite = shown_favourite(teams["faction1"]["win_probability"])
    return {
        "match_id": match.match_id,
        "status": match.status,
        "competition": match.competition,
        "region": match.region,
        "best_of": match.best_of,
        "calculate_elo": match.calculate_elo,
        "location": match.location,
        "faceit_url": match.faceit_url,
        "probability_source": source,
        "favourite": favourite,
        "teams": teams,
        "maps": maps,
    }


def finished_match_result(match: Match, rounds: Sequence[MatchRound]) -> dict[str, Any]:
    """What a finished match came to: winner, each map's score and every player's line."""
    maps = []
    for rnd in rounds:
        teams = []
        for team in rnd.teams:
            faction = next((k for k, f in match.teams.items() if f.faction_id == team.team_id), None)
            teams.append({
                "faction": faction,
                "name": team.name,
                "score": team.final_score,
                "won": team.won if team.won is not None else (team.team_id == rnd.winner_team_id),
                "players": sorted(
                    ({"player_id": p.player_id, "nickname": p.nickname, "kills": _int(p.kills),
                      "deaths": _int(p.deaths), "assists": _int(p.assists), "kd": _r(p.kd),
                      "adr": _r(p.adr, 1), "hs_pct": _r(p.hs_pct, 1), "mvps": _int(p.mvps)}
                     for p in team.players),
                    key=lambda p: (-(p["kills"] or 0), p["nickname"].lower()),
                ),
            })
        maps.append({"map": rnd.map, "label": map_label(rnd.map), "rounds": _int(rnd.rounds), "teams": teams})
    best = _best_over_match(maps)
    return {
        "match_id": match.match_id,
        "status": match.status,
        "finished_at": match.finished_at,
        "winner": match.winner,
        "teams": {k: {"name": f.name, "faction_id": f.faction_id} for k, f in match.teams.items()},
        "maps": maps,
        "best_player": best["nickname"] if best else None,
        "faceit_url": match.faceit_url,
    }


def _int(value: float | None) -> int | None:
    return None if value is None else int(round(value))


def _best_over_match(maps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The player with the best K/D over the whole match, ADR breaking ties: in a best of three,
    kills over deaths of every map (ADR weighted by each map's rounds), so one good map of three
    does not make the best player. A single map keeps FACEIT's own K/D and ADR as shown."""
    lines: dict[str, list[tuple[dict[str, Any], int]]] = {}
    for m in maps:
        for t in m["teams"]:
            for p in t["players"]:
                lines.setdefault(p["player_id"] or p["nickname"], []).append((p, m["rounds"] or 0))
    best: tuple[tuple[float, float], dict[str, Any]] | None = None
    for played in lines.values():
        score = (_match_kd([p for p, _ in played]), _match_adr(played))
        if best is None or score > best[0]:
            best = (score, played[0][0])
    return best[1] if best else None


def _match_kd(lines: list[dict[str, Any]]) -> float:
    """Kills over deaths summed over maps; one map's, or where kills or deaths are missing, FACEIT's
    own K/D (of each map, averaged)."""
    if len(lines) > 1 and all(p["kills"] is not None and p["deaths"] is not None for p in lines):
        return sum(p["kills"] for p in lines) / max(1, sum(p["deaths"] for p in lines))
    known = [p["kd"] for p in lines if p["kd"] is not None]
    return sum(known) / len(known) if known else 0.0


def _match_adr(lines: list[tuple[dict[str, Any], int]]) -> float:
    """ADR over the maps, each weighted by its rounds (equally where rounds are unknown)."""
    known = [(p["adr"], rounds or 1) for p, rounds in lines if p["adr"] is not None]
    return sum(adr * rounds for adr, rounds in known) / sum(rounds for _, rounds in known) if known else 0.0


# Player report --------------------------------------------------------------------------------


def form_trend(recent: Sequence[PlayerMatchStats]) -> dict[str, Any]:
    """The last 10 5v5 matches against the 10 before: rating, K/D, ADR and win-rate deltas.

    ``direction`` is ``up``/``down`` when the rating moved by at least 0.05, else ``flat``; with
    fewer than 5 older matches (or no rating on either side) it is ``unknown``: there is nothing
    to compare, and "steady" would say there was.
    """
    games = five_v_five(recent, 2 * 10)
    newer, older = form_of(games[:10]), form_of(games[10:])
    delta: dict[str, float | None] = {}
    for name in ("rating", "kd", "adr", "win_rate"):
        a, b = newer[name], older[name]
        delta[name] = None if a is None or b is None else round(a - b, 2)
    direction = "unknown"
    if delta["rating"] is not None and older["matches"] >= 5:
        direction = "up" if delta["rating"] >= 0.05 else "down" if delta["rating"] <= -0.05 else "flat"
    return {"last10": newer, "previous10": older, "delta": delta, "direction": direction}


def chart_series(recent: Sequence[PlayerMatchStats], elo_history: Sequence[tuple[float, int]]) -> dict[str, Any]:
    """Oldest-first series for the report chart: per-match K/D, ADR, result, and Elo snapshots."""
    games = list(reversed(five_v_five(recent)))
    return {
        "kd": [_r(m.kd) for m in games],
        "adr": [_r(m.adr, 1) for m in games],
        "won": [m.won for m in games],
        "maps": [m.map for m in games],
        "finished_at": [m.finished_at for m in games],
        "elo": [[t, e] for t, e in elo_history],
    }


def player_report(
    profile: PlayerProfile,
    lifetime: LifetimeStats | None,
    recent: Sequence[PlayerMatchStats],
    elo_history: Sequence[tuple[float, int]] = (),
) -> dict[str, Any]:
    """Profile, level progress, lifetime and recent stats, per-map table, form trend, chart data."""
    maps = []
    if lifetime:
        for seg in sorted(lifetime.maps, key=lambda s: (-(s.matches or 0), s.map)):
            maps.append({"map": seg.map, "label": map_label(seg.map), "matches": _int(seg.matches),
                         "win_rate": _r(seg.win_rate, 1), "kd": _r(seg.kd), "adr": _r(seg.adr, 1),
                         "hs_pct": _r(seg.hs_pct, 1)})
    life = None
    if lifetime:
        life = {
            "matches": _int(lifetime.matches), "wins": _int(lifetime.wins), "win_rate": _r(lifetime.win_rate, 1),
            "kd": _r(lifetime.kd), "hs_pct": _r(lifetime.hs_pct, 1), "adr": _r(lifetime.adr, 1),
            "current_streak": _int(lifetime.current_streak), "longest_streak": _int(lifetime.longest_streak),
            "recent_results": "".join("W" if r else "L" for r in lifetime.recent_results),
            "entry_rate": _r(lifetime.entry_rate, 3), "entry_success": _r(lifetime.entry_success, 3),
            "clutch_1v1": _r(lifetime.clutch_1v1, 3), "clutch_1v2": _r(lifetime.clutch_1v2, 3),
            "utility_damage_per_round": _r(lifetime.utility_damage_per_round, 1),
        }
    elo_change_seen = None
    if len(elo_history) >= 2:
        elo_change_seen = elo_history[-1][1] - elo_history[0][1]
    return {
        "player_id": profile.player_id,
        "nickname": profile.nickname,
        "country": profile.country,
        "avatar": profile.avatar,
        "faceit_url": profile.faceit_url,
        "elo": profile.elo,
        "level": profile.level or level_for_elo(profile.elo),
        "progress": level_progress(profile.elo),
        "lifetime": life,
        "form": recent_form(recent),
        "trend": form_trend(recent),
        "maps": maps,
        "elo_seen_change": elo_change_seen,
        # When that change starts (epoch s, the first snapshot): the report says since when.
        "elo_seen_since": elo_history[0][0] if elo_change_seen is not None else None,
        "chart": chart_series(recent, elo_history),
    }


# Monitoring and analytics ----------------------------------------------------------------------


def match_notification(
    player_id: str, nickname: str, stat: PlayerMatchStats, elo: int | None, elo_delta: int | None,
    delta_matches: int = 1, maps: Sequence[PlayerMatchStats] = (),
) -> dict[str, Any]:
    """One finished match of a followed player, as a notification payload. ``elo_delta`` is the
    change over the last ``delta_matches`` matches (FACEIT tells the Elo now, not per match: two
    matches between scans get one total, on the later one). A match of several maps: ``stat`` is
    their :func:`~faceit.models.series_stats` and ``maps`` their own lines, each map's score told."""
    several = [{"label": map_label(m.map), "score": own_score_first(m.score, m.won)} for m in maps] if len(maps) > 1 else []
    return {
        "maps": several,
        "player_id": player_id,
        "nickname": nickname,
        "match_id": stat.match_id,
        "finished_at": stat.finished_at,
        "map": stat.map,
        "label": map_label(stat.map) if stat.map else None,  # not "?" in the notice's head
        "score": own_score_first(stat.score, stat.won),
        "won": stat.won,
        "kills": _int(stat.kills),
        "deaths": _int(stat.deaths),
        "assists": _int(stat.assists),
        "kd": _r(stat.kd),
        "adr": _r(stat.adr, 1),
        "hs_pct": _r(stat.hs_pct, 1),
        "mvps": _int(stat.mvps),
        "elo": elo,
        "elo_change": elo_delta,
        "elo_change_matches": delta_matches,
        "faceit_url": room_url(stat.match_id),
    }


def own_score_first(score: str | None, won: bool | None) -> list[int] | None:
    """FACEIT's ``"13 / 9"`` of a player's match line as ``[their team's, the other's]``: the
    winner has the more rounds, whichever order FACEIT wrote them in (kept as written when the
    result is unknown). None when there is no readable score."""
    parts = (score or "").split("/")
    sides = [_int(to_float(part.strip())) for part in parts] if len(parts) == 2 else []
    if len(sides) != 2 or None in sides:
        return None
    first, second = sides
    if won is None:
        return [first, second]
    high, low = max(first, second), min(first, second)
    return [high, low] if won else [low, high]


def tracked_player_period(
    player_id: str,
    nickname: str,
    recent: Sequence[PlayerMatchStats],
    since: float,
    elo_now: int | None,
    elo_history: Sequence[tuple[float, int]],
    now: float,
    complete_from: float = 0.0,
    previous_since: float | None = None,
    until: float = math.inf,
) -> dict[str, Any]:
    """A followed player's matches from ``since`` (epoch s) to ``until`` and Elo trend over the
    period.

    The Elo at the end is ``elo_now``; when the period ended before now and a match came after
    it (a summary run late), the last snapshot up to ``until`` instead, if no match came between
    it and ``until``, else unknown: the Elo now would count the later matches' changes in a
    period whose matches leave them out (and the next period would count them again).

    With ``previous_since``, ``previous`` is their form over the period before (from
    ``previous_since`` to ``since``) to compare with: None when ``recent`` does not reach back
    that far (a partial period would pass for a whole one).

    ``recent`` holds every match back to ``complete_from`` (0: all of them). The Elo change runs
    to now from the Elo the player had when the period began: the last snapshot before it, if no
    match came between that snapshot and the period's start (a snapshot from months ago, with
    matches since, says nothing about the start). Otherwise it runs from the first snapshot
    inside the period, and ``elo_since`` says from when; unknown (None) when that snapshot is
    less than an hour old, since a snapshot taken just now says nothing about the period.
    """
    games = five_v_five(recent, limit=len(recent))  # joined once, for both periods
    form = _form_between(games, since, until)
    in_period = [(t, e) for t, e in elo_history if since <= t < until]
    before = [(t, e) for t, e in elo_history if t < since]
    start = start_at = None
    if before:
        taken, elo = before[-1]
        unseen = complete_from > taken  # matches between the snapshot and the period may be missing
        played = any(taken < (m.finished_at or 0) < since for m in recent)
        if not unseen and not played:
            start, start_at = elo, since
    if start is None:
        settled = [(t, e) for t, e in in_period if t <= now - 3600]
        if settled:
            start_at, start = settled[0]
    end = elo_now if elo_now is not None else (in_period[-1][1] if in_period else None)
    if any((m.finished_at or 0) >= until for m in recent):  # played after the period: the Elo then
        upto = [(t, e) for t, e in elo_history if t <= until]
        settled = bool(upto) and not any(upto[-1][0] < (m.finished_at or 0) < until for m in recent)
        end = upto[-1][1] if settled else None
    return {
        "player_id": player_id,
        "nickname": nickname,
        "matches": form["matches"],
        "results": form["results"],
        "wins": form["wins"],
        "win_rate": form["win_rate"],
        "kd": form["kd"],
        "adr": form["adr"],
        "rating": form["rating"],
        "elo": end,
        "elo_start": start,
        "elo_since": start_at,
        "elo_change": (end - start) if start is not None and end is not None else None,
        "previous": _before(_form_between(games, previous_since, since)) if previous_since is not None
        and (not complete_from or complete_from <= previous_since) else None,
    }


def _form_between(games: Sequence[PlayerMatchStats], start: float, end: float = math.inf) -> dict[str, Any]:
    """:func:`form_of` the ``games`` (joined: :func:`five_v_five`) finished in ``[start, end)``: a
    best of three by when its last map ended, so one whose maps fall on both sides of ``start``
    counts once, in the period it ended in."""
    return form_of([m for m in games if start <= (m.finished_at or 0) < end])


def _before(form: dict[str, Any]) -> dict[str, Any]:
    """What a summary compares with: the period before's matches, win rate and K/D."""
    return {"matches": form["matches"], "win_rate": form["win_rate"], "kd": form["kd"]}

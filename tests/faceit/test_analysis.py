"""Analysis figures against values computed by hand (see the comments for the arithmetic)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from faceit import analysis, render
from faceit.models import LifetimeStats, Match, PlayerMatchStats, PlayerProfile, RosterPlayer


def _pid(team: int, i: int) -> str:
    return f"{team}000000{i}-0000-4000-8000-000000000000"


def _raw_match(*, status: str = "READY", p1: float | None = None, pool: list[str] | None = None,
               pick: list[str] | None = None) -> dict[str, Any]:
    teams = {}
    for t in (1, 2):
        faction: dict[str, Any] = {
            "faction_id": f"f{t}", "name": f"team_{t}", "leader": _pid(t, 0),
            "roster": [{"player_id": _pid(t, i), "nickname": f"p{t}{i}", "game_skill_level": 7} for i in range(5)],
        }
        if p1 is not None:
            faction["stats"] = {"winProbability": p1 if t == 1 else round(1 - p1, 4), "rating": 1}
        teams[f"faction{t}"] = faction
    raw: dict[str, Any] = {"match_id": "1-11111111-1111-4111-8111-111111111111", "status": status, "teams": teams}
    if pool:
        raw["voting"] = {"map": {"entities": [{"name": m.title(), "game_map_id": m} for m in pool]}}
        if pick:
            raw["voting"]["map"]["pick"] = pick
    return raw


def _lifetime(segments: dict[str, tuple[int, int]]) -> LifetimeStats:
    return LifetimeStats.from_api({"lifetime": {}, "segments": [
        {"type": "Map", "mode": "5v5", "label": label, "stats": {"Matches": str(n), "Wins": str(w)}}
        for label, (n, w) in segments.items()
    ]})


def _data(match: Match, elos: dict[int, int], lifetimes: dict[int, LifetimeStats | None] | None = None
          ) -> dict[str, analysis.PlayerData]:
    out = {}
    for key, team_no in (("faction1", 1), ("faction2", 2)):
        for p in match.teams[key].roster:
            profile = PlayerProfile(player_id=p.player_id, nickname=p.nickname, elo=elos[team_no], level=7,
                                    has_cs2=True)
            out[p.player_id] = analysis.PlayerData(p, profile, (lifetimes or {}).get(team_no), [])
    return out


def test_elo_expectation_and_change_from_average_elo() -> None:
    # E = 1 / (1 + 10^(-100/400)) = 1 / 1.562341 = 0.640065
    match = Match.from_api(_raw_match())
    result = analysis.analyse_match(match, _data(match, {1: 1500, 2: 1400}))
    t1, t2 = result["teams"]["faction1"], result["teams"]["faction2"]
    assert t1["avg_elo"] == 1500 and t2["avg_elo"] == 1400
    assert result["probability_source"] == "elo"
    assert t1["win_probability"] == pytest.approx(0.6401, abs=1e-4)
    assert t2["win_probability"] == pytest.approx(0.3599, abs=1e-4)
    # win round(50 * 0.359935) = 18, loss -round(50 * 0.640065) = -32
    assert t1["elo_change"] == {"win": 18, "loss": -32}
    assert t2["elo_change"] == {"win": 32, "loss": -18}
    assert result["favourite"] == "faction1"


def test_faceit_win_probability_wins_over_elo_and_rounds_half_up() -> None:
    # p = 0.55: win round(50 - 27.5) = round(22.5) = 23 (half up), loss -round(27.5) = -28
    match = Match.from_api(_raw_match(p1=0.55))
    result = analysis.analyse_match(match, _data(match, {1: 1000, 2: 2000}))
    assert result["probability_source"] == "faceit"
    assert result["teams"]["faction1"]["win_probability"] == 0.55
    assert result["teams"]["faction1"]["elo_change"] == {"win": 23, "loss": -28}
    assert result["teams"]["faction2"]["elo_change"] == {"win": 28, "loss": -23}


def test_equal_teams_trade_25() -> None:
    assert analysis.elo_change(0.5) == {"win": 25, "loss": -25}
    assert analysis.elo_expectation(1234, 1234) == 0.5


def test_a_ranked_match_always_moves_elo_by_at_least_one() -> None:
    # 2400 against 1600: E = 1 / (1 + 10^-2) = 0.990; a win would be round(0.495) = 0 without the floor
    favourite = analysis.elo_expectation(2400, 1600)
    assert analysis.elo_change(favourite) == {"win": 1, "loss": -50}
    assert analysis.elo_change(1 - favourite) == {"win": 50, "loss": -1}
    assert analysis.elo_change(1.0) == {"win": 1, "loss": -50}


def test_a_room_that_does_not_count_for_elo_has_no_elo_at_stake() -> None:
    raw = _raw_match()
    raw["calculate_elo"] = False  # a hub or tournament room
    match = Match.from_api(raw)
    result = analysis.analyse_match(match, _data(match, {1: 1500, 2: 1400}))
    assert result["teams"]["faction1"]["elo_change"] is None and result["teams"]["faction2"]["elo_change"] is None
    assert result["teams"]["faction1"]["win_probability"] == pytest.approx(0.6401, abs=1e-4)  # the chance stays
    text = "".join(render.texts(render.render_match_analysis, result)["en"])
    assert "win chance 64% · no Elo at stake" in text and "Elo +" not in text
    assert "Elo не меняется" in "".join(render.texts(render.render_match_analysis, result)["ru"])


def test_no_favourite_when_the_chances_shown_are_equal() -> None:
    # FACEIT says 0.504 / 0.496: both read "win 50%"; naming a favourite would contradict them
    match = Match.from_api(_raw_match(p1=0.504))
    result = analysis.analyse_match(match, _data(match, {1: 1500, 2: 1500}))
    assert result["favourite"] is None
    assert "Even match" in "".join(render.texts(render.render_match_analysis, result)["en"])
    assert analysis.analyse_match(Match.from_api(_raw_match(p1=0.51)), _data(match, {1: 1500, 2: 1500})
                                  )["favourite"] == "faction1"


def test_map_suggestions_with_shrinkage() -> None:
    # Shrunk rate (W + 5) / (N + 10):
    #   team 1: Mirage (20 + 5)/(30 + 10) = 0.625, Nuke (2 + 5)/(10 + 10) = 0.35, Inferno 0.5
    #   team 2: Mirage (5 + 5)/(10 + 10) = 0.5,   Nuke (30 + 5)/(40 + 10) = 0.7, Inferno 0.5
    # advantage of team 1: Mirage +0.125, Nuke -0.35, Inferno 0
    pool = ["de_mirage", "de_nuke", "de_inferno"]
    match = Match.from_api(_raw_match(pool=pool))
    lifetimes = {1: _lifetime({"Mirage": (30, 20), "Nuke": (10, 2)}), 2: _lifetime({"Mirage": (10, 5), "Nuke": (40, 30)})}
    maps = analysis.analyse_match(match, _data(match, {1: 1500, 2: 1500}, lifetimes))["maps"]
    rows = {row["map"]: row for row in maps["maps"]}
    assert rows["de_mirage"]["faction1"]["rate"] == pytest.approx(0.625)
    assert rows["de_nuke"]["faction1"]["rate"] == pytest.approx(0.35)
    assert rows["de_nuke"]["faction2"]["rate"] == pytest.approx(0.7)
    assert rows["de_inferno"]["faction1"]["rate"] == pytest.approx(0.5)
    assert rows["de_mirage"]["advantage"] == pytest.approx(0.125)
    assert rows["de_nuke"]["advantage"] == pytest.approx(-0.35)
    assert rows["de_mirage"]["faction1"]["matches"] == 150  # five players × 30 games
    # Inferno is even (no edge): neither picked nor banned; no side bans the map it picks
    assert maps["advice"]["faction1"] == {"pick": "de_mirage", "ban": ["de_nuke"]}
    assert maps["advice"]["faction2"] == {"pick": "de_nuke", "ban": ["de_mirage"]}
    assert maps["pool_source"] == "veto"
    assert maps["picked"] == [] and maps["picked_favours"] == []


def test_picked_map_is_highlighted_and_favours_the_stronger_side() -> None:
    pool = ["de_mirage", "de_nuke", "de_inferno"]
    match = Match.from_api(_raw_match(pool=pool, pick=["de_nuke"]))
    lifetimes = {1: _lifetime({"Nuke": (10, 2)}), 2: _lifetime({"Nuke": (40, 30)})}
    maps = analysis.analyse_match(match, _data(match, {1: 1500, 2: 1500}, lifetimes))["maps"]
    assert maps["picked"] == ["de_nuke"]
    assert [row["map"] for row in maps["maps"] if row["picked"]] == ["de_nuke"]
    assert maps["picked_favours"] == ["faction2"]


def test_no_map_advice_without_history_or_from_a_handful_of_games() -> None:
    pool = ["de_mirage", "de_nuke", "de_inferno"]
    match = Match.from_api(_raw_match(pool=pool))
    nobody = analysis.analyse_match(match, _data(match, {1: 1500, 2: 1500}))
    assert nobody["maps"]["advice"] == {"faction1": {"pick": None, "ban": []}, "faction2": {"pick": None, "ban": []}}
    text = "".join(render.texts(render.render_match_analysis, nobody)["en"])
    assert "[1] team_1: no clear map edge" in text and "pick <b>" not in text
    # One player 3/3 on Nuke, nobody else with any history: (3 + 5)/(3 + 10) = 61.5% for one of
    # five, a 2.3-point edge from 3 games (under MAP_MIN_GAMES): still no advice
    data = _data(match, {1: 1500, 2: 1500})
    data[_pid(1, 0)].lifetime = _lifetime({"Nuke": (3, 3)})
    thin = analysis.analyse_match(match, data)["maps"]
    assert {row["map"]: row["advantage"] for row in thin["maps"]}["de_nuke"] == pytest.approx(0.0231, abs=1e-4)
    assert thin["advice"]["faction1"] == {"pick": None, "ban": []}


def test_map_advice_follows_the_delta_shown() -> None:
    # 51.5% against 49.6%: the table shows 52% 50% +2, so the advice names it (raw edge 1.9 points)
    table = {"faction1": {"de_nuke": {"rate": 0.515, "matches": 100}},
             "faction2": {"de_nuke": {"rate": 0.496, "matches": 100}}}
    advice = analysis.map_suggestions(["de_nuke"], table)["advice"]
    assert advice == {"faction1": {"pick": "de_nuke", "ban": []}, "faction2": {"pick": None, "ban": ["de_nuke"]}}
    table["faction1"]["de_nuke"]["rate"] = 0.505  # 50% 50% +0 (51% 50% +1 at 0.506): no advice
    assert analysis.map_suggestions(["de_nuke"], table)["advice"]["faction1"] == {"pick": None, "ban": []}


def test_map_advice_ranks_by_the_delta_shown_and_favours_only_on_an_edge() -> None:
    # Mirage reads 52% 47% +5 (exact 4.01 points), Nuke 53% 49% +4 (exact 4.09): pick Mirage
    table = {"faction1": {"de_mirage": {"rate": 0.5150, "matches": 100}, "de_nuke": {"rate": 0.5349, "matches": 100}},
             "faction2": {"de_mirage": {"rate": 0.4749, "matches": 100}, "de_nuke": {"rate": 0.4940, "matches": 100}}}
    maps = analysis.map_suggestions(["de_mirage", "de_nuke"], table)
    assert maps["advice"]["faction1"]["pick"] == "de_mirage"
    assert maps["advice"]["faction2"]["ban"] == ["de_mirage", "de_nuke"]  # worst first, as shown
    # A picked map reading 48% 49% −1 favours nobody: under the edge advice needs
    close = {"faction1": {"de_nuke": {"rate": 0.48, "matches": 100}}, "faction2": {"de_nuke": {"rate": 0.49, "matches": 100}}}
    assert analysis.map_suggestions(["de_nuke"], close, picked=["de_nuke"])["picked_favours"] == [None]


def test_a_small_side_never_names_one_player_as_both_dangerous_and_weakest() -> None:
    def side(n: int) -> list[dict]:
        return [{"player_id": f"p{i}", "nickname": f"p{i}", "danger": 1.0 - i} for i in range(n)]

    assert analysis.standouts(side(2)) == (["p0"], ["p1"])
    assert analysis.standouts(side(3)) == (["p0"], ["p2"])
    threats, targets = analysis.standouts(side(5))
    assert (threats, targets) == (["p0", "p1"], ["p4", "p3"])


def test_a_picked_map_shown_even_favours_nobody() -> None:
    # Mirage 101/200 against 100/200: (106/210 = 50.5%) and (105/210 = 50.0%) both read 50%
    match = Match.from_api(_raw_match(pool=["de_mirage", "de_nuke"], pick=["de_mirage"]))
    lifetimes = {1: _lifetime({"Mirage": (200, 101)}), 2: _lifetime({"Mirage": (200, 100)})}
    maps = analysis.analyse_match(match, _data(match, {1: 1500, 2: 1500}, lifetimes))["maps"]
    assert maps["maps"][0]["advantage"] > 0 and maps["picked_favours"] == [None]


def test_a_pick_outside_the_pool_shown_still_has_its_row() -> None:
    raw = _raw_match()
    raw["voting"] = {"map": {"pick": ["de_cache"]}}  # a decision without its candidates
    match = Match.from_api(raw)
    maps = analysis.analyse_match(match, _data(match, {1: 1500, 2: 1500}))["maps"]
    assert maps["pool_source"] == "active_duty" and maps["picked"] == ["de_cache"]
    assert [row["map"] for row in maps["maps"] if row["picked"]] == ["de_cache"]


def test_active_pool_is_used_without_a_veto() -> None:
    match = Match.from_api(_raw_match())
    maps = analysis.analyse_match(match, _data(match, {1: 1500, 2: 1500}))["maps"]
    assert maps["pool_source"] == "active_duty"
    assert {row["map"] for row in maps["maps"]} >= {"de_mirage", "de_dust2", "de_inferno"}
    # nobody has data: every rate is exactly 50%
    assert all(row["faction1"]["rate"] == 0.5 and row["advantage"] == 0 for row in maps["maps"])


def test_shrunk_rate() -> None:
    assert analysis.shrunk_rate(3, 3) == pytest.approx(8 / 13)
    assert analysis.shrunk_rate(0, 0) == 0.5
    assert analysis.shrunk_rate(150, 200) == pytest.approx(155 / 210)
    assert analysis.shrunk_rate(None, None) == 0.5


def test_estimated_rating_matches_the_documented_formula() -> None:
    # KAST = 100 (1 - 0.68 e^-0.7 e^-0.15) = 70.9358; Impact = 2.13·0.7 + 0.42·0.15 - 0.41 = 1.144
    # 0.0073·70.9358 + 0.3591·0.7 - 0.5329·0.68 + 0.2372·1.144 + 0.0032·80 + 0.1587 = 1.092886
    assert analysis.estimate_rating(0.7, 0.68, 0.15, 80) == pytest.approx(1.092886, abs=1e-5)
    # better fragging and fewer deaths rate higher
    assert analysis.estimate_rating(0.9, 0.6, 0.15, 95) > analysis.estimate_rating(0.6, 0.75, 0.15, 65)


def _stat(match: str, won: bool, k: int, d: int, a: int, rounds: int, adr: float | None, hs: int,
          mode: str = "5v5", at: int = 0, **extra: str) -> PlayerMatchStats:
    stats = {"Match Id": match, "Result": "1" if won else "0", "Kills": str(k), "Deaths": str(d), "Assists": str(a),
             "Rounds": str(rounds), "Headshots": str(hs), "Game Mode": mode, "Map": "de_mirage",
             "K/D Ratio": f"{k / d:.2f}", "Match Finished At": at * 1000, **extra}
    if adr is not None:
        stats["ADR"] = str(adr)
    item = PlayerMatchStats.from_api({"stats": stats})
    assert item is not None
    return item


def test_recent_form_uses_totals_skips_wingman_and_treats_missing_adr_as_unknown() -> None:
    recent = [
        _stat("m1", True, 20, 10, 5, 20, 100.0, 10, at=4, **{"Entry Count": "4", "Entry Wins": "3",
                                                             "1v1Count": "2", "1v1Wins": "1"}),
        _stat("m2", False, 10, 20, 0, 20, 60.0, 4, at=3),
        _stat("m3", True, 40, 2, 0, 16, 200.0, 30, mode="2v2", at=2),
        _stat("m4", True, 15, 15, 5, 20, None, 6, at=1),
    ]
    form = analysis.recent_form(recent)
    assert form["matches"] == 3
    assert form["results"] == "WLW"
    assert form["win_rate"] == pytest.approx(66.7)
    assert form["kd"] == 1.0  # 45 / 45
    assert form["kr"] == 0.75  # 45 / 60
    assert form["adr"] == 80.0  # mean of 100 and 60; the legacy match has no ADR
    assert form["hs_pct"] == pytest.approx(44.4)  # 20 / 45
    expected = analysis.estimate_rating(0.75, 0.75, 10 / 60, 80.0)
    assert form["rating"] == pytest.approx(round(expected, 2))
    # extended keys only from the matches that carry them: 4 entries in 20 rounds, 3 won
    assert form["entry_rate"] == 0.2 and form["entry_success"] == 0.75
    assert form["clutch_1v1"] == 0.5
    assert form["clutch_1v2"] is None


def test_recent_form_keeps_only_the_last_twenty() -> None:
    recent = [_stat(f"m{i}", i % 2 == 0, 10, 10, 2, 20, 70.0, 5, at=100 - i) for i in range(30)]
    form = analysis.recent_form(recent)
    assert form["matches"] == 20
    assert form["results"] == "WL" * 10


def test_danger_ranking_standardises_within_the_lobby() -> None:
    match = Match.from_api(_raw_match())
    data = _data(match, {1: 1500, 2: 1500})
    # in team 2, player 0 is much stronger and player 4 much weaker than everyone else
    strong, weak = _pid(2, 0), _pid(2, 4)
    data[strong].profile.elo = 2500  # type: ignore[union-attr]
    data[strong].recent = [_stat("x", True, 30, 10, 5, 22, 120.0, 15)]
    data[weak].profile.elo = 600  # type: ignore[union-attr]
    data[weak].recent = [_stat("y", False, 5, 20, 1, 22, 40.0, 1)]
    result = analysis.analyse_match(match, data)
    team1 = result["teams"]["faction1"]
    assert team1["threats"][0] == strong
    assert team1["targets"][0] == weak
    assert len(team1["targets"]) == 2 and weak not in result["teams"]["faction2"]["targets"]
    scores = [p["danger"] for t in result["teams"].values() for p in t["players"]]
    assert math.isclose(sum(scores), 0.0, abs_tol=1e-2)  # z-scores over the lobby sum to zero


def test_one_good_match_does_not_outrank_twenty() -> None:
    """Recent form from one match says little: a 25-8 win does not make the lobby's lowest Elo its
    most dangerous player over one with twenty solid matches and the highest Elo."""
    match = Match.from_api(_raw_match())
    data = _data(match, {1: 1300, 2: 1300})
    average = [_stat(f"a{i}", i % 2 == 0, 16, 16, 4, 22, 75.0, 7, at=100 - i) for i in range(20)]
    for player in data.values():
        player.recent = list(average)
    lucky, solid = _pid(2, 0), _pid(2, 1)
    data[lucky].profile.elo = 1210  # type: ignore[union-attr]
    data[lucky].recent = [_stat("l", True, 25, 8, 3, 21, 130.0, 12)]
    data[solid].profile.elo = 1340  # type: ignore[union-attr]
    data[solid].recent = [_stat(f"s{i}", i % 5 >= 2, 23, 18, 4, 22, 85.0, 10, at=100 - i) for i in range(20)]
    team1 = analysis.analyse_match(match, data)["teams"]["faction1"]
    assert team1["threats"][0] == solid


def test_nobody_is_singled_out_when_the_opponents_are_alike() -> None:
    match = Match.from_api(_raw_match())
    result = analysis.analyse_match(match, _data(match, {1: 1500, 2: 1400}))  # each side's five identical
    assert result["teams"]["faction1"]["threats"] == [] and result["teams"]["faction1"]["targets"] == []
    text = "".join(render.texts(render.render_match_analysis, result)["en"])
    assert "[1] team_1: the opponents are too close to single anyone out" in text
    assert "opponents to watch" not in text


def test_specialists_need_enough_attempts() -> None:
    match = Match.from_api(_raw_match())
    data = _data(match, {1: 1500, 2: 1500})
    one_entry = {"Entry Count": "1", "Entry Wins": "1", "1v1Count": "1", "1v1Wins": "1"}
    many = {"Entry Count": "3", "Entry Wins": "2", "1v1Count": "1", "1v1Wins": "1"}
    data[_pid(1, 0)].recent = [_stat("x", True, 20, 10, 2, 20, 80.0, 8, **one_entry)]  # 1 of 1: 100%
    data[_pid(1, 1)].recent = [_stat(f"y{i}", True, 20, 10, 2, 20, 80.0, 8, at=9 - i, **many) for i in range(3)]
    team = analysis.analyse_match(match, data)["teams"]["faction1"]
    # p11: 9 entries, 6 won (67%), 3 clutches, all won; p10's one of one is not enough
    assert team["specialists"] == {"entry_success": _pid(1, 1), "clutch_1v1": _pid(1, 1)}
    text = "".join(render.texts(render.render_match_analysis, analysis.analyse_match(match, data))["en"])
    assert "best entry: p11 67% · best in 1v1s: p11 100%" in text and "p10 100%" not in text


def test_a_specialist_named_from_lifetime_stats_is_marked_as_such() -> None:
    """The tester's lobby: Letorak's row showed "— — — —" (no recent matches) and below it
    "1v1 won: Letorak 67%", beside a hint that figures are over the last 20 matches. A rate
    taken from lifetime stats says so; one from the recent matches does not."""
    match = Match.from_api(_raw_match())
    life = LifetimeStats.from_api({"lifetime": {"Matches": "800", "1v1 Win Rate": "0.67"}, "segments": []})
    data = _data(match, {1: 1500, 2: 1500})
    data[_pid(1, 0)].lifetime = life  # p10: lifetime stats, no recent matches
    many = {"Entry Count": "3", "Entry Wins": "2"}
    data[_pid(1, 1)].recent = [_stat(f"y{i}", True, 20, 10, 2, 20, 80.0, 8, at=9 - i, **many) for i in range(3)]
    result = analysis.analyse_match(match, data)
    team = result["teams"]["faction1"]
    assert team["specialists"] == {"entry_success": _pid(1, 1), "clutch_1v1": _pid(1, 0)}
    texts = render.texts(render.render_match_analysis, result)
    en, ru = "".join(texts["en"]), "".join(texts["ru"])
    assert "best entry: p11 67% · best in 1v1s: p10 67% (lifetime)" in en
    assert "лучший на открытии: p11 67% · лучший в клатчах 1 на 1: p10 67% (за всё время)" in ru
    assert [p["lifetime_rates"] for p in team["players"][:2]] == [["clutch_1v1"], []]


def test_a_team_with_unknown_players_takes_faceits_team_rating() -> None:
    raw = _raw_match()
    raw["teams"]["faction1"]["stats"] = {"rating": 1620}  # FACEIT's average over all five
    match = Match.from_api(raw)
    data = _data(match, {1: 1500, 2: 1400})
    for i in (3, 4):  # two players whose profiles FACEIT no longer has
        data[_pid(1, i)].profile = None
    result = analysis.analyse_match(match, data)
    assert result["teams"]["faction1"]["avg_elo"] == 1620  # not 1500, the mean of the three known
    assert result["teams"]["faction2"]["avg_elo"] == 1400  # everyone known: their own mean


def test_missing_data_degrades_instead_of_failing() -> None:
    match = Match.from_api(_raw_match())
    result = analysis.analyse_match(match, {})  # no profile, stats or history for anyone
    assert result["teams"]["faction1"]["avg_elo"] is None
    assert result["teams"]["faction1"]["win_probability"] == 0.5
    assert result["probability_source"] == "none"
    # Said as unknown, not as "win 50% · Elo +25 / −25 … Even match"
    text = "".join(render.texts(render.render_match_analysis, result)["en"])
    assert "<b>[1] team_1</b> — avg Elo —\n" in text and "Win chances unknown" in text
    assert "win chance 50%" not in text and "win 50%" not in text and "Elo +25" not in text and "Even match" not in text
    assert all(p["level"] == 7 for p in result["teams"]["faction1"]["players"])  # from the roster


def test_finished_result_and_player_report() -> None:
    raw = _raw_match(status="FINISHED")
    raw["results"] = {"winner": "faction2", "score": {"faction1": 0, "faction2": 1}}
    match = Match.from_api(raw)
    from faceit.models import parse_match_stats

    rounds = parse_match_stats({"rounds": [{"round_stats": {"Map": "de_inferno", "Winner": "f2"}, "teams": [
        {"team_id": "f1", "team_stats": {"Team": "team_1", "Final Score": "9"},
         "players": [{"player_id": _pid(1, 0), "nickname": "p10", "player_stats": {"Kills": "20", "K/D Ratio": "1.1"}}]},
        {"team_id": "f2", "team_stats": {"Team": "team_2", "Final Score": "13"},
         "players": [{"player_id": _pid(2, 0), "nickname": "p20", "player_stats": {"Kills": "25", "K/D Ratio": "1.8"}}]},
    ]}]})
    result = analysis.finished_match_result(match, rounds)
    assert result["winner"] == "faction2"
    assert result["maps"][0]["rounds"] == 22  # no "Rounds": the sum of both final scores
    assert [t["won"] for t in result["maps"][0]["teams"]] == [False, True]  # from round_stats.Winner (a uuid)
    assert result["best_player"] == "p20"

    profile = PlayerProfile(player_id="x", nickname="nick", elo=1440, level=7, has_cs2=True)
    report = analysis.player_report(profile, None, [], [(1.0, 1400), (2.0, 1440)])
    # level 7 spans 1351–1530 (180 points): (1440 - 1351) / 180 = 49.4%, 91 to level 8
    assert report["progress"] == {"level": 7, "low": 1351, "high": 1530, "percent": 49.4, "to_next": 91}
    assert report["elo_seen_change"] == 40
    assert report["chart"]["elo"] == [[1.0, 1400], [2.0, 1440]]


def test_the_best_player_of_a_best_of_three_is_the_best_over_the_whole_match() -> None:
    """Every map's line went into one pool: a player with one great map of three (30/10, then
    5/20 twice: K/D 0.80 over the match) was named best over one at 1.94."""
    from faceit.models import parse_match_stats

    raw = _raw_match(status="FINISHED")
    raw["results"] = {"winner": "faction1", "score": {"faction1": 2, "faction2": 1}}
    match = Match.from_api(raw)

    def played(map_name: str, steady: tuple[int, int], wonder: tuple[int, int]) -> dict[str, Any]:
        def line(pid: str, nick: str, kills: int, deaths: int) -> dict[str, Any]:
            return {"player_id": pid, "nickname": nick, "player_stats": {
                "Kills": str(kills), "Deaths": str(deaths), "K/D Ratio": f"{kills / deaths:.2f}", "ADR": "90"}}
        return {"round_stats": {"Map": map_name, "Rounds": "24"}, "teams": [
            {"team_id": "f1", "team_stats": {"Team": "team_1"}, "players": [line(_pid(1, 0), "Steady", *steady)]},
            {"team_id": "f2", "team_stats": {"Team": "team_2"}, "players": [line(_pid(2, 0), "OneMapWonder", *wonder)]},
        ]}

    rounds = parse_match_stats({"rounds": [played("de_mirage", (20, 12), (30, 10)),
                                           played("de_nuke", (25, 12), (5, 20)),
                                           played("de_inferno", (25, 12), (5, 20))]})
    assert analysis.finished_match_result(match, rounds)["best_player"] == "Steady"
    # One map alone: that map's K/D, as before.
    assert analysis.finished_match_result(match, rounds[:1])["best_player"] == "OneMapWonder"


def test_a_period_that_ended_before_a_later_match_ends_with_the_elo_it_had_then() -> None:
    """A weekly summary run hours late: its matches stop at the week's end, and its Elo ran to now,
    counting a later match's -25 that the next week counts again ("1 match, 1 win, Elo ±0")."""
    since, until, now = 1_000_000.0, 1_000_000.0 + 7 * 86400, 1_000_000.0 + 7 * 86400 + 5 * 3600

    def played(at: float, won: bool) -> PlayerMatchStats:
        return PlayerMatchStats(match_id=f"m{at}", finished_at=at, mode="5v5", won=won, kills=20, deaths=10)

    week = [played(since + 86400, True)]
    later = [played(until + 3600, False)]
    history = [(since - 60, 1500), (since + 86400 + 60, 1525)]  # the snapshot after the week's match
    row = analysis.tracked_player_period("p", "nick", later + week, since, 1500, history, now, until=until)
    assert (row["matches"], row["elo"], row["elo_change"]) == (1, 1525, 25)
    # A match between the last snapshot and the week's end: the Elo then is not known.
    blind = analysis.tracked_player_period("p", "nick", later + week, since, 1500, history[:1], now, until=until)
    assert (blind["matches"], blind["elo"], blind["elo_change"]) == (1, None, None)
    # No match after the week: the Elo now, as before.
    assert analysis.tracked_player_period("p", "nick", week, since, 1525, history, now, until=until)["elo"] == 1525


def test_roster_player_model() -> None:
    assert RosterPlayer("a", "b").level is None


def test_tracked_player_period() -> None:
    now = 1_000_000.0
    since = now - 7 * 86400
    recent = [
        _stat("new1", True, 20, 10, 2, 20, 90.0, 8, at=int(now - 3600)),
        _stat("new2", False, 10, 20, 2, 20, 60.0, 5, at=int(now - 86400)),
        _stat("old", True, 30, 5, 2, 20, 120.0, 15, at=int(since - 10)),
    ]
    history = [(since - 100, 1400), (now - 7200, 1420), (now - 60, 1430)]
    row = analysis.tracked_player_period("p", "nick", recent, since, 1430, history, now)
    assert (row["matches"], row["results"], row["kd"]) == (2, "WL", 1.0)  # 30 / 30, the old match left out
    # The "old" match came after the snapshot before the period: 1400 is not what the player had
    # when the period began; the change runs from the first snapshot inside it, and says so.
    assert (row["elo_start"], row["elo"], row["elo_change"], row["elo_since"]) == (1420, 1430, 10, now - 7200)
    held = [(since - 100_000, 1400), *history[1:]]  # before the old match, and nothing after it until the period
    older = [*recent[:2], _stat("old", True, 30, 5, 2, 20, 120.0, 15, at=int(since - 200_000))]
    row = analysis.tracked_player_period("p", "nick", older, since, 1430, held, now)
    assert (row["elo_start"], row["elo_change"], row["elo_since"]) == (1400, 30, since)
    # The same snapshot, but the matches fetched do not reach back to it: it may be stale
    row = analysis.tracked_player_period("p", "nick", older[:2], since, 1430, held, now, complete_from=since - 50)
    assert (row["elo_start"], row["elo_since"]) == (1420, now - 7200)
    fresh = analysis.tracked_player_period("p", "nick", recent, since, 1430, [(now - 60, 1430)], now)
    assert fresh["elo_change"] is None  # only a snapshot taken just now: unknown, not 0
    months_ago = analysis.tracked_player_period("p", "nick", recent, since, 1900, [(now - 120 * 86400, 1500)], now,
                                                complete_from=now - 30 * 86400)
    assert months_ago["elo_change"] is None  # 4 months of matches unseen: not a weekly change of +400


def test_each_map_of_a_best_of_three_favours_its_own_side() -> None:
    # Team 1 wins 70% on Mirage and 30% on the other two; team 2 50%, 60%, 60%. The note named
    # the first map's side for all three ("picked: Mirage, Inferno, Nuke — favours team_1").
    pool = ["de_mirage", "de_inferno", "de_nuke"]
    match = Match.from_api(_raw_match(pool=pool, pick=pool))
    lifetimes = {1: _lifetime({"Mirage": (100, 70), "Inferno": (100, 30), "Nuke": (100, 30)}),
                 2: _lifetime({"Mirage": (100, 50), "Inferno": (100, 60), "Nuke": (100, 60)})}
    maps = analysis.analyse_match(match, _data(match, {1: 1500, 2: 1500}, lifetimes))["maps"]
    assert maps["picked"] == pool
    assert maps["picked_favours"] == ["faction1", "faction2", "faction2"]


def test_a_trend_needs_older_matches_to_compare_with() -> None:
    games = [_stat(f"m{i}", i % 2 == 0, 20, 10, 2, 20, 80.0, 8, at=1000 - i) for i in range(13)]
    assert analysis.form_trend(games[:8])["direction"] == "unknown"
    assert analysis.form_trend(games)["direction"] == "unknown"  # 3 older matches
    assert analysis.form_trend(games + [_stat(f"o{i}", False, 5, 20, 2, 20, 50.0, 1, at=900 - i)
                                        for i in range(2)])["direction"] == "up"


def test_a_period_is_compared_only_with_a_whole_period_before() -> None:
    now = 1_000_000.0
    since, before = now - 7 * 86400, now - 14 * 86400
    recent = [_stat("this", True, 20, 10, 2, 20, 90.0, 8, at=int(now - 3600)),
              _stat("then1", False, 10, 20, 2, 20, 60.0, 5, at=int(since - 3600)),
              _stat("then2", True, 30, 10, 2, 20, 60.0, 5, at=int(before + 3600)),
              _stat("older", True, 30, 5, 2, 20, 60.0, 5, at=int(before - 3600))]
    period = analysis.tracked_player_period("p", "nick", recent, since, 1500, [], now, 0.0, before)
    assert period["matches"] == 1
    assert period["previous"] == {"matches": 2, "win_rate": 50.0, "kd": 1.33}  # 40 kills, 30 deaths
    # Matches read back only to inside the week before: no comparison with part of it.
    partial = analysis.tracked_player_period("p", "nick", recent, since, 1500, [], now, before + 60, before)
    assert partial["previous"] is None
    assert analysis.tracked_player_period("p", "nick", recent, since, 1500, [], now)["previous"] is None


def test_a_best_of_three_across_a_periods_start_counts_once_in_the_period_it_ended_in() -> None:
    now = 1_000_000.0
    since = now - 7 * 86400
    # FACEIT's lines of one best of three, newest first: a map won before the period began, then
    # a loss and a win inside it. The match ended inside it: 2:1, a win, this period's only match.
    recent = [_stat("bo3", True, 20, 10, 2, 20, 90.0, 8, at=int(since + 2000)),
              _stat("bo3", False, 10, 20, 2, 20, 60.0, 5, at=int(since + 1000)),
              _stat("bo3", True, 20, 10, 2, 20, 90.0, 8, at=int(since - 1000))]
    row = analysis.tracked_player_period("p", "nick", recent, since, 1430, [], now, 0.0, since - 7 * 86400)
    assert (row["matches"], row["results"]) == (1, "W")
    assert row["previous"]["matches"] == 0  # not also a 1:0 win of the week before

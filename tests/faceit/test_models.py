"""Tolerant parsing: strings to floats, missing and deprecated fields, junk types, map names."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from faceit.gamedata import level_for_elo, level_progress, map_id, map_label
from faceit.models import (
    LifetimeStats,
    Match,
    PlayerMatchStats,
    PlayerProfile,
    decided,
    parse_match_stats,
    parse_recent,
    to_float,
    without_cut_series,
)


def test_to_float() -> None:
    assert to_float("1.12") == 1.12
    assert to_float(" 55 %") == 55.0
    assert to_float(3) == 3.0
    assert to_float("") is None and to_float("n/a") is None and to_float(None) is None
    assert to_float(True) is None and to_float("nan") is None and to_float("inf") is None
    assert to_float([1]) is None


def test_profile_without_deprecated_fields_or_cs2() -> None:
    profile = PlayerProfile.from_api({"player_id": "p", "nickname": "n", "faceit_url": "https://www.faceit.com/{lang}/players/n",
                                      "games": {"cs2": {"faceit_elo": 1450, "skill_level": 7, "region": "EU"}}})
    assert (profile.elo, profile.level, profile.region) == (1450, 7, "EU")
    assert profile.faceit_url == "https://www.faceit.com/en/players/n"
    bare = PlayerProfile.from_api({"player_id": "p", "nickname": "n", "games": {"csgo": {"faceit_elo": 3000}}})
    assert bare.elo is None and not bare.has_cs2
    junk = PlayerProfile.from_api({"player_id": 5, "games": "oops", "unknown": {"x": 1}})
    assert junk.player_id == "5" and junk.elo is None and junk.nickname == "?"


def test_lifetime_reads_averages_not_sums_and_keeps_5v5_maps() -> None:
    raw = {"player_id": "p", "lifetime": {"Matches": "100", "K/D Ratio": "123.4", "Average K/D Ratio": "1.23",
                                          "Win Rate %": "52", "Recent Results": ["1", "0", "x", "1"],
                                          "Entry Rate": "0.14", "Average Headshots %": "47"},
           "segments": [{"type": "Map", "mode": "5v5", "label": "Mirage", "stats": {"Matches": "40", "Wins": "22"}},
                        {"type": "Map", "mode": "Wingman", "label": "Shortdust", "stats": {"Matches": "9"}},
                        {"type": "Map", "mode": "5v5", "label": "Dust II", "stats": {"Matches": "x"}}, "junk"]}
    life = LifetimeStats.from_api(raw)
    assert life.kd == 1.23 and life.win_rate == 52 and life.hs_pct == 47 and life.entry_rate == 0.14
    assert life.recent_results == [1, 0, 1]
    assert [s.map for s in life.maps] == ["de_mirage", "de_dust2"]
    assert life.segment("de_dust2").matches is None  # type: ignore[union-attr]
    assert life.adr is None  # missing is unknown, not zero


def test_recent_stats_convert_milliseconds_and_sort() -> None:
    items = {"items": [{"stats": {"Match Id": "a", "Match Finished At": 1_700_000_000_000, "Score": "13 / 9"}},
                       {"stats": {"Match Id": "b", "Match Finished At": 1_700_000_500_000, "Result": "1"}},
                       {"stats": {"no": "id"}}, None]}
    recent = parse_recent(items)
    assert [m.match_id for m in recent] == ["b", "a"]
    assert recent[0].finished_at == 1_700_000_500 and recent[0].won is True
    assert recent[1].rounds == 22 and recent[1].won is None


def _line(match: str, at: int, won: bool | None, best_of: int = 1, map_round: int | None = 1) -> PlayerMatchStats:
    stats = {"Match Id": match, "Match Finished At": at * 1000, "Best Of": str(best_of),
             "Result": {True: "1", False: "0", None: ""}[won]}
    if map_round is not None:
        stats["Match Round"] = str(map_round)
    line = PlayerMatchStats.from_api({"stats": stats})
    assert line is not None and line.best_of == best_of and line.match_round == map_round
    return line


def test_a_page_that_cuts_a_best_of_three_leaves_it_out() -> None:
    """A page of 30 lines ends inside a best of three the player won 2-1: its second and third
    maps are on the page, the first on the next. Joined from those two it would count as won
    2-0, or, with the first map won and the second lost, as a 1-1 draw; it is left out. A series
    whose first map is on the page stays, and so does a best of one."""
    newer = [_line(f"m{i}", 1000 - i, True) for i in range(28)]
    won_two = [*newer, _line("bo3", 900, True, 3, 3), _line("bo3", 899, True, 3, 2)]  # map 1, lost, is older
    drawn = [*newer, _line("bo3", 900, False, 3, 3), _line("bo3", 899, True, 3, 2)]
    for page in (won_two, drawn):
        assert [m.match_id for m in without_cut_series(page)] == [m.match_id for m in newer]
    whole = [*newer, _line("bo3", 900, True, 3, 2), _line("bo3", 899, True, 3, 1)]
    assert without_cut_series(whole) == whole
    five = [*newer[:26], *(_line("bo5", 900 - r, True, 5, 5 - r) for r in range(4))]  # maps 2-5 of a best of five
    assert [m.match_id for m in without_cut_series(five)] == [m.match_id for m in newer[:26]]
    single = [*newer, _line("m28", 901, False), _line("m29", 900, None)]
    assert without_cut_series(single) == single


def test_a_page_that_cuts_a_series_after_its_first_maps_leaves_it_out() -> None:
    """The maps of a best of three can share one finish time, and FACEIT may list them map 1
    first: a page then ends with maps 1 and 2 (1-1) and map 3 is on the next. Round 1 is there,
    but the series is not decided by them: it is left out. Maps 1 and 2 of a 2-0 are whole, and
    so is a single map whose match says "Best Of" 2 (seen on single-map matches)."""
    newer = [_line(f"m{i}", 1000 - i, True) for i in range(28)]
    one_all = [*newer, _line("bo3", 900, True, 3, 1), _line("bo3", 900, False, 3, 2)]
    assert [m.match_id for m in without_cut_series(one_all)] == [m.match_id for m in newer]
    two_nil = [*newer, _line("bo3", 900, True, 3, 1), _line("bo3", 900, True, 3, 2)]
    assert without_cut_series(two_nil) == two_nil
    first_three = [*newer, _line("bo5", 900, True, 5, 3), _line("bo5", 899, True, 5, 1),
           _line("bo5", 898, True, 5, 2)]
    assert without_cut_series(first_three) == first_three  # rounds 1-3 at 3-0: whole
    holes = [*newer, _line("bo5", 900, True, 5, 4), _line("bo5", 899, True, 5, 2), _line("bo5", 898, True, 5, 1)]
    assert [m.match_id for m in without_cut_series(holes)] == [m.match_id for m in newer]  # map 3 missing
    single = [*newer, _line("bo1", 900, False, 2, 1)]
    assert without_cut_series(single) == single


def test_the_maps_of_one_finish_time_are_listed_last_map_first() -> None:
    same = {"Match Id": "bo3", "Match Finished At": 1_700_000_000_000, "Best Of": "3"}
    items = {"items": [{"stats": {**same, "Match Round": str(r), "Result": "1"}} for r in (1, 2)]}
    assert [m.match_round for m in parse_recent(items)] == [2, 1]


def test_lines_that_do_not_say_their_map_are_judged_by_their_result() -> None:
    newer = [_line(f"m{i}", 1000 - i, True, map_round=None) for i in range(28)]
    undecided = [*newer, _line("bo3", 900, True, 3, None), _line("bo3", 899, False, 3, None)]
    assert not decided(undecided[-2:])
    assert [m.match_id for m in without_cut_series(undecided)] == [m.match_id for m in newer]
    two_nil = [*newer, _line("bo3", 900, True, 3, None), _line("bo3", 899, True, 3, None)]
    assert decided(two_nil[-2:]) and without_cut_series(two_nil) == two_nil
    assert not decided([_line("bo3", 900, None, 3, None)])
    assert decided([_line("bo3", 900, True, 3, None), _line("bo3", 899, False, 3, None),
                    _line("bo3", 898, None, 3, None)])  # all three maps: whatever their results say


def test_a_row_without_its_finish_time_takes_the_rows_own_time() -> None:
    """Without ``Match Finished At`` a match would never be notified (monitoring looks for matches
    finished after the last one seen): the row's ISO ``Updated At`` or ``Created At`` stands in."""
    created = PlayerMatchStats.from_api({"stats": {"Match Id": "a", "Created At": "2023-11-14T22:13:20Z",
                                                   "Updated At": "2023-11-15T08:00:00Z"}})  # reprocessed later
    updated = PlayerMatchStats.from_api({"stats": {"Match Id": "b", "Updated At": "2023-11-14T22:13:20.000Z"}})
    junk = PlayerMatchStats.from_api({"stats": {"Match Id": "c", "Updated At": "yesterday"}})
    assert updated is not None and updated.finished_at == 1_700_000_000
    assert created is not None and created.finished_at == 1_700_000_000
    assert junk is not None and junk.finished_at is None
    exact = PlayerMatchStats.from_api({"stats": {"Match Id": "d", "Match Finished At": 1_700_000_500_000,
                                                 "Updated At": "2023-11-14T22:13:20Z"}})
    assert exact is not None and exact.finished_at == 1_700_000_500  # the real one wins


def test_match_accepts_partial_voting_and_status_case() -> None:
    match = Match.from_api({"match_id": "1-x", "status": "voting", "teams": {"faction1": {"roster": [
        {"player_id": "a", "nickname": "A", "game_skill_level": 5}]}},
        "voting": {"map": {"entities": [{"game_map_id": "de_nuke"}, {"name": "Mirage"}]}}})
    assert match.status == "VOTING" and match.map_pool == ["de_nuke", "de_mirage"] and match.map_picks == []
    assert match.teams["faction2"].roster == [] and match.teams["faction1"].roster[0].level == 5
    assert Match.from_api(None).status == "UNKNOWN"
    assert parse_match_stats({"rounds": "nope"}) == []


def test_map_names_and_levels() -> None:
    assert map_id("Mirage") == map_id("de_mirage") == "de_mirage"
    assert map_id("Dust2") == map_id("Dust II") == "de_dust2"
    assert map_id("") is None and map_id(None) is None
    assert map_label("de_ancient") == "Ancient" and map_label("de_new_map") == "New Map"
    assert [level_for_elo(e) for e in (100, 500, 501, 750, 751, 1050, 1051, 1530, 1531, 2000, 2001, 4000)] == [
        1, 1, 2, 2, 3, 4, 5, 7, 8, 9, 10, 10]
    assert level_progress(2500) == {"level": 10, "low": 2001, "high": None, "percent": 100.0, "to_next": None}


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=8) | st.integers(),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children,
                                                                                      max_size=5),
                    max_leaves=30))
def test_models_never_raise_on_junk(raw: object) -> None:
    PlayerProfile.from_api(raw)
    LifetimeStats.from_api(raw)
    Match.from_api(raw)
    parse_recent(raw)
    parse_match_stats(raw)
    PlayerMatchStats.from_api(raw)

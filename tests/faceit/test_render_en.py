"""The FACEIT layer's texts as an English-speaking player reads them (a review's findings), the
Russian kept in step: labels that say what a figure is, no placeholder passed off as a figure,
one spelling and one verb form throughout, dates in the reader's own time zone."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.views import progress_text
from faceit import analysis, render, services
from faceit.errors import BadInputError
from faceit.i18n import ERROR_TEXTS, STAGE_TEXTS, stage_text, user_message
from faceit.links import parse_match_ref, parse_player_ref
from faceit.models import Match, PlayerMatchStats, PlayerProfile, series_stats
from tests.faceit.conftest import ProgressLog
from tests.faceit.test_render_phone import MATCH_ID, NICKS, POOL, _lobby
from tests.support.faceit_sandbox import FaceitSandbox

# Analysis -----------------------------------------------------------------------------------------


def _bare_match() -> Match:
    """A ready 5v5 room with a map vote and nothing else: the lobby FACEIT told nothing of."""
    teams = {f"faction{n}": {"faction_id": f"f{n}", "name": f"team_{n}", "roster": [
        {"player_id": f"{n}000000{i}-0000-4000-8000-000000000000", "nickname": NICKS[n][i]} for i in range(5)]}
        for n in (1, 2)}
    return Match.from_api({"match_id": MATCH_ID, "status": "READY", "teams": teams,
                           "voting": {"map": {"entities": [{"name": m[3:].title(), "game_map_id": m} for m in POOL]}}})


def _danger_lines(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if "⚠️" in line)
    return lines[start + 1:start + 3]


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_a_lobby_without_data_shows_no_rates_and_names_no_one(lang: str) -> None:
    """Every map row read "Mirage 50% 50% 0" (the prior of a side without a game, shown as its
    rate), and the danger block called ten players nobody knew anything of "too close to single
    anyone out". Now the rows say "—" and the block says there is not enough data."""
    data = analysis.analyse_match(_bare_match(), {})
    text = render.render_match_analysis(data, lang)
    table = re.search(r"<pre>(?:Map|Карта) .*?</pre>", text, re.S)
    assert table is not None
    rows = table.group(0).splitlines()[1:]
    assert len(rows) == len(POOL)
    for row in rows:
        assert "50%" not in row and re.search(r"—\s+—\s+—", row), row
    danger = _danger_lines(text)
    enough = "not enough data on the opponents" if lang == "en" else "о соперниках мало данных"
    assert danger == [f"[1] team_1: {enough}", f"[2] team_2: {enough}"]
    assert not any(nick in line for line in danger for team in NICKS.values() for nick in team)
    assert data["maps"]["advice"] == {"faction1": {"pick": None, "ban": []}, "faction2": {"pick": None, "ban": []}}


def test_a_player_without_figures_is_never_named_a_threat_or_the_weakest() -> None:
    """A player without Elo or recent matches scored the lobby's average: beside better-known
    team mates they were named "weakest" on nothing. One side with no data at all is said so."""
    lobby = _lobby()  # ten players with Elo and twenty matches each
    match = _bare_match()
    data: dict[str, analysis.PlayerData] = {}
    # Side 2: three known players, two FACEIT told nothing of; side 1: nobody known.
    for i, player in enumerate(match.teams["faction2"].roster):
        if i < 3:
            profile = PlayerProfile(player_id=player.player_id, nickname=player.nickname, elo=1200 + 200 * i,
                                    level=5, has_cs2=True)
            data[player.player_id] = analysis.PlayerData(player, profile)
    result = analysis.analyse_match(match, data)
    unknown = {match.teams["faction2"].roster[i].player_id for i in (3, 4)}
    named = set(result["teams"]["faction1"]["threats"]) | set(result["teams"]["faction1"]["targets"])
    assert named and not named & unknown
    assert result["teams"]["faction2"]["opponents_unknown"] is True
    text = render.render_match_analysis(result, "en")
    assert _danger_lines(text)[1] == "[2] team_2: not enough data on the opponents"
    assert lobby["teams"]["faction1"].get("opponents_unknown") is False  # a lobby with data: as before


def test_one_known_opponent_is_not_enough_data_not_a_close_call() -> None:
    """With one opponent known there is nobody to compare them with: the line said the opponents
    were "too close to single anyone out", as if their figures had been compared."""
    match = _bare_match()
    player = match.teams["faction2"].roster[0]
    profile = PlayerProfile(player_id=player.player_id, nickname=player.nickname, elo=1500, level=6, has_cs2=True)
    result = analysis.analyse_match(match, {player.player_id: analysis.PlayerData(player, profile)})
    # Side 1's opponents are side 2, one of them known.
    assert result["teams"]["faction1"]["threats"] == [] and result["teams"]["faction1"]["opponents_unknown"]
    assert _danger_lines(render.render_match_analysis(result, "en"))[0] == "[1] team_1: not enough data on the opponents"


def test_the_win_chance_is_labelled_as_a_chance_not_a_win_rate() -> None:
    """"win 45%" beside "avg Elo" read as a win rate."""
    lobby = _lobby(p1=0.425)
    text = render.render_match_analysis(lobby, "en")
    assert "· win chance 42% ·" in text and "· win chance 58% ·" in text and "· win 42%" not in text
    bulk = {"total": 1, "analysed": 1, "failed": 0, "matches": [
        {"ref": MATCH_ID, "match_id": MATCH_ID, "outcome": "analysed",
         "summary": services.bulk_summary("pre_game", lobby)}]}
    assert "· win chance 42% / 58%" in render.render_bulk(bulk, "en")


@pytest.mark.parametrize(("lang", "threat", "target"), [
    ("en", "opponents to watch: <b>", "their weakest: "),
    ("ru", "опасны у соперника: <b>", "слабые звенья соперника: "),
])
def test_both_danger_labels_end_with_a_colon(lang: str, threat: str, target: str) -> None:
    """"opponents to watch <b>A, B</b> · their weakest: C, D": one label had a colon, one not."""
    line = next(line for line in render.render_match_analysis(_lobby(), lang).splitlines()
                if line.startswith("[1] team_move: "))
    assert threat in line and target in line, line


def test_the_clutch_labels_say_best_in_the_analysis_and_won_in_the_report() -> None:
    """"1v1 won: X 65%" in the analysis named the side's best as if counting wins."""
    analysed = render.render_match_analysis(_lobby(), "en")
    assert re.search(r"best in 1v1s: \S+ \d+%", analysed) and "1v1 won" not in analysed
    assert re.search(r"лучший в клатчах 1 на 1: \S+ \d+%", render.render_match_analysis(_lobby(), "ru"))
    report = {"nickname": "nick", "level": 5, "elo": 1051, "form": {"matches": 0},
              "lifetime": {"matches": 900, "win_rate": 51, "kd": 1.1, "hs_pct": 48, "adr": 80.0,
                           "current_streak": 1, "longest_streak": 9, "entry_success": 0.5, "clutch_1v1": 0.65}}
    assert "· 1v1 clutches won 65%" in render.render_player_report(report, "en")
    assert "· выигранные клатчи 1 на 1 65%" in render.render_player_report(report, "ru")


# Summary and notification -------------------------------------------------------------------------


def _summary(player: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    return {"user_id": 1, "report_type": "weekly", "since": 1_000_000.0, "analyses": {"bulk": 2}, "players": [
        {"nickname": "nick", "matches": 4, "results": "WWWW", "elo": None, **player, "previous": previous}]}


def test_a_summary_compares_win_rates_in_percentage_points() -> None:
    """"WR +100, K/D +0.70": an abbreviation and no unit."""
    data = _summary({"win_rate": 100.0, "kd": 1.7}, {"matches": 3, "win_rate": 0.0, "kd": 1.0})
    assert "vs the week before (3 matches): win rate +100 pp, K/D +0.70" in render.render_analytics(data, "en")
    assert "к прошлой неделе (3 матча): винрейт +100 п.п., K/D +0,70" in render.render_analytics(data, "ru")


def test_a_difference_that_rounds_to_nothing_reads_0() -> None:
    """A win rate 0.4 points up printed "+0", a K/D 0.004 down "−0.00"."""
    data = _summary({"win_rate": 50.4, "kd": 1.096}, {"matches": 3, "win_rate": 50.0, "kd": 1.1})
    assert "(3 matches): win rate 0 pp, K/D 0" in render.render_analytics(data, "en")


def test_a_summary_counts_bulk_analyses_by_the_jobs_name() -> None:
    """The job is "Bulk analysis"; the summary counted "match lists"."""
    assert "(bulk analyses: 2)" in render.render_analytics(_summary({"win_rate": 50, "kd": 1}, {}), "en")


def test_a_summary_dates_an_elo_change_in_the_readers_zone() -> None:
    """"Elo 1500 (+25 since Dec 6)" for a snapshot at 22:30 UTC on the 6th: the 7th in Moscow."""
    at = datetime(2024, 12, 6, 22, 30, tzinfo=UTC).timestamp()
    data = {"user_id": 1, "report_type": "weekly", "since": at - 3 * 86400, "analyses": {}, "players": [
        {"nickname": "nick", "matches": 0, "elo": 1500, "elo_change": 25, "elo_since": at, "previous": None}]}
    assert "Elo 1500 (+25 since Dec 6)" in render.render_analytics(data, "en")  # UTC without a zone
    assert "Elo 1500 (+25 since Dec 7)" in render.render_analytics(data, "en", ZoneInfo("Europe/Moscow"))
    assert "Elo 1500 (+25 с 07.12)" in render.render_analytics(data, "ru", ZoneInfo("Europe/Moscow"))


def _note(*maps: tuple[str, bool | None]) -> dict[str, Any]:
    lines = [PlayerMatchStats.from_api({"stats": {"Match Id": "1-x", "Score": score, "Map": "de_inferno",
                                                  **({} if won is None else {"Result": "1" if won else "0"})}})
             for score, won in maps]
    assert all(lines)
    stat = series_stats(lines)  # type: ignore[arg-type]
    return analysis.match_notification("p", "nick", stat, 1500, None, maps=lines)  # type: ignore[arg-type]


@pytest.mark.parametrize(("maps", "en", "ru"), [
    ((("13 / 9", True), ("9 / 13", False)), "finished a match: <b>Draw</b> 1:1", "матч завершён: <b>Ничья</b> 1:1"),
    ((("13 / 9", None),), "finished a match: <b>Result unknown</b> 13:9",
     "матч завершён: <b>Результат неизвестен</b> 13:9"),
])
def test_a_finished_match_without_a_winner_says_draw_or_unknown(maps, en: str, ru: str) -> None:
    """"nick finished a match: ?" said nothing."""
    note = _note(*maps)
    assert en in render.render_notification(note, "en") and "<b>?</b>" not in render.render_notification(note, "en")
    assert ru in render.render_notification(note, "ru")


# Words -----------------------------------------------------------------------------------------------


def test_every_progress_stage_is_a_verb_phrase_and_players_still_read_6_of_10() -> None:
    """"loading the match", then "players", "maps", "statistics", "chart": nouns among verbs."""
    expected = {"match": "loading the match", "players": "loading players", "maps": "reading the maps",
                "matches": "loading matches", "result": "loading the result", "profile": "loading the profile",
                "stats": "loading statistics", "chart": "drawing the chart", "subscriptions": "checking subscriptions"}
    for stage, words in expected.items():
        assert stage_text(stage, "en") == words
        assert STAGE_TEXTS[stage]["ru"]
    progress = progress_text("j1", "match_analysis", {"stage": "players", "done": 6, "total": 10}, "en")
    assert "loading players 6/10" in progress, progress


class _FinishedClient:
    """A client whose room is already played: its match, and no round stats."""

    async def get_match(self, match_id: str, refresh: bool = False) -> Match:
        return Match.from_api({"match_id": match_id, "status": "FINISHED", "results": {"winner": "faction1"},
                               "teams": {f"faction{n}": {"faction_id": f"f{n}", "name": f"t{n}", "roster": [
                                   {"player_id": f"p{n}", "nickname": f"n{n}"}]} for n in (1, 2)}})

    async def get_match_stats(self, match_id: str) -> list[Any]:
        return []


async def test_a_finished_room_loads_its_result_not_matches() -> None:
    """A finished room showed "matches" while its one result loaded."""
    progress = ProgressLog()
    ctx: Any = type("Ctx", (), {"client": _FinishedClient()})()
    state, _ = await services._analyse_one(ctx, parse_match_ref(MATCH_ID), progress)
    assert state == "finished"
    assert [call[1] for call in progress.calls] == ["result"]


@pytest.mark.parametrize("typed", ['""', "()", "\u200b", "« »", "[\u200d]"])
def test_an_empty_player_reference_asks_for_a_nickname_not_a_match(typed: str) -> None:
    """/player "" and /subscribe () were answered "Send a FACEIT match room link or a match id"."""
    with pytest.raises(BadInputError) as caught:
        parse_player_ref(typed)
    assert caught.value.key == "empty_player"
    assert user_message(caught.value, "en") == "Send a FACEIT nickname or profile link."
    assert user_message(caught.value, "ru") == "Пришлите никнейм FACEIT или ссылку на профиль."
    with pytest.raises(BadInputError) as match:
        parse_match_ref(typed)
    assert match.value.key == "empty_input"  # a match reference still asks for a match
    assert ERROR_TEXTS["empty_player"]["en"] != ERROR_TEXTS["empty_input"]["en"]


# The summary's zone, end to end -------------------------------------------------------------------


async def test_a_users_summary_says_its_dates_in_the_zone_their_actor_reads(faceit_env: FaceitSandbox) -> None:
    """The weekly summary's "+25 since Dec 7" was the UTC day: the actor now reads the zone the
    user chose with /tz (where the bot keeps it) and the summary says its dates in it."""
    from actors.analytics_report import user_zone
    from bot.keys import BotKeys
    from faceit import store
    from faceit.context import get_faceit_context

    ctx = await get_faceit_context()
    await ctx.redis.hset(BotKeys(ctx.settings.redis_key_prefix).user_timezones(), "41", "Asia/Tokyo")
    assert await user_zone(41) == ZoneInfo("Asia/Tokyo")
    assert await user_zone(42) is UTC  # no zone chosen
    player = faceit_env.world()["players"][7]
    player_id = player["player_id"]
    await store.subscribe(41, player_id, player["nickname"])
    day = datetime.now(UTC).replace(hour=20, minute=30, second=0, microsecond=0) - timedelta(days=3)
    await ctx.store.record_elo(player_id, 1500, day.timestamp())  # 05:30 the next day in Tokyo
    report = await services.build_analytics_report(41, "weekly", ProgressLog(), zone_of_user=user_zone)
    (tracked,) = report["data"]["players"]
    assert tracked["elo_since"] == day.timestamp()
    tokyo = render.day_label(day.timestamp(), "en", ZoneInfo("Asia/Tokyo"))
    assert tokyo != render.day_label(day.timestamp(), "en")
    assert f"since {tokyo})" in report["texts"]["en"][0]
    assert report["data"]["time_zone"] == "Asia/Tokyo"


def test_every_signed_figure_that_rounds_to_nothing_reads_0() -> None:
    """The rule lives in ``fmt_signed``, for every caller: the player report's trend line printed
    "rating +0.00" and "ADR −0.0" for a move smaller than its last digit."""
    from faceit.htmltext import fmt_signed

    assert fmt_signed(0.004, "en", 2) == "0" and fmt_signed(-0.04, "ru", 1) == "0"
    assert fmt_signed(0.006, "en", 2) == "+0.01" and fmt_signed(-0.05, "ru", 1) == "−0,1"
    assert fmt_signed(0, "en") == "0" and fmt_signed(None, "en") == "—"

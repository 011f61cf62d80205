"""The FACEIT layer's texts as a Russian speaker reads them (a review's findings), with the English
kept in step: labels that agree with how many names follow, FACEIT's room statuses in words, the
summary's kinds in one order, no English in Russian tables and lines, stages as verbs, and the
Elo chart's dates written as the report beside it writes them."""

from __future__ import annotations

import re
from typing import Any

import pytest

from faceit import charts, render
from faceit.i18n import STAGE_TEXTS, stage_text
from tests.faceit.test_render_phone import MATCH_ID, _blocks, _lobby, _report, _visible


def _analysis(threats: list[str], targets: list[str]) -> dict[str, Any]:
    """A match analysis whose first side is told ``threats`` and ``targets`` (names of the other)."""
    players = [{"player_id": name, "nickname": name, "elo": 1500, "level": 8, "danger": 0.0,
                "form": {"kd": 1.1, "adr": 80.0, "rating": 1.05, "results": "WLWLW", "win_rate": 60.0}}
               for name in ("Ace", "Bob", "Cid", "Dan")]
    team = {"name": "team", "players": players, "avg_elo": 1500, "win_probability": 0.5,
            "elo_change": {"win": 25, "loss": -25}, "threats": threats, "targets": targets}
    return {"match_id": "1-x", "status": "READY", "probability_source": "elo", "favourite": None,
            "teams": {"faction1": team, "faction2": team},
            "maps": {"maps": [], "picked": ["de_mirage"], "picked_favours": [None], "advice": {},
                     "pool_source": "veto"}}


@pytest.mark.parametrize(("threats", "targets", "ru", "en"), [
    (["Ace"], ["Dan"], "опасен у соперника: <b>Ace</b> · слабое звено соперника: Dan",
     "opponent to watch: <b>Ace</b> · their weakest: Dan"),
    (["Ace", "Bob"], ["Dan", "Cid"], "опасны у соперника: <b>Ace, Bob</b> · слабые звенья соперника: Dan, Cid",
     "opponents to watch: <b>Ace, Bob</b> · their weakest: Dan, Cid"),
], ids=["one", "two"])
def test_the_danger_labels_agree_with_how_many_names_follow(threats: list[str], targets: list[str], ru: str,
                                                            en: str) -> None:
    """"слабое звено соперника: A, B" named two players as one link; in a 2v2 "опасны у
    соперника X" named one as several."""
    data = _analysis(threats, targets)
    assert f"[1] team: {ru}" in render.render_match_analysis(data, "ru")
    assert f"[1] team: {en}" in render.render_match_analysis(data, "en")


def test_a_real_5v5_names_two_of_each_with_plural_labels() -> None:
    ru = render.render_match_analysis(_lobby(), "ru")
    line = next(line for line in ru.splitlines() if line.startswith("[1] team_move: "))
    assert "опасны у соперника: <b>" in line and "· слабые звенья соперника: " in line, line
    assert line.rsplit(": ", 1)[1].count(", ") == 1  # two names after the plural


@pytest.mark.parametrize(("code", "en", "ru"), [
    ("CAPTAIN_PICK", "captains picking players", "капитаны выбирают игроков"),
    ("PAUSED", "paused", "пауза"),
    ("MANUAL_RESULT", "result entered manually", "результат вводится вручную"),
    ("SCHEDULED", "scheduled", "запланирован"),
], ids=["CAPTAIN_PICK", "PAUSED", "MANUAL_RESULT", "SCHEDULED"])
def test_every_room_status_faceit_sends_reads_in_words(code: str, en: str, ru: str) -> None:
    """CAPTAIN_PICK, PAUSED, MANUAL_RESULT and SCHEDULED were shown as FACEIT's raw codes."""
    data = {**_analysis(["Ace"], ["Dan"]), "status": code}
    assert f"status: {en}\n" in render.render_match_analysis(data, "en")
    assert f"статус: {ru}\n" in render.render_match_analysis(data, "ru")
    unknown = {**data, "status": "NEW_STATE"}  # a code FACEIT adds later: still shown, as written
    assert "статус: NEW_STATE\n" in render.render_match_analysis(unknown, "ru")


def test_the_summary_names_each_kind_by_a_noun_in_one_order() -> None:
    """"Получено анализов: 24 (пакетных: 2, анализов матчей: 21, отчётов по игрокам: 1)": the
    order was alphabetical by code, "анализов" came twice and "пакетных" had no noun."""
    data = {"report_type": "weekly", "user_id": 1, "analyses": {"bulk": 2, "player": 1, "match": 21}, "players": []}
    ru = render.render_analytics(data, "ru")
    # ("матчи", not "разборы матчей": one word, "анализ", for what /help and the job lines call it)
    assert "Получено анализов: <b>24</b> (матчи: 21, отчёты по игрокам: 1, списки матчей: 2)" in ru
    assert ru.count("анализ") == 1
    assert ("Analyses you received: <b>24</b> (match analyses: 21, player reports: 1, bulk analyses: 2)"
            in render.render_analytics(data, "en"))


def test_the_russian_report_map_table_has_a_russian_header_and_fits_a_phone() -> None:
    """The Russian player report's map table was headed "WR"."""
    report = _report("WLWLW")
    report["maps"] = [{"label": "Dust2", "matches": 1234, "win_rate": 100.0, "kd": 1.23, "adr": 104.0},
                      {"label": "Very Long Map Name", "matches": 7, "win_rate": 42.9, "kd": 0.98, "adr": 75.0}]
    for lang, word in (("ru", "Побед"), ("en", "WR")):
        table = _blocks(render.render_player_report(report, lang))[-1]
        head = table.splitlines()[0]
        assert head.split()[2] == word, head
        assert all(len(line) <= render.PHONE_WIDTH for line in table.splitlines()), table
    assert "WR" not in _blocks(render.render_player_report(report, "ru"))[-1]


def test_a_bulk_line_has_no_english_between_the_teams_in_russian() -> None:
    """"team_move vs team_ezvexmo" in a Russian /bulk answer."""
    from faceit import services

    summary = services.bulk_summary("pre_game", _lobby(p1=0.425, pick=["de_nuke"]))
    bulk = {"total": 1, "analysed": 1, "failed": 0,
            "matches": [{"ref": MATCH_ID, "match_id": MATCH_ID, "outcome": "analysed", "summary": summary}]}
    ru = _visible(render.render_bulk(bulk, "ru")).splitlines()[1]
    assert ru.startswith("• 1-28caa46d…: team_move — team_ezvexmo · ср. Elo "), ru
    assert " vs " not in ru
    assert "team_move vs team_ezvexmo" in render.render_bulk(bulk, "en")


def test_the_trend_and_the_elo_lines_read_as_russian() -> None:
    """"Динамика (10 последних к 10 предыдущим)" and "Elo с первого наблюдения" were calques."""
    form = {"matches": 20, "results": "W" * 20, "win_rate": 50.0, "kd": 1.0, "adr": 80.0, "hs_pct": 50.0,
            "kr": 0.7, "rating": 1.0}
    data = {"nickname": "nick", "level": 7, "elo": 1400, "form": form, "elo_seen_change": 60,
            "trend": {"direction": "up", "last10": {"matches": 10}, "previous10": {"matches": 6},
                      "delta": {"rating": 0.12, "kd": 0.2, "adr": 5.0}}}
    ru = render.render_player_report(data, "ru")
    assert "📈 Динамика: последние 10 против 6 предыдущих — <b>на подъёме</b> (рейтинг +0,12, " in ru
    assert "Elo с начала отслеживания: +60\n" in ru
    en = render.render_player_report(data, "en")
    assert "📈 Trend (last 10 vs previous 6): <b>improving</b> (rating +0.12, " in en
    assert "Elo since we first saw them: +60\n" in en


def test_russian_progress_stages_are_what_the_bot_is_doing() -> None:
    """Russian stages mixed nouns ("профиль", "игроки 6/10") with verbs ("загружаю матч")."""
    for stage, words in STAGE_TEXTS.items():
        assert words["en"] and words["ru"]
        if stage == "done":  # the end state, not a stage in progress
            continue
        verb = words["ru"].split()[0]
        assert verb.endswith("ю"), (stage, words["ru"])  # загружаю, рисую, готовлю …: first person
        assert len(words["ru"]) <= 20, words["ru"]  # one line of a phone with "⏳ Анализ матча: … 6/10 · 45%"
    assert stage_text("players", "ru") == "загружаю игроков"
    assert stage_text("chart", "ru") == "рисую график"
    assert stage_text("profile", "ru") == "загружаю профиль"


@pytest.mark.parametrize("days", [0.2, 10, 40])
def test_the_elo_charts_dates_are_whole_days_that_read_alike_in_both_languages(
        monkeypatch: pytest.MonkeyPatch, days: float) -> None:
    """A span of hours got hourly ticks ("12-06 06", "12-06 12") that repeated one day; the axis
    now shows whole days, as ISO dates, which one image for both languages can show ("06.12" is
    the 6th of December to a Russian reader and may be June 12 to an English one)."""
    from matplotlib.figure import Figure

    drawn: list[Figure] = []
    save = Figure.savefig

    def spy(self: Figure, *args: Any, **kwargs: Any) -> Any:
        drawn.append(self)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    start = 1_765_000_000.0  # 06.12.2025
    elo = [(start + days * 86_400 * i / 5, 1000 + 10 * i) for i in range(6)]
    png = charts.player_chart_png({"kd": [1.0, 1.2], "adr": [80.0, 90.0], "won": [True, False], "elo": elo}, "nick")
    assert png.startswith(b"\x89PNG")
    axis = next(ax for ax in drawn[-1].axes if ax.get_ylabel() == "Elo")
    labels = [label.get_text() for label in axis.get_xticklabels()]
    assert len(labels) >= 2, labels
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", label) for label in labels), labels
    assert len(set(labels)) == len(labels), labels
    # The matches' panel keeps its numbers above the Elo panel (they were hidden: its points then
    # read as played on the dates below them).
    matches = next(ax for ax in drawn[-1].axes if ax.get_ylabel() == "K/D")
    shown = [label.get_text() for label in matches.get_xticklabels() if label.get_visible()]
    assert shown == ["1", "2"], shown

"""The texts as read on a phone (about 35 characters a line in portrait), from realistic lobbies:
tables that fit, conclusions first, figures that are labelled and add up, one direction for
results everywhere, counts of one said as such."""

from __future__ import annotations

import html
import random
import re
from typing import Any

import pytest

from faceit import analysis, render, services
from faceit.errors import NotFoundError
from faceit.i18n import error_payload, with_key
from faceit.models import LifetimeStats, Match, PlayerMatchStats, PlayerProfile, parse_match_stats

MATCH_ID = "1-28caa46d-1c4e-4b5e-9a41-3f0c2b7d9e10"
POOL = ["de_mirage", "de_nuke", "de_inferno", "de_ancient", "de_anubis", "de_dust2", "de_train"]
# Twelve characters each: FACEIT allows up to 16, and twelve is common.
NICKS = {1: ["Vanquisher_1", "xX_SnipeR_Xx", "moonwalker99", "pretty_shyyy", "ZeroChill_00"],
         2: ["BlackMamba__", "ezvexmo_king", "Lightbringer", "quietstorm_7", "Nine_Lives_X"]}


def _pid(team: int, i: int) -> str:
    return f"{team}000000{i}-0000-4000-8000-000000000000"


def _stat(rng: random.Random, match: str, at: int, won: bool | None = None) -> PlayerMatchStats:
    kills, deaths = rng.randint(8, 30), rng.randint(8, 25)
    won = rng.random() < 0.5 if won is None else won
    stats = {"Match Id": match, "Result": "1" if won else "0", "Kills": str(kills), "Deaths": str(deaths),
             "Assists": str(rng.randint(1, 8)), "Rounds": "22", "Headshots": str(kills // 2), "Game Mode": "5v5",
             "Map": "de_mirage", "K/D Ratio": f"{kills / deaths:.2f}", "ADR": f"{rng.uniform(55, 115):.1f}",
             "Match Finished At": at * 1000, "Entry Count": "4", "Entry Wins": str(rng.randint(0, 4)),
             "1v1Count": "2", "1v1Wins": str(rng.randint(0, 2))}
    item = PlayerMatchStats.from_api({"stats": stats})
    assert item is not None
    return item


def _lobby(p1: float | None = None, pick: list[str] | None = None, seed: int = 7) -> dict[str, Any]:
    """A ready 5v5 lobby as analysed: ten players with twelve-character nicknames, Elo 1100–1700,
    twenty recent matches each and lifetime map stats (FACEIT's own win chance ``p1`` if given)."""
    rng = random.Random(seed)
    teams = {}
    for team in (1, 2):
        faction: dict[str, Any] = {
            "faction_id": f"f{team}", "name": "team_move" if team == 1 else "team_ezvexmo", "leader": _pid(team, 0),
            "roster": [{"player_id": _pid(team, i), "nickname": NICKS[team][i], "game_skill_level": 5}
                       for i in range(5)]}
        if p1 is not None:
            faction["stats"] = {"winProbability": p1 if team == 1 else 1 - p1, "rating": 1}
        teams[f"faction{team}"] = faction
    raw: dict[str, Any] = {"match_id": MATCH_ID, "status": "READY", "competition": "Europe 5v5 Queue", "teams": teams,
                           "faceit_url": f"https://www.faceit.com/{{lang}}/cs2/room/{MATCH_ID}",
                           "voting": {"map": {"entities": [{"name": m[3:].title(), "game_map_id": m} for m in POOL]}}}
    if pick:
        raw["voting"]["map"]["pick"] = pick
    match = Match.from_api(raw)
    data = {}
    for key, team in (("faction1", 1), ("faction2", 2)):
        for i, player in enumerate(match.teams[key].roster):
            profile = PlayerProfile(player_id=player.player_id, nickname=player.nickname,
                                    elo=rng.randint(1100, 1700), level=5, has_cs2=True)
            lifetime = LifetimeStats.from_api({"lifetime": {"Matches": "900"}, "segments": [
                {"type": "Map", "mode": "5v5", "label": m[3:].title(),
                 "stats": {"Matches": str(n), "Wins": str(rng.randint(0, n))}}
                for m in POOL for n in [rng.randint(5, 80)]]})
            recent = [_stat(rng, f"m{team}{i}{j}", 10_000 - j) for j in range(20)]
            data[player.player_id] = analysis.PlayerData(player, profile, lifetime, recent)
    return analysis.analyse_match(match, data)


def _finished() -> dict[str, Any]:
    """A match team_ezvexmo won 13:11 on Nuke, every player's line filled (three-digit ADR too)."""
    match = Match.from_api({"match_id": MATCH_ID, "status": "FINISHED", "results": {"winner": "faction2"}, "teams": {
        f"faction{n}": {"faction_id": f"f{n}", "name": f"team_{n}", "roster": []} for n in (1, 2)}})
    players = {n: [{"player_id": _pid(n, i), "nickname": NICKS[n][i], "player_stats": {
        "Kills": "31", "Deaths": "12", "Assists": "10", "K/D Ratio": "2.58", "ADR": "123.4"}} for i in range(5)]
        for n in (1, 2)}
    rounds = parse_match_stats({"rounds": [{"round_stats": {"Map": "de_nuke", "Winner": "f2"}, "teams": [
        {"team_id": "f1", "team_stats": {"Team": "team_1", "Final Score": "11"}, "players": players[1]},
        {"team_id": "f2", "team_stats": {"Team": "team_2", "Final Score": "13"}, "players": players[2]},
    ]}]})
    return analysis.finished_match_result(match, rounds)


def _blocks(text: str) -> list[str]:
    """The monospace blocks of a text, as shown (entities read)."""
    return [html.unescape(block) for block in re.findall(r"<(?:pre|code)>(.*?)</(?:pre|code)>", text, re.S)]


def _visible(text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", text))


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_every_table_of_an_analysis_fits_a_phone(lang: str) -> None:
    """The lineup table was 40 characters wide (Player Elo Lv K/D ADR Rt Form): on a phone its
    Form column wrapped. Every table an analysis shows now fits 35, in both languages."""
    texts = [render.render_match_analysis(_lobby(), lang),
             render.render_match_analysis(_lobby(pick=["de_nuke"]), lang),
             render.render_finished_match(_finished(), lang)]  # a room link of a match already played
    blocks = [block for text in texts for block in _blocks(text)]
    assert len(blocks) == 8  # two lineups and the map table, twice; the finished match's two sides
    for block in blocks:
        for line in block.splitlines():
            assert len(line) <= 35, (len(line), line)
    # The columns the danger verdicts rest on are all there, the nickname cut with an ellipsis.
    head, first = blocks[0].splitlines()[:2]
    assert head.split()[1:5] == ["Elo", "K/D", "ADR", "Rt"]
    assert first.startswith("Vanquishe… ")


def test_the_conclusions_come_right_after_the_chances() -> None:
    """Who to watch and the map advice were at the bottom of ~45 lines, under both tables and a
    long hint: they now follow the favourite line; the tables and a shorter hint come after."""
    for lang in ("en", "ru"):
        text = render.render_match_analysis(_lobby(), lang)
        favourite = text.index(render.t("favourite", lang) + ":")
        danger = text.index(render.t("danger", lang))
        advice = text.index(f"🗺 <b>{render.t('maps', lang)}</b>")
        lineup = text.index("<pre>")
        hint = text.index("<i>", lineup)
        map_table = text.rindex("<pre>")
        assert favourite < danger < advice < lineup < hint < map_table, text
        assert f"[1] team_move: {render.t('pick', lang)} <b>" in text[advice:lineup]
        assert len(text[hint:text.index("</i>", hint)]) <= 3 + 100  # was 135 characters


def test_elo_at_stake_says_which_figure_is_a_win_and_which_a_loss() -> None:
    data = _lobby(p1=0.425)
    assert "<b>[1] team_move</b> — avg Elo 1360 · win chance 42% · Elo: win +29 / loss −21\n" in (
        render.render_match_analysis(data, "en"))
    assert "<b>[1] team_move</b> — ср. Elo 1360 · шанс на победу 42% · Elo: победа +29 / поражение −21\n" in (
        render.render_match_analysis(data, "ru"))


@pytest.mark.parametrize("p1", [0.425, 0.455])
def test_win_chances_add_up_to_100_wherever_they_are_shown(p1: float) -> None:
    """0.425 showed 42% / 57% and 0.455 46% / 55%: each side rounded alone."""
    data = _lobby(p1=p1)
    for lang, word in (("en", "win chance"), ("ru", "шанс на победу")):
        shown = [int(x) for x in re.findall(rf"· {word} (\d+)% ·", render.render_match_analysis(data, lang))]
        assert len(shown) == 2 and sum(shown) == 100, shown
    summary = services.bulk_summary("pre_game", data)
    bulk = {"total": 1, "analysed": 1, "failed": 0,
            "matches": [{"ref": MATCH_ID, "match_id": MATCH_ID, "outcome": "analysed", "summary": summary}]}
    found = re.search(r"· win chance (\d+)% / (\d+)% ·", render.render_bulk(bulk, "en"))
    assert found and int(found.group(1)) + int(found.group(2)) == 100, render.render_bulk(bulk, "en")


@pytest.mark.parametrize(("p1", "shown", "favourite"), [(0.996, (99, 1), "faction1"), (0.003, (1, 99), "faction2"),
                                                       (0.99996, (99, 1), "faction1"),
                                                       (0.5051, (51, 49), "faction1"), (0.50504, (50, 50), None)])
def test_the_favourite_is_the_side_the_shown_chances_favour_and_no_side_shows_0_percent(p1, shown, favourite) -> None:
    """0.996 showed "win 100% / win 0%", a decided match; and the analysis chose its favourite from
    the unrounded chance, so 0.50504 (stored as 0.505, shown 50% / 50%) named a favourite beside
    "Even match"."""
    data = _lobby(p1=p1)
    assert data["favourite"] == favourite
    for lang, word in (("en", "win chance"), ("ru", "шанс на победу")):
        text = render.render_match_analysis(data, lang)
        assert tuple(int(x) for x in re.findall(rf"· {word} (\d+)% ·", text)) == shown
        assert ("Favourite" in text or "Фаворит" in text) is (favourite is not None)


def test_a_bulk_line_starts_with_a_short_link_and_names_its_figures() -> None:
    """A /bulk line began with the 38-character match id and unlabelled figures ("team_move 1365
    vs team_ezvexmo 1441 · 39%:61% · … · Nuke"); a failed one repeated the id in its reason."""
    summary = services.bulk_summary("pre_game", _lobby(p1=0.425, pick=["de_nuke"]))
    missing = "1-00000000-0000-4000-8000-00000000000f"
    error = error_payload(with_key(NotFoundError("no match"), "match_not_found", ref=missing))
    bulk = {"total": 2, "analysed": 1, "failed": 1, "matches": [
        {"ref": MATCH_ID, "match_id": MATCH_ID, "outcome": "analysed", "summary": summary},
        {"ref": missing, "match_id": missing, "outcome": "failed", "error": error}]}
    en, ru = render.render_bulk(bulk, "en"), render.render_bulk(bulk, "ru")
    line, failed = _visible(en).splitlines()[1:3]
    assert line == ("• 1-28caa46d…: team_move vs team_ezvexmo · avg Elo 1360 / 1396 · win chance 42% / 58% · "
                    "favourite team_ezvexmo · map Nuke")  # (lower case mid-line, as its other labels)
    assert f'<a href="https://www.faceit.com/en/cs2/room/{MATCH_ID}">1-28caa46d…</a>' in en  # still a link
    assert failed == "• 1-00000000…: ❌ FACEIT has no match “1-00000000…”."
    assert missing in en  # in the link to its room, not in the text
    assert ("• 1-28caa46d…: team_move — team_ezvexmo · ср. Elo 1360 / 1396 · шанс на победу 42% / 58% · "
            "фаворит team_ezvexmo · карта Nuke") in _visible(ru)
    assert "❌ Матч «1-00000000…» на FACEIT не найден." in _visible(ru)


def _report(results: str, elo_history: list[tuple[float, int]] | None = None, elo: int = 1051) -> dict[str, Any]:
    """A player report from real match lines: ``results`` newest first, as FACEIT lists them."""
    rng = random.Random(1)
    recent = [_stat(rng, f"r{j}", 10_000 - j, won=r == "W") for j, r in enumerate(results)]
    profile = PlayerProfile(player_id="x", nickname="ezvexmo_king", elo=elo, level=5, has_cs2=True)
    lifetime = LifetimeStats.from_api({"lifetime": {
        "Matches": "900", "Win Rate %": "52", "Current Win Streak": "4", "Longest Win Streak": "9",
        "Entry Success Rate": "0.38", "1v1 Win Rate": "0.5"}, "segments": []})
    return analysis.player_report(profile, lifetime, recent, elo_history or [])


def test_results_read_oldest_on_the_left_in_every_text_and_the_chart() -> None:
    """The report said "newest first" ("новые слева") beside a chart "oldest on the left", and the
    lineup's Form ran newest first too. Now every results string runs as the chart does, and says so."""
    report = _report("LWWWWLLWLL")  # newest first: the last match lost, the four before it won
    chart = "".join("W" if won else "L" for won in report["chart"]["won"])
    assert chart == "LLWLLWWWWL"
    en, ru = render.render_player_report(report, "en"), render.render_player_report(report, "ru")
    assert f"🔥 <b>Last 10 matches (5v5), oldest on the left</b>: {chart}\n" in en
    assert "🔥 <b>Последние 10 матчей (5v5), старые слева</b>: ППВППВВВВП\n" in ru
    assert render.chart_caption(report, "en").endswith("oldest on the left")
    assert render.chart_caption(report, "ru").endswith("старые слева")
    # The lineup's Form: the last five, the newest on the right.
    lobby = _lobby()
    lobby["teams"]["faction1"]["players"][0]["form"]["results"] = "LWWWWLLWLL"
    table = _blocks(render.render_match_analysis(lobby, "en"))[0]
    assert table.splitlines()[1].endswith(" WWWWL")
    assert "Form: last 5, oldest on the left" in render.render_match_analysis(lobby, "en")
    # A summary's last ten of 22, the same way round, and it says which ten.
    row = {"nickname": "nick", "matches": 22, "results": "LWWWWLLWLL" + "W" * 12, "win_rate": 60.0, "kd": 1.1,
           "elo": None}
    data = {"user_id": 1, "report_type": "weekly", "since": 0, "analyses": {}, "players": [row]}
    summary_en, summary_ru = render.render_analytics(data, "en"), render.render_analytics(data, "ru")
    assert "👥 <b>Players you follow</b> (results oldest on the left)" in summary_en
    assert "<b>nick</b>: 22 matches, last 10: LLWLLWWWWL · " in summary_en
    assert "(результаты: старые слева)" in summary_ru and "22 матча, последние 10: ППВППВВВВП · " in summary_ru
    short = {**data, "players": [{**row, "matches": 4, "results": "LWWW"}]}
    assert "<b>nick</b>: 4 matches WWWL · " in render.render_analytics(short, "en")  # all shown: no "last"


@pytest.mark.parametrize(("n", "en", "ru"), [
    (1, "Last match (5v5)", "Последний матч (5v5)"),
    (2, "Last 2 matches (5v5), oldest on the left", "Последние 2 матча (5v5), старые слева"),
    (5, "Last 5 matches (5v5), oldest on the left", "Последние 5 матчей (5v5), старые слева"),
    (21, "Last 20 matches (5v5), oldest on the left", "Последние 20 матчей (5v5), старые слева"),
])
def test_a_count_of_recent_matches_reads_right(n: int, en: str, ru: str) -> None:
    """One match read "Last 1 match" / "Последние 1 матч"."""
    report = _report("W" * n)  # 21 played: the report covers the last 20
    assert f"🔥 <b>{en}</b>: " in render.render_player_report(report, "en")
    assert f"🔥 <b>{ru}</b>: " in render.render_player_report(report, "ru")
    report["form"]["matches"] = 21
    assert "Последние 21 матч (5v5)" in render.render_player_report(report, "ru")
    assert "Last 21 matches (5v5)" in render.render_player_report(report, "en")
    one = {"nickname": "nick", "chart": {"kd": [1.0]}}
    assert (render.chart_caption(one, "en"), render.chart_caption(one, "ru")) == ("nick: last match",
                                                                                  "nick: последний матч")


def test_a_player_reports_own_figures_read_as_their_own() -> None:
    """In a one-player report "лучший на открытии 38%" (best at entry, the match analysis's label
    for a side's best) said nothing; "Level 5 · Elo 1051 · 0% → to level 6: +150" read as 150 Elo
    won; "Elo since we first saw them: +60" had no time span; "streak 4" did not say of what."""
    report = _report("WLWLW", elo_history=[(1_765_000_000.0, 991), (1_766_000_000.0, 1051)])
    en, ru = render.render_player_report(report, "en"), render.render_player_report(report, "ru")
    assert "выигранные открытия 38%" in ru and "лучший на открытии" not in ru
    assert "entry wins 38%" in en
    assert "Level <b>5</b> · Elo <b>1051</b> · 150 Elo to level 6\n" in en and "+150" not in en
    assert "Уровень <b>5</b> · Elo <b>1051</b> · до уровня 6: 150 Elo\n" in ru
    assert "Elo since Dec 6: +60" in en and "Elo с 06.12: +60" in ru  # (snapshots go back 62 days at most)
    assert "win streak 4 · best 9" in en and "серия побед 4 · рекорд 9" in ru


def test_a_notice_links_to_faceit_with_a_capital_like_the_russian() -> None:
    note = {"nickname": "nick", "won": True, "faceit_url": f"https://www.faceit.com/en/cs2/room/{MATCH_ID}"}
    assert ">Open on FACEIT</a>" in render.render_notification(note, "en")
    assert ">Открыть на FACEIT</a>" in render.render_notification(note, "ru")

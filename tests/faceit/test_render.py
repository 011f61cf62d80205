"""Telegram HTML: splitting keeps tags balanced and text intact; escaping; numbers per language."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from faceit import analysis, render, services
from faceit.htmltext import e, fmt_num, fmt_pct, fmt_signed, split_html
from faceit.models import Match, PlayerMatchStats, matches_of, parse_match_stats, series_stats

TAGS = ["b", "i", "u", "code", "pre", "a"]


class _Balance(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.ok = True
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.ok = False
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _check(part: str) -> str:
    parser = _Balance()
    parser.feed(part)
    parser.close()
    assert parser.ok and not parser.stack, part
    return "".join(parser.text)


@st.composite
def documents(draw: st.DrawFn, depth: int = 0) -> str:
    pieces = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["text", "newline", "tag"] if depth < 3 else ["text", "newline"]))
        if kind == "text":
            pieces.append(e(draw(st.text(max_size=120))))
        elif kind == "newline":
            pieces.append("\n")
        else:
            tag = draw(st.sampled_from(TAGS))
            inner = draw(documents(depth + 1))
            opening = '<a href="https://x.test/?a=1&amp;b=2">' if tag == "a" else f"<{tag}>"
            pieces.append(f"{opening}{inner}</{tag}>")
    return "".join(pieces)


def _plain(text: str) -> str:
    return re.sub(r"\s+", "", html.unescape(re.sub(r"<[^>]*>", "", text)))


@settings(max_examples=300, deadline=None)
@given(st.lists(documents(), min_size=1, max_size=30), st.integers(200, 800))
def test_split_parts_fit_are_balanced_and_lose_nothing(blocks: list[str], limit: int) -> None:
    text = "\n".join(blocks)
    parts = split_html(text, limit)
    for part in parts:
        assert len(part) <= limit
        _check(part)
    # the visible text survives, in order (whitespace at cuts may move)
    assert "".join(_plain(p) for p in parts) == _plain(text)


def test_long_lines_are_cut_outside_tags_and_entities() -> None:
    text = "<b>" + "&amp;" * 3000 + "</b>\n<pre>" + "x" * 9000 + "</pre>"
    parts = split_html(text, 4096)
    assert len(parts) >= 4
    for part in parts:
        assert len(part) <= 4096
        _check(part)
        assert not re.search(r"&[a-z]*$", part.replace("&amp;", ""))


def test_escaping_and_numbers() -> None:
    assert e('<script>"&') == "&lt;script&gt;&quot;&amp;"
    assert fmt_num(1.2345, "en") == "1.23" and fmt_num(1.2345, "ru") == "1,23"
    assert fmt_num(12345.5, "en", 1) == "12,345.5" and fmt_num(12345.5, "ru", 1) == "12\u00a0345,5"
    assert fmt_num(1365, "en", 0) == "1365"
    assert fmt_signed(-29, "en") == "−29" and fmt_signed(21, "ru") == "+21" and fmt_signed(0, "en") == "0"
    assert fmt_pct(0.574, "ru", 1, fraction=True) == "57,4%"
    assert fmt_num(None, "en") == "—"


def _analysis(nick: str) -> dict:
    player = {"player_id": "p", "nickname": nick, "elo": 1500, "level": 8, "danger": 0.0,
              "form": {"kd": 1.1, "adr": 80.0, "rating": 1.05, "results": "WLWLW", "win_rate": 60.0}}
    team = {"name": nick, "players": [player], "avg_elo": 1500, "win_probability": 0.5,
            "elo_change": {"win": 25, "loss": -25}, "threats": ["p"], "targets": ["p"]}
    return {"match_id": "1-x", "status": "READY", "competition": nick, "faceit_url": "https://x.test/?a=<b>",
            "probability_source": "elo", "favourite": None, "teams": {"faction1": team, "faction2": team},
            "maps": {"maps": [{"map": "de_mirage", "label": "Mirage", "picked": True, "advantage": 0.1,
                               "faction1": {"rate": 0.6}, "faction2": {"rate": 0.5}}],
                     "picked": ["de_mirage"], "picked_favours": ["faction1"], "advice": {}, "pool_source": "veto"}}


def test_user_supplied_text_is_escaped_in_both_languages() -> None:
    evil = '<b>"x</b>&'
    texts = render.texts(render.render_match_analysis, _analysis(evil))
    assert set(texts) == {"en", "ru"}
    for _lang, parts in texts.items():
        joined = "".join(parts)
        assert evil not in joined
        assert "&lt;b&gt;&quot;x&lt;/b&gt;&amp;" in joined
        for part in parts:
            _check(part)
    assert "Анализ матча" in texts["ru"][0] and "Match analysis" in texts["en"][0]
    assert "1,10" in texts["ru"][0] and "1.10" in texts["en"][0]


def test_big_bulk_summary_is_split_under_the_limit() -> None:
    items = [{"ref": f"r{i}", "match_id": f"1-{i}", "outcome": "failed",
              "error": {"code": "not_found", "texts": {"en": "x" * 300, "ru": "у" * 300}}} for i in range(40)]
    texts = render.texts(render.render_bulk, {"total": 40, "analysed": 0, "failed": 40, "matches": items})
    for parts in texts.values():
        assert len(parts) >= 3
        assert all(len(p) <= 4096 for p in parts)
        # Each part after the first says it goes on: "(2/3)" on top
        assert [p.split("\n", 1)[0] for p in parts[1:]] == [f"<i>({i}/{len(parts)})</i>" for i in range(2, len(parts) + 1)]
        assert parts[0].startswith("📦 ")


def test_faceit_links_open_in_the_readers_language() -> None:
    room = "https://www.faceit.com/en/cs2/room/1-abc"
    analysis = {**_analysis("nick"), "faceit_url": room}
    texts = render.texts(render.render_match_analysis, analysis)
    assert 'href="https://www.faceit.com/ru/cs2/room/1-abc"' in texts["ru"][0]
    assert f'href="{room}"' in texts["en"][0]
    other = {**analysis, "faceit_url": "https://example.org/en/room"}  # not FACEIT's site: left as it is
    assert 'href="https://example.org/en/room"' in render.render_match_analysis(other, "ru")


def test_the_summary_counts_analyses_only_and_names_each_kind_in_the_readers_language() -> None:
    data = {"report_type": "weekly", "user_id": 1,
            "analyses": {"match": 2, "bulk": 1, "report": 3, "match_analysis": 2}, "players": []}
    # "matches: 21" read as matches played: the kind is named as what it counts
    assert "Analyses you received: <b>3</b> (match analyses: 2, bulk analyses: 1)" in render.render_analytics(data, "en")
    assert "Получено анализов: <b>3</b> (матчи: 2, списки матчей: 1)" in render.render_analytics(data, "ru")


def test_the_match_status_reads_in_the_readers_language() -> None:
    voting = {**_analysis("nick"), "status": "VOTING"}
    assert "status: map vote" in render.render_match_analysis(voting, "en")
    assert "статус: выбор карт" in render.render_match_analysis(voting, "ru")
    odd = {**voting, "status": "SUBSTITUTION<"}  # a code we do not know: as FACEIT wrote it, escaped
    assert "статус: SUBSTITUTION&lt;" in render.render_match_analysis(odd, "ru")


def test_numbers_take_the_right_form_of_match_in_both_languages() -> None:
    from faceit.i18n import MATCHES, plural

    ru = {n: plural(n, "ru", MATCHES) for n in (0, 1, 2, 4, 5, 11, 12, 14, 21, 22, 25, 101, 111, 2333, 2541)}
    assert ru == {0: "матчей", 1: "матч", 2: "матча", 4: "матча", 5: "матчей", 11: "матчей", 12: "матчей",
                  14: "матчей", 21: "матч", 22: "матча", 25: "матчей", 101: "матч", 111: "матчей",
                  2333: "матча", 2541: "матч"}
    assert [plural(n, "en", MATCHES) for n in (1, 2, 0)] == ["match", "matches", "matches"]
    chart = {"nickname": "Akro", "chart": {"kd": [1.0, 0.8, 1.2]}}
    assert render.chart_caption(chart, "ru") == "Akro: последние 3 матча, старые слева"
    assert render.chart_caption(chart, "en") == "Akro: last 3 matches, oldest on the left"


def test_the_danger_block_says_the_players_it_names_are_the_opponents() -> None:
    texts = render.texts(render.render_match_analysis, _analysis("Rabo"))
    assert "[1] Rabo: opponent to watch: <b>Rabo</b> · their weakest: Rabo" in "".join(texts["en"])
    assert "[1] Rabo: опасен у соперника: <b>Rabo</b> · слабое звено соперника: Rabo" in "".join(texts["ru"])


def test_the_player_tables_columns_are_named_and_explained() -> None:
    """On a phone "L" beside a column of L/W letters read as one thing: the results column is
    "Form" (the level column is gone, the Elo implies it), and the hint says what each covers."""
    texts = render.texts(render.render_match_analysis, _analysis("Rabo"))
    en, ru = "".join(texts["en"]), "".join(texts["ru"])
    assert re.search(r"Player +Elo +K/D ADR +Rt Form", en) and re.search(r"Игрок +Elo +K/D ADR +Rt Форма", ru)
    assert "Rt (estimated HLTV 2.0 rating): last 20 matches" in en and "Rt (оценка рейтинга HLTV 2.0)" in ru
    assert "Form: last 5, oldest on the left" in en and "Форма — 5 последних, старые слева" in ru


def test_a_map_rows_delta_is_the_difference_of_the_figures_it_shows() -> None:
    """51% against 46% reads +5, though the unrounded rates differ by 5.8 points (it read +6)."""
    row = {"map": "de_dust2", "label": "Dust2", "picked": True, "faction1": {"rate": 0.514},
           "faction2": {"rate": 0.456}, "advantage": 0.058}
    data = {"maps": {"maps": [row], "picked": ["de_dust2"], "picked_favours": [None]}, "teams": {}}
    block = "\n".join(render._maps_block(data, "en"))
    assert re.search(r"Dust2 ★ +51% +46% +\+5</pre>", block), block


def test_a_partial_elo_change_in_a_report_says_from_when() -> None:
    """An Elo change from a snapshot inside the period covers part of it: the text says since when."""
    since = 1_765_000_000.0  # 2025-12-06 05:46 UTC
    row = {"player_id": "p", "nickname": "nick", "matches": 0, "results": "", "win_rate": None, "kd": None,
           "elo": 1430, "elo_change": 10, "elo_since": since + 3 * 86400}
    data = {"user_id": 1, "report_type": "weekly", "since": since, "analyses": {}, "players": [row]}
    assert "Elo 1430 (+10 since Dec 9)" in render.render_analytics(data, "en")
    assert "Elo 1430 (+10 с 09.12)" in render.render_analytics(data, "ru")
    whole = {**data, "players": [{**row, "elo_since": since}]}
    assert "Elo 1430 (+10)" in render.render_analytics(whole, "en")


def _finished_match() -> dict:
    """A match team_2 won 13:9 on Inferno, as FACEIT lists it (team_1 first)."""
    match = Match.from_api({"match_id": "1-x", "status": "FINISHED", "results": {"winner": "faction2"}, "teams": {
        f"faction{n}": {"faction_id": f"f{n}", "name": f"team_{n}", "roster": []} for n in (1, 2)}})
    rounds = parse_match_stats({"rounds": [{"round_stats": {"Map": "de_inferno", "Winner": "f2"}, "teams": [
        {"team_id": "f1", "team_stats": {"Team": "team_1", "Final Score": "9"}, "players": []},
        {"team_id": "f2", "team_stats": {"Team": "team_2", "Final Score": "13"}, "players": []},
    ]}]})
    return analysis.finished_match_result(match, rounds)


# One match read "13 / 9" in the notification, "9 : 13" in its analysis and "13:9" in /bulk. Now
# "13:9" everywhere (faceit.htmltext.fmt_score): the followed player's team first in a
# notification, the winner's first where the text names the winner.


def test_a_finished_matchs_score_reads_from_the_winner_and_its_table_comes_first() -> None:
    finished = _finished_match()
    for lang in ("en", "ru"):
        text = render.render_finished_match(finished, lang)
        assert "🗺 <b>Inferno</b> 13:9\n🏆 <b>team_2</b>" in text
        assert text.index("team_2</b>\n<pre>") < text.index("team_1</b>\n<pre>")


def test_a_bulk_lines_score_reads_from_the_winner_it_names() -> None:
    summary = services.bulk_summary("finished", _finished_match())
    bulk = {"total": 1, "analysed": 1, "failed": 0,
            "matches": [{"ref": "1-x", "match_id": "1-x", "outcome": "finished", "summary": summary}]}
    assert ": finished · winner <b>team_2</b> · Inferno 13:9" in render.render_bulk(bulk, "en")
    assert ": завершён · победитель <b>team_2</b> · Inferno 13:9" in render.render_bulk(bulk, "ru")


def test_a_notifications_score_reads_from_the_followed_players_team() -> None:
    # FACEIT's "Score" of a player's line, whichever side it puts first: their team's first.
    for score, result, shown in (("9 / 13", "1", "Win</b> 13:9"), ("13 / 9", "0", "Loss</b> 9:13"),
                                 ("13 / 9", "1", "Win</b> 13:9"), ("13 / 9", "", "Result unknown</b> 13:9")):
        stat = PlayerMatchStats.from_api({"stats": {"Match Id": "1-x", "Score": score, "Result": result,
                                                    "Map": "de_inferno"}})
        assert stat is not None
        note = analysis.match_notification("p", "nick", stat, 1500, 25)
        assert f"<b>nick</b> finished a match: <b>{shown} · Inferno\n" in render.render_notification(note, "en")
    unknown = PlayerMatchStats.from_api({"stats": {"Match Id": "1-x", "Result": "1", "Map": "de_inferno"}})
    assert unknown is not None
    note = analysis.match_notification("p", "nick", unknown, 1500, 25)
    assert "<b>nick</b> — матч завершён: <b>Победа</b> · Inferno\n" in render.render_notification(note, "ru")


def test_a_player_reports_results_say_which_end_is_newest() -> None:
    """The report's results ran newest first unlabelled, beside a chart "oldest on the left"; then
    labelled "newest first", still against the chart. Now both run oldest on the left, and say so."""
    form = {"matches": 3, "results": "WLL", "win_rate": 33.3, "kd": 1.0, "adr": 80.0, "hs_pct": 50.0, "kr": 0.7,
            "rating": 1.0}
    data = {"nickname": "nick", "level": 7, "elo": 1400, "form": form,
            "trend": {"direction": "unknown", "delta": {"rating": None, "kd": None, "adr": None}}}
    assert "🔥 <b>Last 3 matches (5v5), oldest on the left</b>: LLW" in render.render_player_report(data, "en")
    assert "🔥 <b>Последние 3 матча (5v5), старые слева</b>: ППВ" in render.render_player_report(data, "ru")


def test_a_player_report_says_what_it_compares_and_when_it_cannot() -> None:
    """Eight matches read "Trend (last 10 vs previous 10): steady (rating —, K/D —, ADR —)"."""
    form = {"matches": 8, "results": "WLLWWLLW", "win_rate": 50.0, "kd": 1.0, "adr": 80.0, "hs_pct": 50.0,
            "kr": 0.7, "rating": 1.0}
    data = {"nickname": "nick", "level": 9, "elo": 2000, "form": form,
            "progress": {"level": 9, "low": 1751, "high": 2000, "percent": 99.6, "to_next": 1},
            "lifetime": {"matches": None, "win_rate": None, "kd": None, "hs_pct": None, "adr": None,
                         "current_streak": None, "longest_streak": None},
            "trend": {"direction": "unknown", "last10": {"matches": 8}, "previous10": {"matches": 0},
                      "delta": {"rating": None, "kd": None, "adr": None}}}
    text = render.render_player_report(data, "en")
    assert "📈 Trend: not enough matches to compare" in text and "steady" not in text
    # not "100%" while a point is missing, nor "+1", which read as Elo won
    assert "· 1 Elo to level 10" in text and "100%" not in text and "+1" not in text
    assert "· до уровня 10: 1 Elo" in render.render_player_report(data, "ru")
    assert "Lifetime" not in text  # nothing known: no line of dashes
    assert "Динамика: мало матчей для сравнения" in render.render_player_report(data, "ru")
    data["trend"] = {"direction": "up", "last10": {"matches": 10}, "previous10": {"matches": 6},
                     "delta": {"rating": 0.12, "kd": 0.2, "adr": 5.0}}
    assert "📈 Trend (last 10 vs previous 6): <b>improving</b>" in render.render_player_report(data, "en")


def test_a_finished_notice_has_no_unknown_map_and_works_out_a_missing_kd() -> None:
    stat = PlayerMatchStats.from_api({"stats": {"Match Id": "1-x", "Result": "1", "Kills": "20", "Deaths": "10"}})
    assert stat is not None and stat.kd == 2.0
    note = analysis.match_notification("p", "nick", stat, 1500, 25)
    text = render.render_notification(note, "en")
    assert "· ?" not in text and "K/D 2" in text


def test_a_status_code_and_an_admin_summary_read_naturally() -> None:
    assert render._status("SUBSTITUTION", "ru") == "замена игрока"
    summary = {"user_id": None, "report_type": "weekly", "users": 1, "analyses": {}, "players": []}
    assert "1 пользователь\n" in render.render_analytics(summary, "ru") + "\n"
    summary["users"] = 3
    assert "3 пользователя" in render.render_analytics(summary, "ru")


def test_each_picked_map_names_the_side_it_favours() -> None:
    data = _analysis("x")
    data["teams"] = {"faction1": {**data["teams"]["faction1"], "name": "Alpha"},
                     "faction2": {**data["teams"]["faction2"], "name": "Beta"}}
    data["maps"].update(picked=["de_mirage", "de_inferno", "de_nuke"], picked_favours=["faction1", "faction2", None])
    text = "".join(render.texts(render.render_match_analysis, data)["en"])
    assert "★ picked: <b>Mirage</b> — favours Alpha; <b>Inferno</b> — favours Beta; <b>Nuke</b>" in text
    # Russian agrees with how many: "выбраны" for three ("выбрана", singular, was used for any number)
    assert "★ выбраны: <b>Mirage</b> — в пользу Alpha" in "".join(render.texts(render.render_match_analysis, data)["ru"])
    data["maps"].update(picked=["de_mirage"], picked_favours=[None])
    assert "★ выбрана: <b>Mirage</b>" in "".join(render.texts(render.render_match_analysis, data)["ru"])


def test_the_match_line_names_the_match_by_its_short_id_when_it_links_to_the_room() -> None:
    """The whole id (38 characters) took a phone's line beside the status and broke at its hyphens."""
    data = _analysis("x")
    data["match_id"] = "1-28caa46d-beec-4c0c-b5a8-e1b82ae6fb88"
    text = render.render_match_analysis(data, "en")
    assert ">1-28caa46d…</a> · status:" in text and "e1b82ae6fb88" not in text
    data["faceit_url"] = None  # no link to follow: the whole id, what a user would send again
    assert "1-28caa46d-beec-4c0c-b5a8-e1b82ae6fb88 · status:" in render.render_match_analysis(data, "en")


def test_a_bulk_line_shows_every_picked_map_and_no_placeholder_chances() -> None:
    summary = {"match_id": "1-a", "faceit_url": None, "faction1": "Alpha", "faction2": "Beta", "elo1": 1500,
               "elo2": 1500, "p1": 0.5, "p2": 0.5, "favourite": None, "probability_source": "none",
               "maps": ["de_mirage", "de_inferno", "de_nuke"]}
    bulk = {"total": 1, "analysed": 1, "failed": 0, "matches": [{"outcome": "analysed", "summary": summary}]}
    line = render.render_bulk(bulk, "en").splitlines()[1]
    assert "50%" not in line and line.endswith("avg Elo 1500 / 1500 · maps Mirage, Inferno, Nuke")
    summary["probability_source"] = "elo"
    assert "1500 / 1500 · win chance 50% / 50% · maps Mirage" in render.render_bulk(bulk, "en")


def test_a_best_of_three_is_one_notice_with_every_maps_score() -> None:
    """FACEIT lists one line per map. Each map was a notice of its own; the delivery sends one per
    match, so only the first map's went out, and the Elo line (on the last) never did."""
    def line(map_name: str, won: bool, score: str, kills: int, deaths: int, at: int) -> PlayerMatchStats:
        stat = PlayerMatchStats.from_api({"stats": {
            "Match Id": "1-bo3", "Map": map_name, "Result": "1" if won else "0", "Score": score, "Kills": str(kills),
            "Deaths": str(deaths), "Assists": "3", "Rounds": "24", "ADR": "80.0", "Headshots": str(kills // 2),
            "First Kills": "3", "Entry Count": "4", "Entry Wins": "2", "1v1Count": "1", "1v1Wins": "1",
            "1v2Count": "1", "1v2Wins": "0", "Match Finished At": at * 1000}})
        assert stat is not None
        return stat

    earlier = PlayerMatchStats.from_api({"stats": {"Match Id": "1-bo1", "Result": "1", "Match Finished At": 50_000}})
    assert earlier is not None
    rows = [line("de_nuke", True, "13 / 11", 20, 10, 300), line("de_inferno", False, "8 / 13", 10, 20, 200),
            line("de_mirage", True, "9 / 13", 15, 10, 100), earlier]
    matches = matches_of(rows)  # newest first in, oldest first out
    assert [[m.map for m in maps] for maps in matches] == [[None], ["de_mirage", "de_inferno", "de_nuke"]]
    series = series_stats(matches[1])
    assert (series.won, series.kills, series.deaths, series.finished_at) == (True, 45, 40, 300)
    assert (series.kd, series.adr) == (45 / 40, 80.0)  # from the totals
    # Entries and clutches add up too: the recent form's rates skipped a best of three without them.
    assert (series.kr, series.first_kills, series.entry_count, series.entry_wins) == (45 / 72, 9, 12, 6)
    assert (series.clutch_1v1_count, series.clutch_1v1_wins, series.clutch_1v2_count) == (3, 3, 3)
    form = analysis.recent_form(rows)
    assert (form["entry_count"], form["entry_rate"], form["clutch_1v1_count"]) == (12, round(12 / 72, 3), 3)
    note = analysis.match_notification("p", "nick", series, 1510, 25, 1, matches[1])
    text = render.render_notification(note, "en")
    assert "finished a match: <b>Win</b> 2:1 · Mirage 13:9 · Inferno 8:13 · Nuke 13:11\n" in text
    assert "K/D/A 45/40/9" in text and "Elo +25 → 1510" in text
    assert series_stats(matches[0]) is matches[0][0]


def test_a_summary_compares_each_player_with_the_period_before() -> None:
    now = 1_000_000.0
    player = {"nickname": "nick", "matches": 4, "results": "WWLW", "win_rate": 75.0, "kd": 1.2, "elo": None,
              "previous": {"matches": 5, "win_rate": 40.0, "kd": 1.32}}
    idle = {"nickname": "idle", "matches": 0, "results": "", "win_rate": None, "kd": None, "elo": None,
            "previous": {"matches": 3, "win_rate": 66.7, "kd": 1.0}}
    data = {"user_id": 1, "report_type": "weekly", "since": now, "analyses": {"match": 2},
            "previous_analyses": {"match": 1, "bulk": 2, "lang": 4}, "players": [player, idle]}
    text = render.render_analytics(data, "en")
    assert "Analyses you received: <b>2</b> (match analyses: 2) · the week before: 3" in text
    assert "<b>nick</b>: 4 matches" in text and "\n  vs the week before (5 matches): win rate +35 pp, K/D −0.12" in text
    assert "<b>idle</b>: no matches\n  the week before: 3 matches" in text
    ru = render.render_analytics({**data, "report_type": "monthly"}, "ru")
    assert "к прошлому месяцу (5 матчей): винрейт +35 п.п., K/D −0,12" in ru and "месяцем раньше: 3" in ru
    data.update(previous_analyses=None, players=[{**player, "previous": None}])
    assert "before" not in render.render_analytics(data, "en")

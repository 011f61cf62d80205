"""User-facing texts: Telegram HTML in English and Russian from one set of templates.

Each ``render_*`` function takes the structured result of :mod:`faceit.analysis` and a language
and returns one HTML string; :func:`texts` renders both languages and splits each into parts of
at most 4096 characters with balanced tags (:func:`faceit.htmltext.split_html`). Everything that
came from outside (nicknames, team names, competition names, URLs) goes through ``e()``; numbers
are formatted per language (``1,21`` in Russian). Charts live in :mod:`faceit.charts`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Any

from faceit.gamedata import map_label
from faceit.htmltext import (
    TELEGRAM_LIMIT,
    e,
    fmt_int,
    fmt_num,
    fmt_pct,
    fmt_score,
    fmt_signed,
    shown_chances,
    split_html,
    whole_percent,
)
from faceit.i18n import LANGS, MATCHES, USERS, plural
from faceit.links import room_url

# label → (en, ru)
L: dict[str, tuple[str, str]] = {
    "match_analysis": ("Match analysis", "Анализ матча"),
    "status": ("status", "статус"),
    "avg_elo": ("avg Elo", "ср. Elo"),
    "win_chance": ("win chance", "шанс на победу"),  # "win 45%" read as a win rate
    "elo_stake": ("Elo: win {win} / loss {loss}", "Elo: победа {win} / поражение {loss}"),
    "estimate_faceit": ("Win chances: FACEIT's own estimate.", "Шансы на победу: оценка FACEIT."),
    "estimate_elo": ("Win chances: estimated from average Elo.", "Шансы на победу: оценка по среднему Elo."),
    "estimate_none": ("Win chances unknown (no Elo data).", "Шансы неизвестны (нет данных об Elo)."),
    "favourite": ("Favourite", "Фаворит"),
    # The same labels inside a line, lower case as the other labels there ("ср. Elo", "карта").
    "favourite_in_line": ("favourite", "фаворит"),
    "even": ("Even match", "Равный матч"),
    "player": ("Player", "Игрок"),
    "form_hint": ("K/D, ADR, Rt (estimated HLTV 2.0 rating): last 20 matches. Form: last 5, oldest on the left.",
                  "K/D, ADR, Rt (оценка рейтинга HLTV 2.0) — за 20 последних матчей. Форма — 5 последних, "
                  "старые слева."),
    "form_short": ("Form", "Форма"),
    "maps": ("Maps", "Карты"),
    "map_rates": ("Map win rates", "Винрейт на картах"),
    "maps_hint": ("pulled toward 50% for small samples", "при малом числе матчей сглажен к 50%"),
    "maps_active_pool": ("; no veto yet: current CS2 map pool", "; вето ещё не было, показан текущий маппул CS2"),
    "map": ("Map", "Карта"),
    "picked": ("picked", "выбрана"),
    "picked_many": ("picked", "выбраны"),
    "pick": ("pick", "пик"),
    "ban": ("ban", "бан"),
    "favours": ("favours", "в пользу"),
    "no_map_edge": ("no clear map edge", "явного перевеса на картах нет"),
    "danger": ("Who to watch", "На кого обратить внимание"),
    "no_standout": ("the opponents are too close to single anyone out",
                    "игроки соперника слишком равны, чтобы кого-то выделить"),
    "no_standout_data": ("not enough data on the opponents", "о соперниках мало данных"),
    "no_elo_at_stake": ("no Elo at stake", "Elo не меняется"),
    "entry": ("best entry", "лучший на открытии"),  # the match analysis: names the side's best
    "entry_own": ("entry wins", "выигранные открытия"),  # the player report: one player's own rate
    "clutch": ("best in 1v1s", "лучший в клатчах 1 на 1"),  # the match analysis: names the side's best
    "clutch_own": ("1v1 clutches won", "выигранные клатчи 1 на 1"),  # the player report: their own rate
    "lifetime_rate": ("lifetime", "за всё время"),
    "finished_title": ("Match finished", "Матч завершён"),
    "finished_note": ("This match is over, so here is the result instead of a forecast.",
                      "Матч уже сыгран — вместо прогноза показываю результат."),
    "winner": ("Winner", "Победитель"),
    "winner_in_line": ("winner", "победитель"),
    "best_player": ("Best player", "Лучший игрок"),
    "no_stats": ("No detailed statistics for this match.", "Подробной статистики по матчу нет."),
    "player_report": ("Player report", "Отчёт по игроку"),
    "level": ("Level", "Уровень"),
    "to_next": ("{elo} Elo to level {level}", "до уровня {level}: {elo} Elo"),
    "max_level": ("top level", "высший уровень"),
    "lifetime": ("Lifetime", "За всё время"),
    "win_rate": ("win rate", "винрейт"),
    "streak": ("win streak", "серия побед"),
    "longest": ("best", "рекорд"),
    "recent": ("Last {n} {matches} (5v5), oldest on the left", "Последние {n} {matches} (5v5), старые слева"),
    "recent_one": ("Last match (5v5)", "Последний матч (5v5)"),
    "rating": ("rating", "рейтинг"),
    # {verdict}: "improving" … in bold; Russian puts it after a dash, the label having its own colon
    "trend": ("Trend (last {n} vs previous {m}): {verdict}", "Динамика: последние {n} против {m} предыдущих — {verdict}"),
    "trend_unknown": ("Trend: not enough matches to compare", "Динамика: мало матчей для сравнения"),
    "trend_up": ("improving", "на подъёме"),
    "trend_down": ("declining", "идёт на спад"),
    "trend_flat": ("steady", "без изменений"),
    "elo_seen": ("Elo since we first saw them", "Elo с начала отслеживания"),
    "elo_seen_on": ("Elo since {date}", "Elo с {date}"),
    "no_matches": ("No recent 5v5 matches.", "Нет недавних матчей 5v5."),
    "bulk_title": ("Bulk analysis", "Анализ списка матчей"),
    "analysed": ("analysed", "проанализировано"),
    "failed": ("failed", "не удалось"),
    "finished": ("finished", "завершён"),
    "win": ("Win", "Победа"),
    "loss": ("Loss", "Поражение"),
    "new_match": ("finished a match", "— матч завершён"),
    "draw": ("Draw", "Ничья"),  # maps level (1:1), no winner
    "result_unknown": ("Result unknown", "Результат неизвестен"),
    "analytics_weekly": ("Weekly summary", "Сводка за неделю"),
    "analytics_monthly": ("Monthly summary", "Сводка за месяц"),
    "analyses": ("Analyses you received", "Получено анализов"),
    # The kinds of analysis, each a noun in the nominative after "Analyses you received: 24 (…"
    # ("матчи: 21" would read as matches played, which the summary lists too); in KIND_ORDER.
    "kind_match": ("match analyses", "матчи"),
    "kind_player": ("player reports", "отчёты по игрокам"),
    "kind_bulk": ("bulk analyses", "списки матчей"),  # English: the job's own name, "Bulk analysis"
    "tracked": ("Players you follow", "Игроки, за которыми вы следите"),
    "results_order": ("results oldest on the left", "результаты: старые слева"),
    "last_results": ("last {n}", "последние {n}"),
    "no_tracked": ("You follow no players yet: /subscribe nickname.",
                   "Вы пока ни за кем не следите: /subscribe никнейм."),
    "no_period_matches": ("no matches", "нет матчей"),
    "elo_from": ("since {date}", "с {date}"),
    "before_weekly": ("the week before", "неделей раньше"),
    "before_monthly": ("the month before", "месяцем раньше"),
    "compared_weekly": ("vs the week before", "к прошлой неделе"),
    "compared_monthly": ("vs the month before", "к прошлому месяцу"),
    "win_rate_change": ("win rate {change} pp", "винрейт {change} п.п."),  # a difference of two percents
    "win_rate_col": ("WR", "Побед"),  # a table's column of win rates: "Побед 55%", five wide at most
    "versus": ("vs", "—"),  # between two team names in a /bulk line

    "cache_title": ("Cache update", "Обновление кэша"),
    "monitor_title": ("Match monitoring", "Мониторинг матчей"),
    "monitor_body": ("checked {checked} of {total} players · new matches {new} · notifications {notes}",
                     "проверено игроков: {checked} из {total} · новых матчей: {new} · уведомлений: {notes}"),
    "monitor_errors": ("could not check", "не удалось проверить"),
    "refreshed": ("refreshed", "обновлено"),
    "over_matches": ("over the last {n} {matches}", "за последние {n} {matches}"),
    "chart_caption": ("{nick}: last {n} {matches}, oldest on the left", "{nick}: последние {n} {matches}, старые слева"),
    "chart_caption_one": ("{nick}: last match", "{nick}: последний матч"),
    "open": ("Open on FACEIT", "Открыть на FACEIT"),
    "map_one": ("map", "карта"),
    "map_many": ("maps", "карты"),
    # A match room's status (FACEIT's codes).
    "status_CHECK_IN": ("check-in", "подтверждение"),
    "status_VOTING": ("map vote", "выбор карт"),
    "status_CONFIGURING": ("server starting", "запуск сервера"),
    "status_READY": ("ready", "готов к игре"),
    "status_SUBSTITUTION": ("substitution", "замена игрока"),
    "status_ONGOING": ("live", "идёт"),
    "status_FINISHED": ("finished", "завершён"),
    "status_CANCELLED": ("cancelled", "отменён"),
    "status_ABORTED": ("aborted", "прерван"),
    "status_CAPTAIN_PICK": ("captains picking players", "капитаны выбирают игроков"),
    "status_PAUSED": ("paused", "пауза"),
    "status_MANUAL_RESULT": ("result entered manually", "результат вводится вручную"),
    "status_SCHEDULED": ("scheduled", "запланирован"),
}
#: The danger block's labels for :func:`plural`, agreeing with how many names follow: one in a
#: 2v2 or 3v3, two in a 5v5 (:func:`faceit.analysis.standouts`).
THREATS = {"en": ("opponent to watch", "opponents to watch"),
           "ru": ("опасен у соперника", "опасны у соперника", "опасны у соперника")}
TARGETS = {"en": ("their weakest", "their weakest"),
           "ru": ("слабое звено соперника", "слабые звенья соперника", "слабые звенья соперника")}
#: The summary lists the kinds of analysis in this order (a kind added later, with its ``kind_``
#: label, after them by name): one match, one player, a list of matches; the same every week.
KIND_ORDER = ("match", "player", "bulk")
WIN_LETTER = {"en": ("W", "L"), "ru": ("В", "П")}
_PART_MARK_ROOM = 32  # "<i>(12/13)</i>\n" and to spare


def _status(code: str, lang: str) -> str:
    """A match room's status in the reader's language; a code we do not know as FACEIT wrote it."""
    key = f"status_{str(code).upper()}"
    return t(key, lang) if key in L else e(code)


def t(key: str, lang: str) -> str:
    pair = L[key]
    return pair[1] if lang == "ru" else pair[0]


def texts(render: Callable[[dict[str, Any], str], str], data: dict[str, Any]) -> dict[str, list[str]]:
    """Render ``data`` in every language, each split into Telegram-sized parts; when there are
    several, each after the first starts with its number ("2/3"), so a reader scrolling a long
    list sees it goes on from the message before."""
    return {lang: _numbered(render(data, lang)) for lang in LANGS}


def _numbered(html: str) -> list[str]:
    parts = split_html(html)
    if len(parts) < 2:
        return parts
    parts = split_html(html, TELEGRAM_LIMIT - _PART_MARK_ROOM)  # room for the marks
    return [parts[0]] + [f"<i>({index}/{len(parts)})</i>\n{part}" for index, part in enumerate(parts[1:], start=2)]


def _results(results: str | None, lang: str, last: int | None = None) -> str:
    """Results (``"WWL"``, newest first as :func:`faceit.analysis.form_of` lists them) as the
    reader's letters, the newest ``last`` of them (all when None), oldest on the left.

    One direction in every text (the lineup's Form, the report's results, the summary's): the one
    the report's chart runs in, time from left to right; each text says so ("oldest on the left").
    """
    if not results:
        return "—"
    win, loss = WIN_LETTER.get(lang, WIN_LETTER["en"])
    shown = results[:last] if last else results
    return "".join(win if r == "W" else loss for r in reversed(shown))


_MATCH_ID_HEAD_RE = re.compile(r"(?:\d+-)?[0-9a-f]{8}(?=-)", re.IGNORECASE)


def _match_link(data: dict[str, Any], lang: str) -> str:
    """The match as a link to its room, named by its short id (the whole id, 38 characters, took a
    phone's line beside the status and broke at its hyphens); the whole id where there is no link
    (it is what a user would send again)."""
    url = data.get("faceit_url")
    return _link(url, short_match_id(data["match_id"]) if url else data["match_id"], lang)


def short_match_id(match_id: str) -> str:
    """``1-28caa46d…`` for ``1-28caa46d-…`` (38 characters, a phone line's worth): the prefix and the
    first 8 characters of the uuid, which tell a list's matches apart; "…" says there is more. An id
    of another form is cut to as many characters."""
    head = _MATCH_ID_HEAD_RE.match(match_id)
    if head:
        return head.group(0) + "…" if len(match_id) > head.end() else head.group(0)
    return _cut(match_id, 11)


#: FACEIT's site in the language the links are stored in (``faceit_url`` carries ``{lang}``,
#: filled with ``en`` when the response is parsed, before anyone's language is known).
_FACEIT_SITE_EN = "https://www.faceit.com/en/"




def _link(url: str | None, text: str, lang: str) -> str:
    """``text`` linked to ``url``; a FACEIT site link opens in the reader's language."""
    if not url:
        return e(text)
    if url.startswith(_FACEIT_SITE_EN):
        url = f"https://www.faceit.com/{lang}/" + url.removeprefix(_FACEIT_SITE_EN)
    return f'<a href="{e(url)}">{e(text)}</a>'


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def day_label(ts: float, lang: str, zone: tzinfo = UTC) -> str:
    """A day as ``06.12`` (Russian) or ``Dec 6`` (English: "06.12" reads as the 12th of June there),
    in UTC like the rest of the texts, or in ``zone``."""
    moment = datetime.fromtimestamp(ts, zone)
    return moment.strftime("%d.%m") if lang == "ru" else f"{moment.strftime('%b')} {moment.day}"


def _when(ts: float | None, lang: str) -> str:
    if not ts:
        return ""
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%d.%m.%Y %H:%M UTC" if lang == "ru" else "%Y-%m-%d %H:%M UTC")


# Match analysis ----------------------------------------------------------------------------------


def chances_known(source: str) -> bool:
    """Whether win chances (and Elo at stake) rest on something: FACEIT's own or the teams' Elo.
    Else the 50% and ±25 are placeholders, not shown as figures."""
    return source in ("faceit", "elo")


def render_match_analysis(data: dict[str, Any], lang: str) -> str:
    """A pre-game analysis, conclusions first: on a phone the first screen holds the chances, who
    to watch and the map advice; the lineup tables they come from follow, then the map table."""
    teams = data["teams"]
    lines = [f"🎮 <b>{t('match_analysis', lang)}</b>" + (f" · {e(data['competition'])}" if data.get("competition")
                                                          else "")]
    lines.append(f"{_match_link(data, lang)} · {t('status', lang)}: {_status(data['status'], lang)}")
    lines.append("")
    source = data.get("probability_source", "none")
    known = chances_known(source)
    chances = shown_chances(teams["faction1"]["win_probability"])
    for idx, key in enumerate(("faction1", "faction2"), start=1):
        team = teams[key]
        change = team.get("elo_change")
        stake = (t("elo_stake", lang).format(win=fmt_signed(change["win"], lang), loss=fmt_signed(change["loss"], lang))
                 if change and known else t("no_elo_at_stake", lang) if not change else "")
        chance = f"{t('win_chance', lang)} {fmt_pct(chances[idx - 1], lang)}" if known else ""
        lines.append(f"<b>[{idx}] {e(team['name'])}</b> — "
                     + " · ".join(x for x in (f"{t('avg_elo', lang)} {fmt_int(team['avg_elo'], lang)}", chance, stake) if x))
    lines.append(f"<i>{t('estimate_' + source if known else 'estimate_none', lang)}</i>")
    if known:
        fav = data.get("favourite")  # (the analysis chose it by the chances as shown)
        lines.append(f"{t('favourite', lang)}: <b>{e(teams[fav]['name'])}</b>" if fav else t("even", lang))
    lines.append("")
    lines.extend(_danger_block(data, lang))
    lines.append("")
    lines.extend(_map_advice(data, lang))
    for idx, key in enumerate(("faction1", "faction2"), start=1):
        team = teams[key]
        lines.append("")
        lines.append(f"<b>[{idx}] {e(team['name'])}</b>")
        lines.append("<pre>" + _player_table(team["players"], lang) + "</pre>")
        special = _specialists(team, lang)
        if special:
            lines.append(special)
    lines.append(f"<i>{t('form_hint', lang)}</i>")
    lines.append("")
    lines.extend(_maps_block(data, lang))
    return "\n".join(lines)


#: A phone in portrait shows about 35 monospace characters a line: wider tables wrap or scroll.
PHONE_WIDTH = 35
_NICK_WIDTH = 10


def _player_table(players: list[dict[str, Any]], lang: str) -> str:
    """A side's lineup, :data:`PHONE_WIDTH` characters wide: nickname (cut to 10 with "…"), Elo,
    K/D, ADR, Rt and Form (the last five results, oldest on the left).

    To fit a phone the level column went (the Elo beside it implies it) and nicknames lost two
    characters; every figure the danger verdicts weigh (:func:`faceit.analysis.danger_scores`:
    Elo, rating, K/D, ADR, recent results) keeps its column, so the reader can see why a player
    is named."""
    head = (f"{t('player', lang):<{_NICK_WIDTH}} {'Elo':>4} {'K/D':>4} {'ADR':>3} {'Rt':>4} "
            f"{t('form_short', lang):5}")
    rows = [e(head.rstrip())]
    for p in players:
        form = p["form"]
        row = (
            f"{_cut(p['nickname'], _NICK_WIDTH):<{_NICK_WIDTH}} {fmt_int(p['elo'], lang):>4} "
            f"{fmt_num(form['kd'], lang):>4} {fmt_int(form['adr'], lang):>3} {fmt_num(form['rating'], lang):>4} "
            f"{_results(form['results'], lang, 5)}"
        )
        rows.append(e(row))
    return "\n".join(rows)


def _specialists(team: dict[str, Any], lang: str) -> str:
    """The side's best entry fragger and clutcher, when enough attempts name one
    (:func:`faceit.analysis.specialists`). A lifetime rate says so: the table above and its hint
    speak of the last 20 matches, where that player may have no figures at all."""
    by_id = {p["player_id"]: p for p in team["players"]}
    parts = []
    for field, label in (("entry_success", "entry"), ("clutch_1v1", "clutch")):
        best = by_id.get((team.get("specialists") or {}).get(field) or "")
        if best is not None:
            lifetime = f" ({t('lifetime_rate', lang)})" if field in best.get("lifetime_rates", ()) else ""
            parts.append(f"{t(label, lang)}: {e(best['nickname'])} "
                         f"{fmt_pct(best['form'][field], lang, fraction=True)}{lifetime}")
    return " · ".join(parts)


def _maps_block(data: dict[str, Any], lang: str) -> list[str]:
    """The map table (each side's win rate per map, ★ on a picked map), below the lineups: the
    advice drawn from it comes first (:func:`_map_advice`)."""
    maps = data["maps"]
    head = f"📊 <b>{t('map_rates', lang)}</b> — {t('maps_hint', lang)}"
    if maps.get("pool_source") == "active_duty":
        head += t("maps_active_pool", lang)
    rows = [e(f"{t('map', lang):<10} {'[1]':>5} {'[2]':>5} {'Δ':>4}")]
    for row in maps["maps"]:
        label = _cut(row["label"], 8) + (" ★" if row["picked"] else "")
        # A side without a game on the map has no rate: its 50% is the prior alone, shown as "—"
        # (a lobby with no data read "Mirage 50% 50% 0" on every row), and so is the Δ.
        first, second = (None if row[side].get("matches") == 0 else whole_percent(row[side]["rate"])
                         for side in ("faction1", "faction2"))
        delta = first - second if first is not None and second is not None else None
        rows.append(e(  # Δ of the two figures as shown, so the row adds up on the screen
            f"{label:<10} {fmt_pct(first, lang):>5} {fmt_pct(second, lang):>5} "
            f"{fmt_signed(delta, lang):>4}"
        ))
    return [head, "<pre>" + "\n".join(rows) + "</pre>"]


def _map_advice(data: dict[str, Any], lang: str) -> list[str]:
    """The maps in a few words, near the top: the picked maps and whom each favours, or before the
    veto what each side should pick and ban."""
    maps = data["maps"]
    teams = data["teams"]
    lines = [f"🗺 <b>{t('maps', lang)}</b>"]
    if maps.get("picked"):
        said = [f"<b>{e(map_label(mid))}</b>" + (f" — {t('favours', lang)} {e(teams[fav]['name'])}" if fav else "")
                for mid, fav in zip(maps["picked"], maps["picked_favours"], strict=True)]
        lines.append(f"★ {t('picked' if len(said) == 1 else 'picked_many', lang)}: " + "; ".join(said))
    else:
        for idx, key in enumerate(("faction1", "faction2"), start=1):
            advice = maps["advice"][key]
            said = []
            if advice.get("pick"):
                said.append(f"{t('pick', lang)} <b>{e(map_label(advice['pick']))}</b>")
            if advice.get("ban"):
                said.append(f"{t('ban', lang)} {e(', '.join(map_label(m) for m in advice['ban']))}")
            lines.append(f"[{idx}] {e(teams[key]['name'])}: " + (" · ".join(said) or t("no_map_edge", lang)))
    return lines


def _danger_block(data: dict[str, Any], lang: str) -> list[str]:
    teams = data["teams"]
    nick = {p["player_id"]: p["nickname"] for k in teams for p in teams[k]["players"]}
    lines = [f"⚠️ <b>{t('danger', lang)}</b>"]
    for idx, key in enumerate(("faction1", "faction2"), start=1):
        team = teams[key]
        # Both lists name the other side's players, as this team meets them; none when they are
        # too close to tell apart.
        if not team["threats"]:
            # No figures on any opponent (a lobby FACEIT told nothing of): not "too close to tell".
            why = "no_standout_data" if team.get("opponents_unknown") else "no_standout"
            lines.append(f"[{idx}] {e(team['name'])}: {t(why, lang)}")
            continue
        threats = team["threats"][:2]
        targets = team["targets"]
        lines.append(f"[{idx}] {e(team['name'])}: {plural(len(threats), lang, THREATS)}: "
                     f"<b>{', '.join(e(nick[p]) for p in threats)}</b> · "
                     f"{plural(len(targets), lang, TARGETS)}: {', '.join(e(nick[p]) for p in targets)}")
    return lines


# Finished match ------------------------------------------------------------------------------------


def render_finished_match(data: dict[str, Any], lang: str) -> str:
    teams = data["teams"]
    lines = [f"🏁 <b>{t('finished_title', lang)}</b> · {_match_link(data, lang)}",
             f"<i>{t('finished_note', lang)}</i>"]
    if data.get("finished_at"):
        lines.append(_when(data["finished_at"], lang))
    if data.get("winner") in teams:
        lines.append(f"🏆 {t('winner', lang)}: <b>{e(teams[data['winner']]['name'])}</b>")
    if not data["maps"]:
        lines.append(t("no_stats", lang))
    for rnd in data["maps"]:
        sides = winner_first(rnd["teams"], data.get("winner"))
        lines.append("")
        lines.append(f"🗺 <b>{e(rnd['label'])}</b> {fmt_score([side['score'] for side in sides], lang)}")
        for team in sides:
            mark = "🏆 " if team["won"] else ""
            lines.append(f"{mark}<b>{e(team['name'])}</b>")
            rows = [e(f"{t('player', lang):<12} {'K':>3} {'D':>3} {'A':>3} {'K/D':>4} {'ADR':>4}")]
            for p in team["players"]:
                rows.append(e(
                    f"{_cut(p['nickname'], 12):<12} {fmt_int(p['kills'], lang):>3} {fmt_int(p['deaths'], lang):>3} "
                    f"{fmt_int(p['assists'], lang):>3} {fmt_num(p['kd'], lang):>4} {fmt_int(p['adr'], lang):>4}"
                ))
            lines.append("<pre>" + "\n".join(rows) + "</pre>")
    if data.get("best_player"):
        lines.append(f"⭐ {t('best_player', lang)}: <b>{e(data['best_player'])}</b>")
    return "\n".join(lines)


def winner_first(sides: list[dict[str, Any]], winner: str | None) -> list[dict[str, Any]]:
    """A map's two sides (``{"faction": …, "score": …}``) with the match winner's first: the
    score reads from the side the text names as the winner ("Winner: B", then "Mirage 13:9"),
    and the team tables follow in the same order. As FACEIT listed them when no winner is known."""
    return sorted(sides, key=lambda side: bool(winner) and side.get("faction") != winner)


# Player report ---------------------------------------------------------------------------------


def render_player_report(data: dict[str, Any], lang: str) -> str:
    lines = [f"👤 <b>{t('player_report', lang)}: {_link(data.get('faceit_url'), data['nickname'], lang)}</b>"
             + (f" ({e(data['country'].upper())})" if data.get("country") else "")]
    progress = data.get("progress")
    level_line = f"{t('level', lang)} <b>{fmt_int(data.get('level'), lang)}</b> · Elo <b>{fmt_int(data.get('elo'), lang)}</b>"
    if progress:
        if progress.get("high") is None:
            level_line += f" · {t('max_level', lang)}"
        else:
            # The Elo still missing, unsigned: "+150" beside the Elo read as points won.
            level_line += " · " + t("to_next", lang).format(elo=fmt_int(progress["to_next"], lang),
                                                            level=progress["level"] + 1)
    lines.append(level_line)
    if data.get("elo_seen_change") is not None:
        # Since when: "+60" over a week and over half a year say different things.
        since = data.get("elo_seen_since")
        label = (t("elo_seen_on", lang).format(date=day_label(since, lang)) if since
                 else t("elo_seen", lang))
        lines.append(f"{label}: {fmt_signed(data['elo_seen_change'], lang)}")
    life = data.get("lifetime")
    if life and any(life.get(k) is not None for k in ("matches", "win_rate", "kd", "hs_pct", "adr")):
        lines.append("")
        lines.append(f"📊 <b>{t('lifetime', lang)}</b>: {fmt_int(life['matches'], lang)} "
                     f"{plural(life['matches'] or 0, lang, MATCHES)} · "
                     f"{t('win_rate', lang)} {fmt_pct(life['win_rate'], lang)} · K/D {fmt_num(life['kd'], lang)} · "
                     f"HS {fmt_pct(life['hs_pct'], lang)} · ADR {fmt_num(life['adr'], lang, 1)}")
        lines.append(f"{t('streak', lang)} {fmt_int(life['current_streak'], lang)} · {t('longest', lang)} "
                     f"{fmt_int(life['longest_streak'], lang)}"
                     + (f" · {t('entry_own', lang)} {fmt_pct(life['entry_success'], lang, fraction=True)}"
                        if life.get("entry_success") is not None else "")
                     + (f" · {t('clutch_own', lang)} {fmt_pct(life['clutch_1v1'], lang, fraction=True)}"
                        if life.get("clutch_1v1") is not None else ""))
    form = data["form"]
    lines.append("")
    if form["matches"]:
        recent = (t("recent_one", lang) if form["matches"] == 1
                  else t("recent", lang).format(n=form["matches"], matches=plural(form["matches"], lang, MATCHES)))
        lines.append(f"🔥 <b>{recent}</b>: {_results(form['results'], lang)}")
        lines.append(f"{t('win_rate', lang)} {fmt_pct(form['win_rate'], lang)} · K/D {fmt_num(form['kd'], lang)} · "
                     f"ADR {fmt_num(form['adr'], lang, 1)} · HS {fmt_pct(form['hs_pct'], lang)} · "
                     f"K/R {fmt_num(form['kr'], lang)} · {t('rating', lang)} <b>{fmt_num(form['rating'], lang)}</b>")
        trend = data["trend"]
        delta = trend["delta"]
        if trend["direction"] == "unknown":
            lines.append(f"📈 {t('trend_unknown', lang)}")
        else:
            verdict = f"<b>{t('trend_' + trend['direction'], lang)}</b>"
            label = t("trend", lang).format(n=trend["last10"]["matches"], m=trend["previous10"]["matches"],
                                            verdict=verdict)
            lines.append(f"📈 {label} "
                         f"({t('rating', lang)} {fmt_signed(delta['rating'], lang, 2)}, "
                         f"K/D {fmt_signed(delta['kd'], lang, 2)}, ADR {fmt_signed(delta['adr'], lang, 1)})")
    else:
        lines.append(t("no_matches", lang))
    if data.get("maps"):
        lines.append("")
        lines.append(f"🗺 <b>{t('maps', lang)}</b>")
        rows = [e(f"{t('map', lang):<9} {'#':>5} {t('win_rate_col', lang):>5} {'K/D':>4} {'ADR':>4}")]
        for row in data["maps"]:
            rows.append(e(f"{_cut(row['label'], 9):<9} {fmt_int(row['matches'], lang):>5} "
                          f"{fmt_pct(row['win_rate'], lang):>5} {fmt_num(row['kd'], lang):>4} "
                          f"{fmt_int(row['adr'], lang):>4}"))
        lines.append("<pre>" + "\n".join(rows) + "</pre>")
    return "\n".join(lines)


def chart_caption(data: dict[str, Any], lang: str) -> str:
    """The report chart's caption: how many matches it shows, oldest on the left (as the report's
    results read); one match is "last match", not "last 1 match"."""
    n = len(data["chart"]["kd"])
    if n == 1:
        return t("chart_caption_one", lang).format(nick=e(data["nickname"]))
    return t("chart_caption", lang).format(nick=e(data["nickname"]), n=n, matches=plural(n, lang, MATCHES))


# Bulk, monitoring, analytics, cache --------------------------------------------------------------


def render_bulk(data: dict[str, Any], lang: str) -> str:
    """A /bulk list's results, one line a match: its short id (a link to the room), then the
    teams, their average Elo, win chances and the map, each figure named; a failed match's
    reason names it by the same short id."""
    lines = [f"📦 <b>{t('bulk_title', lang)}</b>: {t('analysed', lang)} {data['analysed']}/{data['total']}"]
    for item in data["matches"]:
        if item["outcome"] == "analysed":
            a = item["summary"]
            known = chances_known(a["probability_source"])
            fav = a.get("favourite") if known else None
            chances = shown_chances(a["p1"])
            picked = a["maps"]
            maps_label = t("map_one" if len(picked) == 1 else "map_many", lang)
            lines.append(
                f"• {_link(a.get('faceit_url'), short_match_id(a['match_id']), lang)}: {e(a['faction1'])} "
                f"{t('versus', lang)} {e(a['faction2'])} · {t('avg_elo', lang)} {fmt_int(a['elo1'], lang)} / {fmt_int(a['elo2'], lang)}"
                + (f" · {t('win_chance', lang)} {fmt_pct(chances[0], lang)} / {fmt_pct(chances[1], lang)}"
                   if known else "")
                + (f" · {t('favourite_in_line', lang)} <b>{e(a[fav])}</b>" if fav else "")
                + (f" · {maps_label} {e(', '.join(map_label(m) for m in picked))}" if picked else "")
            )
        elif item["outcome"] == "finished":
            r = item["summary"]
            winner = r.get("winner_name")
            lines.append(f"• {_link(r.get('faceit_url'), short_match_id(r['match_id']), lang)}: {t('finished', lang)}"
                         + (f" · {t('winner_in_line', lang)} <b>{e(winner)}</b>" if winner else "")
                         + (" · " + ", ".join(f"{e(m['label'])} {fmt_score(m['score'], lang)}" for m in r["maps"])
                            if r.get("maps") else ""))
        else:
            message = item.get("error", {}).get("texts", {}).get(lang) or item.get("error", {}).get("code", "")
            match_id = item.get("match_id")
            if match_id:  # its reason may name it again ("FACEIT has no match “1-…”"): as short
                short = short_match_id(match_id)
                ref = _link(room_url(match_id), short, lang)  # (opened in the reader's language)
                message = message.replace(match_id, short)
            else:  # what the list said that is no match id: as written
                ref = e(item.get("ref") or "")
            lines.append(f"• {ref}: ❌ {e(message)}")
    return "\n".join(lines)


def _no_winner(data: dict[str, Any], lang: str) -> str:
    """A finished match without a result: a draw when the score is level (maps won 1:1), else
    unknown in words ("finished a match: ?" said nothing)."""
    score = data.get("score")
    level = bool(score) and len(score) == 2 and score[0] == score[1] and bool(score[0])
    return t("draw" if level else "result_unknown", lang)


def render_notification(data: dict[str, Any], lang: str) -> str:
    """A followed player's finished match: result and score, maps, their line, the Elo it moved."""
    result = t("win", lang) if data.get("won") else t("loss", lang) if data.get("won") is False else _no_winner(data, lang)
    icon = "🟢" if data.get("won") else "🔴" if data.get("won") is False else "⚪"
    score = data.get("score")  # their team's first (faceit.analysis.own_score_first)
    lines = [f"{icon} <b>{e(data['nickname'])}</b> {t('new_match', lang)}: <b>{result}</b>"
             + (f" {fmt_score(score, lang)}" if score else "")
             + (f" · {e(data['label'])}" if data.get("label") else "")
             + "".join(f" · {e(m['label'])}" + (f" {fmt_score(m['score'], lang)}" if m.get("score") else "")
                       for m in data.get("maps") or ())]
    stats = (f"K/D/A {fmt_int(data.get('kills'), lang)}/{fmt_int(data.get('deaths'), lang)}/"
             f"{fmt_int(data.get('assists'), lang)} · K/D {fmt_num(data.get('kd'), lang)} · "
             f"ADR {fmt_num(data.get('adr'), lang, 1)} · HS {fmt_pct(data.get('hs_pct'), lang)}")
    lines.append(stats)
    if data.get("elo_change") is not None:
        over = int(data.get("elo_change_matches") or 1)
        span = f" {t('over_matches', lang).format(n=over, matches=plural(over, lang, MATCHES))}" if over > 1 else ""
        lines.append(f"Elo {fmt_signed(data['elo_change'], lang)}{span} → {fmt_int(data.get('elo'), lang)}")
    elif data.get("elo") is not None:
        lines.append(f"Elo {fmt_int(data['elo'], lang)}")
    lines.append(_link(data.get("faceit_url"), t("open", lang), lang))
    return "\n".join(lines)


#: A summary shows a followed player's last ten results at most.
SUMMARY_RESULTS = 10


def render_analytics(data: dict[str, Any], lang: str, zone: tzinfo = UTC) -> str:
    """A weekly or monthly summary: analyses received, then each followed player's period. A date
    it names ("+25 since Dec 7") is the day in ``zone``, the reader's own (``/tz``), as the day
    their summary comes on is: in UTC a snapshot at 01:00 Moscow time fell on the day before."""
    period = "monthly" if data.get("report_type") == "monthly" else "weekly"
    title = t("analytics_" + period, lang)
    lines = [f"📅 <b>{title}</b>"]
    if data.get("user_id") is None and "users" in data:
        lines.append(f"{fmt_int(data['users'], lang)} {plural(data['users'], lang, USERS)}")
    analyses = _analysis_kinds(data.get("analyses", {}))
    total = sum(analyses.values())
    parts = [f"{t('kind_' + k, lang)}: {fmt_int(analyses[k], lang)}" for k in _kind_order(analyses)]
    before = t("before_" + period, lang)
    earlier = data.get("previous_analyses")
    lines.append(f"{t('analyses', lang)}: <b>{fmt_int(total, lang)}</b>" + (f" ({', '.join(parts)})" if parts else "")
                 + (f" · {before}: {fmt_int(sum(_analysis_kinds(earlier).values()), lang)}"
                    if earlier is not None else ""))
    if "players" in data:
        lines.append("")
        if not data["players"]:
            lines.append(t("no_tracked", lang))
        else:
            lines.append(f"👥 <b>{t('tracked', lang)}</b> ({t('results_order', lang)})")
            for p in data["players"]:
                if p["matches"]:
                    # At most the last ten results are shown: more says which ten.
                    shown = (", " + t("last_results", lang).format(n=SUMMARY_RESULTS) + ":"
                             if p["matches"] > SUMMARY_RESULTS else "")
                    body = (f"{fmt_int(p['matches'], lang)} {plural(p['matches'], lang, MATCHES)}{shown} "
                            f"{_results(p['results'], lang, SUMMARY_RESULTS)} · "
                            f"{t('win_rate', lang)} {fmt_pct(p['win_rate'], lang)} · K/D {fmt_num(p['kd'], lang)}")
                else:
                    body = t("no_period_matches", lang)
                elo = ""
                if p.get("elo") is not None:
                    elo = f" · Elo {fmt_int(p['elo'], lang)}"
                    if p.get("elo_change") is not None:
                        # From a snapshot inside the period: say from when (the change is partial).
                        partial = (p.get("elo_since") or 0) > (data.get("since") or 0) + 3600
                        date = day_label(p["elo_since"], lang, zone)
                        when = (" " + t("elo_from", lang).format(date=date)) if partial else ""
                        elo += f" ({fmt_signed(p['elo_change'], lang)}{when})"
                lines.append(f"• <b>{e(p['nickname'])}</b>: {body}{elo}{_against_before(p, period, lang)}")
    return "\n".join(lines)


def analytics_empty(data: dict[str, Any]) -> bool:
    """Whether a user's summary (:func:`render_analytics`'s ``data``) has nothing to report: no
    analysis of a kind it counts, and no match of any followed player in the period."""
    return (not sum(_analysis_kinds(data.get("analyses") or {}).values())
            and not any(p.get("matches") for p in data.get("players") or ()))


def _analysis_kinds(counts: dict[str, int]) -> dict[str, int]:
    """Activity counts other kinds too (a report asked for marks the user active): only the kinds
    of analysis, those with a ``kind_`` label, each told by its name in the reader's language."""
    return {k: v for k, v in counts.items() if f"kind_{k}" in L}


def _kind_order(analyses: dict[str, int]) -> list[str]:
    """The kinds of ``analyses`` in :data:`KIND_ORDER`, any other after them by name: one order
    every week, whichever kind happens to come first in the counts."""
    rank = {kind: i for i, kind in enumerate(KIND_ORDER)}
    return sorted(analyses, key=lambda kind: (rank.get(kind, len(rank)), kind))


def _against_before(player: dict[str, Any], period: str, lang: str) -> str:
    """How a tracked player's win rate and K/D moved since the period before ("vs the week
    before (5 matches): win rate +10 pp, K/D −0.12"; percentage points, as "WR +10" left the
    reader to guess), or only how many matches they played then when one of the two periods has
    none."""
    earlier = player.get("previous")
    if not earlier:
        return ""
    count = f"{fmt_int(earlier['matches'], lang)} {plural(earlier['matches'], lang, MATCHES)}"
    if not (earlier["matches"] and player["matches"]):
        return f"\n  {t('before_' + period, lang)}: {count}"
    moved = _minus(player["win_rate"], earlier["win_rate"])
    rate = (t("win_rate_change", lang).format(change=fmt_signed(moved, lang)) if moved is not None
            else f"{t('win_rate', lang)} —")
    kd = fmt_signed(_minus(player["kd"], earlier["kd"]), lang, 2)
    return f"\n  {t('compared_' + period, lang)} ({count}): {rate}, K/D {kd}"


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def render_monitoring(data: dict[str, Any], lang: str) -> str:
    body = t("monitor_body", lang).format(checked=fmt_int(data["checked"], lang), total=fmt_int(data["players"], lang),
                                          new=fmt_int(data["new_matches"], lang),
                                          notes=fmt_int(data["notifications"], lang))
    line = f"🔔 <b>{t('monitor_title', lang)}</b>: {body}"
    if data.get("errors"):
        names = ", ".join(e(err.get("nickname") or err.get("player_id")) for err in data["errors"][:10])
        line += f"\n{t('monitor_errors', lang)}: {names}"
    return line


def render_cache_update(data: dict[str, Any], lang: str) -> str:
    line = (f"🔄 <b>{t('cache_title', lang)}</b> ({e(data['cache_type'])}): {t('refreshed', lang)} "
            f"{fmt_int(data['refreshed'], lang)}/{fmt_int(data['total'], lang)}")
    if data.get("failed"):
        line += f" · {t('failed', lang)}: {fmt_int(len(data['failed']), lang)}"
    return line

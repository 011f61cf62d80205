"""The bot's own lines as a Russian speaker reads them (a review's findings), English kept in step:
a failed job's status as a word, failure lines of full sentences, a subject in "already answered",
Telegram's own name for its Start button, and Russian words for /report and /tz examples."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest

from bot.routers.jobs import _cancel_answer
from bot.routers.reports import report_type_of
from bot.texts import TEXTS, t
from bot.timezones import parse_timezone
from bot.views import failure_reason, failure_text, shown_here_text, status_text, status_word

TIME_LIMIT = {"code": "time_limit", "message": "took too long"}


def test_a_failed_jobs_status_is_a_word_in_russian() -> None:
    """"статус: не удалось" is no status; it read the same in /status, /cancel and /requeue."""
    assert status_word("failed", "ru") == "ошибка"
    record = SimpleNamespace(status="failed", error=TIME_LIMIT, actor="player_lookup", kwargs={}, progress=None,
                             id="j1")
    assert status_text(record, "ru").startswith("Поиск игрока — статус: ошибка\n")
    late = _cancel_answer(SimpleNamespace(outcome="ended", record=record), "j1", "ru")  # type: ignore[arg-type]
    assert late == "Задача <code>j1</code> уже завершена (статус: ошибка)."
    assert "не удалось" not in status_text(record, "ru") + late
    assert _cancel_answer(SimpleNamespace(outcome="ended", record=record), "j1", "en").endswith(  # type: ignore[arg-type]
        "has already ended (status: failed).")


def test_a_failure_line_is_full_sentences_in_both_languages() -> None:
    """"❌ Поиск игрока — ошибка: слишком долго, задача остановлена." was a fragment, lower-case
    beside FACEIT's capitalised reasons."""
    ru = failure_text("j1", "player_lookup", TIME_LIMIT, {}, "ru")
    assert ru == ("❌ Поиск игрока — ошибка. Задача выполнялась слишком долго и была остановлена.\n"
                  "Попробуйте ещё раз через несколько минут.")
    en = failure_text("j1", "player_lookup", TIME_LIMIT, {}, "en")
    assert en == "❌ Player lookup failed. The job took too long and was stopped.\nSend it again in a few minutes."


@pytest.mark.parametrize("error", [
    {"code": "time_limit"}, {"code": "crash_loop"}, {"code": "error"}, {"code": "no_such_code"},
    {"code": "upstream"}, {"code": "rate_limited"}, {"code": "auth"}, {"code": "not_found"},
    {"code": "match_not_analysable", "key": "match_empty"},
    {"code": "bad_input", "key": "too_many_subscriptions", "params": {"limit": "20"}},
], ids=lambda error: error.get("key") or error["code"])
@pytest.mark.parametrize("lang", ["en", "ru"])
def test_every_failure_reason_is_a_capitalised_sentence(error: dict[str, Any], lang: str) -> None:
    """The bot's own reasons began lower-case, FACEIT's with a capital: one rule for all."""
    reason, advice = failure_reason(error, "player_report", {}, lang)
    assert reason[0].isupper() and reason.endswith("."), reason
    headline = failure_text("j1", "player_report", error, {}, lang).split("\n")[0]
    assert re.match(r"❌ (Player report failed|Отчёт по игроку — ошибка)\. \S", headline), headline
    assert advice == "" or advice[0].isupper()


def test_already_answered_has_a_subject() -> None:
    """"в этом чате уже ответил на это": who answered? And "только что", as the English "a moment
    ago": "минуту назад" was untrue ten seconds after the answer."""
    for replying in (True, False):
        text = shown_here_text("j1", "match_analysis", "ru", done=True, replying=replying)
        assert text.startswith("👆 Анализ матча: я только что ответил на это здесь — "), text


def test_the_start_button_is_named_as_telegram_names_it() -> None:
    """Telegram's Russian apps label the button «Запустить», not «Старт»; /start works everywhere."""
    ru, en = t("subscribed_in_group", "ru"), t("subscribed_in_group", "en")
    assert "нажмите «Запустить» (или отправьте /start)" in ru and "Старт" not in ru
    assert "press Start (or send /start)" in en


@pytest.mark.parametrize(("typed", "meant"), [
    ("неделя", "weekly"), ("Неделя", "weekly"), ("нед", "weekly"), ("месяц", "monthly"), (" мес ", "monthly"),
    ("weekly", "weekly"), ("Monthly", "monthly"), (None, "weekly"),
])
def test_report_takes_the_russian_words_for_week_and_month(typed: str | None, meant: str) -> None:
    """"/report неделя" was answered "Which report?": the Russian words (and their short forms)
    name the report types, the English names stay valid, and no argument is the weekly one.
    Through the bot and a worker: test_end_to_end.py's /report test."""
    assert report_type_of(typed) == meant


@pytest.mark.parametrize("typed", ["год", "yearly", "неделька", "week ly"])
def test_report_still_refuses_a_type_it_does_not_know(typed: str) -> None:
    """A word that names no report is refused (None: the handler answers the usage line), and
    that line shows the Russian words it takes."""
    assert report_type_of(typed) is None
    assert "/report неделя" in t("usage_report", "ru") and "/report месяц" in t("usage_report", "ru")


def test_the_russian_time_zone_examples_are_russian_and_work() -> None:
    """The Russian /tz texts showed "/tz Moscow" though "/tz Москва" works."""
    for key in ("usage_tz", "tz_current", "tz_unset"):
        for lang in ("ru", "en"):
            examples = re.findall(r"/tz ([^,\s]+)", TEXTS[key][lang])
            assert examples, (key, lang)
            assert all(parse_timezone(example) for example in examples), (key, lang, examples)
        assert "/tz Москва" in TEXTS[key]["ru"] and "Moscow" not in TEXTS[key]["ru"]
    assert parse_timezone("Москва") == "Europe/Moscow"
    assert "/report неделя|месяц" in t("help", "ru", bulk=20, per_minute=5, active=3)

"""The bot's own lines as an English-speaking player reads them (a review's findings), the Russian
kept in step: one spelling, one name for each job and thing, advice that does not read as a
promise, refusals that say what to do next."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from bot.routers.jobs import _cancel_answer
from bot.texts import TEXTS, t
from bot.timezones import parse_timezone
from bot.views import canceled_text, failure_text, kind_name, progress_text, queued_text, status_text
from faceit.errors import BadInputError
from faceit.i18n import ERROR_TEXTS, STAGE_TEXTS, user_message, with_key
from faceit.render import L

TIME_LIMIT = {"code": "time_limit", "message": "took too long"}


def _english() -> list[str]:
    return ([entry["en"] for entry in TEXTS.values()] + [entry["en"] for entry in ERROR_TEXTS.values()]
            + [entry["en"] for entry in STAGE_TEXTS.values()] + [pair[0] for pair in L.values()])


def test_every_english_text_spells_cancelled_the_british_way() -> None:
    """"canceled" in the bot's lines, "cancelled" in FACEIT's (and "analyse", "Favourite")."""
    american = [text for text in _english() if re.search(r"\bcancel(ed|ing)\b", text, re.IGNORECASE)]
    assert not american, american
    assert canceled_text("j1", "match_analysis", "en") == "✖ Match analysis cancelled.\nJob <code>j1</code>"
    assert t("status_canceled", "en") == "cancelled" and t("cancel_short", "en") == "Cancelled"


@pytest.mark.parametrize(("lang", "follow"), [("en", "Follow"), ("ru", "Подписка")])
def test_a_subscribe_job_is_called_follow_wherever_it_shows(lang: str, follow: str) -> None:
    """/subscribe's job showed as "Player lookup", a name the user never used."""
    record = SimpleNamespace(status="failed", error=TIME_LIMIT, actor="player_lookup", progress=None, id="j1",
                             kwargs={"player_ref": "Akro", "user_id": 1, "subscribe": True})
    assert queued_text("j1", "player_lookup", 2, False, lang).startswith(f"⏳ {follow}: ")
    assert progress_text("j1", "player_lookup", {"stage": "players", "percent": 5}, lang).startswith(f"⏳ {follow}: ")
    assert canceled_text("j1", "player_lookup", lang).startswith(f"✖ {follow}")
    assert failure_text("j1", "player_lookup", TIME_LIMIT, record.kwargs, lang).startswith(f"❌ {follow} ")
    assert status_text(record, lang).startswith(f"{follow}")
    # A lookup that does not subscribe (none the bot starts today) keeps its own name.
    assert kind_name("player_lookup", lang, {"player_ref": "Akro"}) == t("kind_player_lookup", lang)


def test_the_retry_advice_asks_the_user_to_send_it_again() -> None:
    """"Trying again in 10 s (attempt 4 of 4)", then "Trying again in a few minutes should help.":
    read as if the bot would try again itself."""
    en = failure_text("j1", "match_analysis", {"code": "upstream"}, {}, "en")
    assert en.endswith("\nSend it again in a few minutes.") and "Trying again" not in en
    assert failure_text("j1", "match_analysis", {"code": "upstream"}, {}, "ru").endswith(
        "\nПопробуйте ещё раз через несколько минут.")


@pytest.mark.parametrize(("typed", "stored"), [("3", "UTC+03:00"), ("0", "UTC"), ("-3", "UTC-03:00"),
                                               ("14", "UTC+14:00"), ("-12", "UTC-12:00"), ("15", None),
                                               ("-13", None)])
def test_a_bare_number_of_hours_is_a_utc_offset(typed: str, stored: str | None) -> None:
    """"/tz 3" and "/tz 0" were refused, though the help says "city or UTC offset"."""
    assert parse_timezone(typed) == stored


def test_a_joined_job_says_the_result_will_come() -> None:
    assert "you joined their job and will get the same result." in t("joined", "en", kind="Match analysis",
                                                                     job_id="j1")


@pytest.mark.parametrize(("status", "en", "ru"), [
    ("succeeded", "has already ended (status: done).", "уже завершена (статус: готово)."),
    ("canceled", "has already ended (status: cancelled).", "уже завершена (статус: отменено)."),
])
def test_a_cancel_too_late_says_the_job_finished(status: str, en: str, ru: str) -> None:
    """"Job … has already ended: done." read as a list of one."""
    record = SimpleNamespace(status=status, actor="match_analysis", kwargs={})
    result = SimpleNamespace(outcome="ended", record=record)
    assert _cancel_answer(result, "j1", "en") == f"Job <code>j1</code> {en}"  # type: ignore[arg-type]
    assert _cancel_answer(result, "j1", "ru") == f"Задача <code>j1</code> {ru}"  # type: ignore[arg-type]


def test_limits_count_jobs_in_the_help_and_the_refusal_alike() -> None:
    """The help said "3 at a time", the refusal "3 jobs in progress". The help names the noun once,
    before the counts, so a limit of 1 (which the settings allow) does not read "1 jobs"."""
    # Each limit by its own noun, as its refusal names it ("Too many requests", "Jobs in progress").
    assert ("Limits: requests — at most 5 a minute; jobs — at most 3 at a time."
            in t("help", "en", bulk=10, per_minute=5, active=3))
    assert "1 jobs" not in t("help", "en", bulk=10, per_minute=1, active=1)
    assert "1 requests" not in t("help", "en", bulk=10, per_minute=1, active=1)
    assert "Jobs in progress: 3 of the 3 you may have." in t("too_many_active", "en", count=3, limit=3)
    assert "1 jobs" not in t("too_many_active", "en", count=1, limit=1)


@pytest.mark.parametrize(("lang", "summary"), [("en", "Summary"), ("ru", "Сводка")])
def test_reports_job_is_called_a_summary_as_the_help_and_its_title_call_it(lang: str, summary: str) -> None:
    assert queued_text("j1", "analytics_report", 1, False, lang).startswith(f"⏳ {summary}: ")


def test_refusals_to_follow_say_what_to_do_next() -> None:
    """"You don't follow “x”." and "… at most 20 players. Unsubscribe from someone first." named no
    command."""
    not_followed = with_key(BadInputError("x"), "not_subscribed", ref="x")
    assert user_message(not_followed, "en").endswith("See /subscriptions.")
    assert user_message(not_followed, "ru").endswith("Список — в /subscriptions.")
    too_many = {"code": "bad_input", "key": "too_many_subscriptions", "params": {"limit": "20"}}
    en = failure_text("j1", "player_lookup", too_many, {"subscribe": True}, "en")
    ru = failure_text("j1", "player_lookup", too_many, {"subscribe": True}, "ru")
    assert en.endswith("Unfollow someone first: /unsubscribe &lt;nickname&gt;."), en  # escaped as HTML
    assert ru.endswith("Сначала отпишитесь от кого-нибудь: /unsubscribe &lt;никнейм&gt;."), ru

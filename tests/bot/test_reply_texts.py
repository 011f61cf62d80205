"""The bot's own lines as a reader meets them: advice that agrees with the reason it follows, a
player lookup without placeholders, and wording that says what it means in both languages."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bot.delivery import _lookup_text
from bot.texts import t
from bot.views import failure_text, progress_text, status_text
from faceit.errors import BadInputError
from faceit.i18n import user_message, with_key

MATCH_EMPTY = {"code": "match_not_analysable", "key": "match_empty", "message": "match 1-x has no players yet"}
TOO_MANY = {"code": "bad_input", "key": "too_many_subscriptions", "params": {"limit": "20"},
            "message": "You can follow at most 20 players."}


def test_a_match_without_players_is_told_to_come_back_once() -> None:
    """"…no players yet: try again in a minute." was followed by "Trying again in a few minutes
    should help.": two waits, one after the other."""
    en = failure_text("j1", "match_analysis", MATCH_EMPTY, {}, "en")
    ru = failure_text("j1", "match_analysis", MATCH_EMPTY, {}, "ru")
    assert en == "❌ Match analysis failed. This match has no players yet: try again in a minute."
    assert ru == "❌ Анализ матча — ошибка. В матче ещё нет игроков — попробуйте через минуту."
    record = SimpleNamespace(status="failed", error=MATCH_EMPTY, actor="match_analysis", kwargs={}, progress=None,
                             id="j1")
    assert "try again in a minute.\nJob <code>j1</code>" in status_text(record, "en")


def test_too_many_follows_is_not_told_to_check_its_input() -> None:
    """The limit was met with "Check what you sent and try again.": sending it again cannot help;
    the reason already says what does (unfollow someone)."""
    for lang, advice in (("en", "Check what you sent"), ("ru", "Проверьте, что вы прислали")):
        text = failure_text("j1", "player_lookup", TOO_MANY, {}, lang)
        assert advice not in text and "20" in text, text
    assert failure_text("j1", "player_lookup", TOO_MANY, {}, "en").endswith("Unfollow someone first: /unsubscribe &lt;nickname&gt;.")


@pytest.mark.parametrize(("player", "lang", "expected"), [
    ({"nickname": "Akro", "elo": 1051, "level": 5}, "en", "👤 <b>Akro</b> · Elo 1051 · level 5"),
    ({"nickname": "Akro", "elo": 1051, "level": 5}, "ru", "👤 <b>Akro</b> · Elo 1051 · уровень 5"),
    ({"nickname": "Akro", "elo": 1051, "level": None}, "en", "👤 <b>Akro</b> · Elo 1051"),
    ({"nickname": "A<b>", "elo": None}, "ru", "👤 <b>A&lt;b&gt;</b>"),
])
async def test_a_player_lookup_names_its_figures_in_the_readers_language_and_skips_missing_ones(
        player: dict, lang: str, expected: str) -> None:
    """It read "👤 nick · Elo 1051 · lvl None", in English whatever the reader's language."""
    text = await _lookup_text(None, {"data": player}, 1, lang, first=True, in_group=False)  # type: ignore[arg-type]
    assert text == expected


def test_following_and_time_zone_texts_say_what_they_mean() -> None:
    not_followed = with_key(BadInputError("x"), "not_subscribed", ref="Akro")
    assert user_message(not_followed, "en") == "You don't follow “Akro”. See /subscriptions."  # everything else says "follow"
    assert user_message(not_followed, "ru") == "Вы не следите за «Akro». Список — в /subscriptions."
    for key in ("tz_current", "tz_set"):
        assert "on Mondays at 09:00 your time (when" in t(key, "en", zone="Europe/Berlin")  # was "in it"
        assert "в 09:00 по вашему времени (если" in t(key, "ru", zone="Europe/Berlin")


def test_a_message_that_is_no_room_link_is_pointed_at_player_reports_too() -> None:
    """A pasted profile or nickname got "Send me a FACEIT match room link, or see /help." alone."""
    assert "/player &lt;nickname&gt;" in t("not_understood", "en")
    assert "/player &lt;никнейм&gt;" in t("not_understood", "ru")


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_our_storage_not_answering_is_not_told_as_faceit_not_answering(lang: str) -> None:
    """Its retry notice and its final failure name our storage, and say that trying again makes sense."""
    waiting = progress_text("j1", "match_analysis", {"stage": "retrying", "code": "storage", "retry_in": 10,
                                                     "attempt": 2, "attempts": 4}, lang)
    failed = failure_text("j1", "match_analysis", {"code": "storage", "message": "Redis unavailable"}, {}, lang)
    for text in (waiting, failed):
        assert "FACEIT" not in text, text
    assert t("retry_reason_storage", lang) in waiting
    assert t("reason_storage", lang) in failed and t("advice_retry", lang) in failed

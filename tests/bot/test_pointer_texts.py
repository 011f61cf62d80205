"""What a repeat is told, by whether the job is done and whether the answer is a reply to the
message that shows it (a group's answer still being sent has no id to reply to yet)."""

from __future__ import annotations

import pytest

from bot.views import asked_again_text, shown_here_text


@pytest.mark.parametrize(("done", "replying", "en", "ru"), [
    (False, True, "already in progress in this chat — its progress and result come in the message I am replying to",
     "ход и результат придут в сообщение, на которое я отвечаю"),
    (False, False, "already in progress in this chat — its progress and result come in my answer just above",
     "ход и результат будут в моём ответе чуть выше"),
    (True, True, "already answered in this chat a moment ago — see the message I am replying to",
     "смотрите сообщение, на которое я отвечаю"),
    (True, False, "already answered in this chat a moment ago — see my answer just above",
     "смотрите мой ответ чуть выше"),
])
def test_a_group_member_is_told_where_the_answer_is(done: bool, replying: bool, en: str, ru: str) -> None:
    assert en in shown_here_text("j1", "match_analysis", "en", done, replying)
    assert ru in shown_here_text("j1", "match_analysis", "ru", done, replying)


def test_a_repeat_of_ones_own_request_says_whether_it_is_done() -> None:
    assert "it is in progress" in asked_again_text("j1", "player_report", "en")
    assert "you asked for this a moment ago — the result is in" in asked_again_text("j1", "player_report", "en", True)


def test_a_repeat_asked_in_another_chat_says_where_the_first_answer_is() -> None:
    """A user who asked in private and then pastes the link in a group is told the result goes to
    their private chat, not "the message that answered you first" (which the group cannot see)."""
    assert "you already asked for this in our private chat — it is in progress; its progress and result come " \
           "there" in asked_again_text("j1", "match_analysis", "en", elsewhere="private")
    assert "в другом чате — результат там" in asked_again_text("j1", "match_analysis", "ru", True, "other")
    assert "в личном чате со мной" in asked_again_text("j1", "match_analysis", "ru", elsewhere="private")


def test_a_refused_key_failure_says_to_come_back_once() -> None:
    from bot.views import failure_text

    error = {"code": "auth", "message": "FACEIT refused the API key", "retryable": False}
    en = failure_text("j1", "match_analysis", error, {}, "en")
    ru = failure_text("j1", "match_analysis", error, {}, "ru")
    assert "operators are notified" in en and en.count("Send it again") == 1, en
    assert "операторы уже знают" in ru and ru.count("Попробуйте") == 1, ru

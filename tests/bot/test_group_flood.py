"""A chat under Telegram's flood control cannot leave every other user of the bot unanswered.

A call of the bot process that meets a 429 waits it out, holding one of the bot's update slots
(``BOT_UPDATE_CONCURRENCY``, 16) meanwhile. Members of a group sending commands faster than
Telegram lets the bot answer there (about 20 messages a minute in a group) kept one waiting call
each, until no slot was left and nobody anywhere got an answer. Here the sandbox Bot API's real
per-chat flood control stands in for Telegram's, and a user in a private chat must still be
answered at once while a group is flooded. Real bot process, real Redis, the sandbox Bot API.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.bot.conftest import Stack, new_user
from tests.support.waiting import wait_until

#: Group chat ids of this module (negative, as Telegram's are).
_groups = itertools.count(-100_500_000, -1)


@pytest.fixture
def flood_control(quiet_stack: Stack) -> Iterator[Stack]:
    """The sandbox's flood control on for one test (off again after it)."""
    yield quiet_stack
    quiet_stack.tg.limits(enabled=False)


def help_answers(stack: Stack, chat_id: int) -> int:
    return sum(1 for e in stack.tg.messages(chat_id) if e["kind"] == "sent")


def test_members_flooding_a_group_leave_the_bot_free_to_answer_everyone_else(flood_control: Stack) -> None:
    """Forty members of one group send ``/help`` at once; the group takes a message every 2 s.
    One call waits for the group at a time; the others give up at once, so a private user's
    ``/help`` right after is answered without waiting behind them (it waited for slots to free,
    one every 2 s, behind the rest of the group's)."""
    stack = flood_control
    group = next(_groups)
    stack.tg.limits(chat_per_second=0.5, chat_burst=1, overall_per_second=1000, overall_burst=1000)
    for _ in range(40):
        stack.tg.inject(new_user(), "/help", chat_id=group)
    bystander = new_user()
    stack.say(bystander, "/help")
    assert "/analyze" in stack.first_reply(bystander, timeout=5)["text"]
    assert help_answers(stack, group) >= 1  # the group was answered too, as fast as it may be
    stack.bot.wait_for_log("1 call(s) there wait already; this one is given up", timeout=10)


def test_groups_whose_flood_wait_is_long_are_not_waited_for(flood_control: Stack) -> None:
    """Twenty groups, each already answered once, each ask again: each group's next message may
    go in 20 s. Past :data:`bot.telegram.GROUP_MAX_WAIT` the call gives up at once instead of
    holding an update slot for 20 s (twenty such waits held all sixteen slots, one per group), and
    a private user is answered at once."""
    stack = flood_control
    stack.tg.limits(chat_per_second=0.05, chat_burst=1, overall_per_second=1000, overall_burst=1000)
    groups = [(next(_groups), new_user()) for _ in range(20)]
    for group, member in groups:
        stack.tg.inject(member, "/help", chat_id=group)
    for group, _ in groups:  # each group's one message of the next 20 s
        stack.tg.wait_for(lambda es: next((e for e in es if e["kind"] == "sent"), None), timeout=10, chat_id=group)
    refused_before = stack.bot.log().count("Telegram refused a call while serving an update")
    for group, member in groups:
        stack.tg.inject(member, "/help", chat_id=group)
    bystander = new_user()
    stack.say(bystander, "/help")
    assert "/analyze" in stack.first_reply(bystander, timeout=5)["text"]
    # Given up, not waiting: each group's second answer was refused at once, none is pending.
    wait_until(lambda: stack.bot.log().count("Telegram refused a call while serving an update") - refused_before
               >= len(groups), timeout=5, what="every group's second answer given up")
    assert all(help_answers(stack, group) == 1 for group, _ in groups)


def test_a_private_chat_under_flood_control_still_gets_every_answer(flood_control: Stack) -> None:
    """One person pastes three commands at once: a private chat's limit answers within a second,
    and all three answers wait for it (only a group's are given up, one waiting at a time)."""
    stack = flood_control
    stack.tg.limits(chat_per_second=1, chat_burst=1, overall_per_second=1000, overall_burst=1000)
    user = new_user()
    for _ in range(3):
        stack.say(user, "/help")
    assert len(stack.replies(user, 3, timeout=15)) == 3


def test_one_person_sending_faster_than_their_chat_takes_holds_three_waiting_answers_at_most(
        flood_control: Stack) -> None:
    """Telegram takes about a message a second in a private chat; the flood guard lets a person
    send two a second. Every answer waited then, each holding an update slot, and sixteen seconds
    of it held all sixteen. Now three wait and the rest are given up at once."""
    stack = flood_control
    stack.tg.limits(chat_per_second=0.5, chat_burst=1, overall_per_second=1000, overall_burst=1000)
    user, marker = new_user(), "3 call(s) there wait already; this one is given up"
    before = stack.bot.log().count(marker)
    for _ in range(6):  # one answered, three wait (a message every 2 s), two are given up
        stack.say(user, "/help")
    wait_until(lambda: stack.bot.log().count(marker) - before >= 2, timeout=5, what="two answers given up")
    bystander = new_user()
    stack.say(bystander, "/help")
    assert "/analyze" in stack.first_reply(bystander, timeout=5)["text"]
    # The three that waited are answered as the chat takes them; exactly two were given up.
    assert len(stack.replies(user, 4, timeout=20)) == 4
    assert stack.bot.log().count(marker) - before == 2


"""Messages sent in a chat's name start nothing (``bot.middlewares.anonymous``).

Telegram gives an anonymous group admin's message the stand-in user @GroupAnonymousBot
(1087968824, the same in every group) and the group as ``sender_chat``; a post as a channel gets
@Channel_Bot (136817688) and the channel; a channel's post forwarded into its discussion group
comes from 777000 with ``is_automatic_forward``. Served as those users, every anonymous admin
everywhere shared one rate limit and one list of follows. Real bot process, real Redis, the
sandbox Bot API (which marks such messages as Telegram does).
"""

from __future__ import annotations

import itertools

import pytest
from aiogram.types import Chat, Message, User

from bot.middlewares.anonymous import STAND_IN_USERS, asks_for_work, speaks_for_a_chat
from bot.routers import all_routers, command_names
from tests.bot.conftest import Stack, new_user

ANONYMOUS_ADMIN = 1087968824
CHANNEL_BOT = 136817688
CHANNEL_FORWARDS = 777000
ROOM = "https://www.faceit.com/en/cs2/room/1-0adf2eb6-1c2d-4e5f-8a9b-0c1d2e3f4a5b"

_groups = itertools.count(-100_600_000, -1)


def bot_messages(stack: Stack, chat_id: int) -> list[dict]:
    return [e for e in stack.tg.messages(chat_id) if e["kind"] in ("sent", "photo")]


def test_an_anonymous_admins_commands_and_links_get_a_note_and_start_nothing(quiet_stack: Stack) -> None:
    """/subscribe, /analyze, a pasted room link and /subscriptions from an anonymous admin: each
    is answered with the note (in both languages: the stand-in carries none), and no job is made.
    Another bot's command, a profile link (the bot reports on those in private chats only) and
    the group's chatter pass in silence. A member writing as themselves is served."""
    stack, group = quiet_stack, next(_groups)
    for text in ("/subscribe s1mple", f"/analyze {ROOM}", ROOM, "/subscriptions"):
        stack.tg.inject(ANONYMOUS_ADMIN, text, chat_id=group, sender_chat_id=group)
    for text in ("/ban@SomeOtherBot spammer", "/warn spammer", "https://www.faceit.com/en/players/s1mple", "gg wp"):
        stack.tg.inject(ANONYMOUS_ADMIN, text, chat_id=group, sender_chat_id=group)
    member = new_user()
    stack.tg.inject(member, "/help", chat_id=group)
    answers = stack.tg.wait_for(lambda es: sent if len(sent := [e for e in es if e["kind"] == "sent"]) >= 5 else None,
                                timeout=10, chat_id=group)
    notes = [e for e in answers if "as yourself" in e["text"] and "от своего имени" in e["text"]]
    assert len(notes) == 4, [e["text"] for e in answers]
    assert any("/analyze" in e["text"] and "as yourself" not in e["text"] for e in answers)  # the member's /help
    stack.bot.wait_for_log("not a person's: not served")
    assert stack.job_ids_of(ANONYMOUS_ADMIN) == []  # (the bot records a job the moment it starts one)
    stack.tg.inject(member, "/help", chat_id=group)  # a marker: what came before it is all answered
    stack.tg.wait_for(lambda es: len([e for e in es if e["kind"] == "sent"]) >= 6, timeout=10, chat_id=group)
    assert len(bot_messages(stack, group)) == 6  # nothing for other bots' commands, the profile, "gg wp"


def test_a_channels_posts_get_a_note_and_its_forwards_nothing(quiet_stack: Stack) -> None:
    """Posting as a channel gets the note; the channel's own posts that Telegram forwards into
    the group (room links among them) get nothing at all."""
    stack, group, channel = quiet_stack, next(_groups), next(_groups)
    stack.tg.inject(CHANNEL_FORWARDS, f"Tonight's match: {ROOM}", chat_id=group, sender_chat_id=channel,
                    automatic_forward=True)
    stack.tg.inject(CHANNEL_BOT, f"/player@{stack.tg.bot_info()['bot']['username']} s1mple", chat_id=group,
                    sender_chat_id=channel)
    note = stack.tg.wait_for(lambda es: next((e for e in es if e["kind"] == "sent"), None), timeout=10,
                             chat_id=group)
    assert "от своего имени" in note["text"] and "as yourself" in note["text"]
    member = new_user()
    stack.tg.inject(member, "/help", chat_id=group)
    stack.tg.wait_for(lambda es: len([e for e in es if e["kind"] == "sent"]) >= 2, timeout=10, chat_id=group)
    assert len(bot_messages(stack, group)) == 2  # the note and the member's /help: the forward got nothing
    assert stack.job_ids_of(CHANNEL_BOT) == [] and stack.job_ids_of(CHANNEL_FORWARDS) == []


def _message(text: str, from_id: int, sender_chat: Chat | None = None) -> Message:
    return Message(message_id=1, date=0, chat=Chat(id=-1001, type="supergroup"), text=text,
                   from_user=User(id=from_id, is_bot=from_id in STAND_IN_USERS, first_name="x"), sender_chat=sender_chat)


@pytest.mark.parametrize(("from_id", "sender_chat", "in_a_chats_name"), [
    (ANONYMOUS_ADMIN, Chat(id=-1001, type="supergroup"), True),
    (CHANNEL_BOT, Chat(id=-1002, type="channel"), True),
    (ANONYMOUS_ADMIN, None, True),  # the stand-in alone says it
    (42, Chat(id=-1002, type="channel"), True),  # a sender chat alone says it
    (42, None, False),
])
def test_a_message_in_a_chats_name_is_told_by_its_sender_chat_or_stand_in(from_id, sender_chat, in_a_chats_name):
    assert speaks_for_a_chat(_message("/help", from_id, sender_chat)) is in_a_chats_name


@pytest.mark.parametrize(("text", "work"), [
    ("/start", True), ("/analyze@OurBot x", True), ("/analyze@ourbot x", True), ("/ban@OtherBot x", False),
    ("/ban spammer", False), ("/warn", False), ("/Subscribe s1mple", True), ("/timezone +3", True),
    (ROOM, True), (f"look: {ROOM}", True), ("https://www.faceit.com/en/players/s1mple", False), ("gg", False)])
def test_what_asks_for_work_is_a_command_for_this_bot_or_a_room_link(text, work):
    assert asks_for_work(_message(text, ANONYMOUS_ADMIN), "OurBot", command_names(all_routers())) is work

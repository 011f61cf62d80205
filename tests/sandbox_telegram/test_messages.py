"""Sending, editing, deleting and photos through the real aiogram Bot against the sandbox."""

from __future__ import annotations

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
)

from tests.sandbox_telegram.conftest import BOT_TOKEN
from tests.support.png import make_png
from tests.support.telegram_sandbox import TelegramSandbox

CHAT = 5001


def keyboard(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=d.upper(), callback_data=d) for d in data]]
    )


async def test_get_me_is_the_sandbox_bot_with_the_tokens_id(tg_bot: Bot) -> None:
    me = await tg_bot.get_me()
    assert me.id == int(BOT_TOKEN.split(":")[0])
    assert me.is_bot is True
    assert me.first_name == "FACEIT Sandbox Bot"
    assert me.username == "faceit_sandbox_bot"


async def test_send_message_parses_html_and_is_recorded(
    tg_bot: Bot, telegram_sandbox: TelegramSandbox
) -> None:
    sent = await tg_bot.send_message(
        CHAT,
        "<b>Match</b> ready &amp; <i>waiting</i> 🎯",
        parse_mode="HTML",
        reply_markup=keyboard("refresh"),
    )

    assert sent.text == "Match ready & waiting 🎯"
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [("bold", 0, 5), ("italic", 14, 7)]
    assert sent.chat.id == CHAT and sent.chat.type == "private"
    assert sent.from_user.is_bot and sent.from_user.username == "faceit_sandbox_bot"
    assert sent.reply_markup.inline_keyboard[0][0].callback_data == "refresh"

    second = await tg_bot.send_message(CHAT, "plain")
    assert second.message_id > sent.message_id

    events = telegram_sandbox.messages(CHAT)
    assert [(e["kind"], e["message_id"]) for e in events] == [
        ("sent", sent.message_id),
        ("sent", second.message_id),
    ]
    first = events[0]
    assert first["text"] == "<b>Match</b> ready &amp; <i>waiting</i> 🎯"  # as the bot sent it
    assert first["parse_mode"] == "HTML"
    assert first["reply_markup"] == {"inline_keyboard": [[{"text": "REFRESH", "callback_data": "refresh"}]]}
    assert first["chat_id"] == CHAT and first["caption"] is None and isinstance(first["ts"], float)
    assert telegram_sandbox.messages(CHAT + 1) == []


async def test_edit_message_text_updates_and_rejects_no_op_edits(
    tg_bot: Bot, telegram_sandbox: TelegramSandbox
) -> None:
    sent = await tg_bot.send_message(CHAT, "players 1/10", reply_markup=keyboard("cancel"))
    edited = await tg_bot.edit_message_text(
        "players 6/10", chat_id=CHAT, message_id=sent.message_id, reply_markup=keyboard("cancel")
    )
    assert edited.text == "players 6/10"
    assert edited.edit_date is not None
    assert edited.reply_markup.inline_keyboard[0][0].callback_data == "cancel"

    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await tg_bot.edit_message_text(
            "players 6/10", chat_id=CHAT, message_id=sent.message_id, reply_markup=keyboard("cancel")
        )

    # Like Telegram, an edit without reply_markup drops the inline keyboard.
    final = await tg_bot.edit_message_text("players 6/10", chat_id=CHAT, message_id=sent.message_id)
    assert final.reply_markup is None

    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await tg_bot.edit_message_text("x", chat_id=CHAT, message_id=sent.message_id + 1000)

    events = telegram_sandbox.messages(CHAT)
    assert [e["kind"] for e in events] == ["sent", "edited", "edited"]
    assert events[1]["text"] == "players 6/10" and events[1]["reply_markup"] is not None
    assert events[2]["reply_markup"] is None
    assert telegram_sandbox.stats()["errors"] == {"editMessageText:400": 2}


async def test_edit_reply_markup_and_caption(tg_bot: Bot, telegram_sandbox: TelegramSandbox) -> None:
    text = await tg_bot.send_message(CHAT, "pick", reply_markup=keyboard("a"))
    changed = await tg_bot.edit_message_reply_markup(
        chat_id=CHAT, message_id=text.message_id, reply_markup=keyboard("a", "b")
    )
    assert [b.callback_data for b in changed.reply_markup.inline_keyboard[0]] == ["a", "b"]
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await tg_bot.edit_message_reply_markup(
            chat_id=CHAT, message_id=text.message_id, reply_markup=keyboard("a", "b")
        )
    with pytest.raises(TelegramBadRequest, match="there is no caption"):
        await tg_bot.edit_message_caption(chat_id=CHAT, message_id=text.message_id, caption="x")

    photo = await tg_bot.send_photo(CHAT, BufferedInputFile(make_png(), "chart.png"), caption="old")
    recaptioned = await tg_bot.edit_message_caption(
        chat_id=CHAT, message_id=photo.message_id, caption="<b>new</b>", parse_mode="HTML"
    )
    assert recaptioned.caption == "new" and recaptioned.caption_entities[0].type == "bold"
    with pytest.raises(TelegramBadRequest, match="no text in the message"):
        await tg_bot.edit_message_text("x", chat_id=CHAT, message_id=photo.message_id)

    kinds = [(e["kind"], e.get("method")) for e in telegram_sandbox.messages(CHAT)]
    assert kinds == [
        ("sent", "sendMessage"),
        ("edited", "editMessageReplyMarkup"),
        ("photo", "sendPhoto"),
        ("edited", "editMessageCaption"),
    ]
    assert telegram_sandbox.messages(CHAT)[-1]["caption"] == "<b>new</b>"


async def test_delete_message(tg_bot: Bot, telegram_sandbox: TelegramSandbox) -> None:
    sent = await tg_bot.send_message(CHAT, "progress…")
    assert await tg_bot.delete_message(CHAT, sent.message_id) is True
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await tg_bot.delete_message(CHAT, sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await tg_bot.edit_message_text("late", chat_id=CHAT, message_id=sent.message_id)
    events = telegram_sandbox.messages(CHAT)
    assert [(e["kind"], e["message_id"]) for e in events] == [
        ("sent", sent.message_id),
        ("deleted", sent.message_id),
    ]
    assert events[1]["text"] == "progress…"


async def test_send_photo_multipart_is_stored_and_downloadable(
    tg_bot: Bot, telegram_sandbox: TelegramSandbox
) -> None:
    png = make_png(12, 7)
    sent = await tg_bot.send_photo(
        CHAT,
        BufferedInputFile(png, "elo.png"),
        caption="ELO <i>trend</i>",
        parse_mode="HTML",
        reply_markup=keyboard("more"),
    )
    size = sent.photo[-1]
    assert (size.width, size.height, size.file_size) == (12, 7, len(png))
    assert sent.caption == "ELO trend" and sent.caption_entities[0].type == "italic"

    event = telegram_sandbox.messages(CHAT)[-1]
    assert event["kind"] == "photo" and event["caption"] == "ELO <i>trend</i>"
    assert event["photo"]["file_id"] == size.file_id
    async with (
        aiohttp.ClientSession() as http,
        http.get(telegram_sandbox.base_url + event["photo"]["url"]) as resp,
    ):
        assert resp.status == 200 and resp.content_type == "image/png"
        assert await resp.read() == png

    # The same file again by file_id, and through getFile + the file server, like Telegram.
    again = await tg_bot.send_photo(CHAT, size.file_id)
    assert again.photo[-1].file_id == size.file_id
    downloaded = await tg_bot.download(size.file_id)
    assert downloaded.read() == png


async def test_send_photo_rejects_what_is_not_an_image(
    tg_bot: Bot, telegram_sandbox: TelegramSandbox
) -> None:
    with pytest.raises(TelegramBadRequest, match="IMAGE_PROCESS_FAILED"):
        await tg_bot.send_photo(CHAT, BufferedInputFile(b"not a picture", "x.png"))
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await tg_bot.send_photo(CHAT, "no-such-file-id")
    with pytest.raises(TelegramBadRequest, match="caption is too long"):
        await tg_bot.send_photo(CHAT, BufferedInputFile(make_png(), "x.png"), caption="c" * 1025)
    assert telegram_sandbox.messages(CHAT) == []


async def test_length_and_html_validation(tg_bot: Bot, telegram_sandbox: TelegramSandbox) -> None:
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await tg_bot.send_message(CHAT, "x" * 4097)
    # 4096 visible characters are fine even when the HTML source is longer.
    ok = await tg_bot.send_message(CHAT, "<b>" + "x" * 4096 + "</b>", parse_mode="HTML")
    assert len(ok.text) == 4096
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await tg_bot.send_message(CHAT, "<b>unclosed", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match='can\'t parse entities: Unsupported start tag "div"'):
        await tg_bot.send_message(CHAT, "<div>no</div>", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await tg_bot.send_message(CHAT, "<b></b>", parse_mode="HTML")
    # Without parse_mode the same characters are just text.
    plain = await tg_bot.send_message(CHAT, "<b>unclosed")
    assert plain.text == "<b>unclosed" and not plain.entities
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await tg_bot.send_message(CHAT, "k", reply_markup=keyboard("d" * 65))
    assert [e["message_id"] for e in telegram_sandbox.messages(CHAT)] == [ok.message_id, plain.message_id]


async def test_commands_are_kept_per_scope_and_language(tg_bot: Bot) -> None:
    await tg_bot.set_my_commands([BotCommand(command="analyze", description="Analyse a match")])
    await tg_bot.set_my_commands(
        [BotCommand(command="analyze", description="Анализ матча")], language_code="ru"
    )
    await tg_bot.set_my_commands(
        [BotCommand(command="admin", description="Admin")], scope=BotCommandScopeChat(chat_id=CHAT)
    )
    assert [c.description for c in await tg_bot.get_my_commands()] == ["Analyse a match"]
    assert [c.description for c in await tg_bot.get_my_commands(language_code="ru")] == ["Анализ матча"]
    assert [c.command for c in await tg_bot.get_my_commands(scope=BotCommandScopeChat(chat_id=CHAT))] == [
        "admin"
    ]
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await tg_bot.set_my_commands([BotCommand(command="Bad-Command", description="x")])


async def test_chat_action_get_chat_and_webhook_info(tg_bot: Bot, telegram_sandbox: TelegramSandbox) -> None:
    assert await tg_bot.send_chat_action(CHAT, "typing") is True
    with pytest.raises(TelegramBadRequest, match="wrong parameter action"):
        await tg_bot.send_chat_action(CHAT, "dancing")
    chat = await tg_bot.get_chat(CHAT)
    assert chat.id == CHAT and chat.type == "private"
    info = await tg_bot.get_webhook_info()
    assert info.url == "" and info.pending_update_count == 0
    feed = telegram_sandbox.feed(CHAT)
    assert [(e["kind"], e.get("action")) for e in feed["events"]] == [("chat_action", "typing")]
    assert telegram_sandbox.messages(CHAT) == []  # chat actions are not messages

    # Negative ids (an operators' alert group) are groups, not private chats.
    alert = await tg_bot.send_message(-1001234567890, "alert")
    assert alert.chat.type == "supergroup" and alert.chat.title
    assert (await tg_bot.send_message(-42, "x")).chat.type == "group"

"""The Bot API methods of the sandbox: parameters in, Telegram's result or :class:`ApiError` out.

Each handler takes a :class:`Call` (the bot's state, the request's parameters and uploaded
files) and returns what goes into ``{"ok": true, "result": ...}``. Parameters arrive as JSON
values or as form strings (aiogram sends multipart forms with nested objects as JSON text), so
every read goes through :class:`Params`, which accepts both.

Error descriptions are Telegram's own, so code that matches on them (``"message is not
modified"``, ``"bot was blocked by the user"``) behaves here as in production.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.telegram_media import MAX_PHOTO_BYTES, sniff_image
from sandbox.telegram_state import (
    ApiError,
    SandboxBot,
    SandboxRegistry,
    StoredFile,
    StoredMessage,
    bad_request,
)
from sandbox.telegram_text import (
    MAX_CAPTION_LENGTH,
    MAX_TEXT_LENGTH,
    EntityParseError,
    FormattedText,
    format_text,
)

MAX_POLL_TIMEOUT = 50
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the same "
    "as a current content and reply markup of the message"
)
BLOCKED = "Forbidden: bot was blocked by the user"
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_INLINE_ACTIONS = (
    "callback_data",
    "url",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)


@dataclass
class UploadedFile:
    filename: str
    data: bytes
    content_type: str


@dataclass
class Call:
    """One Bot API call: which bot, its parameters and files."""

    bot: SandboxBot
    registry: SandboxRegistry
    params: Params
    files: dict[str, UploadedFile] = field(default_factory=dict)


class Params:
    """Typed access to request parameters that may be JSON values or form strings."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def has(self, name: str) -> bool:
        return self.values.get(name) not in (None, "")

    def str(self, name: str, default: str | None = None) -> str | None:
        value = self.values.get(name)
        if value is None:
            return default
        return value if isinstance(value, str) else json.dumps(value)

    def int(self, name: str, default: int | None = None) -> int | None:
        value = self.values.get(name)
        if value in (None, ""):
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def bool(self, name: str, default: bool = False) -> bool:
        value = self.values.get(name)
        if value in (None, ""):
            return default
        if isinstance(value, bool):
            return value
        return str(value).lower() in ("true", "1", "yes")

    def json(self, name: str, error: str | None = None) -> Any:
        value = self.values.get(name)
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError:
            raise bad_request(error or f"can't parse {name} JSON object") from None

    def chat_id(self) -> int:
        value = self.values.get("chat_id")
        if value in (None, ""):
            raise bad_request("chat_id is empty")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request("chat not found") from None  # @usernames do not exist here

    def message_id(self) -> int:
        if self.has("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")  # inline messages are not simulated
        message_id = self.int("message_id")
        if message_id is None:
            raise bad_request("message identifier is not specified")
        return message_id


Handler = Callable[[Call], Awaitable[Any]]


# --- shared checks ----------------------------------------------------------------------


def ensure_not_blocked(bot: SandboxBot, chat_id: int) -> None:
    """The chat takes the bot's calls: not a group that became a supergroup (Telegram's 400 with
    the new id), not a user who blocked the bot, not a group it was removed from (403)."""
    if chat_id in bot.migrated:
        raise ApiError(400, "Bad Request: group chat was upgraded to a supergroup chat",
                       migrate_to_chat_id=bot.migrated[chat_id])
    if chat_id in bot.blocked:
        if chat_id < 0:  # a group the bot was removed from
            kind = "supergroup" if str(chat_id).startswith("-100") else "group"
            raise ApiError(403, f"Forbidden: bot was kicked from the {kind} chat")
        raise ApiError(403, BLOCKED)


def ensure_within_limits(bot: SandboxBot, chat_id: int) -> None:
    """Real flood control, when switched on with ``/_sandbox/limits``."""
    if bot.limits is None:
        return
    retry_after = bot.limits.take(chat_id, time.monotonic())
    if retry_after is not None:
        raise ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)


def formatted(text: str, parse_mode: str | None, entities: Any, limit: int, too_long: str) -> FormattedText:
    try:
        result = format_text(text, parse_mode, entities if isinstance(entities, list) else None)
    except EntityParseError as error:
        raise bad_request(f"can't parse entities: {error}") from None
    if len(result.text) > limit:
        raise bad_request(too_long)
    return result


def reply_markup(params: Params, inline_only: bool = False) -> dict[str, Any] | None:
    """Validate ``reply_markup`` the way Telegram does; returns it parsed (None if absent)."""
    markup = params.json("reply_markup", "can't parse reply keyboard markup JSON object")
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request("can't parse inline keyboard markup JSON object")
        for row in rows:
            for button in row:
                _check_inline_button(button)
        return markup
    if inline_only:
        raise bad_request("can't parse inline keyboard markup JSON object")
    if "keyboard" in markup or "remove_keyboard" in markup or "force_reply" in markup:
        return markup
    raise bad_request("can't parse reply keyboard markup JSON object")


def _check_inline_button(button: Any) -> None:
    if not isinstance(button, dict) or not button.get("text"):
        raise bad_request(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    actions = [key for key in _INLINE_ACTIONS if key in button]
    if len(actions) != 1:
        raise bad_request(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    if "callback_data" in button:
        data = button["callback_data"]
        if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= 64:
            raise bad_request("BUTTON_DATA_INVALID")
    if "url" in button and not str(button["url"]).startswith(("http://", "https://", "tg://")):
        raise bad_request("BUTTON_URL_INVALID")


def reply_target(call: Call, chat_id: int) -> int | None:
    params = call.params
    reply = params.json("reply_parameters") or {}
    message_id = reply.get("message_id") if isinstance(reply, dict) else None
    if message_id is None:
        message_id = params.int("reply_to_message_id")
    if message_id is None:
        return None
    replied = call.bot.find(chat_id, int(message_id))
    thread = params.int("message_thread_id")
    if replied is None or (thread is not None and replied.thread_id != thread):
        # Telegram: a reply to a message of another forum topic is not sent, whatever
        # allow_sending_without_reply says.
        allow = bool(reply.get("allow_sending_without_reply")) if isinstance(reply, dict) else False
        if replied is None and (allow or params.bool("allow_sending_without_reply")):
            return None
        raise bad_request("message to be replied not found")
    return int(message_id)


def thread_of(call: Call, chat_id: int, reply_to: int | None) -> int | None:
    """The forum topic a new message goes to: the one named, else the replied message's (None:
    the General topic, or not a forum)."""
    thread = call.params.int("message_thread_id")
    if thread is None and reply_to is not None:
        replied = call.bot.find(chat_id, reply_to)
        thread = replied.thread_id if replied else None
    return thread if chat_id in call.bot.forums else None


def editable(call: Call, chat_id: int, message_id: int) -> StoredMessage:
    message = call.bot.find(chat_id, message_id)
    if message is None:
        raise bad_request("message to edit not found")
    if not message.from_bot:
        raise bad_request("message can't be edited")
    return message


# --- identity, updates, webhook -----------------------------------------------------------


async def get_me(call: Call) -> Any:
    return call.bot.identity()


async def log_out(call: Call) -> Any:
    return True


async def get_updates(call: Call) -> Any:
    """Long polling with Telegram's semantics: offsets confirm, a newer poll ends an older one."""
    bot, params = call.bot, call.params
    if bot.webhook.get("url"):
        raise ApiError(
            409,
            "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete "
            "the webhook first",
        )
    limit = min(max(params.int("limit", 100) or 100, 1), 100)
    timeout = min(max(params.int("timeout", 0) or 0, 0), MAX_POLL_TIMEOUT)
    allowed = params.json("allowed_updates")
    if isinstance(allowed, list):
        bot.allowed_updates = [str(kind) for kind in allowed]
    offset = params.int("offset")
    if offset:
        bot.confirm(offset)
    bot.poll_generation += 1
    generation = bot.poll_generation
    bot.notify()  # an older poll still waiting ends with 409, as in Telegram
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if bot.poll_generation != generation:
            raise ApiError(
                409,
                "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
                "is running",
            )
        ready = bot.take_allowed(limit)
        remaining = deadline - loop.time()
        if ready or bot.closing or remaining <= 0:
            return ready
        await bot.wait_changed(remaining)


async def set_webhook(call: Call) -> Any:
    params, bot = call.params, call.bot
    url = params.str("url", "") or ""
    if url and not url.startswith(("https://", "http://")):
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    if params.bool("drop_pending_updates"):
        bot.updates.clear()
    allowed = params.json("allowed_updates")
    if isinstance(allowed, list):
        bot.allowed_updates = [str(kind) for kind in allowed]
    bot.webhook = {
        "url": url,
        "secret_token": params.str("secret_token"),
        "max_connections": params.int("max_connections", 40),
        "set_at": time.time(),
    }
    bot.notify()
    return True


async def delete_webhook(call: Call) -> Any:
    if call.params.bool("drop_pending_updates"):
        call.bot.updates.clear()
    call.bot.webhook = {}
    call.bot.notify()
    return True


async def get_webhook_info(call: Call) -> Any:
    bot = call.bot
    info: dict[str, Any] = {
        "url": bot.webhook.get("url", ""),
        "has_custom_certificate": False,
        "pending_update_count": len(bot.updates),
    }
    if bot.webhook.get("url"):
        info["max_connections"] = bot.webhook.get("max_connections") or 40
        info["ip_address"] = "127.0.0.1"
        if bot.allowed_updates:
            info["allowed_updates"] = bot.allowed_updates
        if bot.webhook.get("last_error_date"):
            info["last_error_date"] = bot.webhook["last_error_date"]
            info["last_error_message"] = bot.webhook["last_error_message"]
    return info


# --- messages -----------------------------------------------------------------------------


def link_preview_options(params: Any) -> dict[str, Any] | None:
    """The ``link_preview_options`` of a text message (or the older ``disable_web_page_preview``),
    kept so a test can see whether a link in it shows a preview card."""
    options = params.json("link_preview_options")
    if isinstance(options, dict) and options:
        return options
    legacy = params.str("disable_web_page_preview")
    return {"is_disabled": True} if legacy in ("true", "True", "1") else None


async def send_message(call: Call) -> Any:
    params, bot = call.params, call.bot
    chat_id = params.chat_id()
    ensure_not_blocked(bot, chat_id)
    text = params.str("text", "") or ""
    if not text.strip():
        raise bad_request("message text is empty")
    parse_mode = params.str("parse_mode")
    content = formatted(text, parse_mode, params.json("entities"), MAX_TEXT_LENGTH, "message is too long")
    if not content.text.strip():
        raise bad_request("message text is empty")
    markup = reply_markup(params)
    reply_to = reply_target(call, chat_id)
    ensure_within_limits(bot, chat_id)
    message = bot.store(
        StoredMessage(
            message_id=bot.next_message_id(),
            chat_id=chat_id,
            date=int(time.time()),
            from_bot=True,
            text=content.text,
            entities=content.entities,
            raw_text=text,
            parse_mode=parse_mode,
            reply_markup=markup,
            reply_to_message_id=reply_to,
            thread_id=thread_of(call, chat_id, reply_to),
            link_preview_options=link_preview_options(params),
        )
    )
    bot.record("sent", chat_id, message, method="sendMessage")
    return bot.message_to_api(message)


async def send_photo(call: Call) -> Any:
    params, bot, registry = call.params, call.bot, call.registry
    chat_id = params.chat_id()
    ensure_not_blocked(bot, chat_id)
    stored = _photo_file(call)
    caption = params.str("caption")
    parse_mode = params.str("parse_mode")
    content = (
        formatted(
            caption,
            parse_mode,
            params.json("caption_entities"),
            MAX_CAPTION_LENGTH,
            "message caption is too long",
        )
        if caption
        else FormattedText("")
    )
    markup = reply_markup(params)
    reply_to = reply_target(call, chat_id)
    ensure_within_limits(bot, chat_id)
    if stored.file_id not in registry.files:
        registry.files[stored.file_id] = stored
    message = bot.store(
        StoredMessage(
            message_id=bot.next_message_id(),
            chat_id=chat_id,
            date=int(time.time()),
            from_bot=True,
            caption=content.text or None,
            caption_entities=content.entities,
            raw_caption=caption or None,
            parse_mode=parse_mode,
            photo=[photo_size(stored)],
            reply_markup=markup,
            reply_to_message_id=reply_to,
            thread_id=thread_of(call, chat_id, reply_to),
        )
    )
    bot.record("photo", chat_id, message, method="sendPhoto")
    return bot.message_to_api(message)


def _photo_file(call: Call) -> StoredFile:
    """The uploaded photo (``attach://name`` or a file part named ``photo``) or a known file_id."""
    value = call.params.str("photo")
    upload: UploadedFile | None = None
    if value and value.startswith("attach://"):
        upload = call.files.get(value[len("attach://") :])
    elif "photo" in call.files:
        upload = call.files["photo"]
    elif value:
        if value.startswith(("http://", "https://")):
            raise bad_request("failed to get HTTP URL content")  # the sandbox has no internet
        known = call.registry.files.get(value)
        if known is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        return known
    if upload is None:
        raise bad_request("there is no photo in the request")
    if len(upload.data) > MAX_PHOTO_BYTES:
        raise ApiError(413, "Request Entity Too Large")
    image = sniff_image(upload.data)
    if image is None:
        raise bad_request("IMAGE_PROCESS_FAILED")
    content_type, width, height = image
    if width <= 0 or height <= 0 or width + height > 10_000 or max(width, height) > 20 * min(width, height):
        raise bad_request("PHOTO_INVALID_DIMENSIONS")
    return call.registry.add_file(upload.data, content_type, width, height)


def photo_size(stored: StoredFile) -> dict[str, Any]:
    return {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_size": len(stored.data),
        "width": stored.width,
        "height": stored.height,
    }


async def edit_message_text(call: Call) -> Any:
    params, bot = call.params, call.bot
    chat_id = params.chat_id()
    message_id = params.message_id()
    ensure_not_blocked(bot, chat_id)
    message = editable(call, chat_id, message_id)
    if message.text is None:
        raise bad_request("there is no text in the message to edit")
    text = params.str("text", "") or ""
    if not text.strip():
        raise bad_request("message text is empty")
    parse_mode = params.str("parse_mode")
    content = formatted(text, parse_mode, params.json("entities"), MAX_TEXT_LENGTH, "message is too long")
    # Like Telegram: an edit without reply_markup removes the inline keyboard.
    markup = reply_markup(params, inline_only=True)
    if (
        content.text == message.text
        and content.entities == message.entities
        and markup == message.inline_markup
    ):
        raise bad_request(NOT_MODIFIED)
    ensure_within_limits(bot, chat_id)
    message.text, message.entities, message.raw_text = content.text, content.entities, text
    message.parse_mode = parse_mode
    message.link_preview_options = link_preview_options(params)
    message.reply_markup = markup
    message.edit_date = int(time.time())
    bot.record("edited", chat_id, message, method="editMessageText")
    return bot.message_to_api(message)


async def edit_message_caption(call: Call) -> Any:
    params, bot = call.params, call.bot
    chat_id = params.chat_id()
    message_id = params.message_id()
    ensure_not_blocked(bot, chat_id)
    message = editable(call, chat_id, message_id)
    if message.photo is None:
        raise bad_request("there is no caption in the message to edit")
    caption = params.str("caption", "") or ""
    parse_mode = params.str("parse_mode")
    content = (
        formatted(
            caption,
            parse_mode,
            params.json("caption_entities"),
            MAX_CAPTION_LENGTH,
            "message caption is too long",
        )
        if caption
        else FormattedText("")
    )
    markup = reply_markup(params, inline_only=True)
    if (
        (content.text or None) == message.caption
        and content.entities == message.caption_entities
        and markup == message.inline_markup
    ):
        raise bad_request(NOT_MODIFIED)
    ensure_within_limits(bot, chat_id)
    message.caption, message.caption_entities = content.text or None, content.entities
    message.raw_caption, message.parse_mode = caption or None, parse_mode
    message.reply_markup = markup
    message.edit_date = int(time.time())
    bot.record("edited", chat_id, message, method="editMessageCaption")
    return bot.message_to_api(message)


async def edit_message_reply_markup(call: Call) -> Any:
    params, bot = call.params, call.bot
    chat_id = params.chat_id()
    message_id = params.message_id()
    ensure_not_blocked(bot, chat_id)
    message = editable(call, chat_id, message_id)
    markup = reply_markup(params, inline_only=True)
    if markup == message.inline_markup:
        raise bad_request(NOT_MODIFIED)
    ensure_within_limits(bot, chat_id)
    message.reply_markup = markup
    message.edit_date = int(time.time())
    bot.record("edited", chat_id, message, method="editMessageReplyMarkup")
    return bot.message_to_api(message)


async def delete_message(call: Call) -> Any:
    params, bot = call.params, call.bot
    chat_id = params.chat_id()
    message_id = params.message_id()
    message = bot.find(chat_id, message_id)
    if message is None:
        raise bad_request("message to delete not found")
    _delete(bot, message, "deleteMessage")
    return True


async def delete_messages(call: Call) -> Any:
    params, bot = call.params, call.bot
    chat_id = params.chat_id()
    ids = params.json("message_ids")
    if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
        raise bad_request("message_ids must be a list of 1-100 message identifiers")
    for message_id in ids:
        message = bot.find(chat_id, int(message_id))
        if message is not None:
            _delete(bot, message, "deleteMessages")
    return True


def _delete(bot: SandboxBot, message: StoredMessage, method: str) -> None:
    message.deleted = True
    bot.record("deleted", message.chat_id, message, method=method)


async def send_chat_action(call: Call) -> Any:
    params, bot = call.params, call.bot
    chat_id = params.chat_id()
    action = params.str("action")
    if action not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    ensure_not_blocked(bot, chat_id)
    bot.record("chat_action", chat_id, action=action)
    return True


async def answer_callback_query(call: Call) -> Any:
    params, bot = call.params, call.bot
    query_id = params.str("callback_query_id") or ""
    query = bot.callback_queries.get(query_id)
    if query is None or query.get("answer") is not None:
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    text = params.str("text")
    if text and len(text) > 200:
        raise bad_request("MESSAGE_TOO_LONG")
    query["answer"] = {"text": text, "show_alert": params.bool("show_alert"), "url": params.str("url")}
    bot.record(
        "callback_answer",
        query["chat_id"],
        callback_query_id=query_id,
        answer_text=text,
        show_alert=params.bool("show_alert"),
    )
    return True


# --- chats, files, commands, profile --------------------------------------------------------


async def get_chat(call: Call) -> Any:
    chat_id = call.params.chat_id()
    bot = call.bot
    if chat_id == bot.bot_id:
        identity = bot.identity()
        chat: dict[str, Any] = {
            "id": chat_id,
            "type": "private",
            "first_name": identity["first_name"],
            "username": identity["username"],
        }
    else:
        chat = bot.chat_object(chat_id)
    return {
        **chat,
        "accent_color_id": 0,
        "max_reaction_count": 11,
        "accepted_gift_types": {
            "unlimited_gifts": True,
            "limited_gifts": True,
            "unique_gifts": True,
            "premium_subscription": True,
            "gifts_from_channels": True,
        },
    }


async def get_file(call: Call) -> Any:
    stored = call.registry.files.get(call.params.str("file_id") or "")
    if stored is None:
        raise bad_request("invalid file_id")
    return {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_size": len(stored.data),
        "file_path": stored.file_path,
    }


def _commands_key(params: Params) -> str:
    scope = params.json("scope") or {"type": "default"}
    if not isinstance(scope, dict):
        raise bad_request("can't parse BotCommandScope JSON object")
    parts = [str(scope.get("type", "default"))]
    if "chat_id" in scope:
        parts.append(str(scope["chat_id"]))
    if "user_id" in scope:
        parts.append(str(scope["user_id"]))
    parts.append(params.str("language_code", "") or "")
    return ":".join(parts)


async def set_my_commands(call: Call) -> Any:
    commands = call.params.json("commands", "can't parse commands JSON object")
    if not isinstance(commands, list) or len(commands) > 100:
        raise bad_request("can't parse commands JSON object")
    cleaned = []
    for item in commands:
        if not isinstance(item, dict):
            raise bad_request("can't parse BotCommand JSON object")
        command = str(item.get("command", "")).lstrip("/")
        description = str(item.get("description", ""))
        if (
            not command
            or len(command) > 32
            or not all(c.islower() or c.isdigit() or c == "_" for c in command)
        ):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(description) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        cleaned.append({"command": command, "description": description})
    call.bot.commands[_commands_key(call.params)] = cleaned
    return True


async def get_my_commands(call: Call) -> Any:
    return call.bot.commands.get(_commands_key(call.params), [])


async def delete_my_commands(call: Call) -> Any:
    call.bot.commands.pop(_commands_key(call.params), None)
    return True


def _profile_setter(field_name: str, limit: int) -> Handler:
    async def setter(call: Call) -> Any:
        value = call.params.str(field_name, "") or ""
        if len(value) > limit:
            raise bad_request(f"{field_name.upper()}_INVALID")
        key = f"{field_name}:{call.params.str('language_code', '') or ''}"
        call.bot.profile[key] = value
        if key == "name:":
            call.bot.profile["name"] = value
        return True

    return setter


def _profile_getter(field_name: str) -> Handler:
    async def getter(call: Call) -> Any:
        key = f"{field_name}:{call.params.str('language_code', '') or ''}"
        value = call.bot.profile.get(key, "")
        if field_name == "name" and not value:
            value = call.bot.identity()["first_name"]
        return {field_name: value}

    return getter


async def set_chat_menu_button(call: Call) -> Any:
    return True


async def get_chat_menu_button(call: Call) -> Any:
    return {"type": "commands"}


# Canonical method names (Telegram's spelling); lookup is case-insensitive.
METHODS: dict[str, Handler] = {
    "getMe": get_me,
    "logOut": log_out,
    "close": log_out,
    "getUpdates": get_updates,
    "setWebhook": set_webhook,
    "deleteWebhook": delete_webhook,
    "getWebhookInfo": get_webhook_info,
    "sendMessage": send_message,
    "sendPhoto": send_photo,
    "editMessageText": edit_message_text,
    "editMessageCaption": edit_message_caption,
    "editMessageReplyMarkup": edit_message_reply_markup,
    "deleteMessage": delete_message,
    "deleteMessages": delete_messages,
    "sendChatAction": send_chat_action,
    "answerCallbackQuery": answer_callback_query,
    "getChat": get_chat,
    "getFile": get_file,
    "setMyCommands": set_my_commands,
    "getMyCommands": get_my_commands,
    "deleteMyCommands": delete_my_commands,
    "setMyName": _profile_setter("name", 64),
    "getMyName": _profile_getter("name"),
    "setMyDescription": _profile_setter("description", 512),
    "getMyDescription": _profile_getter("description"),
    "setMyShortDescription": _profile_setter("short_description", 120),
    "getMyShortDescription": _profile_getter("short_description"),
    "setChatMenuButton": set_chat_menu_button,
    "getChatMenuButton": get_chat_menu_button,
}
METHODS_BY_LOWER: dict[str, tuple[str, Handler]] = {name.lower(): (name, h) for name, h in METHODS.items()}

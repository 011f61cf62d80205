"""Control endpoints of the Telegram sandbox (``/_sandbox/*``) and the ``/chat`` web page.

These are the user's side of the conversation and the test's window into it:

- ``POST /_sandbox/updates`` ``{"user_id", "text" | "callback_data" | "photo": true, "caption"?,
  "message_id"?, "language_code"?, "first_name"?, "username"?, "chat_id"?, "edit_message_id"?}``
  injects what a user typed, clicked or sent as a photo (``caption``: the photo's, optional;
  ``chat_id``: a group, negative, where the user wrote or pressed a button; otherwise their
  private chat); with ``edit_message_id`` the ``text`` replaces that earlier message of theirs
  (an ``edited_message`` update, as when a user fixes a typo); ``sender_chat_id`` (negative:
  the group itself for an anonymous admin, another id for a channel) and ``automatic_forward``
  (a channel's post forwarded into its discussion group) mark a group's text message as sent in a
  chat's name;
- ``GET /_sandbox/messages?chat_id=&after=`` lists what the bot sent, edited and deleted, in order;
- ``GET /_sandbox/feed?chat_id=&after=&timeout=`` the whole timeline (users' messages and clicks
  too), long-polled by the chat page;
- ``POST /_sandbox/block`` ``{"user_id", "blocked"?, "chat_id"?}`` (``chat_id``: the user removes
  the bot from that group, or adds it back), ``POST /_sandbox/migrate`` ``{"chat_id", "user_id"}``
  (the user upgrades that group to a supergroup: it answers with the new id), ``POST /_sandbox/flood`` ``{"n",
  "retry_after"?, "methods"?}``, ``POST /_sandbox/limits``, ``POST /_sandbox/reset``;
- ``GET /_sandbox/stats``, ``/_sandbox/bot``, ``/_sandbox/callbacks``, ``/_sandbox/updates``,
  ``/_sandbox/photo/{file_id}``.

Every endpoint takes an optional ``bot`` (the bot's numeric id, never its token); without it
they address the default bot, the first one that connected.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from sandbox.telegram_methods import photo_size
from sandbox.telegram_state import STAND_IN_USERS, SandboxBot, SandboxRegistry, SendLimits, StoredMessage
from sandbox.telegram_text import user_text_entities

# What a user's photo is made of: a valid 1×1 PNG (the bot never downloads it).
_USER_PHOTO_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)

CHAT_TEMPLATE = Path(__file__).with_name("templates") / "telegram_chat.html"
MAX_FEED_WAIT = 25.0
ONLINE_WINDOW = 90.0  # a bot that polled this recently is shown as online


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _reply(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps({"ok": status < 400, **body}, ensure_ascii=False),
        status=status,
        content_type="application/json",
    )


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise ControlError(400, "the body must be JSON") from None
    if not isinstance(body, dict):
        raise ControlError(400, "the body must be a JSON object")
    return body


def _int(value: Any, name: str, default: int | None = None) -> int | None:
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ControlError(400, f"{name} must be an integer") from None


def _number(value: Any, name: str, default: float) -> float:
    if value in (None, ""):
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ControlError(400, f"{name} must be a number") from None


def _from_user(bot: SandboxBot, user_id: int, chat_id: int | None, **content: Any) -> dict[str, Any]:
    """Store what ``user_id`` sent (in their private chat, or in group ``chat_id``) and hand it to
    the bot as a ``message`` update; returns its update and message ids."""
    message = bot.store(
        StoredMessage(
            message_id=bot.next_message_id(),
            chat_id=user_id if chat_id is None else chat_id,
            date=int(time.time()),
            from_bot=False,
            from_user_id=None if chat_id is None else user_id,
            **content,
        )
    )
    update = bot.add_update("message", bot.message_to_api(message))
    bot.record("user_message", message.chat_id, message, update_id=update["update_id"])
    return {"update_id": update["update_id"], "message_id": message.message_id}


class ControlHandlers:
    """Handlers bound to one registry."""

    def __init__(self, registry_key: web.AppKey[SandboxRegistry]) -> None:
        self.registry_key = registry_key

    def _bot(self, request: web.Request, body: dict[str, Any] | None = None) -> SandboxBot:
        raw = (body or {}).get("bot", request.query.get("bot"))
        bot = request.app[self.registry_key].by_id(_int(raw, "bot"))
        if bot is None:
            raise ControlError(404, f"no bot with id {raw}")
        return bot

    # --- the user's side ----------------------------------------------------------------

    async def inject(self, request: web.Request) -> web.Response:
        body = await _body(request)
        bot = self._bot(request, body)
        user_id = _int(body.get("user_id"), "user_id")
        if user_id is None or user_id <= 0:
            raise ControlError(400, "user_id (a positive integer) is required")
        text, callback_data, photo = body.get("text"), body.get("callback_data"), body.get("photo")
        if photo is not None and photo is not True:
            raise ControlError(400, "photo: true sends a photo (with an optional caption)")
        if [text, callback_data, photo].count(None) != 2:
            raise ControlError(400, "give exactly one of text, callback_data and photo")
        if body.get("caption") is not None and photo is None:
            raise ControlError(400, "caption goes with photo: true")
        if user_id in STAND_IN_USERS:  # as Telegram shows them: no language, whatever was given
            if body.get("chat_id") is None:
                raise ControlError(400, f"user {user_id} is Telegram's stand-in sender: it writes in a group "
                                        "(chat_id, with sender_chat_id)")
            user = bot.user(user_id)
        else:
            user = bot.remember_user(
                user_id, body.get("language_code"), body.get("first_name"), body.get("username")
            )
            user.setdefault("language_code", "en")
        chat_id = _int(body.get("chat_id"), "chat_id")
        if chat_id is not None and chat_id >= 0:
            raise ControlError(400, "chat_id names a group: a negative integer (a private chat is the user's own)")
        if chat_id in bot.migrated:
            raise ControlError(400, f"group {chat_id} is now the supergroup {bot.migrated[chat_id]}: write there")
        thread_id = _int(body.get("thread_id"), "thread_id")
        if thread_id is not None and (chat_id is None or thread_id <= 0 or text is None):
            raise ControlError(400, "thread_id (a positive integer) names a forum topic of the group chat_id, "
                                    "for a text message")
        edit_id = _int(body.get("edit_message_id"), "edit_message_id")
        if photo:
            if edit_id is not None:
                raise ControlError(400, "edit_message_id edits a text message: give the new text")
            registry = request.app[self.registry_key]
            return _reply(self._user_photo(bot, registry, user_id, body.get("caption"), chat_id))
        if edit_id is not None:
            if text is None:
                raise ControlError(400, "edit_message_id edits a text message: give the new text")
            return _reply(self._user_edit(bot, user_id, str(text), edit_id, chat_id))
        sender_chat_id = _int(body.get("sender_chat_id"), "sender_chat_id")
        automatic_forward = body.get("automatic_forward", False)
        if (sender_chat_id is not None or automatic_forward) and (chat_id is None or text is None):
            raise ControlError(400, "sender_chat_id and automatic_forward go with a text message in a group (chat_id)")
        if sender_chat_id is not None and sender_chat_id >= 0:
            raise ControlError(400, "sender_chat_id names a group or channel: a negative integer")
        if automatic_forward not in (True, False):
            raise ControlError(400, "automatic_forward: true marks a channel's post forwarded into its discussion group")
        if chat_id is not None:
            if chat_id in bot.blocked:
                raise ControlError(400, f"the bot is not in group {chat_id}: it was removed")
            if text is not None:
                return _reply(self._user_message(bot, user_id, str(text), chat_id, thread_id, sender_chat_id,
                                                 automatic_forward))
            return _reply(self._user_click(bot, user_id, str(callback_data), _int(body.get("message_id"), "message_id"),
                                           chat_id))
        bot.set_blocked(user_id, False)  # writing to the bot again unblocks it, as in Telegram
        if text is not None:
            return _reply(self._user_message(bot, user_id, str(text)))
        return _reply(
            self._user_click(bot, user_id, str(callback_data), _int(body.get("message_id"), "message_id"))
        )

    @staticmethod
    def _user_message(bot: SandboxBot, user_id: int, text: str, chat_id: int | None = None,
                      thread_id: int | None = None, sender_chat_id: int | None = None,
                      automatic_forward: bool = False) -> dict[str, Any]:
        if not text.strip() or len(text) > 4096:
            raise ControlError(400, "text must be 1-4096 characters")
        if thread_id is not None and chat_id is not None:
            bot.forums.add(chat_id)  # a topic was written to: the group is a forum
        return _from_user(bot, user_id, chat_id, text=text, entities=user_text_entities(text), raw_text=text,
                          thread_id=thread_id, sender_chat_id=sender_chat_id, automatic_forward=automatic_forward)

    @staticmethod
    def _user_photo(bot: SandboxBot, registry: SandboxRegistry, user_id: int, caption: Any,
                    chat_id: int | None) -> dict[str, Any]:
        """A photo the user sent (a tiny PNG), with ``caption`` when given: a message without text."""
        if caption is not None and (not str(caption).strip() or len(str(caption)) > 1024):
            raise ControlError(400, "caption must be 1-1024 characters")
        if chat_id is not None and chat_id in bot.blocked:
            raise ControlError(400, f"the bot is not in group {chat_id}: it was removed")
        if chat_id is None:
            bot.set_blocked(user_id, False)  # writing to the bot again unblocks it, as in Telegram
        stored = registry.add_file(_USER_PHOTO_PNG, "image/png", 1, 1)
        text = None if caption is None else str(caption)
        return _from_user(bot, user_id, chat_id, photo=[photo_size(stored)], caption=text, raw_caption=text,
                          caption_entities=[] if text is None else user_text_entities(text))

    @staticmethod
    def _user_edit(bot: SandboxBot, user_id: int, text: str, message_id: int, chat_id: int | None) -> dict[str, Any]:
        if not text.strip() or len(text) > 4096:
            raise ControlError(400, "text must be 1-4096 characters")
        chat = user_id if chat_id is None else chat_id
        message = bot.find(chat, message_id)
        if message is None or message.from_bot or (message.from_user_id or message.chat_id) != user_id:
            raise ControlError(400, f"user {user_id} wrote no message {message_id} in chat {chat}")
        message.text = message.raw_text = text
        message.entities = user_text_entities(text)
        message.edit_date = int(time.time())
        update = bot.add_update("edited_message", bot.message_to_api(message))
        bot.record("user_edited", message.chat_id, message, update_id=update["update_id"])
        return {"update_id": update["update_id"], "message_id": message.message_id}

    @staticmethod
    def _user_click(
        bot: SandboxBot, user_id: int, data: str, message_id: int | None, chat_id: int | None = None
    ) -> dict[str, Any]:
        chat = user_id if chat_id is None else chat_id  # a group: any member may press a button there
        if message_id is None:
            # The newest message of the chat that shows this button.
            candidates = [
                m
                for m in bot.messages.values()
                if m.chat_id == chat and not m.deleted and _has_button(m, data)
            ]
            if not candidates:
                raise ControlError(400, f"no message in chat {chat} has a button with that callback_data")
            message = max(candidates, key=lambda m: m.message_id)
        else:
            found = bot.find(chat, message_id)
            if found is None:
                raise ControlError(400, f"message {message_id} does not exist in chat {chat}")
            if not _has_button(found, data):
                raise ControlError(400, f"message {message_id} has no button with that callback_data")
            message = found
        query_id = bot.new_callback_query_id()
        bot.callback_queries[query_id] = {
            "id": query_id,
            "chat_id": chat,
            "user_id": user_id,
            "message_id": message.message_id,
            "data": data,
            "answer": None,
        }
        update = bot.add_update(
            "callback_query",
            {
                "id": query_id,
                "from": bot.user(user_id),
                "message": bot.message_to_api(message),
                "chat_instance": f"{chat}{bot.bot_id or 0}",
                "data": data,
            },
        )
        bot.record(
            "user_click",
            chat,
            message,
            callback_data=data,
            callback_query_id=query_id,
            update_id=update["update_id"],
        )
        return {
            "update_id": update["update_id"],
            "callback_query_id": query_id,
            "message_id": message.message_id,
        }

    # --- what the bot did -----------------------------------------------------------------

    async def messages(self, request: web.Request) -> web.Response:
        bot = self._bot(request)
        chat_id = _int(request.query.get("chat_id"), "chat_id")
        after = _int(request.query.get("after"), "after", 0) or 0
        events = bot.timeline(chat_id, after, bot_only=True)
        return _reply({"messages": events, "last_seq": bot.last_seq})

    async def feed(self, request: web.Request) -> web.Response:
        """The chat's timeline after ``after``; waits up to ``timeout`` s for something new."""
        bot = self._bot(request)
        chat_id = _int(request.query.get("chat_id"), "chat_id")
        after = _int(request.query.get("after"), "after", 0) or 0
        wait = min(max(_number(request.query.get("timeout"), "timeout", 0.0), 0.0), MAX_FEED_WAIT)
        deadline = time.monotonic() + wait
        # Also answer early when the bot connects or the sandbox is reset: the page shows both.
        seen = (bot.token, bot.epoch)
        events = bot.timeline(chat_id, after)
        while not events and not bot.closing and (remaining := deadline - time.monotonic()) > 0:
            await bot.wait_changed(remaining)
            events = bot.timeline(chat_id, after)
            if (bot.token, bot.epoch) != seen:
                break
        return _reply({"events": events, "last_seq": bot.last_seq, "bot": self._bot_info(bot)})

    @staticmethod
    def _bot_info(bot: SandboxBot) -> dict[str, Any]:
        identity = bot.identity()
        return {
            "id": bot.bot_id,
            "first_name": identity["first_name"],
            "username": identity["username"],
            "connected": bot.token is not None,
            "online": bot.last_seen is not None and time.time() - bot.last_seen < ONLINE_WINDOW,
            "last_seen": bot.last_seen,
            "epoch": bot.epoch,
        }

    async def bot_info(self, request: web.Request) -> web.Response:
        bot = self._bot(request)
        webhook = {
            "url": bot.webhook.get("url", ""),
            "has_secret_token": bool(bot.webhook.get("secret_token")),
            "last_error_message": bot.webhook.get("last_error_message"),
        }
        return _reply(
            {
                "bot": self._bot_info(bot),
                "commands": bot.commands,
                "webhook": webhook,
                "allowed_updates": bot.allowed_updates,
                "profile": bot.profile,
            }
        )

    async def callbacks(self, request: web.Request) -> web.Response:
        bot = self._bot(request)
        return _reply({"callback_queries": list(bot.callback_queries.values())})

    async def pending_updates(self, request: web.Request) -> web.Response:
        bot = self._bot(request)
        return _reply({"updates": bot.updates})

    async def stats(self, request: web.Request) -> web.Response:
        bot = self._bot(request)
        per_chat: dict[str, dict[str, int]] = {}
        for event in bot.events:
            if event["kind"] in ("sent", "photo", "edited", "deleted"):
                counts = per_chat.setdefault(
                    str(event["chat_id"]), {"sent": 0, "photo": 0, "edited": 0, "deleted": 0}
                )
                counts[event["kind"]] += 1
        answered = sum(1 for q in bot.callback_queries.values() if q["answer"] is not None)
        return _reply(
            {
                "methods": dict(bot.method_counts),
                "errors": dict(bot.error_counts),
                "per_chat": per_chat,
                "rate": bot.rate_report(),
                "pending_updates": len(bot.updates),
                "blocked": sorted(bot.blocked),
                "flood_remaining": bot.flood.remaining,
                "limits_enabled": bot.limits is not None,
                "callback_queries": {"total": len(bot.callback_queries), "answered": answered},
            }
        )

    # --- fault switches -------------------------------------------------------------------

    async def block(self, request: web.Request) -> web.Response:
        body = await _body(request)
        bot = self._bot(request, body)
        user_id = _int(body.get("user_id"), "user_id")
        if user_id is None:
            raise ControlError(400, "user_id is required")
        chat_id = _int(body.get("chat_id"), "chat_id")
        if chat_id is not None and chat_id >= 0:
            raise ControlError(400, "chat_id names a group: a negative integer")
        blocked = bool(body.get("blocked", True))
        changed = bot.set_blocked(user_id, blocked, chat_id)
        return _reply({"user_id": user_id, "chat_id": chat_id, "blocked": blocked, "changed": changed})

    async def migrate(self, request: web.Request) -> web.Response:
        body = await _body(request)
        bot = self._bot(request, body)
        chat_id = _int(body.get("chat_id"), "chat_id")
        user_id = _int(body.get("user_id"), "user_id")
        if chat_id is None or user_id is None:
            raise ControlError(400, "chat_id and user_id are required")
        if chat_id >= 0 or str(chat_id).startswith("-100"):
            raise ControlError(400, "chat_id names a basic group: a negative integer not starting with -100")
        return _reply({"chat_id": chat_id, "migrate_to_chat_id": bot.migrate(chat_id, user_id)})

    async def flood(self, request: web.Request) -> web.Response:
        body = await _body(request)
        bot = self._bot(request, body)
        count = _int(body.get("n", body.get("count")), "n", 1) or 0
        retry_after = _int(body.get("retry_after"), "retry_after", 1) or 1
        methods = body.get("methods")
        if methods is not None and not (
            isinstance(methods, list) and all(isinstance(m, str) for m in methods)
        ):
            raise ControlError(400, "methods must be a list of Bot API method names")
        bot.flood.remaining = max(count, 0)
        bot.flood.retry_after = max(retry_after, 1)
        bot.flood.methods = frozenset(m.lower() for m in methods) if methods else None
        return _reply({"n": bot.flood.remaining, "retry_after": bot.flood.retry_after, "methods": methods})

    async def limits(self, request: web.Request) -> web.Response:
        body = await _body(request)
        bot = self._bot(request, body)
        if not body.get("enabled", True):
            bot.limits = None
            return _reply({"enabled": False})
        bot.limits = SendLimits(
            chat_per_second=_number(body.get("chat_per_second"), "chat_per_second", 1.0),
            chat_burst=_number(body.get("chat_burst"), "chat_burst", 3.0),
            overall_per_second=_number(body.get("overall_per_second"), "overall_per_second", 30.0),
            overall_burst=_number(body.get("overall_burst"), "overall_burst", 30.0),
        )
        return _reply(
            {
                "enabled": True,
                "chat_per_second": bot.limits.chat_per_second,
                "chat_burst": bot.limits.chat_burst,
                "overall_per_second": bot.limits.overall_per_second,
                "overall_burst": bot.limits.overall_burst,
            }
        )

    async def reset(self, request: web.Request) -> web.Response:
        request.app[self.registry_key].reset()
        return _reply({})

    # --- media and the page -----------------------------------------------------------------

    async def photo(self, request: web.Request) -> web.Response:
        stored = request.app[self.registry_key].files.get(request.match_info["file_id"])
        if stored is None:
            raise ControlError(404, "no such photo")
        return web.Response(
            body=stored.data,
            content_type=stored.content_type,
            headers={"Cache-Control": "private, max-age=3600"},
        )

    async def chat_page(self, request: web.Request) -> web.Response:
        nonce = secrets.token_urlsafe(16)
        page = CHAT_TEMPLATE.read_text(encoding="utf-8").replace("{{nonce}}", nonce)
        csp = (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'self'"
        )
        return web.Response(
            text=page,
            content_type="text/html",
            headers={
                "Content-Security-Policy": csp,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )

    async def health(self, request: web.Request) -> web.Response:
        return _reply({"service": "telegram-sandbox"})

    async def index(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/chat")


def _has_button(message: StoredMessage, data: str) -> bool:
    markup = message.inline_markup or {}
    return any(
        button.get("callback_data") == data for row in markup.get("inline_keyboard", []) for button in row
    )


@web.middleware
async def _control_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except ControlError as error:
        return _reply({"error": str(error)}, status=error.status)


def setup_control_routes(app: web.Application, registry_key: web.AppKey[SandboxRegistry]) -> None:
    h = ControlHandlers(registry_key)
    app.middlewares.append(_control_errors)
    app.router.add_post("/_sandbox/updates", h.inject)
    app.router.add_get("/_sandbox/updates", h.pending_updates)
    app.router.add_get("/_sandbox/messages", h.messages)
    app.router.add_get("/_sandbox/feed", h.feed)
    app.router.add_get("/_sandbox/bot", h.bot_info)
    app.router.add_get("/_sandbox/callbacks", h.callbacks)
    app.router.add_get("/_sandbox/stats", h.stats)
    app.router.add_post("/_sandbox/block", h.block)
    app.router.add_post("/_sandbox/migrate", h.migrate)
    app.router.add_post("/_sandbox/flood", h.flood)
    app.router.add_post("/_sandbox/limits", h.limits)
    app.router.add_post("/_sandbox/reset", h.reset)
    app.router.add_get("/_sandbox/photo/{file_id}", h.photo)
    app.router.add_get("/_sandbox/health", h.health)
    app.router.add_get("/chat", h.chat_page)
    app.router.add_get("/", h.index)

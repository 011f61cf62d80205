"""In-memory state of the sandbox Bot API: one :class:`SandboxBot` per bot token.

Everything a test or the web chat needs to see lives here: the chats' messages (Telegram's
stored form), the queue of updates waiting for ``getUpdates``, a timeline of events (what the
bot sent, edited, deleted; what users typed and clicked) and the fault switches (blocked users,
forced flood control, optional real rate limits).

The state is touched only from the server's event loop, so it needs no locks. Waiters (long
polls of ``getUpdates`` and of the chat feed) wait on :meth:`SandboxBot.wait_changed`, which
every change wakes at once.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
import zlib
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

BOT_FIRST_NAME = "FACEIT Sandbox Bot"
BOT_USERNAME = "faceit_sandbox_bot"

# Event kinds: what the bot did (listed by /_sandbox/messages) and the rest of the timeline.
BOT_EVENT_KINDS = frozenset({"sent", "photo", "edited", "deleted"})
MAX_EVENTS = 20_000
MAX_PENDING_UPDATES = 10_000
MAX_FILES = 500
# Update types Telegram sends when allowed_updates is empty (all but these three).
_OPT_IN_UPDATE_TYPES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


class ApiError(Exception):
    """A Bot API error reply: HTTP status ``code`` and Telegram's ``description``."""

    def __init__(self, code: int, description: str, retry_after: int | None = None,
                 migrate_to_chat_id: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after
        self.migrate_to_chat_id = migrate_to_chat_id

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        if self.migrate_to_chat_id is not None:
            body["parameters"] = {"migrate_to_chat_id": self.migrate_to_chat_id}
        return body


def bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


def bot_id_for_token(token: str) -> int:
    """The bot's user id: the token's numeric prefix, as in Telegram (a stable hash otherwise)."""
    prefix = token.partition(":")[0]
    if prefix.isdigit() and 0 < len(prefix) <= 15:
        return int(prefix)
    return 1_000_000_000 + zlib.crc32(token.encode()) % 1_000_000_000


@dataclass
class StoredMessage:
    """One message of a chat, in Telegram's stored form plus what the bot sent."""

    message_id: int
    chat_id: int
    date: int
    from_bot: bool
    text: str | None = None  # plain text (markup parsed away)
    entities: list[dict[str, Any]] = field(default_factory=list)
    raw_text: str | None = None  # exactly what the bot sent (HTML source included)
    caption: str | None = None
    caption_entities: list[dict[str, Any]] = field(default_factory=list)
    raw_caption: str | None = None
    parse_mode: str | None = None
    photo: list[dict[str, Any]] | None = None
    reply_markup: dict[str, Any] | None = None  # any markup kind, as sent
    reply_to_message_id: int | None = None
    edit_date: int | None = None
    deleted: bool = False
    from_user_id: int | None = None  # who wrote a user's message in a group (private: the chat's user)
    thread_id: int | None = None  # the forum topic of a message in a forum group (None: General)
    link_preview_options: dict[str, Any] | None = None  # as the bot sent them (a text message)
    sender_chat_id: int | None = None  # a message sent in a chat's name (an anonymous admin, a channel)
    automatic_forward: bool = False  # a channel's post Telegram forwarded into its discussion group

    @property
    def inline_markup(self) -> dict[str, Any] | None:
        """The markup Telegram returns with the message: inline keyboards only."""
        if self.reply_markup and "inline_keyboard" in self.reply_markup:
            return self.reply_markup
        return None


#: The users Telegram puts in ``from`` of a message sent in a chat's name (with ``sender_chat``):
#: an anonymous group admin, someone posting as a channel, a channel's post forwarded into its
#: discussion group. They carry no language.
STAND_IN_USERS: dict[int, dict[str, Any]] = {
    1087968824: {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"},
    136817688: {"id": 136817688, "is_bot": True, "first_name": "Channel", "username": "Channel_Bot"},
    777000: {"id": 777000, "is_bot": False, "first_name": "Telegram"},
}


@dataclass
class StoredFile:
    """An uploaded file (photos), kept in memory so the chat can show it and getFile can serve it."""

    file_id: str
    file_unique_id: str
    data: bytes
    content_type: str
    width: int
    height: int
    file_path: str


@dataclass
class FloodSwitch:
    """Answer 429 to the next ``remaining`` calls of ``methods`` (None: every method but getUpdates)."""

    remaining: int = 0
    retry_after: int = 1
    methods: frozenset[str] | None = None

    def take(self, method: str) -> int | None:
        if self.remaining <= 0:
            return None
        if self.methods is None:
            if method == "getupdates":
                return None
        elif method not in self.methods:
            return None
        self.remaining -= 1
        return self.retry_after


@dataclass
class SendLimits:
    """Optional real flood control: token buckets per chat and overall for message writes.

    Off by default. When on, a write beyond the bucket gets 429 with the seconds until the
    bucket has a token again, like Telegram's own limits (1 message/s per chat, 30/s overall).
    """

    chat_per_second: float = 1.0
    chat_burst: float = 3.0
    overall_per_second: float = 30.0
    overall_burst: float = 30.0
    _chats: dict[int, tuple[float, float]] = field(default_factory=dict)
    _overall: tuple[float, float] | None = None

    def take(self, chat_id: int, now: float) -> int | None:
        chat_tokens, chat_wait = self._peek(
            self._chats.get(chat_id), self.chat_per_second, self.chat_burst, now
        )
        all_tokens, all_wait = self._peek(self._overall, self.overall_per_second, self.overall_burst, now)
        wait = max(chat_wait, all_wait)
        if wait > 0:
            return max(1, int(wait + 0.999))
        self._chats[chat_id] = (chat_tokens - 1, now)
        self._overall = (all_tokens - 1, now)
        return None

    @staticmethod
    def _peek(
        bucket: tuple[float, float] | None, rate: float, burst: float, now: float
    ) -> tuple[float, float]:
        tokens, stamp = bucket if bucket else (burst, now)
        tokens = min(burst, tokens + (now - stamp) * rate)
        return tokens, (0.0 if tokens >= 1 else (1 - tokens) / rate)


class SandboxBot:
    """Everything the sandbox knows about one bot (one token)."""

    def __init__(self, token: str | None = None) -> None:
        self.token: str | None = token
        self._message_ids = itertools.count(1)
        self._update_ids = itertools.count(1)
        self._seq = itertools.count(1)
        self._changed = asyncio.Event()
        self.poll_generation = 0
        self.closing = False
        self.last_seen: float | None = None
        self.epoch = 0  # bumped by every clear(), so the chat page knows to start over
        self.clear()

    def __repr__(self) -> str:  # never show the token
        return f"SandboxBot(bot_id={self.bot_id}, messages={len(self.messages)}, pending={len(self.updates)})"

    def clear(self) -> None:
        """Forget chats, updates, events and fault switches; ids keep increasing.

        Update ids must not restart: a running bot confirms with ``offset = last id + 1`` and
        would silently skip updates numbered below it.
        """
        self.users: dict[int, dict[str, Any]] = {}
        self.messages: dict[tuple[int, int], StoredMessage] = {}
        self.updates: list[dict[str, Any]] = []
        self.allowed_updates: list[str] | None = None
        self.events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self.callback_queries: dict[str, dict[str, Any]] = {}
        self.blocked: set[int] = set()
        self.migrated: dict[int, int] = {}  # a group upgraded to a supergroup: the supergroup's id
        self.forums: set[int] = set()  # groups a member wrote to in a topic: forums
        self.flood = FloodSwitch()
        self.limits: SendLimits | None = None
        self.method_counts: Counter[str] = Counter()
        self.error_counts: Counter[str] = Counter()
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.profile: dict[str, str] = {}
        self.webhook: dict[str, Any] = {}
        self.epoch += 1
        self.notify()

    # --- identity -----------------------------------------------------------------------

    @property
    def bot_id(self) -> int | None:
        return bot_id_for_token(self.token) if self.token else None

    def identity(self) -> dict[str, Any]:
        """The ``User`` object of ``getMe``."""
        return {
            "id": self.bot_id or 0,
            "is_bot": True,
            "first_name": self.profile.get("name") or BOT_FIRST_NAME,
            "username": BOT_USERNAME,
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def user(self, user_id: int) -> dict[str, Any]:
        """The ``User`` object of a sandbox user (made up on first sight; Telegram's stand-in
        senders as Telegram shows them)."""
        if user_id not in self.users:
            self.users[user_id] = dict(STAND_IN_USERS.get(user_id) or {"id": user_id, "is_bot": False,
                                                                      "first_name": f"User {user_id}"})
        return self.users[user_id]

    def chat_object(self, chat_id: int) -> dict[str, Any]:
        """The ``Chat`` object: a user's private chat, or a group for a negative id (``-100…``: a
        supergroup), as members and admins' alert chats use."""
        if chat_id < 0:
            kind = "supergroup" if str(chat_id).startswith("-100") else "group"
            chat = {"id": chat_id, "type": kind, "title": f"Sandbox {kind} {chat_id}"}
            if chat_id in self.forums:
                chat["is_forum"] = True
            return chat
        user = self.users.get(chat_id) or {"first_name": f"User {chat_id}"}
        chat = {"id": chat_id, "type": "private", "first_name": user["first_name"]}
        if user.get("username"):
            chat["username"] = user["username"]
        return chat

    # --- change notification ----------------------------------------------------------

    def notify(self) -> None:
        """Wake every long poll waiting on this bot."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_changed(self, timeout: float) -> None:
        """Wait until the next change or ``timeout`` seconds, whichever comes first."""
        if timeout <= 0:
            return
        event = self._changed
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass

    # --- messages and events ----------------------------------------------------------

    def next_message_id(self) -> int:
        return next(self._message_ids)

    def store(self, message: StoredMessage) -> StoredMessage:
        self.messages[(message.chat_id, message.message_id)] = message
        return message

    def find(self, chat_id: int, message_id: int) -> StoredMessage | None:
        message = self.messages.get((chat_id, message_id))
        return None if message is None or message.deleted else message

    def message_to_api(self, message: StoredMessage, with_reply: bool = True) -> dict[str, Any]:
        """The ``Message`` object Telegram would return for ``message``."""
        sender = self.identity() if message.from_bot else self.user(message.from_user_id or message.chat_id)
        body: dict[str, Any] = {
            "message_id": message.message_id,
            "from": sender,
            "chat": self.chat_object(message.chat_id),
            "date": message.date,
        }
        if message.sender_chat_id is not None:  # the group itself (an anonymous admin), or a channel
            body["sender_chat"] = (self.chat_object(message.sender_chat_id) if message.sender_chat_id == message.chat_id
                                   else {"id": message.sender_chat_id, "type": "channel",
                                         "title": f"Sandbox channel {message.sender_chat_id}"})
        if message.automatic_forward:
            body["is_automatic_forward"] = True
        if message.thread_id is not None:
            body["message_thread_id"] = message.thread_id
            body["is_topic_message"] = True
        if message.edit_date:
            body["edit_date"] = message.edit_date
        if message.text is not None:
            body["text"] = message.text
            if message.entities:
                body["entities"] = message.entities
            if message.link_preview_options:
                body["link_preview_options"] = message.link_preview_options
        if message.photo is not None:
            body["photo"] = message.photo
            if message.caption:
                body["caption"] = message.caption
                if message.caption_entities:
                    body["caption_entities"] = message.caption_entities
        if message.inline_markup:
            body["reply_markup"] = message.inline_markup
        if with_reply and message.reply_to_message_id:
            replied = self.find(message.chat_id, message.reply_to_message_id)
            if replied:
                body["reply_to_message"] = self.message_to_api(replied, with_reply=False)
        return body

    def record(
        self, kind: str, chat_id: int, message: StoredMessage | None = None, **extra: Any
    ) -> dict[str, Any]:
        """Append an event to the timeline and wake waiters."""
        event: dict[str, Any] = {
            "seq": next(self._seq),
            "ts": time.time(),
            "kind": kind,
            "chat_id": chat_id,
            "message_id": message.message_id if message else None,
            "text": message.raw_text if message else None,
            "caption": message.raw_caption if message else None,
            "parse_mode": message.parse_mode if message else None,
            "reply_markup": message.reply_markup if message else None,
            "photo": None,
        }
        if message and message.photo:
            largest = message.photo[-1]
            event["photo"] = {
                "file_id": largest["file_id"],
                "width": largest["width"],
                "height": largest["height"],
                "url": f"/_sandbox/photo/{largest['file_id']}",
            }
        if message:
            event["message"] = self.message_to_api(message)
        event.update(extra)
        self.events.append(event)
        self.notify()
        return event

    def timeline(self, chat_id: int | None, after: int = 0, bot_only: bool = False) -> list[dict[str, Any]]:
        """Events after the sequence number ``after``, oldest first, of one chat or all.

        Read from the newest back to ``after``: a poll for what is new costs what is new, not
        the whole history (the chat page and the benchmarks poll every fraction of a second).
        """
        newer = list(itertools.takewhile(lambda e: e["seq"] > after, reversed(self.events)))
        newer.reverse()
        return [
            e
            for e in newer
            if (chat_id is None or e["chat_id"] == chat_id) and (not bot_only or e["kind"] in BOT_EVENT_KINDS)
        ]

    @property
    def last_seq(self) -> int:
        return self.events[-1]["seq"] if self.events else 0

    # --- updates ------------------------------------------------------------------------

    def add_update(self, update_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": next(self._update_ids), update_type: payload}
        self.updates.append(update)
        del self.updates[:-MAX_PENDING_UPDATES]
        self.notify()
        return update

    def is_allowed(self, update: dict[str, Any]) -> bool:
        update_type = next(k for k in update if k != "update_id")
        if not self.allowed_updates:
            return update_type not in _OPT_IN_UPDATE_TYPES
        return update_type in self.allowed_updates

    def confirm(self, offset: int) -> None:
        """Forget updates below ``offset`` (a negative offset keeps only the last ``-offset``)."""
        if offset > 0:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        elif offset < 0:
            self.updates = self.updates[offset:]

    def take_allowed(self, limit: int) -> list[dict[str, Any]]:
        """The first ``limit`` pending updates of allowed types (others are dropped, as never sent)."""
        self.updates = [u for u in self.updates if self.is_allowed(u)]
        return self.updates[:limit]

    # --- users' actions -----------------------------------------------------------------

    def remember_user(
        self, user_id: int, language_code: str | None, first_name: str | None, username: str | None
    ) -> dict[str, Any]:
        user = self.user(user_id)
        if language_code:
            user["language_code"] = language_code
        if first_name:
            user["first_name"] = first_name
        if username:
            user["username"] = username
        return user

    def member_update(self, user_id: int, blocked: bool, chat_id: int | None = None) -> None:
        """Telegram's ``my_chat_member`` update: a user blocks (or unblocks) the bot in their
        private chat, or, with a group's ``chat_id``, removes it from (or adds it to) that group."""
        user = self.user(user_id)
        bot_user = self.identity()
        member = {"status": "member", "user": bot_user}
        gone = {"status": "kicked", "user": bot_user, "until_date": 0}  # blocked, or removed by a member
        self.add_update(
            "my_chat_member",
            {
                "chat": self.chat_object(user_id if chat_id is None else chat_id),
                "from": user,
                "date": int(time.time()),
                "old_chat_member": member if blocked else gone,
                "new_chat_member": gone if blocked else member,
            },
        )

    def set_blocked(self, user_id: int, blocked: bool, chat_id: int | None = None) -> bool:
        """Block or unblock (``chat_id``: a group the user removes the bot from or adds it back
        to); returns whether anything changed."""
        target = user_id if chat_id is None else chat_id
        if blocked == (target in self.blocked):
            return False
        if blocked:
            self.blocked.add(target)
        else:
            self.blocked.discard(target)
        self.member_update(user_id, blocked, chat_id)
        self.record("blocked" if blocked else "unblocked", target, **({} if chat_id is None else {"user_id": user_id}))
        return True

    def migrate(self, chat_id: int, user_id: int) -> int:
        """``user_id`` upgrades the group ``chat_id`` to a supergroup (making someone an admin, or
        turning on topics, does that in Telegram): the group's id becomes ``-100`` followed by
        its digits, the bot gets the two service messages Telegram sends (``migrate_to_chat_id``
        in the old chat, ``migrate_from_chat_id`` in the new one), and every later call to the
        old id is refused with 400 and ``parameters.migrate_to_chat_id``. Returns the new id."""
        if chat_id in self.migrated:
            return self.migrated[chat_id]
        new_id = int(f"-100{abs(chat_id)}")
        self.migrated[chat_id] = new_id
        user, now = self.user(user_id), int(time.time())
        self.add_update("message", {"message_id": self.next_message_id(), "from": user, "date": now,
                                    "chat": self.chat_object(chat_id), "migrate_to_chat_id": new_id})
        self.add_update("message", {"message_id": self.next_message_id(), "from": user, "date": now,
                                    "chat": self.chat_object(new_id), "migrate_from_chat_id": chat_id})
        self.record("migrated", chat_id, user_id=user_id, migrate_to_chat_id=new_id)
        return new_id

    def new_callback_query_id(self) -> str:
        return str(secrets.randbits(62))

    # --- accounting -----------------------------------------------------------------------

    def rate_report(self, window: float = 1.0) -> dict[str, Any]:
        """Most message writes seen in any ``window`` seconds, per chat and overall.

        ``sends`` counts new messages (sent, photo); ``writes`` also counts edits, which
        Telegram rate-limits too.
        """
        report: dict[str, Any] = {"window_s": window}
        for name, kinds in (("sends", {"sent", "photo"}), ("writes", {"sent", "photo", "edited"})):
            per_chat: dict[int, list[float]] = {}
            overall: list[float] = []
            for event in self.events:
                if event["kind"] in kinds:
                    per_chat.setdefault(event["chat_id"], []).append(event["ts"])
                    overall.append(event["ts"])
            chat_max = {chat: _max_in_window(stamps, window) for chat, stamps in per_chat.items()}
            report[name] = {
                "max_per_chat": max(chat_max.values(), default=0),
                "max_overall": _max_in_window(overall, window),
                "per_chat": {str(chat): n for chat, n in chat_max.items()},
            }
        return report


def _max_in_window(stamps: list[float], window: float) -> int:
    best = 0
    start = 0
    for end, stamp in enumerate(stamps):
        while stamp - stamps[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


class SandboxRegistry:
    """All bots of one sandbox server, plus the uploaded files they share.

    Without a fixed token any token is accepted and gets its own :class:`SandboxBot`. The
    first token to arrive takes over the *default* bot, which is also what control calls
    without ``bot=<id>`` address: so a test can inject updates before the bot has started.
    """

    def __init__(self, fixed_token: str | None = None) -> None:
        self.fixed_token = fixed_token or None
        self.default = SandboxBot(self.fixed_token)
        self.bots: dict[str, SandboxBot] = {}
        if self.fixed_token:
            self.bots[self.fixed_token] = self.default
        self.files: OrderedDict[str, StoredFile] = OrderedDict()
        self._file_numbers = itertools.count(1)

    def for_token(self, token: str) -> SandboxBot | None:
        """The bot for an API token; None if the server has a fixed token and this is not it."""
        if self.fixed_token:
            return self.default if secrets.compare_digest(token, self.fixed_token) else None
        bot = self.bots.get(token)
        if bot is None:
            if self.default.token is None:
                self.default.token = token
                bot = self.default
                bot.notify()  # the chat page shows that the bot connected
            else:
                bot = SandboxBot(token)
            self.bots[token] = bot
        return bot

    def by_id(self, bot_id: int | None) -> SandboxBot | None:
        if bot_id is None:
            return self.default
        return next((b for b in self.bots.values() if b.bot_id == bot_id), None)

    def all_bots(self) -> list[SandboxBot]:
        bots = list(self.bots.values())
        return bots if self.default in bots else [self.default, *bots]

    def add_file(self, data: bytes, content_type: str, width: int, height: int) -> StoredFile:
        number = next(self._file_numbers)
        unique = f"AQAD{number:06d}{secrets.token_hex(4)}"
        extension = content_type.rsplit("/", 1)[-1].replace("jpeg", "jpg")
        stored = StoredFile(
            file_id=f"AgACAgIAAx{secrets.token_urlsafe(24)}",
            file_unique_id=unique,
            data=data,
            content_type=content_type,
            width=width,
            height=height,
            file_path=f"photos/file_{number}.{extension}",
        )
        self.files[stored.file_id] = stored
        while len(self.files) > MAX_FILES:
            self.files.popitem(last=False)
        return stored

    def file_by_path(self, path: str) -> StoredFile | None:
        return next((f for f in self.files.values() if f.file_path == path), None)

    def reset(self) -> None:
        for bot in self.all_bots():
            bot.clear()
        self.files.clear()

    def close(self) -> None:
        for bot in self.all_bots():
            bot.closing = True
            bot.notify()

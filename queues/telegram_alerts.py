"""Alerts to the bot's admins on Telegram (``ADMIN_USER_IDS``), batched so a storm is one message.

:class:`TelegramAlertSink` is an alert sink (``name``, ``send(alert)``) that never talks to
Telegram from ``send``: it queues the alert in Redis (once per alert id, whichever process
sends it) and then flushes. A flush sends everything queued as ONE message to each admin, at
most once per ``ALERT_TELEGRAM_BATCH_SECONDS`` across all processes (a Redis window key), so
the first alert after a quiet spell goes out at once and a hundred more within the minute
arrive together. The monitor's tick flushes, so what waits is sent within one window.

Alerts written by other processes (a worker's final failure) reach the admins through
:meth:`relay`, which the monitor calls each tick (the scheduler's ``alert_relay`` task when the
monitor is off): it reads the alert log since its cursor and queues what it has not seen. When Redis itself is down, ``send`` delivers at once instead
(the monitor sends a Redis-down alert only once per outage).

Messages are plain text (no parse mode, so nothing needs escaping), with every secret in force
scrubbed, and cut to Telegram's 4096 characters. Each admin reads them in their language, as the
bot keeps it (``/lang``, else the language of their last admin command; English while Redis is
down), the monitor's alerts told again from their rule and details. Bot API calls go through aiogram against
``TELEGRAM_API_URL`` (the sandbox in tests and local runs).

Keys (under ``REDIS_KEY_PREFIX``): ``alerts:telegram:pending`` (list, bounded),
``alerts:telegram:seen:<alert id>`` (1 day), ``alerts:telegram:window`` (the batch window),
``alerts:telegram:cursor`` (the relay's position in the alert log).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import redis

from queues.alerts import Alert, AlertStore
from queues.connection import as_text
from queues.redaction import error_text, install_token_scrubber

logger = logging.getLogger(__name__)

PENDING_MAX = 500
SEEN_TTL = 86400
RELAY_OVERLAP = 120.0
MESSAGE_LIMIT = 4096
SEND_TIMEOUT = 10.0
SANDBOX_TOKEN = "123456:sandbox-admin-alerts"
_ICONS = {"critical": "🔴", "error": "🟠", "warning": "🟡", "info": "🔵"}
_ORDER = {"critical": 0, "error": 1, "warning": 2, "info": 3}


def run_blocking(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` to completion from sync code, even when this thread runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="telegram-alerts", daemon=True)
    thread.start()
    thread.join(SEND_TIMEOUT * 3)
    if "error" in box:
        raise box["error"]
    return box.get("value")


_BATCH_TEXTS: dict[str, dict[str, Any]] = {
    "en": {"alerts": ("alert", "alerts"), "resolved": "{n} resolved",
           "head": "{title}: {n} {alerts} ({counts}), {times}", "utc": "times UTC", "zone": "times in {zone}",
           "job": "job", "more": "… and {n} more (admin.py alerts)"},
    "ru": {"alerts": ("оповещение", "оповещения", "оповещений"), "resolved": "решено: {n}",
           "head": "{title}: {n} {alerts} ({counts}), {times}", "utc": "время UTC", "zone": "время — {zone}",
           "job": "задача", "more": "… и ещё {n} (admin.py alerts)"},
}


def format_batch(alerts: list[Alert], secrets: list[str] | None = None, title: str = "FACEIT bot",
                 lang: str = "en", zone_name: str | None = None) -> str:
    """One plain-text message for a batch in ``lang``: a headline of counts, then one line per
    alert, the monitor's told again from their rule and details (:func:`~queues.health_texts.tell_alert`).
    Times are in ``zone_name``, the zone the admin chose with ``/tz`` (UTC until they chose one),
    as ``/alerts`` shows them."""
    from bot.timezones import describe, zone_of
    from faceit.i18n import plural
    from queues.health_texts import level_count, level_word, tell_alert
    from queues.sentry import scrub, scrubber_for

    mask = scrubber_for(secrets).redact if secrets is not None else scrub  # built once, not per line
    words = _BATCH_TEXTS.get(lang) or _BATCH_TEXTS["en"]
    fired = [a for a in alerts if a.state != "resolved"]
    resolved = [a for a in alerts if a.state == "resolved"]
    counts: dict[str, int] = {}
    for alert in fired:
        counts[alert.level] = counts.get(alert.level, 0) + 1
    parts = [level_count(level, n, lang) for level, n in sorted(counts.items(), key=lambda kv: _ORDER.get(kv[0], 9))]
    if resolved:
        parts.append(words["resolved"].format(n=len(resolved)))
    zone = zone_of(zone_name)
    times = words["utc"] if zone is UTC else words["zone"].format(zone=describe(zone_name))
    lines = [words["head"].format(title=title, n=len(alerts), counts=", ".join(parts), times=times,
                                  alerts=plural(len(alerts), lang, {"en": _BATCH_TEXTS["en"]["alerts"],
                                                                     "ru": _BATCH_TEXTS["ru"]["alerts"]}))]
    ordered = sorted(fired, key=lambda a: (_ORDER.get(a.level, 9), a.time)) + sorted(resolved, key=lambda a: a.time)
    for index, alert in enumerate(ordered):
        icon = "✅" if alert.state == "resolved" else _ICONS.get(alert.level, "•")
        stamp = datetime.fromtimestamp(alert.time, zone).strftime("%H:%M:%S")
        job = f" ({words['job']} {alert.job_id})" if alert.job_id else ""
        line = f"{icon} {stamp} {level_word(alert.level, lang).upper()} {alert.source}: {tell_alert(alert, lang)}{job}"
        line = str(mask(line))
        remaining = len(ordered) - index
        if sum(len(x) + 1 for x in lines) + len(line) + 40 > MESSAGE_LIMIT:
            lines.append(words["more"].format(n=remaining))
            break
        lines.append(line[:1000])
    return "\n".join(lines)[:MESSAGE_LIMIT]


class TelegramAlertSink:
    """Batches alerts in Redis and sends each batch to every admin. See the module docstring."""

    name = "telegram"

    def __init__(
        self,
        client: redis.Redis,
        *,
        admin_ids: list[int],
        api_url: str,
        token: str,
        prefix: str = "fb:",
        batch_seconds: float = 60.0,
        secrets: list[str] | None = None,
    ) -> None:
        self.client = client
        self.admin_ids = [int(a) for a in admin_ids]
        self.api_url = api_url
        self._token = token
        self.prefix = prefix
        self.batch_seconds = float(batch_seconds)
        self._secrets = list(secrets or [])
        self.sent_messages = 0
        self.send_failures = 0

    def __repr__(self) -> str:  # never the token
        return f"TelegramAlertSink(admins={len(self.admin_ids)}, api={self.api_url!r})"

    @classmethod
    def from_settings(cls, settings: Any, client: redis.Redis | None = None) -> TelegramAlertSink | None:
        """The sink, or None when no admin is configured or no bot can be reached."""
        if not settings.admin_user_ids:
            return None
        token = settings.telegram_bot_token.get_secret_value()
        if not token:
            if "api.telegram.org" in settings.telegram_api_url:
                logger.warning("admin alerts: TELEGRAM_BOT_TOKEN is empty; Telegram alerts are off")
                return None
            token = SANDBOX_TOKEN
        install_token_scrubber(token)  # this process now holds the token: no log line may show it
        if client is None:
            from queues.runtime import get_redis

            client = get_redis(settings)
        return cls(client, admin_ids=list(settings.admin_user_ids), api_url=settings.telegram_api_url,
                   token=token, prefix=settings.redis_key_prefix,
                   batch_seconds=settings.alert_telegram_batch_seconds, secrets=settings.secret_values())

    # keys
    @property
    def pending_key(self) -> str:
        return f"{self.prefix}alerts:telegram:pending"

    @property
    def window_key(self) -> str:
        return f"{self.prefix}alerts:telegram:window"

    @property
    def cursor_key(self) -> str:
        return f"{self.prefix}alerts:telegram:cursor"

    def seen_key(self, alert_id: str) -> str:
        return f"{self.prefix}alerts:telegram:seen:{alert_id}"

    # the sink protocol
    def send(self, alert: Alert) -> None:
        """Queue ``alert`` for the next batch (once per alert id), then flush if the window allows."""
        try:
            if not self.client.set(self.seen_key(alert.id), 1, nx=True, ex=SEEN_TTL):
                return
            pipe = self.client.pipeline(transaction=False)
            pipe.rpush(self.pending_key, json.dumps(alert.to_dict()))
            pipe.ltrim(self.pending_key, -PENDING_MAX, -1)
            pipe.expire(self.pending_key, SEEN_TTL)
            pipe.execute()
        except redis.RedisError:
            # Redis is down (the monitor says so once per outage): no batching possible, send now.
            self._deliver([alert], redis_down=True)
            return
        self.flush()

    def mark_seen(self, alert_ids: list[str]) -> None:
        """Alerts already delivered directly (during a Redis outage) must not be relayed again."""
        pipe = self.client.pipeline(transaction=False)
        for alert_id in alert_ids:
            pipe.set(self.seen_key(alert_id), 1, ex=SEEN_TTL)
        pipe.execute()

    def relay(self, store: AlertStore) -> int:
        """Queue alerts other processes wrote to the log since the last relay; returns how many."""
        now = time.time()
        cursor = self.client.get(self.cursor_key)
        self.client.set(self.cursor_key, repr(now), ex=SEEN_TTL * 7)
        # The overlap covers alerts written late (their score is their creation time); the
        # seen marks drop repeats. A first run looks back the same span, no further.
        since = (float(cursor) if cursor is not None else now) - RELAY_OVERLAP
        queued = 0
        for raw in self.client.zrangebyscore(store.log_key, since, "+inf"):
            alert = Alert.from_dict(json.loads(raw))
            if self.client.set(self.seen_key(alert.id), 1, nx=True, ex=SEEN_TTL):
                self.client.rpush(self.pending_key, json.dumps(alert.to_dict()))
                queued += 1
        if queued:
            self.client.ltrim(self.pending_key, -PENDING_MAX, -1)
            self.client.expire(self.pending_key, SEEN_TTL)
        return queued

    def flush(self, force: bool = False) -> int:
        """Send what is queued as one message per admin if the batch window is open.

        Returns how many alerts were sent (0 when nothing waits or the window is closed).
        ``force`` ignores the window (for shutdown).
        """
        if not self.client.llen(self.pending_key):
            return 0
        if not force and not self.client.set(self.window_key, 1, nx=True, px=int(self.batch_seconds * 1000)):
            return 0
        pipe = self.client.pipeline(transaction=True)
        pipe.lrange(self.pending_key, 0, -1)
        pipe.delete(self.pending_key)
        raw_items, _ = pipe.execute()
        alerts = [Alert.from_dict(json.loads(raw)) for raw in raw_items]
        if not alerts:
            return 0
        if not self._deliver(alerts):
            # Telegram unreachable: keep the batch for the next window (bounded).
            pipe = self.client.pipeline(transaction=False)
            for raw in reversed(raw_items):
                pipe.lpush(self.pending_key, raw)
            pipe.ltrim(self.pending_key, -PENDING_MAX, -1)
            pipe.expire(self.pending_key, SEEN_TTL)
            pipe.execute()
            return 0
        # The window runs from the end of the send (the first send may take a while: imports).
        self.client.set(self.window_key, 1, px=int(self.batch_seconds * 1000))
        return len(alerts)

    # Telegram
    def admin_preferences(self) -> dict[int, tuple[str, str | None]]:
        """Each admin's language and time zone, as the bot keeps them (one round trip): the
        language chosen with ``/lang``, else the one an admin command last answered them in; the
        zone chosen with ``/tz`` (None: UTC). English and UTC when Redis cannot say."""
        from bot.keys import BotKeys
        from bot.texts import user_language

        keys = BotKeys(self.prefix)
        fields = [str(admin) for admin in self.admin_ids]
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.hmget(keys.user_languages(), fields)
            pipe.hmget(keys.user_seen_languages(), fields)
            pipe.hmget(keys.user_timezones(), fields)
            chosen, seen, zones = pipe.execute()
        except redis.RedisError:
            return {admin: ("en", None) for admin in self.admin_ids}

        return {admin: (user_language(as_text(c), as_text(s)), as_text(z))
                for admin, c, s, z in zip(self.admin_ids, chosen, seen, zones, strict=True)}

    def _deliver(self, alerts: list[Alert], redis_down: bool = False) -> bool:
        """Send the batch to every admin in their language and time zone (English and UTC while
        Redis is down); True when at least one admin got it."""
        wanted = {admin: ("en", None) for admin in self.admin_ids} if redis_down else self.admin_preferences()
        texts = {(lang, zone): format_batch(alerts, self._secrets, lang=lang, zone_name=zone)
                 for lang, zone in set(wanted.values())}
        try:
            delivered = run_blocking(self._send_all({admin: texts[key] for admin, key in wanted.items()}))
        except Exception as exc:
            self.send_failures += 1
            logger.warning("admin alerts: Telegram send failed: %s", type(exc).__name__)
            return False
        self.sent_messages += delivered
        return delivered > 0

    async def _send_all(self, texts: dict[int, str]) -> int:
        """Send each admin their text (admin id → text); returns how many got theirs."""
        from aiogram import Bot
        from aiogram.client.session.aiohttp import AiohttpSession
        from aiogram.client.telegram import TelegramAPIServer

        session = AiohttpSession(api=TelegramAPIServer.from_base(self.api_url), timeout=SEND_TIMEOUT)
        bot = Bot(self._token, session=session)
        delivered = 0
        try:
            for admin, text in texts.items():
                try:
                    await bot.send_message(admin, text)
                    delivered += 1
                except Exception as exc:  # one admin who blocked the bot must not stop the others
                    self.send_failures += 1
                    # scrubbed before it is cut: aiogram's network errors quote .../bot<token>/sendMessage
                    logger.warning("admin alerts: could not message admin %s: %s: %s", admin,
                                   type(exc).__name__, error_text(exc, 120, self._token))
        finally:
            await bot.session.close()
        return delivered

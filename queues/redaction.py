"""Masks secrets: the one masking core under what operators are shown, what job records keep,
and what Sentry and the alert sinks receive.

Job records store actors' ``secret_fields`` redacted, and the message and traceback of a job's
error scrubbed of every secret in force (:func:`queues.errors.error_summary`). The dashboard
and the admin tool pass everything they show through a :class:`Redactor` too, as a second line
of defence. Sentry events and alert texts go through :func:`queues.sentry.scrub`, the same
masking with its own mark and chat texts dropped as well. What is masked: any mapping key that
names a secret (token, password, api key...), any configured secret value inside text (an error
quoting a URL with a key, a traceback, an argument someone typed), passwords in URLs and
anything shaped like a Bot API token, also inside a Bot API path (``/bot123:ABC…/getMe``).

Log lines: every process that holds the bot token installs :class:`TokenScrubFilter`
(:func:`install_token_scrubber`), which masks it, whole or cut short, in every record; a log line,
a scheduler task's history or an alert quoting an exception cuts it with :func:`error_text`,
which first masks the bot token and every other secret in force, as job records are masked.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from typing import Any

MASK = "***"
_SECRET_KEY = re.compile(r"(token|passw|secret|api[_-]?key|apikey|authorization|cookie|dsn|credential)", re.I)
# Credentials inside URLs (scheme://user:password@host) and Bot API tokens (123456:AA…), also
# right after "/bot" in a Bot API URL, where no word boundary precedes the digits.
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@/\s]+@", re.I)
_BOT_TOKEN = re.compile(r"(?<![0-9])\d{5,}:[A-Za-z0-9_-]{20,}")
#: A Bot API path segment that carries a token, ``/bot<id>:<secret>`` (``/file/bot…`` too), whole or
#: cut short anywhere after the colon.
_TOKEN_IN_PATH = re.compile(r"/bot[0-9]+:[A-Za-z0-9_-]*")
_EMPTY = (None, "", [], {})


class Redactor:
    """``redact(value)`` masks secret keys and known secret values, recursively.

    ``mask`` replaces what is hidden; ``hidden_keys`` are key names hidden as well although
    they name no secret (Sentry's scrub hides chat texts so).
    """

    def __init__(self, secret_values: list[str] | None = None, mask: str = MASK,
                 hidden_keys: Collection[str] = ()) -> None:
        # Longest first so a secret containing another is masked whole.
        self.values = sorted({v for v in (secret_values or []) if v and len(v) >= 4}, key=len, reverse=True)
        self.mask = mask
        self.hidden_keys = frozenset(hidden_keys)

    def text(self, value: str) -> str:
        for secret in self.values:
            if secret in value:
                value = value.replace(secret, self.mask)
        value = _URL_PASSWORD.sub(lambda m: m.group(1) + self.mask + "@", value)
        value = _TOKEN_IN_PATH.sub("/bot" + self.mask, value)  # a Bot API path's token, even cut short
        return _BOT_TOKEN.sub(self.mask, value)

    def hides(self, key: Any) -> bool:
        """Whether the value under mapping key ``key`` is hidden whole."""
        return isinstance(key, str) and (key in self.hidden_keys or bool(_SECRET_KEY.search(key)))

    def redact(self, value: Any, depth: int = 0) -> Any:
        if depth > 20:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: (self.mask if self.hides(key) and item not in _EMPTY else self.redact(item, depth + 1))
                    for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact(item, depth + 1) for item in value]
        return value


def redactor_for(settings: Any) -> Redactor:
    values = settings.secret_values() if hasattr(settings, "secret_values") else []
    return Redactor(values)


_in_force: tuple[Any, Redactor] | None = None


def redactor_in_force() -> Redactor:
    """The redactor of the settings in force (built again only when they are reloaded)."""
    global _in_force
    from settings import get_settings

    settings = get_settings()
    if _in_force is None or _in_force[0] is not settings:
        _in_force = (settings, redactor_for(settings))
    return _in_force[1]


# The bot token in log lines ---------------------------------------------------------------

TOKEN_MASK = "<token>"


def scrub_bot_token(text: str, token: str = "") -> str:
    """``text`` with the bot token masked as ``<token>``: ``token`` itself, its bot id followed by
    any part of a secret (a token cut short), every ``/bot<id>:…`` path segment, and anything
    shaped like a token, whoever's it is."""
    if token:
        text = text.replace(token, TOKEN_MASK)
        bot_id, colon, _ = token.partition(":")
        if colon and bot_id and f"{bot_id}:" in text:
            text = re.sub(rf"(?<![0-9]){re.escape(bot_id)}:[A-Za-z0-9_-]+", TOKEN_MASK, text)
    text = _TOKEN_IN_PATH.sub("/bot" + TOKEN_MASK, text)
    return _BOT_TOKEN.sub(TOKEN_MASK, text)


def error_text(exc: BaseException, limit: int, token: str = "") -> str:
    """``str(exc)`` for a log line, a task's history or an alert: scrubbed of the bot token
    (:func:`scrub_bot_token`) and of every other secret in force (:func:`redactor_in_force`, as
    job records are), THEN cut to ``limit`` characters. Cut first, a secret split by the cut is
    no longer what a scrubber looks for: aiogram's network errors quote the request URL,
    ``…/bot<token>/sendMessage``."""
    text = scrub_bot_token(str(exc), token)
    try:
        redactor = redactor_in_force()
    except Exception:  # settings unreadable here: the bot token's scrub above still holds
        return text[:limit]
    return redactor.text(text)[:limit]


class TokenScrubFilter(logging.Filter):
    """Masks the bot token (:func:`scrub_bot_token`: also a token cut short, or any token-shaped
    text) in every log record that passes a handler: its message, and the traceback of a record
    logged with ``exc_info`` (formatted here, once, so the handler prints the scrubbed text)."""

    _formatter = logging.Formatter()

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:
            return True
        scrubbed = scrub_bot_token(text, self.token)
        if scrubbed != text:
            record.msg, record.args = scrubbed, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub_bot_token(record.exc_text, self.token)
        if record.stack_info:
            record.stack_info = scrub_bot_token(record.stack_info, self.token)
        return True


def install_token_scrubber(token: str) -> None:
    """Attach :class:`TokenScrubFilter` for ``token`` (empty: token shapes only) to every root
    handler that lacks it, and keep aiogram's and aiohttp's client loggers at INFO or above (at
    DEBUG they would log request URLs, token included). Call it again after adding handlers."""
    for name in ("aiogram", "aiogram.client", "aiogram.event", "aiogram.dispatcher", "aiohttp.client"):
        lg = logging.getLogger(name)
        if lg.getEffectiveLevel() < logging.INFO:
            lg.setLevel(logging.INFO)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, TokenScrubFilter) and f.token == token for f in handler.filters):
            handler.addFilter(TokenScrubFilter(token))

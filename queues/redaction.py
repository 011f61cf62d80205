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
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

MASK = "***"
_SECRET_KEY = re.compile(r"(token|passw|secret|api[_-]?key|apikey|authorization|cookie|dsn|credential)", re.I)
# Credentials inside URLs (scheme://user:password@host) and Bot API tokens (123456:AA…), also
# right after "/bot" in a Bot API URL, where no word boundary precedes the digits.
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@/\s]+@", re.I)
_BOT_TOKEN = re.compile(r"(?<![0-9])\d{5,}:[A-Za-z0-9_-]{20,}")
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

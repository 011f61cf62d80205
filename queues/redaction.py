"""Masks secrets in what operators are shown and in the error text job records keep.

Job records store actors' ``secret_fields`` redacted, and the message and traceback of a job's
error scrubbed of every secret in force (:func:`queues.errors.error_summary`). The dashboard
and the admin tool pass everything they show through a :class:`Redactor` too, as a second line
of defence: it masks any mapping key that names a secret (token, password, api key...), any
configured secret value inside text (an error quoting a URL with a key, a traceback, an
argument someone typed), passwords in URLs and Bot API tokens.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
_SECRET_KEY = re.compile(r"(token|passw|secret|api[_-]?key|apikey|authorization|cookie|dsn|credential)", re.I)
# Credentials inside URLs (scheme://user:password@host) and Bot API token paths (/bot123:ABC/).
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@/\s]+@", re.I)
_BOT_TOKEN = re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{20,}\b")


class Redactor:
    """``redact(value)`` masks secret keys and known secret values, recursively."""

    def __init__(self, secret_values: list[str] | None = None) -> None:
        # Longest first so a secret containing another is masked whole.
        self.values = sorted({v for v in (secret_values or []) if v and len(v) >= 4}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self.values:
            if secret in value:
                value = value.replace(secret, MASK)
        value = _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + "@", value)
        return _BOT_TOKEN.sub(MASK, value)

    def redact(self, value: Any, depth: int = 0) -> Any:
        if depth > 20:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                key: (MASK if isinstance(key, str) and _SECRET_KEY.search(key) and item not in (None, "")
                      else self.redact(item, depth + 1))
                for key, item in value.items()
            }
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

"""Masks secrets in whatever the dashboard shows, as a second line of defence.

Job records already store actors' ``secret_fields`` redacted; this also masks any mapping key
that names a secret (token, password, api key...) and any configured secret value that shows
up inside text (an error message quoting a URL with a key, a traceback).
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

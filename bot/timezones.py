"""A user's time zone, as typed with ``/tz`` and as read back when their weekly summary is due.

Telegram never tells a bot where a user is, so the weekly summary goes out at Monday 09:00 UTC
until the user names a zone. What they may type, on a phone:

* a zone of the tz database, in any case: ``Europe/Moscow``, ``america/new_york``;
* a city of it alone, with spaces or underscores: ``Moscow``, ``new york``, ``Sao_Paulo``;
* an offset from UTC: ``+3``, ``UTC+3``, ``GMT-5``, ``+05:30``, ``+0545``;
* ``UTC`` (or ``GMT``, ``Z``).

:func:`parse_timezone` turns that into the stored name (the database's own spelling, or
``UTC+05:30``); :func:`zone_of` turns a stored name into a ``tzinfo``, UTC for anything else,
so a bad value in Redis can never stop the weekly run. A named zone follows its daylight saving
time; an offset stays fixed, as the user asked.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

MAX_INPUT = 64  # the longest zone name is 32 characters
_UTC_WORDS = {"utc", "gmt", "z", "utc+0", "utc-0", "gmt+0", "gmt-0", "+0", "-0"}
# "+3", "UTC+3", "gmt -5", "+05:30", "+0545", "UTC+3:30"
_OFFSET = re.compile(r"^(?:utc|gmt)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?$")
_STORED_OFFSET = re.compile(r"^UTC([+-])(\d{2}):(\d{2})$")
_NOT_PLACES = {"localtime", "Factory", "posixrules"}  # files of the database that are no one's zone
MAX_OFFSET = timedelta(hours=14)  # Kiribati, UTC+14, and Baker Island, UTC-12, are the ends


@lru_cache(maxsize=1)
def _zone_names() -> tuple[dict[str, str], dict[str, str]]:
    """(lowercase full name → name, lowercase city → name) of every zone of the database.

    A city in two zones (an alias beside the canonical name) maps to the shortest name; the
    database is read once per process (about 25 ms)."""
    every = [n for n in available_timezones() if n not in _NOT_PLACES]
    names = [n for n in every if "/" in n and not n.startswith(("Etc/", "SystemV/"))]
    full = {name.lower(): name for name in every}
    cities: dict[str, str] = {}
    for name in sorted(names, key=lambda n: (n.count("/"), len(n), n)):
        cities.setdefault(name.rsplit("/", 1)[1].lower(), name)
    return full, cities


def _offset_name(sign: str, hours: int, minutes: int) -> str | None:
    if minutes >= 60 or timedelta(hours=hours, minutes=minutes) > MAX_OFFSET:
        return None
    if hours == 0 and minutes == 0:
        return "UTC"
    return f"UTC{sign}{hours:02d}:{minutes:02d}"


def parse_timezone(text: str) -> str | None:
    """The name to store for what a user typed, or None when it names no time zone."""
    typed = " ".join(text.split()).strip()
    if not typed or len(typed) > MAX_INPUT:
        return None
    lowered = typed.lower()
    if lowered in _UTC_WORDS:
        return "UTC"
    offset = _OFFSET.match(lowered)
    if offset is not None:
        sign, hours, minutes = offset.group(1), int(offset.group(2)), int(offset.group(3) or 0)
        return _offset_name(sign, hours, minutes)
    full, cities = _zone_names()
    key = lowered.replace(" ", "_")
    return full.get(key) or cities.get(key)


def zone_of(name: str | None) -> tzinfo:
    """The ``tzinfo`` of a stored name; UTC when there is none or it is not one."""
    if not name or name == "UTC":
        return UTC
    offset = _STORED_OFFSET.match(name)
    if offset is not None:
        sign, hours, minutes = offset.group(1), int(offset.group(2)), int(offset.group(3))
        delta = timedelta(hours=hours, minutes=minutes)
        if minutes >= 60 or delta > MAX_OFFSET:
            return UTC
        return timezone(-delta if sign == "-" else delta)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "Europe" is a folder; a long name an OSError
        return UTC


def describe(name: str | None, now: datetime | None = None) -> str:
    """``Europe/Moscow (UTC+03:00)``, ``UTC+05:30`` or ``UTC``: how the bot names a stored zone."""
    zone = zone_of(name)
    if zone is UTC:
        return "UTC"
    offset = (now or datetime.now(UTC)).astimezone(zone).utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    label = f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return label if label == name else f"{name} ({label})"

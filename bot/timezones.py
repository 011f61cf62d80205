"""A user's time zone, as typed with ``/tz`` and as read back when their weekly summary is due.

Telegram never tells a bot where a user is, so the weekly summary goes out at Monday 09:00 UTC
until the user names a zone. What they may type, on a phone:

* a zone of the tz database, in any case: ``Europe/Moscow``, ``america/new_york``;
* a city of it alone, with spaces or underscores: ``Moscow``, ``new york``, ``Sao_Paulo``;
* a few names the database spells otherwise (:data:`ALIASES`): ``EST``, ``MSK``, ``Москва``, ``Питер``;
* an offset from UTC: ``+3``, ``UTC+3``, ``GMT-5``, ``+05:30``, ``+0545`` (a phone's ``−`` too),
  or a bare number of hours, ``3``, ``0`` or ``-3`` (the help says "UTC offset", and people type
  one so);
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
_UTC_WORDS = {"utc", "gmt", "z"}  # "+0", "UTC-0" … are offsets of zero
# "+3", "UTC+3", "gmt -5", "+05:30", "+0545", "UTC+3:30"
_OFFSET = re.compile(r"^(?:utc|gmt)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?$")
# "3", "0", "utc 3": whole hours east of UTC without a sign (minutes take a sign: "+0530")
_BARE_HOURS = re.compile(r"^(?:(?:utc|gmt)\s*)?(\d{1,2})$")
_STORED_OFFSET = re.compile(r"^UTC([+-])(\d{2}):(\d{2})$")
_MINUS_SIGNS = str.maketrans({"\u2212": "-", "\u2013": "-", "\u2014": "-"})  # a phone keyboard's minus, dashes
_NOT_PLACES = {"localtime", "Factory", "posixrules"}  # files of the database that are no one's zone
# Where the world's clocks end: Kiribati at UTC+14, Baker Island at UTC-12; minutes come in quarters.
EAST_END, WEST_END = timedelta(hours=14), timedelta(hours=12)
# What people type that the database spells otherwise, or not as meant: US abbreviations there are
# fixed offsets ("EST" would never move to summer time), and Russian speakers write their city
# in Cyrillic (the database's names are Latin).
ALIASES = {
    "est": "America/New_York", "edt": "America/New_York", "eastern": "America/New_York",
    "cst": "America/Chicago", "cdt": "America/Chicago", "central": "America/Chicago",
    "mst": "America/Denver", "mdt": "America/Denver", "mountain": "America/Denver",
    "pst": "America/Los_Angeles", "pdt": "America/Los_Angeles", "pacific": "America/Los_Angeles",
    "hst": "Pacific/Honolulu", "msk": "Europe/Moscow", "мск": "Europe/Moscow",
    "москва": "Europe/Moscow", "санкт-петербург": "Europe/Moscow", "петербург": "Europe/Moscow",
    "питер": "Europe/Moscow", "спб": "Europe/Moscow", "st petersburg": "Europe/Moscow",
    "saint petersburg": "Europe/Moscow", "казань": "Europe/Moscow", "нижний новгород": "Europe/Moscow",
    "калининград": "Europe/Kaliningrad", "самара": "Europe/Samara", "екатеринбург": "Asia/Yekaterinburg",
    "челябинск": "Asia/Yekaterinburg", "уфа": "Asia/Yekaterinburg", "пермь": "Asia/Yekaterinburg",
    "омск": "Asia/Omsk", "новосибирск": "Asia/Novosibirsk", "красноярск": "Asia/Krasnoyarsk",
    "иркутск": "Asia/Irkutsk", "якутск": "Asia/Yakutsk", "владивосток": "Asia/Vladivostok",
    "хабаровск": "Asia/Vladivostok", "магадан": "Asia/Magadan", "камчатка": "Asia/Kamchatka",
    "киев": "Europe/Kyiv", "київ": "Europe/Kyiv", "минск": "Europe/Minsk", "алматы": "Asia/Almaty",
    "астана": "Asia/Almaty", "ташкент": "Asia/Tashkent", "бишкек": "Asia/Bishkek", "тбилиси": "Asia/Tbilisi",
    "ереван": "Asia/Yerevan", "баку": "Asia/Baku", "кишинёв": "Europe/Chisinau", "кишинев": "Europe/Chisinau",
    "рига": "Europe/Riga", "вильнюс": "Europe/Vilnius", "таллин": "Europe/Tallinn", "варшава": "Europe/Warsaw",
    "берлин": "Europe/Berlin", "лондон": "Europe/London", "стамбул": "Europe/Istanbul",
}


@lru_cache(maxsize=1)
def _zone_names() -> tuple[dict[str, str], dict[str, str]]:
    """(lowercase full name → name, lowercase city → name) of every zone of the database.

    A city in two zones (an alias beside the canonical name) maps to the shortest name; the
    database is read once per process (15-25 ms; the bot parses in a thread, off its event loop)."""
    every = [n for n in available_timezones() if n not in _NOT_PLACES]
    names = [n for n in every if "/" in n and not n.startswith(("Etc/", "SystemV/"))]
    full = {name.lower(): name for name in every}
    cities: dict[str, str] = {}
    for name in sorted(names, key=lambda n: (n.count("/"), len(n), n)):
        cities.setdefault(name.rsplit("/", 1)[1].lower(), name)
    return full, cities


def _offset(sign: str, hours: int, minutes: int) -> timedelta | None:
    """The offset from UTC, or None where no clock of the world is (past the ends, odd minutes)."""
    if minutes >= 60 or minutes % 15:
        return None
    delta = timedelta(hours=hours, minutes=minutes)
    if delta > (WEST_END if sign == "-" else EAST_END):
        return None
    return -delta if sign == "-" else delta


def offset_name(delta: timedelta) -> str:
    """``UTC+05:30``, ``UTC-03:00``; ``UTC`` for no offset: how an offset is stored and shown."""
    minutes = int(delta.total_seconds() // 60)
    if not minutes:
        return "UTC"
    sign = "-" if minutes < 0 else "+"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def parse_timezone(text: str) -> str | None:
    """The name to store for what a user typed, or None when it names no time zone."""
    typed = " ".join(text.translate(_MINUS_SIGNS).split())
    if not typed or len(typed) > MAX_INPUT:
        return None
    lowered = typed.lower()
    if lowered in _UTC_WORDS:
        return "UTC"
    offset = _OFFSET.match(lowered)
    if offset is not None:
        delta = _offset(offset.group(1), int(offset.group(2)), int(offset.group(3) or 0))
        return None if delta is None else offset_name(delta)
    bare = _BARE_HOURS.match(lowered)
    if bare is not None:
        delta = _offset("+", int(bare.group(1)), 0)
        return None if delta is None else offset_name(delta)
    if lowered in ALIASES:
        return ALIASES[lowered]
    full, cities = _zone_names()
    key = lowered.replace(" ", "_")
    return full.get(key) or cities.get(key)


def zone_of(name: str | None) -> tzinfo:
    """The ``tzinfo`` of a stored name; UTC when there is none or it is not one."""
    if not name or name == "UTC":
        return UTC
    stored = _STORED_OFFSET.match(name)
    if stored is not None:
        delta = _offset(stored.group(1), int(stored.group(2)), int(stored.group(3)))
        return UTC if delta is None else timezone(delta)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "Europe" is a folder; a long name an OSError
        return UTC


def describe(name: str | None, now: datetime | None = None) -> str:
    """``Europe/Moscow (UTC+03:00)``, ``UTC+05:30`` or ``UTC``: how the bot names a stored zone."""
    zone = zone_of(name)
    if zone is UTC:
        return "UTC"
    label = offset_name((now or datetime.now(UTC)).astimezone(zone).utcoffset() or timedelta(0))
    return label if label == name else f"{name} ({label})"

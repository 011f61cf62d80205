"""What a user may type after ``/tz``, what is stored, and how a stored name is read back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from bot.timezones import describe, parse_timezone, zone_of


@pytest.mark.parametrize(("typed", "stored"), [
    ("Europe/Moscow", "Europe/Moscow"),
    ("europe/moscow", "Europe/Moscow"),  # typed on a phone, in lower case
    ("Moscow", "Europe/Moscow"),  # a city alone
    ("new york", "America/New_York"),  # with a space for the underscore
    ("  Sao_Paulo ", "America/Sao_Paulo"),
    ("kolkata", "Asia/Kolkata"),
    ("Japan", "Japan"),  # a country-wide zone of the database
    ("+3", "UTC+03:00"),
    ("UTC+3", "UTC+03:00"),
    ("gmt -5", "UTC-05:00"),
    ("+05:30", "UTC+05:30"),
    ("+0545", "UTC+05:45"),
    ("+530", "UTC+05:30"),  # three digits: an hour and its minutes
    ("-12", "UTC-12:00"),
    ("3", "UTC+03:00"),  # a bare number of hours: the help says "UTC offset"
    ("0", "UTC"),
    ("UTC+14", "UTC+14:00"),
    ("utc", "UTC"),
    ("Z", "UTC"),
    ("+0", "UTC"),
    ("UTC\u22123", "UTC-03:00"),  # a phone keyboard's minus sign
    ("Москва", "Europe/Moscow"),  # Russian speakers write their city in Cyrillic
    ("питер", "Europe/Moscow"),
    ("MSK", "Europe/Moscow"),
    ("Екатеринбург", "Asia/Yekaterinburg"),
    ("EST", "America/New_York"),  # the database's EST is a fixed offset: no summer time
    ("pst", "America/Los_Angeles"),
])
def test_what_a_user_types_is_stored_by_its_name(typed, stored):
    assert parse_timezone(typed) == stored


@pytest.mark.parametrize("typed", ["", "   ", "Mars", "Mars/Olympus", "Europe", "+15", "UTC+14:30", "+3:75",
                                   "localtime", "Factory", "x" * 70, "../../etc/passwd", "15", "+-3",
                                   "+123", "+05:20", "-13", "Мордор"])  # +123: 23 is no quarter hour
def test_what_names_no_time_zone_is_refused(typed):
    assert parse_timezone(typed) is None


def test_a_stored_name_is_read_back_as_its_zone():
    assert zone_of("Europe/Berlin") == ZoneInfo("Europe/Berlin")
    assert zone_of("UTC+05:30") == timezone(timedelta(hours=5, minutes=30))
    assert zone_of("UTC-03:30") == timezone(-timedelta(hours=3, minutes=30))
    assert zone_of("UTC") is UTC


@pytest.mark.parametrize("stored", [None, "", "Europe", "America", "Not/A_Zone", "x" * 300, "../../etc/passwd",
                                    "UTC+25:00", "UTC+05:99"])
def test_a_stored_value_that_is_no_zone_means_utc(stored):
    assert zone_of(stored) is UTC


def test_a_named_zone_is_described_with_its_offset_of_the_day():
    winter = datetime(2026, 1, 15, 12, tzinfo=UTC)
    summer = datetime(2026, 7, 15, 12, tzinfo=UTC)
    assert describe("Europe/Berlin", winter) == "Europe/Berlin (UTC+01:00)"
    assert describe("Europe/Berlin", summer) == "Europe/Berlin (UTC+02:00)"  # daylight saving time
    assert describe("America/St_Johns", winter) == "America/St_Johns (UTC-03:30)"
    assert describe("UTC+05:45", summer) == "UTC+05:45"
    assert describe("UTC") == "UTC"
    assert describe(None) == "UTC"

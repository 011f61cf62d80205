"""Fixed facts about CS2 on FACEIT: the level bands and the map names.

Map names reach us in two forms: lifetime segments say ``"Mirage"``, per-match stats, round
stats and the veto say ``"de_mirage"``. Everything inside the bot uses the ``de_mirage`` form
(:func:`map_id`) and shows :func:`map_label`.
"""

from __future__ import annotations

import re

# (level, lowest Elo, highest Elo or None); FACEIT has no official level above 10.
LEVEL_BANDS: tuple[tuple[int, int, int | None], ...] = (
    (1, 100, 500),
    (2, 501, 750),
    (3, 751, 900),
    (4, 901, 1050),
    (5, 1051, 1200),
    (6, 1201, 1350),
    (7, 1351, 1530),
    (8, 1531, 1750),
    (9, 1751, 2000),
    (10, 2001, None),
)

# The CS2 Active Duty pool used when a match carries no veto pool (update when Valve rotates it).
ACTIVE_MAP_POOL: tuple[str, ...] = (
    "de_ancient",
    "de_anubis",
    "de_dust2",
    "de_inferno",
    "de_mirage",
    "de_nuke",
    "de_train",
)

_LABELS = {
    "de_ancient": "Ancient",
    "de_anubis": "Anubis",
    "de_dust2": "Dust2",
    "de_inferno": "Inferno",
    "de_mirage": "Mirage",
    "de_nuke": "Nuke",
    "de_train": "Train",
    "de_vertigo": "Vertigo",
    "de_overpass": "Overpass",
    "de_cache": "Cache",
    "cs_office": "Office",
    "cs_italy": "Italy",
}
_BY_LABEL = {re.sub(r"[^a-z0-9]", "", label.lower()): mid for mid, label in _LABELS.items()}
_BY_LABEL["dust"] = "de_dust2"
_BY_LABEL["dustii"] = "de_dust2"


def map_id(name: object) -> str | None:
    """``"Mirage"``, ``"de_mirage"``, ``"Dust II"`` → ``"de_mirage"``/``"de_dust2"``; junk → None."""
    if not isinstance(name, str):
        return None
    text = name.strip().lower()
    if not text:
        return None
    if re.fullmatch(r"(de|cs|ar|dz|gd)_[a-z0-9_]+", text):
        return text
    squashed = re.sub(r"[^a-z0-9]", "", text)
    if not squashed:
        return None
    return _BY_LABEL.get(squashed, f"de_{squashed}")


def map_label(mid: str | None) -> str:
    """A map's display name: ``"de_mirage"`` → ``"Mirage"`` (unknown maps get a tidy guess)."""
    if not mid:
        return "?"
    if mid in _LABELS:
        return _LABELS[mid]
    return mid.split("_", 1)[-1].replace("_", " ").title()


def level_for_elo(elo: float | None) -> int | None:
    """The FACEIT CS2 level of an Elo (None when unknown)."""
    if elo is None:
        return None
    for level, _low, high in LEVEL_BANDS:
        if high is None or elo <= high:
            return level
    return 10


def level_band(level: int) -> tuple[int, int | None]:
    """The (lowest, highest) Elo of a level; highest is None for level 10."""
    for lvl, low, high in LEVEL_BANDS:
        if lvl == level:
            return low, high
    raise ValueError(f"no FACEIT level {level}")


def level_progress(elo: float | None) -> dict[str, float | int | None] | None:
    """Where an Elo sits inside its level band: percent done and points to the next level."""
    level = level_for_elo(elo)
    if level is None or elo is None:
        return None
    low, high = level_band(level)
    if high is None:
        return {"level": level, "low": low, "high": None, "percent": 100.0, "to_next": None}
    span = high - low + 1
    percent = max(0.0, min(100.0, (elo - low) / span * 100))
    return {"level": level, "low": low, "high": high, "percent": round(percent, 1),
            "to_next": int(high + 1 - elo)}

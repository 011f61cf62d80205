"""What users paste: match room links and ids, player nicknames and profile links.

Accepted match references:

* room links in any language and subpage: ``https://www.faceit.com/en/cs2/room/1-<uuid>``,
  ``…/ru/cs2/room/1-<uuid>/scoreboard``, old ``…/csgo/room/…``, with or without scheme, ``www.``
  or language segment, with query strings and fragments;
* match ids ``1-<uuid>`` (the ``1-`` is part of the id and is kept) and chat room ids
  ``match-1-<uuid>``;
* bare UUIDs, from very old rooms: tried as ``1-<uuid>`` first, then bare
  (:attr:`MatchRef.candidates`).

Accepted player references: a profile link ``https://www.faceit.com/<lang>/players/<nick>``
(any subpage), a player id (UUID) or a nickname.

Nicknames: FACEIT's rename form allows 3–12 characters of Latin letters, digits, ``-`` and
``_``; older accounts keep names outside that range, so we accept 2–16 such characters and let
the API decide (it answers 404 for names that do not exist). Lookups are case-sensitive.

Anything else raises :class:`BadInputError` whose ``message`` can be shown as is and whose
``key`` (``bad_match_ref``, ``bad_player_ref`` …) the bot translates via :mod:`faceit.i18n`.
No input raises anything else (property-tested).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote

from faceit.errors import BadInputError
from faceit.i18n import ERROR_TEXTS, with_key

MAX_INPUT_LENGTH = 4096
NICKNAME_RE = re.compile(r"[A-Za-z0-9_-]{2,16}")
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
UUID_RE = re.compile(_UUID)
MATCH_ID_RE = re.compile(rf"(?:match-)?(1-)?({_UUID})")
_HOST = r"(?<![\w.-])(?:https?://)?(?:www\.)?faceit\.com"  # not "notfaceit.com"
_LANG = r"(?:/[A-Za-z]{2}(?:-[A-Za-z]{2,4})?)?"
ROOM_URL_RE = re.compile(rf"{_HOST}{_LANG}/(?:cs2|csgo)/room/([^/?#\s]+)", re.IGNORECASE)
PROFILE_URL_RE = re.compile(rf"{_HOST}{_LANG}/players(?:-modal)?/([^/?#\s]+)", re.IGNORECASE)
# The id at the start of a link's room part; what the message puts right after a link (".", ",",
# ")", "!", a zero-width space) is not part of it.
_LINK_ID_RE = re.compile(rf"(?:match-)?(?:1-)?{_UUID}(?![0-9A-Za-z-])")
# A ``1-<uuid>`` (or ``match-1-<uuid>``) id standing on its own among other words: not inside a
# word or another site's link (after "/", "=", "?", "#", "&", "_" or ".").
_LOOSE_MATCH_ID_RE = re.compile(rf"(?<![0-9A-Za-z/=?#&_.-])(?:match-)?1-{_UUID}(?![0-9A-Za-z-])", re.IGNORECASE)
# For finding several refs in one message: links first, then loose ids.
_FIND_RE = re.compile(
    rf"{_HOST}{_LANG}/(?:cs2|csgo)/room/(?P<room>[^/?#\s]+)"
    rf"|(?<![0-9A-Za-z-])(?P<id>(?:match-)?(?:1-)?{_UUID})(?![0-9A-Za-z-])",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class MatchRef:
    """A parsed match reference: ``match_id`` is the canonical id, ``candidates`` the ids to try."""

    match_id: str
    candidates: tuple[str, ...]
    source: str  # "url" | "id" | "uuid"


@dataclass(frozen=True, slots=True)
class PlayerRef:
    """A parsed player reference: a nickname (case kept) or a player id (UUID, lower-case)."""

    kind: str  # "nickname" | "player_id"
    value: str

    @property
    def is_id(self) -> bool:
        return self.kind == "player_id"


def _bad(key: str, **params: object) -> BadInputError:
    return with_key(BadInputError(ERROR_TEXTS[key]["en"].format(**params)), key, **params)


def _clean(text: object) -> str:
    if not isinstance(text, str):
        raise _bad("empty_input")
    if len(text) > MAX_INPUT_LENGTH:
        raise _bad("input_too_long")
    cleaned = text.strip().strip("<>\"'`«»()[]").strip()
    if not cleaned:
        raise _bad("empty_input")
    return cleaned


def _match_ref_from_id(token: str, source: str) -> MatchRef | None:
    found = MATCH_ID_RE.fullmatch(token.strip())
    if not found:
        return None
    uuid = found.group(2).lower()
    if found.group(1):
        return MatchRef(f"1-{uuid}", (f"1-{uuid}",), source)
    return MatchRef(f"1-{uuid}", (f"1-{uuid}", uuid), "uuid" if source == "id" else source)


def _id_in_link(room_part: str) -> str:
    """The match id a room link's path segment starts with (the segment itself if none)."""
    token = unquote(room_part)
    found = _LINK_ID_RE.match(token)
    return found.group(0) if found else token


def parse_match_ref(text: str) -> MatchRef:
    """A room link, ``1-<uuid>`` id or bare UUID → :class:`MatchRef`; else :class:`BadInputError`."""
    cleaned = _clean(text)
    room = ROOM_URL_RE.search(cleaned)
    if room:
        ref = _match_ref_from_id(_id_in_link(room.group(1)), "url")
        if ref:
            return ref
        raise _bad("unreadable_room_link")  # a FACEIT room link, cut or mistyped
    ref = _match_ref_from_id(cleaned, "id")
    if ref:
        return ref
    # An id among other words or punctuation ("1-…, please", "what about 1-… ?"): the one match
    # the text names (not an id in another site's link); several are a list for /bulk.
    # (A room link in the text has already been read, or refused, above.)
    named = list(dict.fromkeys(r for found in _LOOSE_MATCH_ID_RE.finditer(cleaned)
                               if (r := _match_ref_from_id(found.group(0), "id")) is not None))
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise _bad("several_match_refs", count=len(named))
    raise _bad("bad_match_ref")


def names_a_match(text: str) -> bool:
    """Whether a message (not a command) is, or contains, a room link or a ``1-<uuid>`` match id:
    the bot analyses such a message as if it came with /analyze. A bare UUID inside other words
    is not taken for a match (it may be anything), nor an id in another site's link (the same
    rule :func:`parse_match_ref` reads an id among words by)."""
    if not isinstance(text, str) or text.startswith("/") or len(text) > MAX_INPUT_LENGTH:
        return False
    return bool(ROOM_URL_RE.search(text) or MATCH_ID_RE.fullmatch(text.strip()) or _LOOSE_MATCH_ID_RE.search(text))


def parse_player_ref(text: str) -> PlayerRef:
    """A profile link, player id or nickname → :class:`PlayerRef`; else :class:`BadInputError`."""
    cleaned = _clean(text)
    profile = PROFILE_URL_RE.search(cleaned)
    if profile:
        cleaned = unquote(profile.group(1))
    elif "faceit.com" in cleaned.lower():
        raise _bad("bad_player_ref")
    # "@nick", and what a sentence puts after a name ("akra." "akra!"): no nickname has those.
    cleaned = cleaned.removeprefix("@").rstrip(".,;:!?")
    if UUID_RE.fullmatch(cleaned):
        return PlayerRef("player_id", cleaned.lower())
    if NICKNAME_RE.fullmatch(cleaned):
        return PlayerRef("nickname", cleaned)
    raise _bad("bad_player_ref")


def _refs_in(text: str) -> Iterator[tuple[re.Match[str], MatchRef | None]]:
    """Every link or id found in ``text``, with its parsed ref (None: a room link whose id is not one)."""
    for found in _FIND_RE.finditer(text):
        token = _id_in_link(found.group("room")) if found.group("room") else found.group("id")
        yield found, _match_ref_from_id(token, "url" if found.group("room") else "id")


def unreadable_room_links(text: str) -> list[str]:
    """The room links in ``text`` whose match id cannot be read (cut, mistyped): a bulk request
    goes on without them, and the user is told which they were."""
    if not isinstance(text, str) or len(text) > MAX_INPUT_LENGTH * 4:
        return []
    return [found.group(0).rstrip(".,;:!?)]}»\"'") for found, ref in _refs_in(text) if ref is None]


def find_match_refs(text: str, *, limit: int | None = None) -> list[MatchRef]:
    """Every match link or id in a message, in order, without repeats (for bulk analysis).

    Raises :class:`BadInputError` when there is none, or more than ``limit``.
    """
    if not isinstance(text, str) or not text.strip():
        raise _bad("empty_input")
    if len(text) > MAX_INPUT_LENGTH * 4:
        raise _bad("input_too_long")
    refs: list[MatchRef] = []
    seen: set[str] = set()
    for _, ref in _refs_in(text):
        if ref is None or ref.match_id in seen:
            continue
        seen.add(ref.match_id)
        refs.append(ref)
    if not refs:
        raise _bad("no_match_refs")
    if limit is not None and len(refs) > limit:
        raise _bad("too_many_matches", limit=limit)
    return refs

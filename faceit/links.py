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

# What is left of a /bulk list once its links and ids are taken out (:func:`unread_list_items`):
# a room link's subpage, query or fragment after its id, and the scheme before a link written
# right after a comma belong to the link; the rest is split into words at spaces, "," and ";".
_LINK_TAIL_RE = re.compile(r"[/?#]\S*")
_SCHEME_BEFORE_RE = re.compile(r"https?://$", re.IGNORECASE)
_LIST_WORD_RE = re.compile(r"[^\s,;]+")
# What a sentence or a list puts around a word ("(1-abc)", "«hello»,", "• 1-abc."): not part of
# it. Bullets too, but not "-": "1-" is the start of an id.
_WORD_EDGES = ".,;:!?()[]{}<>\"'`«»“”„…•·*→–—\u200b"
# The words that join the items of a list, in both languages; list numbers ("1", "#2").
_JOINING_WORDS = frozenset({"and", "or", "also", "plus", "и", "или", "а", "также", "плюс"})
_LIST_NUMBER_RE = re.compile(r"#?\d{1,3}")
# A try at a match id: "1-…", "match-1-…", or a UUID's first group and more.
_CUT_ID_RE = re.compile(r"(?:match-)?1-.*|[0-9a-f]{8}-[0-9a-f-]*", re.IGNORECASE)


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


def room_url(match_id: str) -> str:
    """A match room's page on FACEIT's site (English; the texts open it in the reader's language)."""
    return f"https://www.faceit.com/en/cs2/room/{match_id}"


def _bad(key: str, **params: object) -> BadInputError:
    return with_key(BadInputError(ERROR_TEXTS[key]["en"].format(**params)), key, **params)


#: Characters that show nothing but ride along in a copy: zero-width spaces and joiners, direction
#: marks and embeddings, the soft hyphen, the word joiner, a byte order mark. A nickname or a job
#: id copied from a web page or another chat may carry them, and ``strip`` keeps them.
_INVISIBLE_RE = re.compile("[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]")


def without_invisible(text: str) -> str:
    """``text`` without the characters that show nothing (:data:`_INVISIBLE_RE`), wherever they are."""
    return _INVISIBLE_RE.sub("", text)


def _clean(text: object, empty: str = "empty_input") -> str:
    """``text`` without invisible characters and the quotes or brackets around it; ``empty`` is
    the error key for nothing left (a player reference asks for a nickname, not a match link)."""
    if not isinstance(text, str):
        raise _bad(empty)
    if len(text) > MAX_INPUT_LENGTH:
        raise _bad("input_too_long")
    cleaned = without_invisible(text).strip().strip("<>\"'`«»()[]").strip()
    if not cleaned:
        raise _bad(empty)
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
    rooms = [_match_ref_from_id(_id_in_link(room.group(1)), "url") for room in ROOM_URL_RE.finditer(cleaned)]
    if rooms:
        if None in rooms:
            raise _bad("unreadable_room_link")  # a FACEIT room link, cut or mistyped
        linked = {ref.match_id for ref in rooms}  # a room linked twice is one match
        if len(linked) > 1:  # several rooms: a list for /bulk, not the first one alone
            raise _bad("several_match_refs", count=len(linked))
        return rooms[0]
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


def names_a_profile(text: str | None) -> bool:
    """Whether a message (not a command) holds a FACEIT player profile link: the bot reports on
    the player as if it came with /player (the same guards as :func:`names_a_match`)."""
    if not isinstance(text, str) or text.startswith("/") or len(text) > MAX_INPUT_LENGTH:
        return False
    return PROFILE_URL_RE.search(text) is not None


def parse_player_ref(text: str) -> PlayerRef:
    """A profile link, player id or nickname → :class:`PlayerRef`; else :class:`BadInputError`
    (``empty_player`` for nothing but quotes, brackets or invisible characters: "Send a match
    room link" answered ``/player ""``)."""
    cleaned = _clean(text, "empty_player")
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


@dataclass(frozen=True, slots=True)
class UnreadItem:
    """Something a /bulk list holds that is not analysed, and why (``kind``):

    * ``room_link``: a FACEIT room link whose match id cannot be read (cut, mistyped);
    * ``cut_id``: what looks like a match id (``1-…``, ``match-1-…``, a UUID's start) but is not
      a whole one: cut short when pasted, or mistyped;
    * ``not_a_match``: any other word, or a FACEIT link that is not a room's.
    """

    kind: str
    text: str


def unread_list_items(text: str) -> list[UnreadItem]:
    """Everything in a /bulk list that is not a readable match link or id, in order, once each:
    the list is analysed without them, and the user is told which they were, so nothing they
    sent is lost without a word.

    What only separates the items of an ordinary list is not named: punctuation, bullets
    (``•``, ``-``, ``→``), list numbers (``1.``, ``2)``, ``#3``) and joining words ("and", "или");
    nor are words of letters alone, the prose around a list ("please analyse these:"), which no
    one meant as a match. A room link's subpage, query or fragment (``/scoreboard``, ``?x=1``)
    is part of the link.
    """
    if not isinstance(text, str) or len(text) > MAX_INPUT_LENGTH * 4:
        return []
    found_at: list[tuple[int, UnreadItem]] = []
    kept = list(text)  # what no link or id covers (those are blanked out)
    for found, ref in _refs_in(text):
        end = found.end()
        if found.group("room") and ref is None:
            found_at.append((found.start(), UnreadItem("room_link", _trimmed(found.group(0)))))
        elif found.group("room"):
            # The link ends with its id ("…/1-<uuid>,hello": "hello" is a word of its own), and
            # its subpage, query or fragment, if any.
            in_room = _LINK_ID_RE.match(found.group("room"))
            end = found.start("room") + in_room.end() if in_room else end
            tail = _LINK_TAIL_RE.match(text, end)
            end = tail.end() if tail else end
        start = found.start()
        if found.group("room") and (scheme := _SCHEME_BEFORE_RE.search(text, max(0, start - 8), start)):
            start = scheme.start()  # "…,https://www.faceit.com/…": the search began after "https:"
        kept[start:end] = " " * (end - start)
    for word in _LIST_WORD_RE.finditer("".join(kept)):
        token = word.group(0).strip(_WORD_EDGES)
        if token and not _is_separator(token) and not _PROSE_RE.fullmatch(token):
            found_at.append((word.start(), UnreadItem(_kind_of_word(token), token)))
    return list(dict.fromkeys(item for _, item in sorted(found_at, key=lambda pair: pair[0])))


def _trimmed(link: str) -> str:
    """A link as a message put it, without what came after it: the punctuation of the sentence,
    or the next item of a list written without a space ("…/1-0b9,https://…")."""
    return re.split(r"[,;]", link, maxsplit=1)[0].rstrip(".,;:!?)]}»\"'")


#: Words of the prose around a list: letters, maybe joined by an apostrophe or a hyphen
#: ("here's", "e-sports"), and ordinals ("2nd").
_PROSE_RE = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*|\d+(?:st|nd|rd|th)", re.IGNORECASE)


def _is_separator(token: str) -> bool:
    """Whether a word only separates a list's items: a bullet or dash, a list number, "and"."""
    return (not any(ch.isalnum() for ch in token) or token.casefold() in _JOINING_WORDS
            or _LIST_NUMBER_RE.fullmatch(token) is not None)


def _kind_of_word(token: str) -> str:
    """Why a word left in a /bulk list is not analysed (see :class:`UnreadItem`)."""
    if _CUT_ID_RE.fullmatch(token):
        return "cut_id"
    if ROOM_URL_RE.search(token) or re.search(r"faceit\.com\S*/room(?:/|$)", token, re.IGNORECASE):
        return "room_link"  # a room link without its id
    return "not_a_match"


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

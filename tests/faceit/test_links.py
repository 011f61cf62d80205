"""Links, ids and nicknames: examples, and properties over arbitrary input (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faceit.errors import BadInputError
from faceit.i18n import user_message
from faceit.links import (
    MatchRef,
    PlayerRef,
    UnreadItem,
    find_match_refs,
    names_a_match,
    parse_match_ref,
    parse_player_ref,
    unread_list_items,
)

UUID = "0b9bd934-23c8-4d30-9dde-7969688613db"
MID = f"1-{UUID}"


@pytest.mark.parametrize("text", [
    f"https://www.faceit.com/en/cs2/room/{MID}",
    f"https://www.faceit.com/ru/cs2/room/{MID}/scoreboard",
    f"https://www.faceit.com/pt-br/cs2/room/{MID}/overview?foo=1#x",
    f"https://faceit.com/de/csgo/room/{MID}",
    f"www.faceit.com/en/cs2/room/{MID}",
    f"faceit.com/cs2/room/{MID}",
    f"  <https://www.faceit.com/en/cs2/room/{MID.upper().replace('1-', '1-')}>  ",
    f"look: https://www.faceit.com/en/cs2/room/{MID} gl hf",
    # What a message puts right after a pasted link is not part of the id.
    f"https://www.faceit.com/en/cs2/room/{MID}.",
    f"https://www.faceit.com/en/cs2/room/{MID}, thanks!",
    f"(https://www.faceit.com/en/cs2/room/{MID})",
    f"https://www.faceit.com/en/cs2/room/{MID}\u200b",
    f"https://www.faceit.com/en/cs2/room/{MID}!?",
    MID,
    f"match-{MID}",
])
def test_match_links_keep_the_1_prefix(text: str) -> None:
    ref = parse_match_ref(text)
    assert ref.match_id == MID
    assert ref.candidates == (MID,)


def test_bare_uuid_tries_the_prefixed_id_first() -> None:
    ref = parse_match_ref(UUID.upper())
    assert ref == MatchRef(MID, (MID, UUID), "uuid")
    assert parse_match_ref(f"https://www.faceit.com/en/csgo/room/{UUID}").candidates == (MID, UUID)


@pytest.mark.parametrize("text", [
    "", "   ", "hello", "1-1234", "https://www.faceit.com/en/cs2/room/", "https://www.faceit.com/en/players/s1mple",
    f"https://example.com/en/cs2/room/{MID}x", f"2-{UUID}", f"{MID}-extra", "x" * 10_000,
    f"https://notfaceit.com/en/cs2/room/{MID}",
    f"https://www.faceit.com/en/cs2/room/{MID}x", f"https://www.faceit.com/en/cs2/room/{MID}-2",
    f"https://www.faceit.com/en/cs2/room/{MID[:-1]}.",
])
def test_bad_match_refs_raise_bad_input_with_a_key(text: str) -> None:
    with pytest.raises(BadInputError) as caught:
        parse_match_ref(text)
    assert caught.value.code == "bad_input"
    assert caught.value.key in {"bad_match_ref", "unreadable_room_link", "empty_input", "input_too_long"}
    if "www.faceit.com/en/cs2/room/" in text and text.split("room/", 1)[1]:
        assert caught.value.key == "unreadable_room_link"  # a room link whose id cannot be read: say so
    assert user_message(caught.value, "ru") != user_message(caught.value, "en")


@pytest.mark.parametrize(("text", "kind", "value"), [
    ("s1mple", "nickname", "s1mple"),
    ("  Ka-ro_99 ", "nickname", "Ka-ro_99"),
    ("@donk666", "nickname", "donk666"),
    ("https://www.faceit.com/en/players/s1mple", "nickname", "s1mple"),
    ("https://www.faceit.com/ru/players/ZywOo/stats/cs2", "nickname", "ZywOo"),
    ("faceit.com/players/ab", "nickname", "ab"),
    (UUID.upper(), "player_id", UUID),
])
def test_player_refs(text: str, kind: str, value: str) -> None:
    ref = parse_player_ref(text)
    assert (ref.kind, ref.value) == (kind, value)


@pytest.mark.parametrize("text", ["a", "x" * 17, "bad nick", "ник", "<b>", f"https://www.faceit.com/en/cs2/room/{MID}",
                                  "https://www.faceit.com/en/players/", "semi;colon"])
def test_bad_player_refs(text: str) -> None:
    with pytest.raises(BadInputError) as caught:
        parse_player_ref(text)
    assert caught.value.key in {"bad_player_ref", "empty_input"}


@pytest.mark.parametrize("text", [f"{MID},", f"{MID} please", f"what about {MID} ?", f"«{MID}».",
                                  f"match-{MID}!", f"is https://www.faceit.com/en/cs2/room/{MID} good?"])
def test_a_match_id_among_words_and_punctuation_is_the_match(text: str) -> None:
    assert parse_match_ref(text).match_id == MID
    assert names_a_match(text)


def test_several_matches_in_one_analyze_point_at_bulk() -> None:
    other = "1-22222222-2222-4222-8222-222222222222"
    with pytest.raises(BadInputError) as caught:
        parse_match_ref(f"{MID} and {other}")
    assert caught.value.key == "several_match_refs" and "/bulk" in user_message(caught.value, "ru")
    assert parse_match_ref(f"{MID} or {MID} again").match_id == MID  # the same one twice is one


def test_several_room_links_point_at_bulk_not_at_the_first_alone() -> None:
    room = "https://www.faceit.com/en/cs2/room/"
    other = "1-22222222-2222-4222-8222-222222222222"
    with pytest.raises(BadInputError) as caught:
        parse_match_ref(f"{room}{MID}\n{room}{other}")
    assert caught.value.key == "several_match_refs" and caught.value.params == {"count": "2"}
    # The same room twice (once by its bare UUID) is one match; a cut second link is refused.
    assert parse_match_ref(f"{room}{MID} {room}{MID.removeprefix('1-')}").match_id == MID
    with pytest.raises(BadInputError) as cut:
        parse_match_ref(f"{room}{MID} {room}1-2222")
    assert cut.value.key == "unreadable_room_link"


def test_what_is_not_taken_for_a_pasted_match() -> None:
    assert not names_a_match(f"my id is {UUID} by the way")  # a bare UUID among words may be anything
    assert not names_a_match(f"/analyze {MID}")  # a command: its own handler
    assert not names_a_match(f"{MID}-extra and more")
    assert names_a_match(UUID)  # a bare UUID on its own is a very old room
    for elsewhere in (f"https://notfaceit.com/en/cs2/room/{MID}", f"https://other.site/x?id={MID}",
                      f"https://other.site/#{MID}", f"foo_{MID}", f"see {UUID} now"):
        assert not names_a_match(elsewhere), elsewhere  # another site's link, or a bare UUID among words
        with pytest.raises(BadInputError):
            parse_match_ref(elsewhere)
    # One id and a bare UUID: the UUID is not a match, so the message names one (both agree)
    assert names_a_match(f"{MID} for player {UUID}") and parse_match_ref(f"{MID} for player {UUID}").match_id == MID


@pytest.mark.parametrize("text", ["akra.", "akra!", "akra?", "@akra,"])
def test_a_nickname_ending_a_sentence_is_the_nickname(text: str) -> None:
    assert parse_player_ref(text) == PlayerRef("nickname", "akra")


def test_find_match_refs_in_a_message() -> None:
    other = "1-aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
    text = (f"first https://www.faceit.com/en/cs2/room/{MID}/scoreboard\n"
            f"again {MID}, then {other} and old {UUID.replace('0b9b', '1111')}\nnoise 1-123")
    refs = find_match_refs(text)
    assert [r.match_id for r in refs] == [MID, other, "1-" + UUID.replace("0b9b", "1111")]
    assert refs[2].candidates[1] == UUID.replace("0b9b", "1111")
    room = "https://www.faceit.com/en/cs2/room/"
    for pasted in (f"{room}{MID}, {room}{other}.", f"{room}{MID}\n{room}{other}.", f"{room}{MID} ({room}{other})",
                   f"{room}{MID},{room}{other}"):
        assert [r.match_id for r in find_match_refs(pasted)] == [MID, other], pasted
    with pytest.raises(BadInputError) as caught:
        find_match_refs("nothing here")
    assert caught.value.key == "no_match_refs"
    with pytest.raises(BadInputError) as caught:
        find_match_refs(text, limit=2)
    assert caught.value.key == "too_many_matches" and "2" in caught.value.message


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_no_text_raises_anything_but_bad_input(text: str) -> None:
    for parse in (parse_match_ref, parse_player_ref, find_match_refs):
        try:
            result = parse(text)
        except BadInputError as exc:
            assert exc.message and getattr(exc, "key", None)
            continue
        assert result  # a parsed reference is never empty


_id = st.uuids(version=4).map(str)
_fragments = st.sampled_from(["https://", "www.", "faceit.com", "/", "en/", "cs2/", "csgo/", "room/", "players/",
                              "1-", "match-", UUID, UUID[:8], "%2F", "%", "?", "#", " ", "\n", "@", "-", "_", "é"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_fragments, max_size=12).map("".join))
def test_link_shaped_junk_raises_only_bad_input(text: str) -> None:
    for parse in (parse_match_ref, parse_player_ref, find_match_refs):
        try:
            parse(text)
        except BadInputError:
            pass


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=300), st.lists(_fragments, max_size=12).map("".join)))
def test_what_a_bulk_list_leaves_unread_is_named_as_it_was_sent(text: str) -> None:
    """Any text: nothing raises, and every item named is a non-empty piece of what was sent,
    named once, and not something that was analysed."""
    items = unread_list_items(text)
    assert len(set(items)) == len(items)
    for item in items:
        assert item.text and item.text in text and item.kind in ("room_link", "cut_id", "not_a_match")
        assert item.text not in {ref.match_id for ref in _refs_or_none(text)}
        assert not _refs_or_none(item.text)  # in no form (a bare id, match-1-…, upper case) a match read


def _refs_or_none(text: str) -> list[MatchRef]:
    try:
        return find_match_refs(text)
    except BadInputError:
        return []

@settings(max_examples=200, deadline=None)
@given(_id, st.sampled_from(["en", "ru", "de", "pt-br", ""]), st.sampled_from(["cs2", "csgo"]),
       st.sampled_from(["", "/scoreboard", "/overview?x=1", "#chat"]), st.booleans(), st.booleans())
def test_every_room_link_form_parses(uid: str, lang: str, game: str, tail: str, prefixed: bool, upper: bool) -> None:
    match_id = f"1-{uid}" if prefixed else uid
    shown = match_id.upper() if upper else match_id
    url = f"https://www.faceit.com{'/' + lang if lang else ''}/{game}/room/{shown}{tail}"
    ref = parse_match_ref(url)
    assert ref.match_id == f"1-{uid}"
    assert ref.candidates[0] == f"1-{uid}"
    assert find_match_refs(f"see {url} now")[0].match_id == f"1-{uid}"


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"[A-Za-z0-9_-]{2,16}", fullmatch=True))
def test_every_valid_nickname_is_kept_verbatim(nick: str) -> None:
    ref = parse_player_ref(nick)
    if ref.kind == "nickname":
        assert ref.value == nick
    else:  # only a 36-character UUID could be read as an id, and that is longer than 16
        pytest.fail("a nickname was read as an id")


def test_room_links_whose_id_cannot_be_read_are_named():
    room = "https://www.faceit.com/en/cs2/room/"
    text = f"{room}{MID}, {room}1-0b9bd934-23c8, {room}{MID}x."
    assert unread_list_items(text) == [UnreadItem("room_link", f"{room}1-0b9bd934-23c8"),
                                       UnreadItem("room_link", f"{room}{MID}x")]
    assert unread_list_items(f"{room}{MID} {MID}") == []


def test_every_item_of_a_bulk_list_that_is_not_analysed_is_named_with_why():
    """What the tester sent: two ids cut short between good ones, and a stray word. Each id comes
    back, in order, once, with why; what only separates a list's items, and words of letters
    alone (the prose around a list), do not."""
    cut1, cut2 = "1-63a28b1d-8b8e-4c86-bb04-0680bfbca26", "1-a67eea7c-f43b-4412-b160"
    text = f"1-28caa46d-beec-4c0c-b5a8-e1b82ae6fb88 {cut1} {cut2} hello {cut1}"
    assert find_match_refs(text) == [parse_match_ref("1-28caa46d-beec-4c0c-b5a8-e1b82ae6fb88")]
    assert unread_list_items(text) == [UnreadItem("cut_id", cut1), UnreadItem("cut_id", cut2)]
    room = "https://www.faceit.com/en/cs2/room/"
    ordinary = (f"1. {room}{MID}/scoreboard,\n2) {room}{MID}?x=1 and\n• {MID} и {UUID};\n"
                f"— {room}{MID}#chat, {room}{MID},{room}{MID}\n#6 (match-{MID}) → {MID}.")
    assert unread_list_items(ordinary) == []
    odd = (f"see {room}{MID},please (1-abc) faceit.com/en/players/s1mple {room} «0b9bd934-23c8», "
           f"x{MID}")
    assert unread_list_items("please analyse these: привет, here's yesterday's e-sports 2nd") == []
    assert unread_list_items(odd) == [
        UnreadItem("cut_id", "1-abc"),
        UnreadItem("not_a_match", "faceit.com/en/players/s1mple"), UnreadItem("room_link", room),
        UnreadItem("cut_id", "0b9bd934-23c8"), UnreadItem("not_a_match", f"x{MID}"),
    ]


@pytest.mark.parametrize("text", ["s1mple\u200b", "\u202es1mple", "\ufeffs1\u200dmple", "\u2066s1mple\u2069",
                                  "s1mple\u00ad"])
def test_characters_that_show_nothing_are_not_part_of_a_nickname(text: str) -> None:
    """A nickname copied from a web page or another chat may carry a zero-width space, a
    direction mark or a soft hyphen the user cannot see: they were told "not a nickname"."""
    assert parse_player_ref(text) == PlayerRef("nickname", "s1mple")


def test_characters_that_show_nothing_are_not_part_of_a_match_id() -> None:
    assert parse_match_ref("\u200b1-0adf2eb6-1c2d-4e5f-8a9b-0c1d2e3f4a5b\u200e").match_id == \
        "1-0adf2eb6-1c2d-4e5f-8a9b-0c1d2e3f4a5b"

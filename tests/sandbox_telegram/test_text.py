"""Telegram-flavoured HTML parsing: plain text, UTF-16 entity offsets, and Telegram's errors."""

from __future__ import annotations

import pytest

from sandbox.telegram_media import sniff_image
from sandbox.telegram_text import EntityParseError, parse_html, user_text_entities, utf16_len
from tests.support.png import make_png


def test_nested_tags_and_named_and_numeric_entities() -> None:
    parsed = parse_html(
        '<b>K/D <i>1.25</i></b> &lt;3 &#33;&#x21; <a href="https://faceit.com/x?a=1&amp;b=2">room</a>'
    )
    assert parsed.text == "K/D 1.25 <3 !! room"
    assert parsed.entities == [
        {"type": "bold", "offset": 0, "length": 8},
        {"type": "italic", "offset": 4, "length": 4},
        {"type": "text_link", "offset": 15, "length": 4, "url": "https://faceit.com/x?a=1&b=2"},
    ]


def test_offsets_count_utf16_units_like_telegram() -> None:
    parsed = parse_html("🔥 <b>ace</b>")
    assert utf16_len("🔥") == 2
    assert parsed.entities == [{"type": "bold", "offset": 3, "length": 3}]


def test_pre_with_language_spoiler_and_lone_ampersand() -> None:
    parsed = parse_html(
        '<pre><code class="language-python">x = 1</code></pre> Tom & Jerry '
        '<span class="tg-spoiler">s</span><tg-spoiler>t</tg-spoiler>'
    )
    assert parsed.text == "x = 1 Tom & Jerry st"
    assert parsed.entities == [
        {"type": "pre", "offset": 0, "length": 5, "language": "python"},
        {"type": "spoiler", "offset": 18, "length": 1},
        {"type": "spoiler", "offset": 19, "length": 1},
    ]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("<b>open", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("é <script>", 'Unsupported start tag "script" at byte offset 3'),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ('<span class="x">y</span>', 'Tag "span" must have class "tg-spoiler"'),
        ("<b", 'Unclosed start tag "b"'),
    ],
)
def test_invalid_markup_fails_with_telegrams_messages(source: str, message: str) -> None:
    with pytest.raises(EntityParseError) as error:
        parse_html(source)
    assert str(error.value).startswith(message)


def test_user_commands_get_a_bot_command_entity() -> None:
    assert user_text_entities("/analyze https://faceit.com/room/1") == [
        {"type": "bot_command", "offset": 0, "length": 8}
    ]
    assert user_text_entities("/start@faceit_sandbox_bot") == [
        {"type": "bot_command", "offset": 0, "length": 25}
    ]
    assert user_text_entities("hello /start") == []


def test_image_sniffing() -> None:
    assert sniff_image(make_png(30, 20)) == ("image/png", 30, 20)
    assert sniff_image(b"GIF89a\x05\x00\x03\x00rest") == ("image/gif", 5, 3)
    jpeg = b"\xff\xd8\xff\xe0\x00\x04ab\xff\xc0\x00\x11\x08\x00\x20\x00\x40" + b"\x00" * 12
    assert sniff_image(jpeg) == ("image/jpeg", 64, 32)
    assert sniff_image(b"") is None
    assert sniff_image(b"%PDF-1.7") is None

"""Message text as Telegram sees it: ``parse_mode=HTML`` parsing into plain text plus entities.

Telegram does not store HTML: it parses it into plain text and a list of *entities* (bold from
UTF-16 offset 3, length 5, ...), rejects markup it does not know with 400 "can't parse
entities", and applies its length limits to the plain text. The sandbox does the same, so a
bot that sends broken HTML or over-long text fails here exactly as it would in production, and
the web chat can render messages from entities without ever interpreting HTML.

Only the subset of Telegram's HTML rules that bots realistically hit is implemented: the
supported tags, attribute parsing, the four named entities plus numeric ones, and the error
messages for unsupported, unmatched and unclosed tags. ``MarkdownV2``/``Markdown`` texts are
accepted verbatim (not parsed).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024

# Telegram's HTML tags and the entity type each one produces.
_TAG_ENTITY = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_TAG_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9-]*")
_ATTRIBUTE = re.compile(r"\s*([a-zA-Z][a-zA-Z0-9_-]*)\s*(?:=\s*(\"[^\"]*\"|'[^']*'|[^\s>\"']+))?")
_BOT_COMMAND = re.compile(r"^/[a-zA-Z0-9_]{1,32}(?:@[a-zA-Z0-9_]{3,32})?")


class EntityParseError(ValueError):
    """The text's markup is invalid; ``str(error)`` is Telegram's description after the prefix."""


@dataclass
class FormattedText:
    """Plain text plus Telegram entities (offsets and lengths in UTF-16 code units)."""

    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def format_text(
    text: str, parse_mode: str | None, entities: list[dict[str, Any]] | None = None
) -> FormattedText:
    """Turn what the bot sent into Telegram's stored form.

    ``parse_mode`` HTML is parsed (raising :class:`EntityParseError`); any other mode keeps the
    text as is. Explicit ``entities`` (used by Telegram when no parse mode is given) are kept.
    """
    if parse_mode and parse_mode.lower() == "html":
        return parse_html(text)
    return FormattedText(text=text, entities=list(entities or []))


def parse_html(source: str) -> FormattedText:
    """Parse Telegram-flavoured HTML into plain text and entities, as the Bot API does."""
    out: list[str] = []
    out_len = 0  # UTF-16 length of the text produced so far
    entities: list[dict[str, Any]] = []
    # Open tags: (name, entity type, attributes, UTF-16 offset where the content starts).
    stack: list[tuple[str, str, dict[str, str], int]] = []
    i = 0
    n = len(source)

    def byte_offset(pos: int) -> int:  # errors give UTF-8 byte offsets, like Telegram
        return len(source[:pos].encode("utf-8"))

    while i < n:
        ch = source[i]
        if ch == "&":
            decoded, consumed = _decode_entity(source, i)
            out.append(decoded)
            out_len += utf16_len(decoded)
            i += consumed
            continue
        if ch != "<":
            j = i
            while j < n and source[j] not in "<&":
                j += 1
            chunk = source[i:j]
            out.append(chunk)
            out_len += utf16_len(chunk)
            i = j
            continue
        # A tag.
        end = source.find(">", i)
        if source.startswith("</", i):
            if end < 0:
                raise EntityParseError(f"Unclosed end tag at byte offset {byte_offset(i)}")
            name = source[i + 2 : end].strip().lower()
            if not stack:
                raise EntityParseError(f"Unexpected end tag at byte offset {byte_offset(i)}")
            open_name, entity_type, attrs, start = stack[-1]
            if name and name != open_name:
                raise EntityParseError(
                    f'Unmatched end tag at byte offset {byte_offset(i)}, expected "</{open_name}>", '
                    f'found "</{name}>"'
                )
            stack.pop()
            _close_entity(entities, stack, open_name, entity_type, attrs, start, out_len)
            i = end + 1
            continue
        match = _TAG_NAME.match(source, i + 1)
        name = match.group(0).lower() if match else ""
        if name not in _TAG_ENTITY:
            raise EntityParseError(f'Unsupported start tag "{name}" at byte offset {byte_offset(i)}')
        if end < 0:
            raise EntityParseError(f'Unclosed start tag "{name}" at byte offset {byte_offset(i)}')
        attrs = _parse_attributes(source[match.end() : end] if match else "")
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise EntityParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {byte_offset(i)}')
        stack.append((name, _TAG_ENTITY[name], attrs, out_len))
        i = end + 1
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return FormattedText(text="".join(out), entities=entities)


def _decode_entity(source: str, i: int) -> tuple[str, int]:
    """Decode ``&name;``/``&#N;``/``&#xH;`` at ``i``; a lone ``&`` stays literal, as in Telegram."""
    semi = source.find(";", i + 1, i + 12)
    if semi < 0:
        return "&", 1
    body = source[i + 1 : semi]
    if body in _NAMED_ENTITIES:
        return _NAMED_ENTITIES[body], semi - i + 1
    if body.startswith("#"):
        try:
            code = int(body[2:], 16) if body[1:2] in ("x", "X") else int(body[1:])
            return chr(code), semi - i + 1
        except (ValueError, OverflowError):
            return "&", 1
    return "&", 1


def _parse_attributes(text: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    pos = 0
    text = text.rstrip("/ \t\n")
    while pos < len(text):
        match = _ATTRIBUTE.match(text, pos)
        if not match or match.end() == pos:
            break
        value = match.group(2) or ""
        if value[:1] in ("'", '"'):
            value = value[1:-1]
        attrs[match.group(1).lower()] = html.unescape(value)
        pos = match.end()
    return attrs


def _close_entity(
    entities: list[dict[str, Any]],
    stack: list[tuple[str, str, dict[str, str], int]],
    name: str,
    entity_type: str,
    attrs: dict[str, str],
    start: int,
    end: int,
) -> None:
    length = end - start
    if length <= 0:
        return
    entity: dict[str, Any] = {"type": entity_type, "offset": start, "length": length}
    if name == "a":
        href = attrs.get("href", "")
        if not href:
            return  # Telegram drops links without a target but keeps their text
        entity["url"] = href
    elif name == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    elif name == "tg-emoji":
        entity["custom_emoji_id"] = attrs.get("emoji-id", "")
    elif name == "code" and stack and stack[-1][0] == "pre":
        # <pre><code class="language-x"> is one pre entity with a language.
        language = attrs.get("class", "")
        if language.startswith("language-"):
            pre_name, pre_type, pre_attrs, pre_start = stack[-1]
            stack[-1] = (pre_name, pre_type, {**pre_attrs, "language": language[9:]}, pre_start)
        return
    elif name == "pre" and attrs.get("language"):
        entity["language"] = attrs["language"]
    entities.append(entity)


def user_text_entities(text: str) -> list[dict[str, Any]]:
    """Entities Telegram adds to a user's text: a leading ``/command`` becomes ``bot_command``."""
    match = _BOT_COMMAND.match(text)
    if not match:
        return []
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(match.group(0))}]

"""Telegram-HTML helpers: escaping, per-language numbers, and splitting long messages.

Telegram accepts at most 4096 characters per message and rejects unbalanced tags, so
:func:`split_html` cuts at line ends (inside a line only when one line alone is too long, and
never inside a tag or an entity), closes the tags open at each cut and reopens them in the
next part.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

TELEGRAM_LIMIT = 4096

_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)[^>]*>")
_ATOM_RE = re.compile(r"<[^>]*>|&#?[a-zA-Z0-9]+;|[^<&]+|[<&]")


def e(value: object) -> str:
    """Escape anything for Telegram HTML text (and attribute values)."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt_num(value: float | None, lang: str, digits: int = 2, dash: str = "—") -> str:
    """``12345.5`` → ``12,345.50`` (en) / ``12 345,50`` (ru); None → ``—``.

    Thousands are grouped from five digits on (Elo 1365 stays compact, as Russian typography
    also wants for four-digit numbers).
    """
    if value is None:
        return dash
    text = f"{value:,.{digits}f}" if abs(value) >= 10_000 else f"{value:.{digits}f}"
    if lang == "ru":
        text = text.replace(",", "\u00a0").replace(".", ",")
    return text


def fmt_int(value: float | None, lang: str, dash: str = "—") -> str:
    return fmt_num(value, lang, 0, dash)


def fmt_signed(value: float | None, lang: str, digits: int = 0, dash: str = "—") -> str:
    """``+21`` / ``−29`` (a real minus sign); ``0`` for a value that rounds to nothing at
    ``digits``: ``+0`` or ``−0.00`` would claim a move the figure shown does not make."""
    if value is None:
        return dash
    shown = round(value, digits)
    if shown == 0:
        return "0"
    body = fmt_num(abs(value), lang, digits)
    return f"+{body}" if shown > 0 else f"−{body}"


def fmt_score(scores: Sequence[float | None], lang: str) -> str:
    """A match or map score, the same everywhere: ``[13, 9]`` → ``13:9`` (a side's unknown or
    missing score: ``?``). The caller puts first the side the message is about (the followed
    player's team, the winner)."""
    first, second = [*scores, None, None][:2]
    return f"{fmt_int(first, lang, '?')}:{fmt_int(second, lang, '?')}"


def whole_percent(fraction: float) -> int:
    """A 0..1 figure as the whole percent the texts show (what :func:`fmt_pct` prints for it)."""
    return round(fraction * 100)


def shown_chances(p1: float) -> tuple[int, int]:
    """Both sides' win chances as whole percents, as every text shows them: side 1's rounded and
    side 2's the rest of 100, so the two add up (0.425 reads 42% / 58%, not 42% / 57%). A chance
    that is neither 0 nor 1 shows as 1–99%: "win 0%" would say the match is decided."""
    first = whole_percent(p1)
    if 0 < p1 < 1:
        first = min(99, max(1, first))
    return first, 100 - first


def shown_favourite(p1: float) -> str | None:
    """The side the shown chances favour (``faction1``/``faction2``); None when they read 50% / 50%."""
    first, second = shown_chances(p1)
    return "faction1" if first > second else "faction2" if second > first else None


def fmt_pct(value: float | None, lang: str, digits: int = 0, *, fraction: bool = False) -> str:
    """A percentage; ``fraction=True`` when the value is 0..1 rather than 0..100."""
    if value is None:
        return "—"
    return fmt_num(value * 100 if fraction else value, lang, digits) + "%"


def _apply(stack: list[tuple[str, str]], chunk: str) -> list[tuple[str, str]]:
    stack = list(stack)
    for found in _TAG_RE.finditer(chunk):
        closing, name = found.group(1), found.group(2).lower()
        if closing:
            for i in range(len(stack) - 1, -1, -1):
                if stack[i][0] == name:
                    del stack[i]
                    break
        else:
            stack.append((name, found.group(0)))
    return stack


def _closing(stack: list[tuple[str, str]]) -> str:
    return "".join(f"</{name}>" for name, _ in reversed(stack))


def split_html(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Cut Telegram HTML into parts of at most ``limit`` characters with balanced tags."""
    if len(text) <= limit:
        return [text] if _visible(text) else []
    parts: list[str] = []
    stack: list[tuple[str, str]] = []
    current = ""
    prefix_len = 0

    def flush() -> None:
        nonlocal current, prefix_len
        if len(current) > prefix_len:
            parts.append((current + _closing(stack)).strip("\n"))
        current = "".join(opening for _, opening in stack)
        prefix_len = len(current)

    for line in text.splitlines(keepends=True):
        after = _apply(stack, line)
        if len(current) + len(line) + len(_closing(after)) <= limit:
            current += line
            stack = after
            continue
        flush()
        if len(current) + len(line) + len(_closing(after)) <= limit:
            current += line
            stack = after
            continue
        for atom in _ATOM_RE.findall(line):
            for piece in _pieces(atom, limit // 2):
                after = _apply(stack, piece)
                if len(current) + len(piece) + len(_closing(after)) > limit:
                    flush()
                current += piece
                stack = after
    flush()
    return [part for part in parts if _visible(part)]


def _visible(part: str) -> bool:
    """Whether a part shows anything (Telegram rejects messages that are only tags/blanks)."""
    return bool(html.unescape(_TAG_RE.sub("", part)).strip())


def _pieces(atom: str, size: int) -> list[str]:
    """Plain text may be cut anywhere; tags and entities stay whole."""
    if atom.startswith(("<", "&")) or len(atom) <= size:
        return [atom]
    return [atom[i:i + size] for i in range(0, len(atom), size)]

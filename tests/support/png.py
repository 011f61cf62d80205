"""Test images built by hand: no image library or file on disk needed."""

from __future__ import annotations

import struct
import zlib


def make_png(width: int = 8, height: int = 6) -> bytes:
    """A valid RGB PNG built by hand, so no image library or file on disk is needed."""
    rows = b"".join(b"\x00" + b"\x20\x80\xe0" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )

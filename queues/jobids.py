"""How a job id is read where a person types it: the bot's ``/status``, ``/cancel`` and
``/requeue``, the Cancel button, and ``admin.py job``.

One reading for all of them, so the bot and the admin tool accept the same things: a whole id,
or its start of 8 characters or more (the dashboard lists jobs by their first 8), in any case,
with the quotes, angle brackets or ``…`` a copy from a message or a table may carry.
"""

from __future__ import annotations

import re

from faceit.links import without_invisible

JOB_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ID_SHAPE = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
MIN_ID_PREFIX = 8  # the dashboard lists jobs by their first 8 characters


def _cleaned(text: str) -> str:
    return without_invisible(text).strip().strip("<>`'\"").lower()


def whole_job_id(text: str | None) -> str | None:
    """A whole job id, lower case (the Cancel button's data); None: not one."""
    cleaned = _cleaned(text or "")
    return cleaned if JOB_ID_RE.fullmatch(cleaned) else None


def job_ref(text: str) -> str | None:
    """A typed job id, whole or its start (8 characters at least; a copied ``…`` is dropped),
    lower case; None: not a job id at all."""
    cleaned = _cleaned(text).rstrip("…").rstrip(".")
    if not MIN_ID_PREFIX <= len(cleaned) <= len(ID_SHAPE):
        return None
    fits = all(char == "-" if shape == "-" else char in "0123456789abcdef"
               for char, shape in zip(cleaned, ID_SHAPE[:len(cleaned)], strict=True))
    return cleaned if fits else None

"""Jinja filters and globals: times, durations, rates and JSON, always escaped.

Times are rendered in UTC on the server inside ``<time data-ts>``; the page's script rewrites
them to the reader's local time and keeps "12 s ago" texts current between refreshes.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment
from markupsafe import Markup, escape

from dashboard.charts import line_chart

STATUS_CLASS = {
    "queued": "info", "started": "run", "retrying": "warn", "succeeded": "ok", "failed": "bad",
    "canceled": "muted", "fired": "bad", "resolved": "ok", "info": "info", "warning": "warn",
    "error": "bad", "critical": "bad", "worker_lost": "warn",
}


def utc_text(ts: float | None, seconds: bool = True) -> str:
    if not ts:
        return "—"
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M") + " UTC"


def timestamp(ts: float | None) -> Markup:
    """A ``<time>`` element the script localises; UTC text without script."""
    if not ts:
        return Markup("—")
    iso = datetime.fromtimestamp(float(ts), UTC).isoformat()
    return Markup('<time datetime="{}" data-ts="{}">{}</time>').format(iso, f"{float(ts):.3f}", utc_text(ts))


def ago(ts: float | None, now: float | None = None) -> Markup:
    """"12 s ago", kept current by the script (``data-ago``)."""
    if not ts:
        return Markup("—")
    return Markup('<span class="ago" data-ago="{}" title="{}">{}</span>').format(
        f"{float(ts):.3f}", utc_text(ts), duration(max(0.0, (now or time.time()) - float(ts))) + " ago")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = float(seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"
    return f"{int(seconds // 86400)} d {int(seconds % 86400 // 3600)} h"


def percent(share: float | None) -> str:
    if share is None:
        return "—"
    return f"{share * 100:.1f}%" if share < 0.1 else f"{share * 100:.0f}%"


def number(value: Any, na: str = "n/a (RabbitMQ)") -> str:
    """A count, or the reason there is none (RabbitMQ cannot count some states)."""
    if value is None:
        return na
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:,}".replace(",", " ")


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def status_class(status: str | None) -> str:
    return STATUS_CLASS.get(status or "", "muted")


def short_id(job_id: str) -> str:
    return job_id[:8] if len(job_id) > 12 else job_id


def query(base: dict[str, Any], **changes: Any) -> str:
    """``?a=1&b=2`` from ``base`` with ``changes`` (None removes a key)."""
    values = {**base, **changes}
    clean = {k: v for k, v in values.items() if v not in (None, "")}
    return "?" + urlencode(clean) if clean else "?"


def health_class(score: float | None) -> str:
    if score is None:
        return "muted"
    return "ok" if score >= 90 else "warn" if score >= 60 else "bad"


def install(env: Environment) -> None:
    env.filters.update({
        "ts": timestamp, "ago": ago, "duration": duration, "pct": percent, "num": number,
        "pretty_json": pretty_json, "status_class": status_class, "short_id": short_id,
        "utc": utc_text, "health_class": health_class,
    })
    env.globals.update({"query": query, "line_chart": line_chart, "escape": escape})

"""Line charts drawn on the server as inline SVG: no JavaScript library, no CDN.

Styling is by presentation attributes and CSS classes only (the page's CSP forbids inline
styles), and every label passes through :func:`markupsafe.escape`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from markupsafe import Markup, escape

# One colour per series, readable on the light card background and for common colour blindness.
PALETTE = ("#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2")

Point = tuple[float, float | None]


def nice_ceiling(value: float) -> float:
    """The next 'round' number at or above ``value`` (1, 2, 2.5, 5 × 10^n)."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    base = 10 ** exponent
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * base + 1e-12:
            return step * base
    return 10 * base


def y_ticks(peak: float, integer: bool = False) -> list[float]:
    """Gridline values from 0 to a round top at or above ``peak``: at most five, whole
    numbers when the data are counts."""
    if peak <= 0:
        return [0.0, 1.0]
    if integer and peak <= 4:
        return [float(i) for i in range(math.ceil(peak) + 1)]
    step = nice_ceiling(peak / 4)
    if integer:
        step = float(math.ceil(step))
    count = math.ceil(peak / step - 1e-9)
    return [round(i * step, 10) for i in range(count + 1)]


def format_number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value / 1000:g}k"
    if abs(value) >= 10:
        return f"{value:.0f}"
    return f"{value:.2g}" if abs(value) < 1 else f"{value:.1f}".rstrip("0").rstrip(".")


def time_label(ts: float, span: float) -> str:
    moment = datetime.fromtimestamp(ts, UTC)
    if span > 2 * 86400:
        return moment.strftime("%a %H:%M")
    return moment.strftime("%H:%M")


def line_chart(series: dict[str, Sequence[Point]], *, title: str, unit: str = "",
               width: int = 560, height: int = 200, now: float | None = None) -> Markup:
    """An SVG chart of ``series`` ({label: [(t, value|None), ...]}); gaps where value is None."""
    left, right, top, bottom = 44, 12, 12, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    times = [t for points in series.values() for t, _ in points]
    values = [v for points in series.values() for _, v in points if v is not None]
    t0, t1 = (min(times), max(times)) if times else ((now or time.time()) - 3600, now or time.time())
    if t1 <= t0:
        t1 = t0 + 1
    ticks = y_ticks(max(values) if values else 0, integer=all(float(v).is_integer() for v in values))
    y_max = ticks[-1]

    def x(t: float) -> float:
        return left + (t - t0) / (t1 - t0) * plot_w

    def y(v: float) -> float:
        return top + plot_h - (v / y_max) * plot_h

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'preserveAspectRatio="xMidYMid meet" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for value in ticks:
        gy = y(value)
        parts.append(f'<line class="grid" x1="{left}" y1="{gy:.1f}" x2="{width - right}" y2="{gy:.1f}"/>')
        parts.append(f'<text class="axis" x="{left - 6}" y="{gy + 4:.1f}" text-anchor="end">'
                     f"{escape(format_number(value))}</text>")
    for i in range(5):
        tick = t0 + (t1 - t0) * i / 4
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"
        parts.append(f'<text class="axis" x="{x(tick):.1f}" y="{height - bottom + 16}" text-anchor="{anchor}" '
                     f'data-tick="{tick:.0f}" data-span="{t1 - t0:.0f}">{escape(time_label(tick, t1 - t0))}</text>')
    if not values:
        parts.append(f'<text class="empty" x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" '
                     f'text-anchor="middle">no data in this range</text>')
    for index, (label, points) in enumerate(series.items()):
        colour = PALETTE[index % len(PALETTE)]
        for segment in _segments(points):
            if len(segment) == 1:
                t, v = segment[0]
                parts.append(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2" fill="{colour}"/>')
                continue
            path = " ".join(f"{'M' if i == 0 else 'L'}{x(t):.1f},{y(v):.1f}" for i, (t, v) in enumerate(segment))
            parts.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.8" '
                         f'stroke-linejoin="round" stroke-linecap="round"/>')
        peak = max((v for _, v in points if v is not None), default=None)
        hover = f"{label}: peak {format_number(peak)}{unit and ' ' + unit}" if peak is not None else f"{label}: no data"
        lx = left + index * 110
        parts.append(f'<g class="legend"><title>{escape(hover)}</title>'
                     f'<rect x="{lx}" y="{height - 14}" width="10" height="10" rx="2" fill="{colour}"/>'
                     f'<text x="{lx + 14}" y="{height - 5}">{escape(label)}</text></g>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _segments(points: Sequence[Point]) -> list[list[tuple[float, float]]]:
    """Runs of consecutive points that have a value (None breaks the line)."""
    runs: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for t, v in points:
        if v is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append((t, v))
    if current:
        runs.append(current)
    return runs

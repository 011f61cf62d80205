"""The player report chart: recent K/D, ADR and results, plus an Elo line once snapshots exist.

Rendered headless with matplotlib's Agg backend into PNG bytes (never written to disk).
matplotlib is imported on first use, since it takes a while and most processes never draw.
"""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

_LOCK = threading.Lock()  # pyplot's state is global: one drawing at a time per process



def player_chart_png(chart: dict[str, Any], nickname: str) -> bytes:
    """PNG of ``chart`` (from :func:`faceit.analysis.chart_series`).

    The picture carries no words but K/D, ADR, Elo and the nickname, so one image serves both
    languages (the captions are translated). Green/red bands mark wins and losses, oldest left.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    kd = [v if v is not None else float("nan") for v in chart.get("kd", [])]
    adr = [v if v is not None else float("nan") for v in chart.get("adr", [])]
    won = chart.get("won", [])
    elo = chart.get("elo", [])
    rows = 2 if len(elo) >= 2 else 1
    with _LOCK:
        fig = Figure(figsize=(8, 3.2 * rows), dpi=100)
        ax = fig.add_subplot(rows, 1, 1)
        x = list(range(1, len(kd) + 1))
        ax.plot(x, kd, color="#1f77b4", marker="o", label="K/D")
        ax.axhline(1.0, color="#1f77b4", alpha=0.25, linestyle="--")
        ax.set_ylabel("K/D")
        for i, result in enumerate(won, start=1):
            if result is not None:
                ax.axvspan(i - 0.5, i + 0.5, color="#2ca02c" if result else "#d62728", alpha=0.12, lw=0)
        ax2 = ax.twinx()
        ax2.plot(x, adr, color="#ff7f0e", marker="s", alpha=0.8, label="ADR")
        ax2.set_ylabel("ADR")
        ax.set_xticks(x)
        ax.set_title(nickname)
        handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
        ax.legend(handles, ["K/D", "ADR"], loc="upper left", fontsize=8)
        if rows == 2:
            ax3 = fig.add_subplot(rows, 1, 2)
            times = [datetime.fromtimestamp(ts, UTC) for ts, _ in elo]
            ax3.plot(times, [value for _, value in elo], color="#9467bd", marker=".")
            ax3.set_ylabel("Elo")
            _day_axis(ax3, times)
            # The dates slanted on their own panel only: autofmt_xdate hid the match numbers above,
            # whose points then read as played on the dates below them.
            for label in ax3.get_xticklabels():
                label.set_rotation(30)
                label.set_horizontalalignment("right")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    return buffer.getvalue()


#: The Elo axis's dates: whole days, as ISO dates. One image serves both languages, and a
#: "06.12" that a Russian reader takes for the 6th of December an English one may take for
#: June 12 (the texts beside it write each language's own form, "Elo с 06.12", "Elo since Dec 6").
DAY_FORMAT = "%Y-%m-%d"
_MIN_SPAN = timedelta(days=3)


def _day_axis(ax: Any, times: list[datetime]) -> None:
    """Label ``ax``'s dates as days (``2026-12-06``), never finer: snapshots a few hours apart would
    otherwise get hourly ticks that all read the same day, so a short span is widened to
    :data:`_MIN_SPAN` around its middle, and the ticks fall on whole days or coarser."""
    from matplotlib import dates

    locator = dates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(dates.DateFormatter(DAY_FORMAT, tz=UTC))
    first, last = min(times), max(times)
    if last - first < _MIN_SPAN:
        middle = first + (last - first) / 2
        ax.set_xlim(middle - _MIN_SPAN / 2, middle + _MIN_SPAN / 2)

"""What ``dramatiq actors`` loads: the broker, then every actor.

Settings are validated first: a bad value ends the process with one line, no traceback.
"""

from __future__ import annotations

from settings import load_settings_or_exit

_settings = load_settings_or_exit()

from actors.broker import build_broker  # noqa: E402

broker = build_broker(_settings)

from actors.analytics_report import analytics_report  # noqa: E402
from actors.bulk_analysis import bulk_analysis  # noqa: E402
from actors.cache_update import cache_update  # noqa: E402
from actors.deliver import deliver_result  # noqa: E402
from actors.match_analysis import match_analysis  # noqa: E402
from actors.match_monitoring import match_monitoring  # noqa: E402
from actors.player_lookup import player_lookup  # noqa: E402
from actors.player_report import player_report  # noqa: E402
from actors.probe import probe_default, probe_high, probe_low  # noqa: E402

__all__ = [
    "analytics_report", "broker", "bulk_analysis", "cache_update", "deliver_result", "match_analysis",
    "match_monitoring", "player_lookup", "player_report", "probe_default", "probe_high", "probe_low",
]

"""The figures the dashboard shows: per-queue rates, chart series and the health score.

The health score and chart series come from ``queues.monitoring`` (``get_queue_monitor()``)
when that module is present and answers; otherwise, and for the per-queue cards always, they
are computed here from what the job store records on every job transition:

* ``stats:<queue>:<minute>`` hashes: succeeded / failed / retried / canceled per minute;
* ``samples:<queue>``: the newest 1000 ``[time, wait, run, outcome]`` of finished attempts.

Everything here is synchronous Redis (the web handlers run it in a thread). Wide chart
ranges read thousands of per-minute hashes, so series are cached for a short while.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from queues.alert_rules import (
    ALERT_RULES,
    GLOBAL_SUBJECT,
    QUEUE_RULES,
    Finding,
    Thresholds,
    evaluate,
    health,
    system_failure_rate,
    undecided,
)
from queues.jobstore import JobStore
from queues.priorities import priority_of_queue

logger = logging.getLogger(__name__)

METRICS = ("throughput", "failures", "wait_p95")


@dataclass(frozen=True)
class ChartRange:
    name: str
    seconds: int
    buckets: int
    cache_seconds: float

    @property
    def bucket_seconds(self) -> int:
        return self.seconds // self.buckets


RANGES = {
    "hour": ChartRange("hour", 3600, 60, 4),
    "day": ChartRange("day", 86400, 96, 60),
    "week": ChartRange("week", 7 * 86400, 84, 300),
}

Point = tuple[float, float | None]


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (``share`` in 0..1) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


class LocalFigures:
    """Rates and series computed straight from the job store's counters and samples."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.client = store.client

    def _minute_counts(self, queue: str, first_minute: int, last_minute: int) -> list[dict[str, int]]:
        pipe = self.client.pipeline(transaction=False)
        for minute in range(first_minute, last_minute + 1):
            pipe.hgetall(self.store.stats_key(queue, minute))
        return [{k: int(v) for k, v in row.items()} for row in pipe.execute()]

    def samples(self, queue: str) -> list[tuple[float, float, float, str]]:
        rows = []
        for raw in self.client.lrange(self.store.samples_key(queue), 0, -1):
            try:
                at, wait, run, outcome = json.loads(raw)
                rows.append((float(at), float(wait), float(run), str(outcome)))
            except (ValueError, TypeError):
                continue
        return rows

    def queue_figures(self, queue: str, now: float | None = None, window: int = 3600,
                      rate_window: int = 900) -> dict[str, Any]:
        """Throughput (jobs/min over ``rate_window``), failure rate and p95 wait over ``window``."""
        now = time.time() if now is None else now
        last = int(now // 60)
        rows = self._minute_counts(queue, last - window // 60 + 1, last)
        succeeded = sum(r.get("succeeded", 0) for r in rows)
        failed = sum(r.get("failed", 0) for r in rows)
        refused = min(failed, sum(r.get("refused", 0) for r in rows))  # the users' doing, among the failed
        retried = sum(r.get("retried", 0) for r in rows)
        recent = rows[-(rate_window // 60):]
        finished_recent = sum(r.get("succeeded", 0) + r.get("failed", 0) for r in recent)
        recent_samples = [row for row in self.samples(queue) if row[0] >= now - window]
        waits = [wait for _at, wait, _run, _outcome in recent_samples]
        runs = [run for _at, _wait, run, _outcome in recent_samples]
        finished = succeeded + failed
        return {
            "throughput": round(finished_recent / max(1, len(recent)), 2),
            "succeeded": succeeded,
            "failed": failed,
            "refused": refused,
            "retried": retried,
            "failure_rate": system_failure_rate(failed, refused, finished),
            "wait_p95": percentile(waits, 0.95),
            "run_p95": percentile(runs, 0.95),
            "window_seconds": window,
            "rate_window_seconds": rate_window,
        }

    def series(self, metric: str, queue: str, chart: ChartRange, now: float | None = None) -> list[Point]:
        """``chart.buckets`` points ``(bucket start, value)``, oldest first.

        throughput: jobs finished in the bucket; failures: jobs that failed in it (the same
        units as ``QueueMonitor.series``); wait_p95: seconds (None where nothing finished).
        """
        now = time.time() if now is None else now
        size = chart.bucket_seconds
        end = (int(now) // size + 1) * size
        start = end - chart.seconds
        if metric == "wait_p95":
            per_bucket: list[list[float]] = [[] for _ in range(chart.buckets)]
            for at, wait, _run, _outcome in self.samples(queue):
                index = int((at - start) // size)
                if 0 <= index < chart.buckets:
                    per_bucket[index].append(wait)
            return [(start + i * size, percentile(values, 0.95)) for i, values in enumerate(per_bucket)]
        first_minute = start // 60
        rows = self._minute_counts(queue, first_minute, (end - 1) // 60)
        points: list[Point] = []
        per = max(1, size // 60)
        for i in range(chart.buckets):
            chunk = rows[i * per:(i + 1) * per]
            if metric == "throughput":
                done = sum(r.get("succeeded", 0) + r.get("failed", 0) for r in chunk)
                points.append((start + i * size, float(done)))
            else:
                points.append((start + i * size, float(sum(r.get("failed", 0) for r in chunk))))
        return points


def local_snapshot(settings: Any, queues: dict[str, dict[str, Any]], redis_ok: bool = True) -> dict[str, Any]:
    """What the dashboard read (its queue rows), in the shape of the monitor's snapshot, for
    ``queues.alert_rules``. A queue's depth is None while the broker does not answer (unknown,
    not 0); how long the oldest job has waited is not read here (None: not judged)."""
    if not redis_ok:
        return {"redis": {"reachable": False, "error": "Redis is unreachable"}}
    snapshot: dict[str, Any] = {"redis": {"reachable": True}, "queues": {}}
    broker_error = next((q["broker_error"] for q in queues.values() if q.get("broker_error")), None)
    if broker_error:
        snapshot["broker_state"] = {"reachable": False, "error": broker_error}
    for name, q in queues.items():
        priority = priority_of_queue(name, settings)
        snapshot["queues"][name] = {
            "name": name, "priority": priority.value if priority else None,
            "depth": None if broker_error else q.get("waiting"),
            **{key: q.get(key) for key in ("delayed", "dead", "workers", "succeeded", "failed", "refused",
                                           "failure_rate", "wait_p95", "window_seconds")},
            "oldest_waiting_age": None,
        }
    return snapshot


def local_health(settings: Any, queues: dict[str, dict[str, Any]], open_alerts: list[dict[str, Any]],
                 redis_ok: bool = True) -> dict[str, Any]:
    """A health score from what the dashboard already read, for when ``queues.monitoring``
    cannot answer.

    The monitor's own rules and thresholds (``queues.alert_rules.evaluate``) judge
    :func:`local_snapshot`, so the two name the same conditions in the same words and lose the
    same points for them; the dashboard's figures cover the last hour, the monitor's failure
    rate a shorter window. What the monitor alone sees or counts otherwise (FACEIT's refusals,
    Redis's memory, the oldest waiting job, its failure rate and waits) comes from the
    conditions it left open: each loses its rule's points too, unless this read judges that
    rule for that subject itself and found it cleared (a queue's depth back under its limit).
    An open condition the monitor has not fired again for two dedupe windows and monitoring
    intervals is no longer its word: it fires one that still holds at the first check after
    each ``ALERT_DEDUPE_WINDOW``. One of a rule this version does not know counts nothing.
    """
    thresholds = Thresholds.from_settings(settings)
    snapshot = local_snapshot(settings, queues, redis_ok)
    findings = evaluate(snapshot, thresholds)
    seen = {(f.rule, f.subject) for f in findings}
    unknown = undecided(snapshot, thresholds)
    fresh_after = time.time() - 2 * (settings.alert_dedupe_window + settings.queue_monitoring_interval)
    for alert in open_alerts:
        key = (alert.get("rule"), alert.get("subject") or GLOBAL_SUBJECT)
        if (key[0] in ALERT_RULES and key not in seen and float(alert.get("time") or 0) >= fresh_after
                and not judged_here(snapshot, unknown, *key)):  # (one open alert per rule and subject)
            findings.append(Finding(key[0], key[1], str(alert.get("message") or ""), dict(alert.get("details") or {})))
    return {**health(findings), "source": "dashboard"}


#: Alert rules :func:`local_snapshot` holds the monitor's own figures for, for every subject (the
#: queue rules that read a depth only while the broker answers). Not the failure rate nor the
#: wait: the dashboard's cover the last hour, the monitor's their own windows. (The monitor keeps
#: open alerts of ``ALERT_RULES`` only, and ``redis_unreachable`` not even those: no log then.)
_JUDGED_HERE = {"broker_unreachable", "no_workers", "queue_depth"}


def judged_here(snapshot: dict[str, Any], unknown: set[tuple[str, str]], rule: str, subject: str) -> bool:
    """Whether :func:`local_snapshot` can tell if ``rule`` holds for ``subject`` (``unknown``: what
    ``alert_rules.undecided`` says it cannot): if it can and did not find it, the condition has
    cleared, whatever the monitor left open."""
    if rule not in _JUDGED_HERE:
        return False
    if rule in QUEUE_RULES and subject not in (snapshot.get("queues") or {}):
        return False
    return (rule, subject) not in unknown


def normalise_series(raw: Any) -> list[Point]:
    """Points ``(t, value)`` from what the monitor returns: pairs, or dicts naming t and value."""
    if isinstance(raw, dict):
        raw = raw.get("points", raw.get("series", sorted(raw.items())))
    points: list[Point] = []
    for item in raw or []:
        if isinstance(item, dict):
            t = next((item[k] for k in ("t", "ts", "time", "start", "bucket", "at") if k in item), None)
            v = next((item[k] for k in ("value", "v", "count", "rate", "y") if k in item), None)
        elif isinstance(item, list | tuple) and len(item) >= 2:
            t, v = item[0], item[1]
        else:
            continue
        if t is None:
            continue
        points.append((float(t), None if v is None else float(v)))
    return points


class Figures:
    """What the pages ask for; prefers ``queues.monitoring`` and falls back to :class:`LocalFigures`."""

    def __init__(self, store: JobStore, settings: Any,
                 monitor_factory: Callable[[], Any] | None = None) -> None:
        self.settings = settings
        self.local = LocalFigures(store)
        self._monitor_factory = monitor_factory or _default_monitor
        self._cache: dict[tuple[str, str, str], tuple[float, list[Point]]] = {}
        self._lock = threading.Lock()

    def monitor(self) -> Any | None:
        try:
            return self._monitor_factory()
        except Exception as exc:
            logger.debug("monitor unavailable: %s", exc)
            return None

    def health(self, queues: dict[str, dict[str, Any]], open_alerts: list[dict[str, Any]],
               redis_ok: bool = True) -> dict[str, Any]:
        monitor = self.monitor() if redis_ok else None
        if monitor is not None:
            try:
                summary = dict(monitor.get_system_health_summary())
                summary.setdefault("components", [])
                summary.setdefault("reasons", [c.get("reason", "") for c in summary["components"]])
                summary["health_score"] = round(float(summary.get("health_score", 0)))
                summary.setdefault("source", "monitor")
                return summary
            except Exception as exc:
                logger.warning("monitor health summary failed (%s); computing it here", type(exc).__name__)
        return local_health(self.settings, queues, open_alerts, redis_ok)

    def series(self, metric: str, queue: str, chart: ChartRange) -> list[Point]:
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}")
        key = (metric, queue, chart.name)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
            if cached and now - cached[0] < chart.cache_seconds:
                return cached[1]
        points = self._series(metric, queue, chart)
        with self._lock:
            self._cache[key] = (now, points)
        return points

    def _series(self, metric: str, queue: str, chart: ChartRange) -> list[Point]:
        monitor = self.monitor()
        if monitor is not None:
            try:
                points = normalise_series(monitor.series(metric, queue, chart.seconds, chart.buckets))
                # Gauges exist only where the scheduler recorded ticks; without them the job
                # store's own samples still tell the wait times.
                if any(value is not None for _, value in points):
                    return points
            except Exception as exc:
                logger.warning("monitor series %s/%s failed (%s); computing it here", metric, queue,
                               type(exc).__name__)
        return self.local.series(metric, queue, chart)


def _default_monitor() -> Any:
    from queues.monitoring import get_queue_monitor  # type: ignore[import-not-found]

    return get_queue_monitor()

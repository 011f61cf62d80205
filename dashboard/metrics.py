"""``/metrics`` in the Prometheus text exposition format (version 0.0.4).

=====================================  =========  ==============================================
metric                                 type       labels
=====================================  =========  ==============================================
faceit_bot_queue_messages              gauge      queue, state (waiting|delayed|in_progress|dead)
faceit_bot_queue_workers               gauge      queue
faceit_bot_jobs                        gauge      status (job records by status)
faceit_bot_jobs_processed_total        counter    actor (attempts that finished: succeeded+failed)
faceit_bot_jobs_failed_total           counter    actor (jobs that failed for good, refused included)
faceit_bot_jobs_refused_total          counter    actor (failed for the request itself: users' mistakes)
faceit_bot_job_outcomes_total          counter    actor, outcome (succeeded|failed|retried|canceled)
faceit_bot_job_duration_seconds        histogram  actor (run time of finished attempts)
faceit_bot_health_score                gauge      (0–100)
faceit_bot_alerts_open                 gauge      level
faceit_bot_workers_live                gauge
faceit_bot_redis_up                    gauge
=====================================  =========  ==============================================
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from queues.alerts import LEVELS
from queues.jobstore import HISTOGRAM_BUCKETS

PREFIX = "faceit_bot_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, Any]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if isinstance(value, float) and math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


class Exposition:
    """Collects metric families and renders them, HELP and TYPE lines first."""

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, str, list[str]]] = {}

    def add(self, name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, Any], float]],
            suffix: str = "") -> None:
        full = PREFIX + name
        family = self._families.setdefault(full, (kind, help_text, []))
        for labels, value in samples:
            family[2].append(f"{full}{suffix}{_labels(labels)} {_number(value)}")

    def render(self) -> str:
        lines = []
        for name, (kind, help_text, samples) in self._families.items():
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(samples)
        return "\n".join(lines) + "\n"


def collect(data: Any) -> str:
    """The exposition text for ``data`` (a :class:`dashboard.data.DashboardData`)."""
    out = Exposition()
    redis_ok = data.redis_ok()
    out.add("redis_up", "gauge", "1 when Redis answers a ping", [({}, 1 if redis_ok else 0)])
    if not redis_ok:
        out.add("health_score", "gauge", "System health, 0-100", [({}, 0)])
        return out.render()
    queues = data.queues()
    out.add("queue_messages", "gauge", "Messages in each queue by state", [
        ({"queue": q["name"], "state": state}, q[state])
        for q in queues for state in ("waiting", "delayed", "in_progress", "dead") if q.get(state) is not None
    ])
    out.add("queue_workers", "gauge", "Live workers consuming each queue",
            [({"queue": q["name"]}, q["workers"]) for q in queues])
    out.add("jobs", "gauge", "Job records by status",
            [({"status": s}, n) for s, n in data.store.count_by_status().items()])

    client = data.store.client
    totals: dict[tuple[str, str], int] = {}
    for field, value in client.hgetall(data.store.totals_key()).items():
        actor, _, outcome = field.partition("|")
        totals[(actor, outcome)] = int(value)
    actors = sorted({actor for actor, _ in totals})
    out.add("jobs_processed_total", "counter", "Attempts that finished (succeeded or failed), by actor",
            [({"actor": a}, totals.get((a, "succeeded"), 0) + totals.get((a, "failed"), 0)) for a in actors])
    out.add("jobs_failed_total", "counter", "Jobs that failed for good, by actor (refused ones included)",
            [({"actor": a}, totals.get((a, "failed"), 0)) for a in actors])
    out.add("jobs_refused_total", "counter",
            "Failed jobs refused for the request itself (users' mistakes: unknown nickname, cancelled match), by actor",
            [({"actor": a}, totals.get((a, "refused"), 0)) for a in actors])
    out.add("job_outcomes_total", "counter", "Finished attempts by actor and outcome",
            [({"actor": a, "outcome": o}, n) for (a, o), n in sorted(totals.items()) if o != "refused"])

    pipe = client.pipeline(transaction=False)
    for actor in actors:
        pipe.hgetall(data.store.histogram_key(actor))
    histogram_name = "job_duration_seconds"
    for actor, hist in zip(actors, pipe.execute(), strict=True):
        cumulative = 0
        buckets = []
        for bound in HISTOGRAM_BUCKETS:
            cumulative += int(hist.get(str(bound), 0))  # the Lua script keys buckets by ARGV text
            buckets.append(({"actor": actor, "le": _number(float(bound))}, cumulative))
        cumulative += int(hist.get("+Inf", 0))
        buckets.append(({"actor": actor, "le": "+Inf"}, cumulative))
        out.add(histogram_name, "histogram", "Run time of finished attempts", buckets, suffix="_bucket")
        out.add(histogram_name, "histogram", "", [({"actor": actor}, float(hist.get("sum", 0)))], suffix="_sum")
        out.add(histogram_name, "histogram", "", [({"actor": actor}, cumulative)], suffix="_count")
    if not actors:
        out.add(histogram_name, "histogram", "Run time of finished attempts", [])

    health = data.health(queues)
    out.add("health_score", "gauge", "System health, 0-100", [({}, health["health_score"])])
    open_alerts = data.alerts.open_alerts()
    out.add("alerts_open", "gauge", "Open condition alerts by level",
            [({"level": level}, sum(1 for a in open_alerts if a.level == level)) for level in LEVELS])
    out.add("workers_live", "gauge", "Worker processes with a fresh heartbeat",
            [({}, len(data.manager.worker_registry().workers()))])
    return out.render()


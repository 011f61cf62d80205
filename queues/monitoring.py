"""The health monitor: metrics per queue, time series, health score and condition alerts.

Every ``QUEUE_MONITORING_INTERVAL`` the scheduler's leader calls :meth:`QueueMonitor.tick`,
which collects one snapshot, records it, evaluates the rules of :mod:`queues.alert_rules`,
fires and resolves condition alerts, and hands new alerts to the Telegram admins' batcher.

A snapshot holds, per queue: depth (waiting), delayed, in progress, dead, workers (live, from
heartbeats), succeeded/failed/retried/canceled counts and the failure rate over the last
``window_seconds`` (per-minute counters, so rounded out to whole minutes), p50/p95 wait and run
time (exact, from the newest samples finished inside the window), and the age of the oldest
waiting job. Beside the queues: Redis reachability, memory and its share of ``maxmemory``, its
``maxmemory-policy`` (anything but ``noeviction``, under a ``maxmemory``, is the warning
``redis_eviction``: Redis would delete job records, delivery marks and subscriptions at
``maxmemory``; with none it never evicts), and FACEIT
request/error/429/auth counts (when ``faceit.metrics`` is importable).

Redis keys (under ``REDIS_KEY_PREFIX``, built only by :class:`MonitorKeys`):

* ``monitor:latest`` — the last recorded snapshot (JSON; TTL of ten intervals, at least 5 min);
* ``monitor:series:<queue>`` / ``monitor:series:_system`` — sorted sets by time whose members
  are compact JSON arrays (field order in :data:`QUEUE_SERIES_FIELDS` /
  :data:`SYSTEM_SERIES_FIELDS`); one point per tick, trimmed to ``QUEUE_METRICS_RETENTION_DAYS``
  and capped at :data:`SERIES_MAX_POINTS`.

The API is synchronous (one sync Redis client; safe to call from threads, which is how the
dashboard and the scheduler call it). With Redis unreachable, :meth:`tick` still evaluates
(Redis down is itself the alert): the alert goes straight to the sinks, since the alert log
lives in Redis, and is written to the log with its resolve notice once Redis is back. A Redis
that answers but refuses writes (``OOM``: its memory reached ``maxmemory`` under the
``noeviction`` policy the queues need) is handled the same way, as an episode of its own (rule
``redis_full``, 50 points): nothing can be queued or stored, so one critical alert naming what
else the rules found goes straight to the sinks; it resolves after ``resolve_after`` ticks in a
row whose writes went through, and both are logged once the log takes writes again.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from typing import TYPE_CHECKING, Any

import redis

from queues.alert_rules import (
    ALERT_RULES,
    Finding,
    Thresholds,
    evaluate,
    health,
    system_failure_rate,
    undecided,
)
from queues.alerts import Alert, AlertLevel, AlertStore
from queues.connection import as_text
from queues.dramatiq_keys import messages_key, queue_key
from queues.jobstore import JobRecord, JobStore
from queues.priorities import all_queue_names, priority_of_queue
from queues.runtime import get_alert_store, get_job_store, get_redis
from settings import Settings, get_settings

if TYPE_CHECKING:
    from queues.manager import QueueManager

logger = logging.getLogger(__name__)

#: Rules whose finding must hold a while before it alerts: the Thresholds field that says how long.
HELD_RULES = {"no_workers": "no_workers_after"}

#: Checks in a row a condition must be clear before its alert is resolved (3 × the 30 s interval):
#: a value hovering at its limit keeps one alert open instead of a fire and a resolve every minute.
RESOLVE_AFTER_CLEAR_CHECKS = 3
SERIES_MAX_POINTS = 20160
SAMPLES_READ = 1000
QUEUE_SERIES_FIELDS = (
    "depth", "delayed", "in_progress", "dead", "workers", "succeeded", "failed", "retried", "canceled",
    "failure_rate", "wait_p50", "wait_p95", "run_p50", "run_p95", "oldest_waiting_age",
)
SYSTEM_SERIES_FIELDS = (
    "health_score", "redis_reachable", "redis_used_memory", "redis_memory_share", "workers_live",
    "faceit_requests", "faceit_errors", "faceit_rate_limited", "faceit_auth_errors",
)
#: Metrics summed from the per-minute outcome counters (exact throughput for charts).
COUNTER_METRICS = {
    "throughput": ("succeeded", "failed"), "processed": ("succeeded", "failed"),
    "succeeded": ("succeeded",), "failed": ("failed",), "failures": ("failed",),
    "retried": ("retried",), "canceled": ("canceled",),
}
METRIC_ALIASES = {"p95_wait": "wait_p95", "p50_wait": "wait_p50", "p95_run": "run_p95", "p50_run": "run_p50",
                  "waiting": "depth", "oldest_age": "oldest_waiting_age"}
#: Queue gauges that add up across queues; the others (times, rates) take the maximum.
ADDITIVE = {"depth", "delayed", "in_progress", "dead", "workers", "succeeded", "failed", "retried", "canceled"}


class MonitorKeys:
    """The monitor's Redis keys (the only place they are spelled)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    @property
    def latest(self) -> str:
        return f"{self.prefix}monitor:latest"

    def series(self, name: str) -> str:
        return f"{self.prefix}monitor:series:{name}"

    @property
    def series_pattern(self) -> str:
        return f"{self.prefix}monitor:series:*"


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (``pct`` in 0–100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


#: Alerts told directly (Redis down or full) kept for the alert log; the oldest go first.
UNLOGGED_MAX = 100
#: How long past its due time an active record with no message behind it is left before it is
#: failed as orphaned: a retry overdue by this long, or a queued job this old (see _sweep_orphans).
ORPHAN_GRACE = 600.0
#: Ids read per status index by one sweep (the indexes are capped sorted sets): the oldest, then
#: from where the last sweep stopped, so a backlog older than the grace cannot hide newer orphans.
ORPHAN_SCAN = 200
#: On RabbitMQ, the job records queued longest read at a time for the queues' oldest waiting
#: ages (:meth:`QueueMonitor._oldest_queued_ages`).
OLDEST_SCAN = 500
#: A Redis queue whose message hash (waiting, delayed or running) is larger is not looked
#: through for a job's message: its overdue records are left alone that tick.
ORPHAN_MESSAGES_READ = 20000
#: Seconds between two orphan sweeps of one monitor.
ORPHAN_SWEEP_INTERVAL = 60.0


class QueueMonitor:
    """Collects, records and judges the pipeline's state. See the module docstring."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        client: redis.Redis | None = None,
        alert_store: AlertStore | None = None,
        job_store: JobStore | None = None,
        thresholds: Thresholds | None = None,
        window_seconds: float | None = None,
        telegram: Any = "auto",
        resolve_after: int = RESOLVE_AFTER_CLEAR_CHECKS,
        orphan_scan: int = ORPHAN_SCAN,
        orphan_sweep_interval: float = ORPHAN_SWEEP_INTERVAL,
        manager: QueueManager | None = None,
    ) -> None:
        """``orphan_scan`` and ``orphan_sweep_interval``: ids read per status by one orphan sweep
        and the least seconds between two sweeps (:data:`ORPHAN_SCAN`, :data:`ORPHAN_SWEEP_INTERVAL`
        unless given; tests scale them down to see a sweep go on from where the last one stopped).
        ``manager``: the queue manager whose broker the queues are read from (by default one on
        the process's broker, built from ``settings``; a process holding a broker of other
        settings passes its own)."""
        self.settings = settings or get_settings()
        self._manager = manager
        self.client = client or get_redis(self.settings)
        self.jobs = job_store or get_job_store(self.settings)
        self.alerts = alert_store or get_alert_store(self.settings)
        self.thresholds = thresholds or Thresholds.from_settings(self.settings)
        self.interval = float(self.settings.queue_monitoring_interval)
        self.window_seconds = float(window_seconds or self.settings.alert_failure_window)
        self.retention_seconds = float(self.settings.queue_metrics_retention_days) * 86400
        self.keys = MonitorKeys(self.settings.redis_key_prefix)
        self.resolve_after = max(1, int(resolve_after))
        self.orphan_scan = max(1, int(orphan_scan))
        self.orphan_sweep_interval = float(orphan_sweep_interval)
        self._clear_checks: dict[tuple[str | None, str], int] = {}  # open alert → checks clear in a row
        self._held_since: dict[tuple[str, str], float] = {}  # a HELD_RULES finding → when it was first seen
        self._telegram = telegram  # "auto": built on first use (see the property)
        self.initialized = False
        # Episodes the alert log cannot hold while they last, each told to the sinks directly:
        self._outage: Alert | None = None  # Redis unreachable
        self._full: Alert | None = None  # Redis refusing writes (OOM at maxmemory)
        self._full_clear = 0  # ticks in a row whose writes went through since
        self._unlogged: list[Alert] = []  # sent directly, still to be written to the alert log
        self._lock = threading.Lock()
        self.ticks = 0
        self._orphans_swept_at = float("-inf")  # time.monotonic() of the last orphan sweep
        # Per status: the index score the last sweep stopped at, and the ids at that very score
        # it read (the next sweep skips them: ids may share a score).
        self._orphan_cursor: dict[str, tuple[float, set[Any]]] = {}

    async def initialize(self) -> bool:
        """Check that Redis answers (logged, not raised: the monitor reports Redis trouble)."""
        try:
            self.client.ping()
            reachable = True
        except redis.RedisError as exc:
            logger.warning("monitor: Redis unreachable at start: %s", type(exc).__name__)
            reachable = False
        self.initialized = True
        return reachable

    # --- collection ---------------------------------------------------------------------------

    def collect(self) -> dict[str, Any]:
        """One snapshot of everything the rules need (no writes)."""
        now = time.time()
        snap: dict[str, Any] = {
            "time": now, "interval": self.interval, "window_seconds": self.window_seconds,
            "broker": self.settings.broker, "queues": {}, "workers": {"live": 0, "by_queue": {}},
            "redis": {"reachable": False}, "faceit": {"available": False},
        }
        try:
            snap["redis"] = self._redis_state()
            snap["queues"], snap["workers"], broker_error = self._queues(now)
            if broker_error is not None:
                snap["broker_state"] = {"reachable": False, "error": broker_error}
            snap["monitor"] = self._monitor_state(now)
        except redis.RedisError as exc:
            snap["redis"] = {"reachable": False, "error": f"{type(exc).__name__}: {str(exc)[:160]}"}
            snap["queues"] = {}
            return snap
        snap["faceit"] = self._faceit_state()
        return snap

    def _redis_state(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.client.ping()
        latency = (time.perf_counter() - started) * 1000
        info = self.client.info("memory")
        used = int(info.get("used_memory", 0))
        maxmemory = int(info.get("maxmemory", 0))
        policy = str(info.get("maxmemory_policy", ""))
        return {
            "reachable": True, "latency_ms": round(latency, 2), "used_memory": used,
            "used_memory_human": info.get("used_memory_human"), "maxmemory": maxmemory,
            "maxmemory_human": info.get("maxmemory_human"), "maxmemory_policy": policy,
            "memory_share": round(used / maxmemory, 4) if maxmemory else None,
            # What Redis does at maxmemory under noeviction (the policy the queues need): refuse
            # every write. Also set by a tick whose writes were refused.
            "refuses_writes": bool(maxmemory) and policy == "noeviction" and used >= maxmemory,
        }

    def _queues(self, now: float) -> tuple[dict[str, Any], dict[str, Any], str | None]:
        """Per-queue figures, live workers, and why the broker could not be read (None: it was).

        An unreachable RabbitMQ leaves each queue's depth unknown (None), not 0: the rules then
        report the broker, not empty queues. It is asked once per tick, not once per queue (a
        refused connection costs about a second)."""
        from queues.workers import WorkerRegistry

        manager = self._queue_manager()
        registry = WorkerRegistry.from_settings(self.client, self.settings)
        live_workers = registry.workers()
        by_queue: dict[str, int] = {}
        for worker in live_workers:
            for queue in worker.queues:
                by_queue[queue] = by_queue.get(queue, 0) + 1
        names = all_queue_names(self.settings)
        counts = self._outcome_counts(names, now)
        queues = {}
        all_stats, broker_error = manager.queue_stats_known(by_queue)
        # RabbitMQ's queues cannot be looked into: the oldest waiting job of every queue that holds
        # any (or is not known to hold none) from one read of the job records.
        oldest = (self._oldest_queued_ages([n for n in names if all_stats[n].waiting != 0], now)
                  if self.settings.broker != "redis" else None)
        for name in names:
            stats = all_stats[name]
            succeeded, failed = counts[name].get("succeeded", 0), counts[name].get("failed", 0)
            refused = min(failed, counts[name].get("refused", 0))  # the users' doing, among the failed
            finished = succeeded + failed
            rate = system_failure_rate(failed, refused, finished)
            waits, runs = self._latencies(name, now)
            priority = priority_of_queue(name, self.settings)
            queues[name] = {
                "name": name, "priority": priority.value if priority else None,
                "depth": stats.waiting, "delayed": stats.delayed, "in_progress": stats.in_progress,
                "dead": stats.dead, "workers": stats.workers,
                "succeeded": succeeded, "failed": failed, "retried": counts[name].get("retried", 0),
                "canceled": counts[name].get("canceled", 0), "processed": finished,
                "refused": refused,
                "failure_rate": _round(rate, 4),
                "window_seconds": self.window_seconds,
                "wait_p50": _round(percentile(waits, 50)), "wait_p95": _round(percentile(waits, 95)),
                "run_p50": _round(percentile(runs, 50)), "run_p95": _round(percentile(runs, 95)),
                "samples": len(runs),
                "oldest_waiting_age": _round(self._oldest_waiting_age(name, now) if oldest is None
                                             else oldest.get(name)),
                "depth_limit": self.thresholds.depth_limit(priority.value if priority else None),
                "wait_target": self.thresholds.wait_target(priority.value if priority else None),
            }
        workers = {"live": len(live_workers), "by_queue": by_queue}
        return queues, workers, broker_error

    def _outcome_counts(self, names: list[str], now: float) -> dict[str, dict[str, int]]:
        minutes = range(int((now - self.window_seconds) // 60), int(now // 60) + 1)
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            for minute in minutes:
                pipe.hgetall(self.jobs.stats_key(name, minute))
        rows = iter(pipe.execute())
        counts: dict[str, dict[str, int]] = {}
        for name in names:
            total: dict[str, int] = {}
            for _ in minutes:
                for field, value in next(rows).items():
                    total[field] = total.get(field, 0) + int(value)
            counts[name] = total
        return counts

    def _samples(self, name: str, since: float) -> list[list[Any]]:
        out = []
        for raw in self.client.lrange(self.jobs.samples_key(name), 0, SAMPLES_READ - 1):
            try:
                sample = json.loads(raw)
            except ValueError:
                continue
            if float(sample[0]) < since:
                break  # newest first: everything after is older
            out.append(sample)
        return out

    def _latencies(self, name: str, now: float) -> tuple[list[float], list[float]]:
        """Wait times (one per job: retries repeat the first wait) and run times in the window."""
        waits, runs = [], []
        for _, wait, run, outcome in self._samples(name, now - self.window_seconds):
            runs.append(max(0.0, float(run)))
            if outcome != "retried":
                waits.append(max(0.0, float(wait)))
        return waits, runs

    def _oldest_waiting_age(self, name: str, now: float) -> float | None:
        """How long the message at the head of Redis queue ``name`` has been ready (RabbitMQ's:
        :meth:`_oldest_queued_ages`).

        Dramatiq appends to the queue list and pops from its head, so index 0 is the oldest.
        Ready since = the job record's latest of enqueue, requeue and retry times, else the
        message's own timestamp.
        """
        ns = self.settings.dramatiq_namespace
        redis_id = self.client.lindex(queue_key(ns, name), 0)
        if redis_id is None:
            return None
        raw = self.client.hget(messages_key(ns, name), redis_id)
        if raw is None:
            return None
        try:
            message = json.loads(raw)
        except ValueError:
            return None
        ready = float(message.get("message_timestamp", now * 1000)) / 1000
        record = self.client.hmget(self.jobs.job_key(str(message.get("message_id"))),
                                   "enqueued_at", "requeued_at", "retry_at")
        known = [float(v) for v in record if v]
        if known:
            ready = min(max(known), now)
        return max(0.0, now - ready)

    def _oldest_queued_ages(self, names: list[str], now: float) -> dict[str, float]:
        """For each queue of ``names``, how long its longest-waiting job record still ``queued``
        has been ready (its latest of enqueue, requeue and retry times): the status index, scored
        by enqueue time, read oldest first a page of :data:`OLDEST_SCAN` at a time until every
        queue has one or the index ends (a backlog on one queue no longer hides another's): the
        caller names only queues that hold messages, so an empty one never makes it read the whole
        index. A queue with none is left out. Without it ``stale_jobs`` never fired on RabbitMQ, nor
        ``wait_time`` for a queue where nothing starts (it has no p95)."""
        index, wanted = self.jobs.index_key("status", "queued"), set(names)
        ready_since: dict[str, float] = {}
        if not wanted:  # (a queue that holds nothing has no oldest job: no read)
            return ready_since
        for start in range(0, self.jobs.index_limit, OLDEST_SCAN):
            found = self.client.zrange(index, start, start + OLDEST_SCAN - 1)
            if not found:
                break
            pipe = self.client.pipeline(transaction=False)
            for job_id in found:
                pipe.hmget(self.jobs.job_key(as_text(job_id)), "queue", "status", "enqueued_at", "requeued_at",
                           "retry_at")
            for queue, status, *times in pipe.execute():
                queue = as_text(queue)
                if queue in wanted and as_text(status) == "queued" and any(times):
                    ready = min(max(float(v) for v in times if v), now)
                    ready_since[queue] = min(ready, ready_since.get(queue, ready))
            if wanted <= set(ready_since) or len(found) < OLDEST_SCAN:
                break
        return {queue: max(0.0, now - ready) for queue, ready in ready_since.items()}

    def _faceit_state(self) -> dict[str, Any]:
        try:
            from faceit.metrics import faceit_call_counts
        except ImportError:
            return {"available": False}
        try:
            short = faceit_call_counts(self.interval, self.client)
            long = faceit_call_counts(self.window_seconds, self.client)
        except Exception as exc:  # the FACEIT layer's counters must not break the monitor
            logger.warning("monitor: FACEIT counters unreadable: %s: %s", type(exc).__name__, exc)
            return {"available": False, "error": type(exc).__name__}
        return {
            "available": True, "window_seconds": short.get("window_seconds"),
            "requests": short.get("requests", 0), "errors": short.get("error_total", 0),
            "rate_limited": short.get("rate_limited", 0),
            "auth_errors": long.get("auth_errors", 0), "key_missing": long.get("key_missing", 0),
            "auth_window_seconds": long.get("window_seconds"),
            "window_requests": long.get("requests", 0), "window_errors": long.get("error_total", 0),
            "window_rate_limited": long.get("rate_limited", 0),
        }

    def _monitor_state(self, now: float) -> dict[str, Any]:
        raw = self.client.get(self.keys.latest)
        last = json.loads(raw)["time"] if raw else None
        age = None if last is None else max(0.0, now - float(last))
        return {"last_recorded_age": _round(age), "stale": age is None or age > 3 * self.interval}

    # --- the tick -----------------------------------------------------------------------------

    @property
    def telegram(self) -> Any:
        """The Telegram admins' alert sink, or None.

        With ``telegram="auto"`` it is built from settings the first time alerts are to be sent,
        not when the monitor is: ``admin.py status`` and the dashboard read health through a
        monitor and send nothing, so they must not warn "Telegram alerts are off" on stderr.
        """
        if isinstance(self._telegram, str) and self._telegram == "auto":
            from queues.telegram_alerts import TelegramAlertSink

            self._telegram = TelegramAlertSink.from_settings(self.settings, self.client)
        return self._telegram

    @telegram.setter
    def telegram(self, sink: Any) -> None:
        self._telegram = sink

    def tick(self) -> dict[str, Any]:
        """Collect, record, evaluate, alert. Returns the snapshot with ``health`` and ``findings``."""
        with self._lock:
            snap = self.collect()
            snap.setdefault("monitor", {})["stale"] = False  # we are recording now
            findings = self._judge(snap)
            if snap["redis"].get("reachable"):
                self._end_outage()
                refused: bool | None = False
                try:
                    self._write_unlogged()
                    # Alerts before the series: a Redis near its maxmemory may refuse the bulk of
                    # the series' writes, and its memory alert must be written before that.
                    self._apply_alerts(findings, undecided(snap, self.thresholds))
                    self._record(snap)
                except redis.exceptions.OutOfMemoryError:
                    refused = True
                except redis.RedisError as exc:  # Redis went away mid-tick: next tick reports it
                    logger.warning("monitor: Redis failed during the tick: %s", type(exc).__name__)
                    refused = None
                if refused and not snap["redis"].get("refuses_writes"):
                    snap["redis"]["refuses_writes"] = True  # what the writes met is the truth
                    findings = self._judge(snap)
                if refused is not None:
                    self._track_full(refused, findings)
                if refused is False:
                    snap["orphaned"] = self._sweep_orphans(snap)
            else:
                self._redis_unreachable(findings[0])
            self.relay_alerts()
            self.ticks += 1
            return snap

    def relay_alerts(self) -> int:
        """The alerts other processes fired, to the admins on Telegram (each tick; the scheduler's
        ``alert_relay`` task when the monitor is off); returns how many went out. Redis away: the
        next call tries again."""
        if self.telegram is None:
            return 0
        try:
            self.telegram.relay(self.alerts)
            return self.telegram.flush()
        except redis.RedisError:
            return 0
        except Exception:
            logger.exception("monitor: Telegram alert relay failed")
            return 0

    def _judge(self, snap: dict[str, Any]) -> list[Finding]:
        """The rules' findings for ``snap``, with its health and findings filled in."""
        findings = evaluate(snap, self.thresholds)
        snap["health"] = health(findings)
        snap["findings"] = [f.to_dict() for f in findings]
        return findings

    def _record(self, snap: dict[str, Any]) -> None:
        now = snap["time"]
        ttl = int(max(10 * self.interval, 300))
        compact = {k: v for k, v in snap.items() if k != "findings"}
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.keys.latest, json.dumps(compact), ex=ttl)
        points = {name: [round(now, 3), *[q.get(f) for f in QUEUE_SERIES_FIELDS]]
                  for name, q in snap["queues"].items()}
        faceit = snap.get("faceit") or {}
        points["_system"] = [
            round(now, 3), snap["health"]["health_score"], 1, snap["redis"].get("used_memory"),
            snap["redis"].get("memory_share"), snap["workers"]["live"], faceit.get("requests"),
            faceit.get("errors"), faceit.get("rate_limited"), faceit.get("auth_errors"),
        ]
        for name, point in points.items():
            key = self.keys.series(name)
            pipe.zadd(key, {json.dumps(point): now})
            pipe.zremrangebyscore(key, 0, now - self.retention_seconds)
            pipe.zremrangebyrank(key, 0, -(SERIES_MAX_POINTS + 1))
            pipe.expire(key, int(self.retention_seconds) + 3600)
        pipe.execute()

    def _apply_alerts(self, findings: list[Finding], unjudged: set[tuple[str, str]] = frozenset()) -> None:
        """Fire what the findings say; resolve an open alert after ``resolve_after`` checks in a
        row that found its condition clear. ``unjudged`` conditions (too little data) count as
        neither: the alert stays open and its count of clear checks stands."""
        active = set()
        now = time.time()
        held = {(f.rule, f.subject) for f in findings if f.rule in HELD_RULES}
        for key in set(self._held_since) - held:  # cleared: the next one starts its wait anew
            del self._held_since[key]
        for finding in findings:
            if not finding.alert:
                continue
            key = (finding.rule, finding.subject)
            active.add(key)
            hold = float(getattr(self.thresholds, HELD_RULES[finding.rule])) if key in held else 0.0
            if hold and now - self._held_since.setdefault(key, now) < hold:
                continue  # not for long enough yet (an alert already open stays open)
            self.alerts.emit(finding.to_alert())
        for alert in self.alerts.open_alerts():
            key = (alert.rule, alert.subject or "-")
            if alert.rule not in ALERT_RULES or alert.rule == "redis_unreachable" or key in unjudged:
                continue
            clear = 0 if key in active else self._clear_checks.get(key, 0) + 1
            if clear >= self.resolve_after:
                self.alerts.resolve(alert.rule, alert.subject)
                clear = 0
            if clear:
                self._clear_checks[key] = clear
            else:
                self._clear_checks.pop(key, None)

    def _sinks(self) -> list[Any]:
        sinks = list(self.alerts.sinks)
        if self.telegram is not None:
            sinks.append(self.telegram)
        return sinks

    def _send_direct(self, alert: Alert) -> None:
        for sink in self._sinks():
            try:
                sink.send(alert)
            except Exception:
                logger.exception("alert sink %s failed", getattr(sink, "name", sink))

    def _redis_unreachable(self, finding: Finding) -> None:
        """The alert log is in Redis: tell the sinks directly, once per outage."""
        if self._outage is not None:
            return
        self._outage = finding.to_alert()
        self._tell_directly(self._outage)

    def _end_outage(self) -> None:
        """Redis answers again: send the outage's resolve notice (the log takes both when it can)."""
        if self._outage is not None:
            self._tell_directly(self._outage.resolved(outage_seconds=round(time.time() - self._outage.time, 1)))
            self._outage = None

    def _track_full(self, refused: bool, findings: list[Finding]) -> None:
        """Redis refusing writes (OOM) stops the pipeline: nothing can be queued or recorded, and
        the alert log cannot take the rules' alerts. Tell the sinks directly, once per episode,
        with what else the rules found; resolve after ``resolve_after`` ticks in a row whose
        writes went through (memory hovering at the limit is one episode, not one per swing)."""
        if refused:
            self._full_clear = 0
            if self._full is None:  # the tick judged the snapshot as refusing writes: the finding is there
                full = next(f for f in findings if f.rule == "redis_full")
                others = [f.message for f in findings if f.alert and f.rule != "redis_memory"]
                self._full = full.to_alert(full.message + ("; also: " + "; ".join(others) if others else ""))
                logger.error("monitor: %s", self._full.message)
                self._tell_directly(self._full)
            return
        if self._full is None:
            return
        self._full_clear += 1
        if self._full_clear >= self.resolve_after:
            self._tell_directly(self._full.resolved(outage_seconds=round(time.time() - self._full.time, 1)))
            self._full, self._full_clear = None, 0
            try:
                self._write_unlogged()
            except redis.RedisError:
                pass  # the next tick writes them

    def _tell_directly(self, alert: Alert) -> None:
        """Send ``alert`` to the sinks now, and keep it to write to the alert log later."""
        self._unlogged = [*self._unlogged, alert][-UNLOGGED_MAX:]
        self._send_direct(alert)

    def _write_unlogged(self) -> None:
        """Write the alerts told directly to the alert log (raises while Redis refuses writes)."""
        if not self._unlogged:
            return
        pipe = self.client.pipeline(transaction=False)
        for alert in self._unlogged:
            pipe.zadd(self.alerts.log_key, {json.dumps(alert.to_dict()): alert.time})
        self.alerts.trim_log(pipe)
        pipe.execute()
        if self.telegram is not None:  # already delivered: the relay must not send them again
            self.telegram.mark_seen([alert.id for alert in self._unlogged])
        self._unlogged = []

    # --- orphaned jobs ------------------------------------------------------------------------

    def _sweep_orphans(self, snap: dict[str, Any]) -> dict[str, Any]:
        """Fail the active job records no message will ever start, and alert once naming how many.

        A publish lost between a job's record and its message (RabbitMQ losing it, a submit
        killed between its two round trips) left a record ``queued`` or ``retrying`` for the
        failure TTL, and its coalesce subject pointing every later request at it ("queued" for
        ever). Overdue: ``retrying`` whose ``retry_at`` is :data:`ORPHAN_GRACE` past, or
        ``queued`` for that long since its enqueue or requeue. It is failed only when its message
        is known to be gone: no message hash of its queue (the queue's and its delay queue's:
        waiting, delayed and running messages, kept there until acked) holds its id. On the Redis
        broker only: RabbitMQ's queues cannot be looked through, and a due retry held in a busy
        worker's memory (every thread on a long bulk job) looks just like a lost one there; its
        publishes wait for the server's confirm instead (``actors.broker``). ``orphan_scan``
        ids per status are read, at most once every ``orphan_sweep_interval`` seconds (a
        queue's messages may be read whole, and nothing is failed before ten minutes anyway):
        the oldest first, and each sweep goes on from where the last one stopped, back to the
        oldest once it read them all. Errors are logged, not raised: the next sweep tries again.
        """
        now = time.monotonic()
        if now - self._orphans_swept_at < self.orphan_sweep_interval:
            return {"failed": 0, "skipped": True}
        self._orphans_swept_at = now
        try:
            return self._fail_orphans(snap)
        except redis.RedisError as exc:
            logger.warning("monitor: orphaned-job sweep failed: %s", type(exc).__name__)
            return {"failed": 0, "error": type(exc).__name__}

    def _fail_orphans(self, snap: dict[str, Any]) -> dict[str, Any]:
        if (snap.get("broker_state") or {}).get("reachable") is False:
            return {"failed": 0}
        if self.settings.broker != "redis":
            return {"failed": 0}
        now = time.time()
        # Indexed by enqueued_at, never later than a retry's or a requeue's due time: only records
        # at least ORPHAN_GRACE old can be overdue, and Redis picks them (most minutes: none).
        statuses = ("queued", "retrying")
        pipe = self.client.pipeline(transaction=False)
        cursors = [self._orphan_cursor.get(status, (0.0, set())) for status in statuses]
        for status, (score, seen) in zip(statuses, cursors, strict=True):
            pipe.zrangebyscore(self.jobs.index_key("status", status), score, now - ORPHAN_GRACE, start=0,
                               num=self.orphan_scan + len(seen), withscores=True)
        ids = []
        for status, (score, seen), found in zip(statuses, cursors, pipe.execute(), strict=True):
            new = [(job_id, float(s)) for job_id, s in found if not (float(s) == score and job_id in seen)]
            page = new[:self.orphan_scan]
            ids.extend(job_id for job_id, _ in page)
            if len(new) >= self.orphan_scan:  # more may follow: the next sweep goes on from here
                last = page[-1][1]
                at_last = {job_id for job_id, s in page if s == last} | (seen if last == score else set())
                self._orphan_cursor[status] = (last, at_last)
            else:  # read to the end: the next sweep starts again from the oldest
                self._orphan_cursor.pop(status, None)
        overdue: list[tuple[JobRecord, float]] = []  # each with when it was due
        for record in self.jobs.get_many([as_text(i) for i in ids]):
            if record is None:
                continue
            if record.status == "retrying":
                due = record.retry_at
            elif record.status == "queued":
                requeued = record.raw.get("requeued_at")
                due = max(record.enqueued_at or 0.0, float(requeued) if requeued else 0.0) or None
            else:
                continue
            if due is not None and due < now - ORPHAN_GRACE:
                overdue.append((record, due))
        if not overdue:
            return {"failed": 0}
        live = self._live_message_ids({r.queue for r, _ in overdue})
        failed, told = [], []
        for record, due in overdue:
            if live.get(record.queue) is None or record.id in live[record.queue]:
                continue  # its message is there (or its queue could not be read): not an orphan
            waited = round(now - due)
            outcome, waits = self.jobs.fail_orphaned(
                record, f"its {record.status} record had no message to start it for {waited} s (lost publish)")
            if outcome == "failed":
                failed.append(record)
                if waits:
                    told.append(record.id)
        if not failed:
            return {"failed": 0}
        self._tell_failed(told)
        ids = [r.id for r in failed]
        by_queue: dict[str, int] = {}
        for r in failed:
            by_queue[r.queue] = by_queue.get(r.queue, 0) + 1
        where = ", ".join(f"{q}: {n}" for q, n in sorted(by_queue.items()))
        message = (f"{len(failed)} orphaned {'job' if len(failed) == 1 else 'jobs'} failed ({where}): "
                   f"queued or retrying past their time with no message behind them (a lost publish)")
        logger.error("monitor: %s: %s", message, ", ".join(ids[:20]))
        self.alerts.emit(Alert(level="error", source="monitor", message=message,
                               details={"reason": "orphaned", "count": len(failed), "by_queue": by_queue,
                                        "job_ids": ids[:20]}))
        return {"failed": len(failed), "job_ids": ids}

    def _live_message_ids(self, queues: set[str]) -> dict[str, set[str] | None]:
        """Per queue, the Dramatiq message ids of its messages (waiting, delayed or running), or
        None when its message hashes are too large to look through this tick.

        The delay queue is read first. A worker moves a due retry by writing it to the queue,
        then taking it off the delay queue; read the other way round, a move between the two
        reads was in neither, and a job about to run was failed as an orphan."""
        from dramatiq.common import dq_name

        ns = self.settings.dramatiq_namespace
        return {queue: self._message_ids([messages_key(ns, dq_name(queue)), messages_key(ns, queue)])
                for queue in queues}

    def _message_ids(self, keys: list[str]) -> set[str] | None:
        """The message ids in the message hashes ``keys``; None when there are too many to read, or
        a body cannot be read (its job may be any of them)."""
        if sum(int(self.client.hlen(key)) for key in keys) > ORPHAN_MESSAGES_READ:
            return None
        found: set[str] = set()
        for key in keys:
            for _, body in self.client.hscan_iter(key, count=500):
                try:
                    found.add(str(json.loads(body)["message_id"]))
                except (ValueError, KeyError, TypeError):
                    return None
        return found

    def _queue_manager(self) -> QueueManager:
        """The manager given to the monitor, else a new one on ``settings`` (the process's broker)."""
        if self._manager is not None:
            return self._manager
        from queues.manager import QueueManager

        return QueueManager(self.settings)

    def _tell_failed(self, job_ids: list[str]) -> None:
        """Send the delivery of each failed orphan, so its users see the failure, not "queued"."""
        if not job_ids:
            return
        manager = self._queue_manager()
        for job_id in job_ids:
            manager.tell_ended(job_id)  # (a failure is logged: /status shows the job failed, untold)

    # --- reading (dashboard, admin) -----------------------------------------------------------

    def latest_snapshot(self) -> dict[str, Any] | None:
        raw = self.client.get(self.keys.latest)
        return json.loads(raw) if raw else None

    def current_metrics(self, *, fresh: bool = False) -> dict[str, Any]:
        """The latest per-queue snapshot (the recorded one when recent, else, or ``fresh``,
        collected now)."""
        try:
            snap = None if fresh else self.latest_snapshot()
        except redis.RedisError:
            snap = None
        if snap is None or time.time() - float(snap["time"]) > max(2 * self.interval, 5):
            snap = self.collect()
            snap["health"] = health(evaluate(snap, self.thresholds))
        return snap

    def get_system_health_summary(self, *, fresh: bool = False) -> dict[str, Any]:
        """``{"health_score", "components": [{name, rule, subject, level, score_lost, reason}],
        "reasons", "time", "redis_reachable"}`` (see :mod:`queues.alert_rules` for the table).
        ``fresh``: judged on figures collected now, not on the monitor's last snapshot (up to two
        intervals old: shown beside counts read now, it said no worker served a queue whose
        line counted one, just after a restart)."""
        snap = self.current_metrics(fresh=fresh)
        summary = dict(snap.get("health") or health(evaluate(snap, self.thresholds)))
        summary["time"] = snap.get("time")
        summary["redis_reachable"] = bool(snap.get("redis", {}).get("reachable"))
        summary["live_workers"] = snap.get("workers", {}).get("live", 0)
        return summary

    def get_recent_alerts(self, hours: float = 24, level: str | None = None) -> list[Alert]:
        """Alerts (fired and resolved notices) of the last ``hours``, newest first."""
        return self.alerts.recent(hours, level=level)

    def open_alerts(self) -> list[Alert]:
        return self.alerts.open_alerts()

    async def _create_alert(self, level: AlertLevel | str, message: str, **extra: Any) -> bool:
        """Raise an alert of one's own from code (the first version's call:
        ``await monitor._create_alert(AlertLevel.ERROR, "…")``): written to the alert log and sent
        to the sinks (Sentry, the admins on Telegram) as the monitor's own are, source
        ``monitor``. ``extra``: ``rule`` and ``subject`` make it a condition alert, fired once per
        window while it holds. False when it was a duplicate and dropped."""
        return self.alerts.fire(AlertLevel(level), "monitor", message, **extra)

    def series(self, metric: str, queue: str | None = None, since_seconds: float = 3600,
               buckets: int = 60) -> list[dict[str, Any]]:
        """``[{"t": bucket start, "value": v or None}]`` for charts, oldest first.

        Counter metrics (``throughput``, ``failed``/``failures``, ``succeeded``, ``retried``,
        ``canceled``) are sums of the per-minute counters in each bucket (buckets are at least a
        minute wide). Gauges (any of :data:`QUEUE_SERIES_FIELDS`, ``p95_wait`` …, or a
        :data:`SYSTEM_SERIES_FIELDS` name) take the largest recorded value in each bucket.
        ``queue`` None means every queue (counts summed, times and rates the maximum).
        """
        metric = METRIC_ALIASES.get(metric, metric)
        buckets = max(1, int(buckets))
        now = time.time()
        since_seconds = max(60.0, float(since_seconds))
        width = max(60.0, since_seconds / buckets) if metric in COUNTER_METRICS else since_seconds / buckets
        start = now - width * buckets
        values: list[float | None] = [None] * buckets

        def put(t: float, value: float | None, add: bool) -> None:
            if value is None:
                return
            index = min(buckets - 1, max(0, int((t - start) // width)))
            current = values[index]
            values[index] = value if current is None else (current + value if add else max(current, value))

        names = [queue] if queue else all_queue_names(self.settings)
        if metric in COUNTER_METRICS:
            fields = COUNTER_METRICS[metric]
            minutes = range(int(start // 60), int(now // 60) + 1)
            pipe = self.client.pipeline(transaction=False)
            for name in names:
                for minute in minutes:
                    pipe.hmget(self.jobs.stats_key(name, minute), *fields)
            rows = iter(pipe.execute())
            for _name in names:
                for minute in minutes:
                    row = next(rows)
                    put(max(minute * 60.0, start), float(sum(int(v or 0) for v in row)), True)
            return [{"t": round(start + i * width, 3), "value": 0.0 if v is None else v}
                    for i, v in enumerate(values)]
        if metric in SYSTEM_SERIES_FIELDS:
            sources, index = ["_system"], SYSTEM_SERIES_FIELDS.index(metric) + 1
        elif metric in QUEUE_SERIES_FIELDS:
            sources, index = names, QUEUE_SERIES_FIELDS.index(metric) + 1
        else:
            raise ValueError(f"unknown metric {metric!r}")
        additive = metric in ADDITIVE and len(sources) > 1
        for source in sources:
            per_bucket: dict[int, float] = {}
            for raw in self.client.zrangebyscore(self.keys.series(source), start, "+inf"):
                point = json.loads(raw)
                value = point[index] if index < len(point) else None
                if value is None:
                    continue
                slot = min(buckets - 1, max(0, int((point[0] - start) // width)))
                per_bucket[slot] = max(per_bucket.get(slot, value), value)
            for slot, value in per_bucket.items():
                put(start + slot * width, value, additive)
        return [{"t": round(start + i * width, 3), "value": v} for i, v in enumerate(values)]

    # --- the report (admin.py report) ---------------------------------------------------------

    def report(self, hours: float = 24) -> dict[str, Any]:
        """Throughput, failures by actor and error type, latency percentiles and alerts.

        Throughput and failure counts come from the per-minute counters (exact for the
        retention period); error types from the failed job records (kept ``QUEUE_FAILURE_TTL``);
        latency percentiles from the newest samples per queue (up to 1000 each) inside the
        window, plus each actor's all-time duration histogram. A window longer than the metrics
        are kept (``QUEUE_METRICS_RETENTION_DAYS``) is cut to it: there is nothing older to count.
        """
        if not math.isfinite(hours) or hours <= 0:
            raise ValueError(f"a report covers a positive number of hours, not {hours!r}")
        hours = min(hours, self.retention_seconds / 3600)
        now = time.time()
        since = now - hours * 3600
        minutes = range(int(since // 60), int(now // 60) + 1)
        queues = all_queue_names(self.settings)
        actors = sorted({field.split("|", 1)[0] for field in self.client.hkeys(self.jobs.totals_key())})
        outcomes = ("succeeded", "failed", "retried", "canceled", "refused")  # refused: among the failed

        def sum_rows(keys: list[str]) -> tuple[dict[str, int], dict[int, dict[str, int]]]:
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.hmget(key, *outcomes)
            total = dict.fromkeys(outcomes, 0)
            hourly: dict[int, dict[str, int]] = {}
            for minute, row in zip(minutes, pipe.execute(), strict=True):
                hour = int(minute * 60 // 3600 * 3600)
                bucket = hourly.setdefault(hour, dict.fromkeys(outcomes, 0))
                for name, value in zip(outcomes, row, strict=True):
                    total[name] += int(value or 0)
                    bucket[name] += int(value or 0)
            return total, hourly

        by_queue, per_hour = {}, {}
        for queue in queues:
            by_queue[queue], hourly = sum_rows([self.jobs.stats_key(queue, m) for m in minutes])
            for hour, row in hourly.items():
                target = per_hour.setdefault(hour, dict.fromkeys(outcomes, 0))
                for name in outcomes:
                    target[name] += row[name]
        by_actor = {actor: sum_rows([self.jobs.actor_stats_key(actor, m) for m in minutes])[0] for actor in actors}
        total = {name: sum(q[name] for q in by_queue.values()) for name in outcomes}
        finished = total["succeeded"] + total["failed"]

        by_type: dict[str, int] = {}
        by_actor_type: dict[str, dict[str, int]] = {}
        recent_failures = []
        offset = 0
        while offset < self.jobs.index_limit:
            records, _ = self.jobs.list_jobs(status="failed", offset=offset, limit=500)
            if not records:
                break
            for record in records:
                if (record.finished_at or record.enqueued_at or 0) < since:
                    continue
                kind = (record.error or {}).get("type") or "unknown"
                by_type[kind] = by_type.get(kind, 0) + 1
                per = by_actor_type.setdefault(record.actor, {})
                per[kind] = per.get(kind, 0) + 1
                if len(recent_failures) < 20:
                    err = record.error or {}
                    recent_failures.append({"id": record.id, "actor": record.actor, "queue": record.queue,
                                            "type": kind, "code": err.get("code"),
                                            "message": str(err.get("message", ""))[:300],
                                            "finished_at": record.finished_at, "attempts": record.attempts})
            offset += len(records)

        latency = {}
        for queue in queues:
            waits, runs = [], []
            for _, wait, run, outcome in self._samples(queue, since):
                runs.append(max(0.0, float(run)))
                if outcome != "retried":
                    waits.append(max(0.0, float(wait)))
            latency[queue] = {"wait": _distribution(waits), "run": _distribution(runs)}
        histograms = {}
        for actor in actors:
            raw = self.client.hgetall(self.jobs.histogram_key(actor))
            if raw:
                histograms[actor] = _histogram_summary(raw)

        found = self.alerts.recent(hours, limit=5000)
        by_level: dict[str, int] = {}
        for alert in found:
            if alert.state != "resolved":
                by_level[alert.level] = by_level.get(alert.level, 0) + 1
        return {
            "generated_at": now, "window_hours": hours, "since": since,
            "throughput": {
                "total": {**total, "finished": finished, "per_hour": round(finished / hours, 2)},
                "by_queue": by_queue, "by_actor": by_actor,
                "hourly": [{"hour": hour, **row} for hour, row in sorted(per_hour.items())],
            },
            "failures": {
                # Refused for the request itself (a mistyped nickname, a cancelled match): the
                # users' doing, counted among the failed but left out of the rate, as the alert rule does.
                "total": total["failed"], "refused": total["refused"],
                "rate": _round(system_failure_rate(total["failed"], total["refused"], finished), 4),
                "by_actor": {actor: row["failed"] for actor, row in by_actor.items() if row["failed"]},
                "by_error_type": dict(sorted(by_type.items(), key=lambda kv: -kv[1])),
                "by_actor_and_type": by_actor_type, "recent": recent_failures,
            },
            "latency": {"by_queue": latency, "by_actor_histogram": histograms},
            "alerts": {"count": len(found), "by_level": by_level,
                       "open": [a.to_dict() for a in self.alerts.open_alerts()],
                       "items": [a.to_dict() for a in found[:500]]},
            "health": self.get_system_health_summary(),
            "notes": [
                "throughput and failure counts: per-minute counters "
                f"(kept {self.settings.queue_metrics_retention_days:g} days)",
                f"error types: failed job records (kept {self.settings.queue_failure_ttl} s)",
                "latency percentiles: newest samples per queue (up to 1000) inside the window",
            ],
        }

    # --- housekeeping -------------------------------------------------------------------------

    def retention_cleanup(self, batch: int = 500) -> dict[str, int]:
        """Prune ids of expired job records from the job indexes and trim metric series and the
        alert log (its own trims, :meth:`~queues.alerts.AlertStore.trim_log_now`).

        Per-minute counters, samples and job records expire by TTL; indexes and series are
        bounded but only pruned when read, so a daily sweep keeps them lean.
        """
        now = time.time()
        pruned = indexes = trimmed = unfinished = 0
        for key in self.client.scan_iter(match=self.jobs.index_key("*"), count=500):
            if self.client.type(key) != "zset":
                continue
            indexes += 1
            before = self.client.zcard(key)
            self.client.hdel(self.jobs.index_key("prune-cursor"), key)  # a whole pass, from the oldest id
            # The counts' bounded step, to the end: every id, whatever its age. A pass stops early
            # when its place is not kept (a Redis full under noeviction refuses the cursor's write:
            # every next step would read the same ids), and after the steps a whole pass of the
            # index as it was takes (one that grows faster than it is gone over).
            for _ in range(before // max(1, batch) + 2):
                [(size, done, kept)] = self.jobs.prune_step([key], [float("inf")], batch)
                if done or not kept:
                    break
            if not done:
                unfinished += 1
            pruned += max(0, before - size)
        for key in self.client.scan_iter(match=self.keys.series_pattern, count=100):
            trimmed += int(self.client.zremrangebyscore(key, 0, now - self.retention_seconds))
            trimmed += int(self.client.zremrangebyrank(key, 0, -(SERIES_MAX_POINTS + 1)))
        trimmed += self.alerts.trim_log_now()
        logger.info("retention: pruned %d expired ids from %d indexes, trimmed %d points", pruned, indexes,
                    trimmed)
        if unfinished:
            logger.warning("retention: %d indexes not gone over whole (their place could not be kept: is Redis "
                           "full?); the next run goes over them again", unfinished)
        return {"pruned_ids": pruned, "indexes": indexes, "trimmed_points": trimmed, "unfinished_indexes": unfinished}


_monitor: QueueMonitor | None = None
_monitor_pid: int | None = None
_monitor_lock = threading.Lock()


def get_queue_monitor() -> QueueMonitor:
    """The process-wide monitor (built on first use; rebuilt after a fork)."""
    global _monitor, _monitor_pid
    with _monitor_lock:
        if _monitor is None or _monitor_pid != os.getpid():
            _monitor = QueueMonitor()
            _monitor_pid = os.getpid()
        return _monitor


def reset_queue_monitor() -> None:
    """Forget the process-wide monitor (tests that change settings call this)."""
    global _monitor
    with _monitor_lock:
        _monitor = None


def _distribution(values: list[float]) -> dict[str, Any]:
    return {"count": len(values), "p50": _round(percentile(values, 50)), "p90": _round(percentile(values, 90)),
            "p95": _round(percentile(values, 95)), "p99": _round(percentile(values, 99)),
            "max": _round(max(values) if values else None)}


def _histogram_summary(raw: dict[str, str]) -> dict[str, Any]:
    """An actor's all-time duration histogram, with percentiles estimated as bucket upper bounds."""
    buckets = sorted(((float(k) if k != "+Inf" else math.inf), int(v)) for k, v in raw.items() if k != "sum")
    count = sum(n for _, n in buckets)

    def estimate(pct: float) -> float | None:
        if not count:
            return None
        rank, seen = pct / 100 * count, 0
        for bound, n in buckets:
            seen += n
            if seen >= rank:
                return None if math.isinf(bound) else bound
        return None

    return {"count": count, "sum": _round(float(raw.get("sum", 0))),
            "buckets": {("+Inf" if math.isinf(b) else f"{b:g}"): n for b, n in buckets},
            "p50_le": estimate(50), "p95_le": estimate(95), "p99_le": estimate(99)}

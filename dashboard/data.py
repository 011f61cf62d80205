"""Everything the pages and the JSON API show or do, as plain JSON-ready dicts.

One method per view or action, synchronous (sync Redis); the web handlers call them in a
thread. Pages and ``/api/`` share these methods, so the API shows exactly what the pages show.
Every record passes through the redactor before it leaves.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass, replace
from typing import Any

import redis

from dashboard.monitor import METRICS, RANGES, ChartRange, Figures
from queues.alerts import LEVELS, STATES, AlertStore
from queues.errors import UnknownJobError
from queues.jobids import job_ref
from queues.jobstore import ACTIVE_STATUSES, ALL_STATUSES, JobRecord, JobStore
from queues.manager import QueueManager
from queues.priorities import all_queue_names
from queues.redaction import Redactor, redactor_for

logger = logging.getLogger(__name__)

PER_PAGE_DEFAULT = 25
PER_PAGE_MAX = 200
#: The highest page asked for that is read (Redis takes offsets below 2**63; no index is that long).
MAX_PAGE = 1_000_000
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_ACTOR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")


class ActionError(Exception):
    """An action that cannot be done: ``status`` is the HTTP status, ``code`` a stable name."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class BadFilter(ValueError):
    """A filter value that cannot be right (a user id that is not a number...)."""


@dataclass(frozen=True)
class JobFilters:
    status: str | None = None
    queue: str | None = None
    actor: str | None = None
    user: int | None = None
    page: int = 1
    per_page: int = PER_PAGE_DEFAULT

    @classmethod
    def parse(cls, query: Any, queues: list[str]) -> JobFilters:
        """From query parameters; unknown values raise :class:`BadFilter`."""
        def text(name: str) -> str | None:
            value = (query.get(name) or "").strip()
            return value or None

        status, queue, actor, user = text("status"), text("queue"), text("actor"), text("user")
        if status is not None and status not in ALL_STATUSES:
            raise BadFilter(f"unknown status {status!r}")
        if queue is not None and queue not in queues:
            raise BadFilter(f"unknown queue {queue!r}")
        if actor is not None and not _ACTOR.match(actor):
            raise BadFilter("an actor name is letters, digits and underscores")
        try:
            user_id = int(user) if user is not None else None
            page = min(MAX_PAGE, max(1, int(text("page") or 1)))
            per_page = min(PER_PAGE_MAX, max(1, int(text("per_page") or PER_PAGE_DEFAULT)))
        except ValueError:
            raise BadFilter("user, page and per_page are whole numbers") from None
        return cls(status, queue, actor, user_id, page, per_page)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def query(self, **changes: Any) -> dict[str, str]:
        """Query parameters of this filter with ``changes`` (for links: pages, sorting)."""
        values = {**self.to_dict(), **changes}
        if values.get("per_page") == PER_PAGE_DEFAULT:
            values.pop("per_page")
        if values.get("page") == 1:
            values.pop("page")
        return {k: str(v) for k, v in values.items() if v not in (None, "")}


#: What :meth:`QueueManager.cancel_job` answers when this cancel did something: the job will not
#: run (``canceled``) or stops at its next await (``canceling``). Any other answer is a job that
#: had already ended.
CANCEL_OUTCOMES = ("canceled", "canceling")


def job_actions(record: JobRecord) -> list[str]:
    """Which buttons a job gets: retry (failed), requeue (canceled), cancel (active)."""
    if record.status == "failed":
        return ["retry"]
    if record.status == "canceled":
        return ["requeue"]
    if record.status in ACTIVE_STATUSES and not record.cancel_requested:
        return ["cancel"]
    return []


class DashboardData:
    """Reads and actions over the job store, the queues, workers and alerts."""

    def __init__(self, settings: Any, manager: QueueManager, store: JobStore, alerts: AlertStore,
                 figures: Figures | None = None, redactor: Redactor | None = None) -> None:
        self.settings = settings
        self.manager = manager
        self.store = store
        self.alerts = alerts
        self.figures = figures or Figures(store, settings)
        self.redactor = redactor or redactor_for(settings)

    @property
    def queue_names(self) -> list[str]:
        return all_queue_names(self.settings)

    # --- summaries ------------------------------------------------------------------------

    def job_summary(self, record: JobRecord) -> dict[str, Any]:
        """The short form used in lists."""
        error = record.error or {}
        duration = None
        if record.started_at and record.finished_at:
            duration = max(0.0, record.finished_at - record.started_at)
        wait = None
        if record.enqueued_at and record.first_started_at:
            wait = max(0.0, record.first_started_at - record.enqueued_at)
        return self.redactor.redact({
            "id": record.id, "actor": record.actor, "queue": record.queue, "status": record.status,
            "enqueued_at": record.enqueued_at, "started_at": record.started_at,
            "finished_at": record.finished_at, "attempts": record.attempts,
            "duration": duration, "wait": wait, "user_ids": record.user_ids,
            "progress": (record.progress or {}).get("percent") if record.progress else None,
            "error": (f"{error.get('type', 'Error')}: {error.get('message', '')}"[:200] if error else None),
            "cancel_requested": record.cancel_requested,
        })

    def job_detail(self, record: JobRecord) -> dict[str, Any]:
        detail = self.redactor.redact(record.to_dict())
        detail["summary"] = self.job_summary(record)
        detail["actions"] = job_actions(record)
        detail["is_final"] = record.is_final
        detail["requeued_at"] = float(record.raw["requeued_at"]) if record.raw.get("requeued_at") else None
        return detail

    # --- queues ---------------------------------------------------------------------------

    def queues(self) -> list[dict[str, Any]]:
        """Every queue: depth figures from the broker, rates from the job store.

        RabbitMQ unreachable: the depth figures are None (unknown, shown as such, never 0) and
        each row carries ``broker_error``, which the health score and the pages report."""
        stats, broker_error = self.manager.queue_stats_known()
        rows = []
        for name in self.queue_names:
            figures = self.figures.local.queue_figures(name)
            row = {**stats[name].to_dict(), **figures}
            row["broker"] = self.settings.broker
            row["broker_error"] = broker_error
            rows.append(row)
        return rows

    def queue(self, name: str) -> dict[str, Any]:
        if name not in self.queue_names:
            raise ActionError(404, "unknown_queue", f"no queue named {name!r}")
        return next(q for q in self.queues() if q["name"] == name)

    # --- overview -------------------------------------------------------------------------

    def health(self, queues: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        redis_ok = self.redis_ok()
        if not redis_ok:
            return self.figures.health({}, [], redis_ok=False)
        queues = queues if queues is not None else self.queues()
        open_alerts = [a.to_dict() for a in self.alerts.open_alerts()]
        return self.figures.health({q["name"]: q for q in queues}, open_alerts)

    def redis_ok(self) -> bool:
        try:
            return bool(self.store.client.ping())
        except redis.RedisError:
            return False

    def overview(self, chart_range: str = "hour") -> dict[str, Any]:
        queues = self.queues()
        health = self.health(queues)
        failed, failed_total = self.store.list_jobs(status="failed", limit=8)
        return {
            "generated_at": time.time(),
            "health": health,
            "queues": queues,
            "counts": self.store.count_by_status(),
            "recent_failures": [self.job_summary(r) for r in failed],
            "failed_total": failed_total,
            "open_alerts": len(self.alerts.open_alerts()),
            "workers": len(self.manager.worker_registry().workers()),
            "range": chart_range,
            "charts": self.charts(chart_range),
        }

    def charts(self, chart_range: str) -> dict[str, dict[str, list[tuple[float, float | None]]]]:
        chart = self.chart_range(chart_range)
        return {
            metric: {queue: self.figures.series(metric, queue, chart) for queue in self.queue_names}
            for metric in ("throughput", "failures", "wait_p95")
        }

    @staticmethod
    def chart_range(name: str) -> ChartRange:
        try:
            return RANGES[name]
        except KeyError:
            raise BadFilter(f"range is one of {', '.join(RANGES)}") from None

    def series(self, metric: str, queue: str, chart_range: str) -> list[tuple[float, float | None]]:
        if metric not in METRICS:  # first: a bad metric is the mistake to name, whatever the queue
            raise BadFilter(f"unknown metric {metric!r}: one of {', '.join(METRICS)}")
        if not queue:
            raise BadFilter(f"queue is required: one of {', '.join(self.queue_names)}")
        if queue not in self.queue_names:
            raise BadFilter(f"unknown queue {queue!r}: one of {', '.join(self.queue_names)}")
        try:
            return self.figures.series(metric, queue, self.chart_range(chart_range))
        except ValueError as exc:
            raise BadFilter(str(exc)) from None

    # --- jobs -----------------------------------------------------------------------------

    def jobs(self, filters: JobFilters) -> dict[str, Any]:
        """One page of the jobs ``filters`` select; a page past the end shows the last one."""
        records, total = self._jobs_page(filters)
        pages = max(1, math.ceil(total / filters.per_page))
        if filters.page > pages:
            filters = replace(filters, page=pages)
            records, total = self._jobs_page(filters)
            pages = max(1, math.ceil(total / filters.per_page))
        return {
            "jobs": [self.job_summary(r) for r in records],
            "total": total, "page": filters.page, "per_page": filters.per_page, "pages": pages,
            "filters": filters.to_dict(),
        }

    def _jobs_page(self, filters: JobFilters) -> tuple[list[Any], int]:
        return self.store.list_jobs(
            status=filters.status, queue=filters.queue, actor=filters.actor, user_id=filters.user,
            offset=(filters.page - 1) * filters.per_page, limit=filters.per_page,
        )

    def check_actor(self, actor: str) -> None:
        """Raise :class:`BadFilter` naming the known actors unless ``actor`` is declared here or
        has jobs on record: a misspelt filter must not look like "no jobs" (status and queue
        filters are refused the same way)."""
        declared = set(self.manager.broker.get_declared_actors())
        if actor in declared or self.store.client.exists(self.store.index_key("actor", actor)):
            return
        known = sorted(declared | set(self.known_actors()))
        raise BadFilter(f"unknown actor {actor!r}: one of {', '.join(known)}")

    def known_actors(self) -> list[str]:
        """Actors that ever finished a job here (from the outcome totals), for the filter list."""
        fields = self.store.client.hkeys(self.store.totals_key())
        return sorted({f.split("|", 1)[0] for f in fields if "|" in f})

    def job(self, job_id: str) -> dict[str, Any] | None:
        """The job ``job_id`` (as :meth:`find`), or None."""
        record = self.find(job_id)
        return self.job_detail(record) if record is not None else None

    def find(self, job_id: str) -> JobRecord | None:
        """The job ``job_id``, or the one job whose id starts with it (8 characters or more, as the
        lists show them, read as the bot and admin.py read a typed id); None when there is none,
        or several. The page, the JSON API and the actions all find a job this way."""
        ref = job_ref(job_id or "")
        if ref is None:  # not a job id as users type one: a record key all the same (one read)
            return self.store.get(job_id) if _JOB_ID.match(job_id or "") else None
        found = self.store.ids_named(ref)
        return self.store.get(found[0]) if len(found) == 1 else None

    # --- workers and alerts ---------------------------------------------------------------

    @property
    def heartbeat_late_after(self) -> float:
        """Seconds after which a worker's last heartbeat is late: it missed one. A worker beats
        every ``QUEUE_MAINTENANCE_INTERVAL``, so a healthy one's age runs up to that interval (plus
        a busy moment); twice it means a whole beat did not come.

        Never past the middle between one interval and ``QUEUE_HEARTBEAT_TIMEOUT``: a worker whose
        last beat is older than the timeout is no longer listed, so with an interval of half the
        timeout or more, twice the interval would come too late for the mark ever to show.
        (``timeout - interval`` would be earlier still, but below one interval once the interval
        is past a third of the timeout: every healthy worker would be marked between beats.)"""
        interval = float(self.settings.queue_maintenance_interval)
        timeout = float(self.settings.queue_heartbeat_timeout)
        return min(2 * interval, (interval + timeout) / 2)

    def workers(self) -> list[dict[str, Any]]:
        """The live workers; ``heartbeat_late`` marks one past :attr:`heartbeat_late_after`."""
        now = time.time()
        late_after = self.heartbeat_late_after
        rows = []
        for worker in sorted(self.manager.worker_registry().workers(), key=lambda w: (w.host, w.pid)):
            row = worker.to_dict()
            row["heartbeat_age"] = max(0.0, now - worker.last_heartbeat)
            row["heartbeat_late"] = row["heartbeat_age"] > late_after
            row["uptime"] = max(0.0, now - worker.started_at)
            rows.append(row)
        return rows

    def alert_list(self, level: str | None = None, state: str | None = None, hours: float = 24,
                   limit: int = 500) -> dict[str, Any]:
        if level is not None and level not in LEVELS:
            raise BadFilter(f"level is one of {', '.join(LEVELS)}")
        if state is not None and state not in STATES:
            raise BadFilter(f"state is {' or '.join(STATES)}")
        if not 0 < hours <= 24 * 31:
            raise BadFilter("hours is between 0 and 744")
        # Filtered by the store before the limit: 500 newer fired alerts must not hide the
        # resolved ones behind them (see AlertStore.recent for how a notice's level is judged).
        history = [a.to_dict() for a in self.alerts.recent(hours, level=level, state=state, limit=limit)]
        open_alerts = sorted((a.to_dict() for a in self.alerts.open_alerts()),
                             key=lambda a: a.get("time", 0), reverse=True)
        return {
            "alerts": self.redactor.redact(history),
            "open": self.redactor.redact(open_alerts),
            "filters": {"level": level, "state": state, "hours": hours},
        }

    # --- actions --------------------------------------------------------------------------

    def _record_or_404(self, job_id: str) -> JobRecord:
        record = self.find(job_id)
        if record is None:
            raise ActionError(404, "unknown_job", f"no job {job_id}")
        return record

    def retry_job(self, job_id: str) -> dict[str, Any]:
        """Send a failed job again with fresh counters."""
        record = self._record_or_404(job_id)
        if record.status != "failed":
            raise ActionError(409, "not_failed", f"job {job_id} is {record.status}: only a failed job can be retried")
        return self._requeue(record, "retried")

    def requeue_job(self, job_id: str) -> dict[str, Any]:
        """Send a canceled (or failed) job again."""
        record = self._record_or_404(job_id)
        if record.status not in ("failed", "canceled"):
            raise ActionError(409, "not_dead",
                              f"job {job_id} is {record.status}: only a canceled or failed job can be requeued")
        return self._requeue(record, "requeued")

    def _requeue(self, record: JobRecord, verb: str) -> dict[str, Any]:
        try:
            done = self.manager.requeue_failed(job_id=record.id)
        except UnknownJobError:
            raise ActionError(404, "unknown_job", f"no job {record.id}") from None
        if record.id not in done:
            raise ActionError(409, "changed", f"job {record.id} changed meanwhile; nothing was sent")
        logger.info("dashboard: job %s %s", record.id, verb)
        return {"ok": True, "job_id": record.id, "outcome": verb, "status": self.store.status(record.id)}

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        record = self._record_or_404(job_id)
        job_id = record.id  # the whole id of a start typed
        try:
            outcome = self.manager.cancel_job(job_id)
        except UnknownJobError:
            raise ActionError(404, "unknown_job", f"no job {job_id}") from None
        if outcome not in CANCEL_OUTCOMES:
            # It was not active (or ended since the read above): the cancel, which alone is atomic,
            # answered the status it found (or ``already_canceled``), and nothing was canceled.
            ended = "canceled" if outcome == "already_canceled" else outcome
            raise ActionError(409, "not_active", f"job {job_id} is {ended}: nothing to cancel")
        logger.info("dashboard: job %s %s", job_id, outcome)
        return {"ok": True, "job_id": job_id, "outcome": outcome, "status": self.store.status(job_id)}

    def check_queue(self, name: str) -> None:
        """Raise the 404 of an action on a queue that does not exist."""
        if name not in self.queue_names:
            raise ActionError(404, "unknown_queue", f"no queue named {name!r}")

    def empty_queue(self, name: str) -> dict[str, Any]:
        self.check_queue(name)
        cleared, canceled = self.manager.clear_and_cancel(name)
        logger.info("dashboard: queue %s emptied (%s messages, %s job records canceled)", name,
                    cleared.get(name, 0), canceled)
        return {"ok": True, "queue": name, "cleared": cleared.get(name, 0), "jobs_canceled": canceled}

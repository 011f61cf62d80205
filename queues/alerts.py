"""The alert log in Redis and the sinks alerts go to.

An alert is one JSON object: ``id, level (info|warning|error|critical), source, message,
job_id, rule, subject, time, state (fired|resolved)``. Every alert is appended to a sorted set
scored by time, trimmed to ``QUEUE_METRICS_RETENTION_DAYS`` and to the newest
:data:`ALERT_LOG_MAX` entries (one per failed job: a day-long FACEIT outage at scale writes
about 10^5, which time alone would keep for the whole retention). Condition alerts (from the
monitor's rules) carry a ``rule`` and ``subject``: they fire once per window while the condition
holds (de-duplicated) and are resolved, with a notice, when it clears (the monitor's rules by
the monitor; a worker's ``telegram_not_configured`` by that host's next delivery that sends).
An open condition alert lives no longer than the log's retention: one not fired again within it
is dropped from the open set when that is read. Event alerts (a job that finally failed) carry
the job id and fire once per job.

Sinks receive every alert that was written; a sink that fails is logged and counted, never
allowed to break the caller (a worker finishing a job, the monitor's tick).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import redis


class AlertLevel(StrEnum):
    """An alert's level. A ``str`` (``AlertLevel.ERROR == "error"``, written to JSON as
    ``"error"``), so plain strings work wherever a level is taken; ``alert.level.value`` is the
    first version's way to read one."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


LEVELS = tuple(level.value for level in AlertLevel)  # lowest first
STATES = ("fired", "resolved")

#: The most entries the alert log keeps (the newest; older ones go when an alert is added),
#: whatever their age: about 10 MB of JSON, weeks of a normal run's alerts.
ALERT_LOG_MAX = 20_000

logger = logging.getLogger(__name__)


@dataclass
class Alert:
    level: str
    source: str
    message: str
    job_id: str | None = None
    rule: str | None = None
    subject: str | None = None
    time: float = field(default_factory=time.time)
    state: str = "fired"
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A level this version knows is an AlertLevel (one a newer version wrote stays as read).
        if self.level in LEVELS:
            self.level = AlertLevel(self.level)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def judged_level(self) -> str:
        """The level a filter judges this alert at (``admin.py alerts --level``, the dashboard, the
        monitor's reads): its own, except for a resolve notice. A notice is written at ``info``
        whatever it closes, so it counts at the level of the alert it resolves (``opened_level``,
        which :meth:`resolved` records): "warning and above" then lists the news that a warning is
        over. A level this version does not know counts as the lowest."""
        opened = (self.details or {}).get("opened_level") if self.state == "resolved" else None
        level = opened if opened in LEVELS else self.level
        return level if level in LEVELS else LEVELS[0]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def resolved(self, message: str | None = None, **details: Any) -> Alert:
        """The resolve notice of this condition alert (its details kept, so a reader can tell the
        condition again in another language)."""
        return Alert(level="info", source=self.source, rule=self.rule, subject=self.subject or "-",
                     state="resolved", message=message or f"resolved: {self.message}",
                     details={"opened_at": self.time, "opened_level": self.level, "opened_details": self.details,
                              **details})


def at_or_above(level: str, floor: str | None) -> bool:
    """Whether ``level`` is ``floor`` or above (every level when ``floor`` is None): the one
    comparison of levels every filter makes. A level this version does not know is the lowest."""
    if floor is None:
        return True
    return LEVELS.index(level if level in LEVELS else LEVELS[0]) >= LEVELS.index(floor)


class AlertSink(Protocol):
    """Something that hears about alerts (the log, Sentry, Telegram admins)."""

    name: str

    def send(self, alert: Alert) -> None: ...


class LogSink:
    """Writes each alert as one log line at the matching level."""

    name = "log"
    _levels = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
               "critical": logging.CRITICAL}

    def send(self, alert: Alert) -> None:
        from queues.sentry import scrub

        logging.getLogger("faceit_bot.alerts").log(
            self._levels.get(alert.level, logging.WARNING),
            "alert %s [%s] %s: %s%s",
            alert.state, alert.level, alert.source, scrub(alert.message),
            f" (job {alert.job_id})" if alert.job_id else "",
        )


class AlertStore:
    """Writes alerts to Redis and fans them out to ``sinks``."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "fb:",
        retention_seconds: float = 7 * 86400,
        dedupe_window: float = 3600,
        sinks: list[AlertSink] | None = None,
        log_max: int | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.retention_seconds = retention_seconds
        #: The log's cap by count (:data:`ALERT_LOG_MAX` unless given).
        self.log_max = max(1, int(ALERT_LOG_MAX if log_max is None else log_max))
        self.dedupe_window = dedupe_window
        self.sinks: list[AlertSink] = [LogSink()] if sinks is None else sinks
        self.sink_failures = 0

    @classmethod
    def from_settings(cls, client: redis.Redis, settings: Any, sinks: list[AlertSink] | None = None
                      ) -> AlertStore:
        return cls(
            client,
            prefix=settings.redis_key_prefix,
            retention_seconds=settings.queue_metrics_retention_days * 86400,
            dedupe_window=settings.alert_dedupe_window,
            sinks=sinks,
        )

    # keys
    @property
    def log_key(self) -> str:
        return f"{self.prefix}alerts:log"

    @property
    def open_key(self) -> str:
        return f"{self.prefix}alerts:open"

    def dedupe_key(self, rule: str, subject: str) -> str:
        return f"{self.prefix}alerts:dedupe:{rule}:{subject}"

    # writing
    def emit(self, alert: Alert) -> bool:
        """Record and send ``alert``; returns False when it was a duplicate and was dropped."""
        if alert.level not in LEVELS:
            raise ValueError(f"unknown alert level {alert.level!r}")
        if alert.rule:
            subject = alert.subject or "-"
            fresh = self.client.set(self.dedupe_key(alert.rule, subject), alert.id, nx=True,
                                    ex=max(1, int(self.dedupe_window)))
            if not fresh:
                return False
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(self.open_key, f"{alert.rule}|{subject}", json.dumps(alert.to_dict()))
            pipe.expire(self.open_key, int(self.retention_seconds) + 60)  # as the log: no key lives for ever
            pipe.execute()
        self._append(alert)
        self._fan_out(alert)
        return True

    def fire(self, level: str, source: str, message: str, **extra: Any) -> bool:
        return self.emit(Alert(level=level, source=source, message=message, **extra))

    def resolve(self, rule: str, subject: str | None = None, message: str | None = None) -> bool:
        """Close an open condition alert and send a resolve notice; False if none was open."""
        subject = subject or "-"
        raw = self.client.hget(self.open_key, f"{rule}|{subject}")
        if raw is None:
            return False
        if not self.client.hdel(self.open_key, f"{rule}|{subject}"):
            return False  # another process resolved it just now: one notice, not one per process
        self.client.delete(self.dedupe_key(rule, subject))
        notice = Alert.from_dict(json.loads(raw)).resolved(message)
        self._append(notice)
        self._fan_out(notice)
        return True

    def _append(self, alert: Alert) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(self.log_key, {json.dumps(alert.to_dict()): alert.time})
        self.trim_log(pipe)
        pipe.execute()

    def trim_log(self, pipe: Any) -> None:
        """Queue on ``pipe`` the log's trims: entries older than the retention, then all but the
        newest :attr:`log_max` (a storm of failed jobs must not grow it for the whole retention),
        and its TTL. Cheap: each trim removes only what is over."""
        pipe.zremrangebyscore(self.log_key, 0, time.time() - self.retention_seconds)
        pipe.zremrangebyrank(self.log_key, 0, -(self.log_max + 1))
        pipe.expire(self.log_key, int(self.retention_seconds) + 60)

    def trim_log_now(self) -> int:
        """Run :meth:`trim_log`'s trims now (the monitor's retention sweep, for a log that grew
        past them: an older version wrote it); returns how many entries went."""
        pipe = self.client.pipeline(transaction=False)
        self.trim_log(pipe)
        by_age, by_count, _ = pipe.execute()
        return int(by_age) + int(by_count)

    def _fan_out(self, alert: Alert) -> None:
        for sink in self.sinks:
            try:
                sink.send(alert)
            except Exception:  # a sink must never break the caller
                self.sink_failures += 1
                logger.exception("alert sink %s failed", getattr(sink, "name", sink))

    # reading
    def recent(self, hours: float = 24, *, level: str | None = None, state: str | None = None,
               limit: int = 1000) -> list[Alert]:
        """Alerts of the last ``hours``, newest first: only those at ``level`` or above (judged
        by :attr:`Alert.judged_level`, so a resolve notice counts at the level it resolves) and
        in ``state`` (``fired`` or ``resolved``) when given; at most ``limit`` of them, counted
        after both filters (alerts they leave out do not take the places)."""
        if level is not None and level not in LEVELS:
            raise ValueError(f"unknown alert level {level!r}")
        since = time.time() - hours * 3600
        alerts: list[Alert] = []
        start, page = 0, max(limit, 200)
        while len(alerts) < limit:
            raw = self.client.zrevrangebyscore(self.log_key, "+inf", since, start=start, num=page)
            for item in raw:
                alert = Alert.from_dict(json.loads(item))
                if (state is None or alert.state == state) and at_or_above(alert.judged_level, level):
                    alerts.append(alert)
            if len(raw) < page:
                break
            start += page
        return alerts[:limit]

    def open_alerts(self) -> list[Alert]:
        """The condition alerts open now.

        One not fired again within the log's retention is dropped here (and from Redis): a
        condition that still holds fires again every dedupe window, which refreshes its entry,
        so an older one is a condition nothing resolved (a rule no longer evaluated, a host gone)
        and must not keep ``alerts --open`` failing after its log entry is gone."""
        oldest = time.time() - self.retention_seconds
        alerts: list[Alert] = []
        stale: list[Any] = []
        for key, value in self.client.hgetall(self.open_key).items():
            alert = Alert.from_dict(json.loads(value))
            if alert.time < oldest:
                stale.append(key)
            else:
                alerts.append(alert)
        if stale:
            self.client.hdel(self.open_key, *stale)
            logger.info("open alerts older than the retention dropped: %s", ", ".join(map(str, stale)))
        return alerts

"""The monitor's alert rules and health-score deductions, as pure functions of one snapshot.

A snapshot (built by :mod:`queues.monitoring`) is plain data; :func:`evaluate` turns it into
:class:`Finding` objects. A finding with ``alert=True`` is a condition alert (fired once per
rule and subject while it holds, resolved when it clears); every finding lowers the health
score by ``score_lost``. Keeping both in one place means the score and the alerts never
disagree about what is wrong.

Health-score deductions (the score starts at 100 and is clamped to 0–100):

======================  ========  ======  ==========  =============================================
rule                    level     alert   deduction   when
======================  ========  ======  ==========  =============================================
redis_unreachable       critical  yes     100         Redis does not answer (nothing else is known)
redis_full              critical  yes*    50          Redis refuses writes: used memory reached
                                                      ``maxmemory`` under ``noeviction`` (or a write
                                                      of the tick was refused); nothing can be queued
broker_unreachable      critical  yes     50          RabbitMQ does not answer: nothing can be queued
                                                      or consumed, and the queues' depth is unknown
no_workers              critical  yes     25 / queue  jobs wait in a queue no live worker consumes
faceit_auth             critical  yes     25          FACEIT refused our API key in the window, or
                                                      calls failed unsent: FACEIT_API_KEY is not set
failure_rate            error     yes     20 / queue  failed / finished > ALERT_FAILURE_RATE, not counting
                                                      jobs refused for their request (users' mistakes)
                                                      (at least ``failure_min_jobs`` finished)
stale_jobs              error     yes     15 / queue  the oldest waiting job is older than
                                                      ALERT_QUEUED_MAX_AGE (1 h)
redis_memory            warning   yes     15          used memory > ALERT_REDIS_MEMORY_SHARE of
                                                      ``maxmemory`` (when a maxmemory is set)
redis_eviction          warning   yes     10          Redis's ``maxmemory-policy`` is not
                                                      ``noeviction`` and a ``maxmemory`` is set: at
                                                      it Redis deletes keys (job records, delivery
                                                      marks, subscriptions, queued messages)
                                                      instead of refusing writes (with maxmemory 0,
                                                      no limit, it never evicts, whatever the policy)
queue_depth             warning   yes     10 / queue  waiting jobs > ALERT_DEPTH_<PRIORITY>
wait_time               warning   yes     10 / queue  max(p95 wait, oldest waiting age) >
                                                      ALERT_WAIT_<PRIORITY>
faceit_rate_limit       warning   yes     10          FACEIT 429s in the last interval (whole
                                                      minutes) ≥ ALERT_RATE_LIMIT_STORM
idle_queue              info      no      5 / queue   no live worker consumes an empty queue
dead_letters            info      no      5           dead-lettered messages exist (any queue)
monitor_stale           info      no      5           the monitor has not recorded a snapshot
                                                      for 3 intervals (scheduler not running?)
======================  ========  ======  ==========  =============================================

Marked yes*: ``redis_full`` is alerted by the monitor itself, straight to the sinks, once per episode: while
Redis refuses writes no alert can be stored (:mod:`queues.monitoring`). ``redis_unreachable`` is
sent the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from queues.alerts import Alert
from queues.health_texts import describe

ALERT_RULES = (
    "redis_unreachable", "broker_unreachable", "no_workers", "faceit_auth", "failure_rate", "stale_jobs", "redis_memory",
    "redis_eviction", "queue_depth", "wait_time", "faceit_rate_limit",
)
QUEUE_RULES = ("no_workers", "failure_rate", "stale_jobs", "queue_depth", "wait_time", "idle_queue")
DEDUCTIONS = {
    "redis_unreachable": 100, "redis_full": 50, "broker_unreachable": 50, "no_workers": 25, "faceit_auth": 25, "failure_rate": 20, "stale_jobs": 15,
    "redis_memory": 15, "redis_eviction": 10, "queue_depth": 10, "wait_time": 10, "faceit_rate_limit": 10,
    "idle_queue": 5, "dead_letters": 5, "monitor_stale": 5,
}
LEVELS = {
    "redis_unreachable": "critical", "redis_full": "critical", "broker_unreachable": "critical",
    "no_workers": "critical", "faceit_auth": "critical",
    "failure_rate": "error", "stale_jobs": "error", "redis_memory": "warning", "redis_eviction": "warning",
    "queue_depth": "warning",
    "wait_time": "warning", "faceit_rate_limit": "warning", "idle_queue": "info", "dead_letters": "info",
    "monitor_stale": "info",
}
SOURCES = {"faceit_auth": "faceit", "faceit_rate_limit": "faceit", "redis_unreachable": "redis", "redis_full": "redis",
           "redis_memory": "redis", "redis_eviction": "redis", "broker_unreachable": "broker"}
GLOBAL_SUBJECT = "-"
#: The only ``maxmemory-policy`` under which Redis never deletes our keys: at ``maxmemory`` it
#: refuses writes (rule ``redis_full``) instead of evicting job records, delivery marks, locks,
#: subscriptions and Dramatiq's message bodies.
REQUIRED_EVICTION_POLICY = "noeviction"


@dataclass(frozen=True)
class Thresholds:
    """Alert thresholds (from settings: ``ALERT_*``); per-queue values are keyed by priority."""

    failure_rate: float = 0.2
    failure_min_jobs: int = 5
    #: Seconds ``no_workers`` must hold before it alerts (the finding and its deduction count at
    #: once): pools still starting, or restarted, leave a queue without consumers for a while.
    no_workers_after: float = 0.0
    depth: dict[str, int] = field(default_factory=lambda: {"high": 50, "default": 100, "low": 200})
    wait: dict[str, float] = field(default_factory=lambda: {"high": 10.0, "default": 60.0, "low": 600.0})
    queued_max_age: float = 3600.0
    redis_memory_share: float = 0.8
    rate_limit_storm: int = 20

    @classmethod
    def from_settings(cls, settings: Any) -> Thresholds:
        return cls(
            failure_rate=settings.alert_failure_rate,
            failure_min_jobs=settings.alert_failure_min_jobs,
            depth={"high": settings.alert_depth_high, "default": settings.alert_depth_default,
                   "low": settings.alert_depth_low},
            wait={"high": settings.alert_wait_high, "default": settings.alert_wait_default,
                  "low": settings.alert_wait_low},
            queued_max_age=settings.alert_queued_max_age,
            no_workers_after=settings.alert_no_workers_after,
            redis_memory_share=settings.alert_redis_memory_share,
            rate_limit_storm=settings.alert_rate_limit_storm,
        )

    def depth_limit(self, priority: str | None) -> int:
        return self.depth.get(priority or "default", self.depth["default"])

    def wait_target(self, priority: str | None) -> float:
        return self.wait.get(priority or "default", self.wait["default"])


@dataclass(frozen=True)
class Finding:
    """One thing that is wrong now: a rule that holds for a subject (a queue, or ``-``)."""

    rule: str
    subject: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def level(self) -> str:
        return LEVELS[self.rule]

    @property
    def alert(self) -> bool:
        return self.rule in ALERT_RULES

    @property
    def score_lost(self) -> int:
        return DEDUCTIONS[self.rule]

    @property
    def source(self) -> str:
        return SOURCES.get(self.rule, "monitor")

    @property
    def component(self) -> str:
        """What the dashboard shows as the component name: ``queue:<name>``, ``redis`` …"""
        if self.rule in QUEUE_RULES:
            return f"queue:{self.subject}"
        return "queues" if self.rule == "dead_letters" else self.source

    def to_alert(self, message: str | None = None) -> Alert:
        """This finding as a condition alert (``message``: another text than the finding's)."""
        return Alert(level=self.level, source=self.source, message=message or self.message, rule=self.rule,
                     subject=self.subject, details=self.details)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "level": self.level, "alert": self.alert, "score_lost": self.score_lost,
                "component": self.component}


def finding(rule: str, subject: str, **details: Any) -> Finding:
    """A finding whose message is the rule's English text (:mod:`queues.health_texts`)."""
    return Finding(rule, subject, describe(rule, subject, details), details)


def system_failure_rate(failed: int, refused: int, finished: int) -> float | None:
    """The share of finished jobs that failed through the system's fault: failures refused for
    the request itself (a mistyped nickname, a cancelled match: the users' doing) left out. None
    when nothing finished. What the failure-rate rule, the dashboard and the report judge by."""
    if not finished:
        return None
    return (failed - min(failed, refused)) / finished


#: The queue rules that read a queue's depth: an unreachable broker cannot judge them.
DEPTH_RULES = ("no_workers", "queue_depth", "idle_queue")


def undecided(snapshot: dict[str, Any], t: Thresholds) -> set[tuple[str, str]]:
    """The (rule, subject) pairs the snapshot cannot judge either way: a queue's failure rate
    over fewer than ``failure_min_jobs`` finished jobs, and, while the broker does not answer,
    the rules that read a queue's depth (it is unknown, not 0). An open alert on one is neither
    confirmed nor cleared by it (a quiet spell in a failing queue is not a recovery, nor is an
    outage of the broker that holds the backlog)."""
    queues = snapshot.get("queues") or {}
    pairs = {("failure_rate", name) for name, q in queues.items()
             if int(q.get("succeeded") or 0) + int(q.get("failed") or 0) < t.failure_min_jobs}
    if (snapshot.get("broker_state") or {}).get("reachable") is False:
        pairs |= {(rule, name) for rule in DEPTH_RULES for name in queues}
    return pairs


def evaluate_queue(name: str, q: dict[str, Any], t: Thresholds) -> list[Finding]:
    """The queue rules for one queue's snapshot ``q``."""
    found: list[Finding] = []
    priority = q.get("priority")
    known = q.get("depth") is not None  # unknown while the broker does not answer: see undecided()
    depth = int(q.get("depth") or 0)
    delayed = int(q.get("delayed") or 0)
    workers = int(q.get("workers") or 0)
    if workers == 0 and known and depth + delayed > 0:
        found.append(finding("no_workers", name, depth=depth, delayed=delayed))
    elif workers == 0 and known:
        found.append(finding("idle_queue", name))
    finished = int(q.get("succeeded") or 0) + int(q.get("failed") or 0)
    failed = int(q.get("failed") or 0) - int(q.get("refused") or 0)  # not counting users' mistakes
    rate = q.get("failure_rate")
    if rate is not None and finished >= t.failure_min_jobs and rate > t.failure_rate:
        found.append(finding("failure_rate", name, failure_rate=rate, failed=failed, finished=finished,
                             window_seconds=q.get("window_seconds") or 0, limit=t.failure_rate))
    limit = t.depth_limit(priority)
    if known and depth > limit:
        found.append(finding("queue_depth", name, depth=depth, limit=limit))
    oldest = q.get("oldest_waiting_age")
    wait_p95 = q.get("wait_p95")
    wait_now = max(float(wait_p95 or 0), float(oldest or 0))
    target = t.wait_target(priority)
    if (wait_p95 is not None or oldest is not None) and wait_now > target:
        found.append(finding("wait_time", name, wait=wait_now, wait_p95=wait_p95, oldest_waiting_age=oldest,
                             target=target))
    if oldest is not None and oldest > t.queued_max_age:
        found.append(finding("stale_jobs", name, oldest_waiting_age=oldest, limit=t.queued_max_age))
    return found


def evaluate(snapshot: dict[str, Any], t: Thresholds) -> list[Finding]:
    """Every finding of ``snapshot``; with Redis unreachable, that one finding alone."""
    redis_state = snapshot.get("redis") or {}
    if not redis_state.get("reachable", False):
        return [finding("redis_unreachable", GLOBAL_SUBJECT, error=redis_state.get("error"))]
    found: list[Finding] = []
    broker = snapshot.get("broker_state") or {}
    if broker.get("reachable") is False:
        found.append(finding("broker_unreachable", GLOBAL_SUBJECT, error=broker.get("error")))
    for name, q in (snapshot.get("queues") or {}).items():
        found.extend(evaluate_queue(name, q, t))
    if redis_state.get("refuses_writes"):
        found.append(finding("redis_full", GLOBAL_SUBJECT, used=redis_state.get("used_memory_human"),
                             limit=redis_state.get("maxmemory_human") or redis_state.get("maxmemory")))
    share = redis_state.get("memory_share")
    if share is not None and share > t.redis_memory_share:
        found.append(finding("redis_memory", GLOBAL_SUBJECT, memory_share=share, limit=t.redis_memory_share,
                             used_memory=redis_state.get("used_memory"), maxmemory=redis_state.get("maxmemory")))
    # Everything here relies on Redis never deleting a key on its own; a snapshot without the
    # policy (an older monitor's) says nothing either way. Redis evicts only at its maxmemory:
    # with none (0: no limit) it never does, whatever the policy says.
    policy = redis_state.get("maxmemory_policy")
    maxmemory = int(redis_state.get("maxmemory") or 0)
    if policy and policy != REQUIRED_EVICTION_POLICY and maxmemory > 0:
        found.append(finding("redis_eviction", GLOBAL_SUBJECT, policy=policy, maxmemory=maxmemory))
    dead = sum(int(q.get("dead") or 0) for q in (snapshot.get("queues") or {}).values())
    if dead:
        found.append(finding("dead_letters", GLOBAL_SUBJECT, dead=dead))
    faceit = snapshot.get("faceit") or {}
    if faceit.get("available"):
        auth = int(faceit.get("auth_errors") or 0)
        if auth > 0:
            found.append(finding("faceit_auth", GLOBAL_SUBJECT, auth_errors=auth,
                                 key_missing=int(faceit.get("key_missing") or 0),
                                 window_seconds=faceit.get("auth_window_seconds") or 0))
        limited = int(faceit.get("rate_limited") or 0)
        if limited >= t.rate_limit_storm:
            found.append(finding("faceit_rate_limit", GLOBAL_SUBJECT, rate_limited=limited,
                                 window_seconds=faceit.get("window_seconds") or 0, threshold=t.rate_limit_storm))
    monitor = snapshot.get("monitor") or {}
    if monitor.get("stale"):
        found.append(finding("monitor_stale", GLOBAL_SUBJECT, age=monitor.get("last_recorded_age")))
    return found


def health(findings: list[Finding]) -> dict[str, Any]:
    """The health score (0–100), the components that lowered it and why."""
    lost = sum(f.score_lost for f in findings)
    ordered = sorted(findings, key=lambda f: (-f.score_lost, f.rule, f.subject))
    return {
        "health_score": max(0, min(100, 100 - lost)),
        "components": [{"name": f.component, "rule": f.rule, "subject": f.subject, "level": f.level,
                        "score_lost": f.score_lost, "reason": f.message, "details": f.details} for f in ordered],
        "reasons": [f.message for f in ordered],
    }

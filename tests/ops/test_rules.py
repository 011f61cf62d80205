"""The alert rules and health score as pure functions of a snapshot: each rule, its threshold
edge, and the score for known states."""

from __future__ import annotations

import re
from typing import Any

from queues.alert_rules import DEDUCTIONS, DEPTH_RULES, Thresholds, evaluate, health, undecided

T = Thresholds()


def queue(name: str, **values: Any) -> dict[str, Any]:
    base = {"name": name, "priority": name, "depth": 0, "delayed": 0, "in_progress": 0, "dead": 0, "workers": 1,
            "succeeded": 0, "failed": 0, "failure_rate": None, "wait_p95": None, "oldest_waiting_age": None,
            "window_seconds": 300}
    return {**base, **values}


def snapshot(queues: dict[str, dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    snap = {
        "redis": {"reachable": True, "memory_share": None},
        "queues": queues if queues is not None else {n: queue(n) for n in ("high", "default", "low")},
        "faceit": {"available": True, "auth_errors": 0, "rate_limited": 0, "window_seconds": 60},
        "monitor": {"stale": False},
    }
    snap.update(extra)
    return snap


def rules(snap: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f.rule, f.subject) for f in evaluate(snap, T)}


def test_a_healthy_system_scores_100_with_no_findings():
    assert evaluate(snapshot(), T) == []
    assert health([]) == {"health_score": 100, "components": [], "reasons": []}


def test_failure_rate_fires_only_over_the_limit_and_with_enough_jobs():
    over = snapshot({"default": queue("default", succeeded=7, failed=3, failure_rate=0.3)})
    assert ("failure_rate", "default") in rules(over)
    at_limit = snapshot({"default": queue("default", succeeded=8, failed=2, failure_rate=0.2)})
    assert ("failure_rate", "default") not in rules(at_limit)
    too_few = snapshot({"default": queue("default", succeeded=1, failed=3, failure_rate=0.75)})
    assert ("failure_rate", "default") not in rules(too_few)  # 4 finished < failure_min_jobs (5)


def test_depth_limits_are_per_priority():
    snap = snapshot({"high": queue("high", depth=51), "default": queue("default", depth=100),
                     "low": queue("low", depth=201)})
    found = rules(snap)
    assert ("queue_depth", "high") in found and ("queue_depth", "low") in found
    assert ("queue_depth", "default") not in found  # 100 is the limit, not over it


def test_work_without_a_live_worker_is_critical_and_an_idle_uncovered_queue_only_costs_points():
    snap = snapshot({"high": queue("high", depth=2, workers=0), "low": queue("low", workers=0)})
    findings = {(f.rule, f.subject): f for f in evaluate(snap, T)}
    assert findings["no_workers", "high"].level == "critical" and findings["no_workers", "high"].alert
    assert not findings["idle_queue", "low"].alert
    delayed_only = snapshot({"default": queue("default", delayed=3, workers=0)})
    assert ("no_workers", "default") in rules(delayed_only)


def test_an_unreachable_broker_judges_no_queue_by_its_depth():
    """While RabbitMQ does not answer, depths are unknown (None): no rule reads them as 0, and an
    open "no workers" or "queue depth" alert is neither confirmed nor resolved by such a tick."""
    snap = snapshot({"high": queue("high", depth=None, workers=0), "default": queue("default", depth=None)},
                    broker_state={"reachable": False, "error": "RabbitMQ at amqp://rabbit/ is unreachable"})
    assert not {rule for rule, _ in rules(snap)} & set(DEPTH_RULES)
    assert {("no_workers", "high"), ("queue_depth", "default"), ("idle_queue", "high")} <= undecided(snap, T)
    assert not {pair for pair in undecided(snapshot(), T) if pair[0] in DEPTH_RULES}  # the broker answers


def test_wait_time_uses_p95_or_the_oldest_waiting_job_against_the_queue_target():
    assert ("wait_time", "high") in rules(snapshot({"high": queue("high", wait_p95=10.5)}))
    assert ("wait_time", "high") not in rules(snapshot({"high": queue("high", wait_p95=9.9)}))
    assert ("wait_time", "default") in rules(snapshot({"default": queue("default", oldest_waiting_age=61)}))
    assert ("wait_time", "low") not in rules(snapshot({"low": queue("low", wait_p95=599)}))


def test_jobs_queued_longer_than_an_hour_are_stale():
    assert ("stale_jobs", "low") in rules(snapshot({"low": queue("low", oldest_waiting_age=3601)}))
    assert ("stale_jobs", "low") not in rules(snapshot({"low": queue("low", oldest_waiting_age=3599)}))


def test_redis_unreachable_is_the_only_finding_and_zeroes_the_score():
    snap = snapshot(redis={"reachable": False, "error": "ConnectionError: refused"})
    findings = evaluate(snap, T)
    assert [(f.rule, f.level) for f in findings] == [("redis_unreachable", "critical")]
    assert health(findings)["health_score"] == 0
    assert "refused" in health(findings)["reasons"][0]


def test_redis_memory_share_over_the_limit():
    assert ("redis_memory", "-") in rules(snapshot(redis={"reachable": True, "memory_share": 0.81}))
    assert ("redis_memory", "-") not in rules(snapshot(redis={"reachable": True, "memory_share": 0.8}))
    assert ("redis_memory", "-") not in rules(snapshot(redis={"reachable": True, "memory_share": None}))


def redis_with(policy: str | None = None, maxmemory: int | None = None) -> dict[str, Any]:
    """A snapshot whose Redis has ``policy`` and ``maxmemory`` (either left out when None)."""
    state: dict[str, Any] = {"reachable": True, "memory_share": None}
    if policy is not None:
        state["maxmemory_policy"] = policy
    if maxmemory is not None:
        state["maxmemory"] = maxmemory
    return snapshot(redis=state)


def test_any_eviction_policy_but_noeviction_is_a_warning_under_a_maxmemory():
    """Job records, delivery marks, locks, subscriptions and queued messages must never be evicted."""
    for policy in ("allkeys-lru", "volatile-lru", "allkeys-random", "volatile-ttl"):
        assert rules(redis_with(policy, 1 << 30)) == {("redis_eviction", "-")}, policy
        [found] = evaluate(redis_with(policy, 1 << 30), T)
        assert (found.rule, found.level, found.alert, found.source) == ("redis_eviction", "warning", True, "redis")
        assert policy in found.message
        assert found.details["maxmemory"] == 1 << 30
    assert not rules(redis_with("noeviction", 1 << 30))
    assert not rules(redis_with())  # not read: nothing said


def test_without_a_maxmemory_no_policy_can_evict():
    """maxmemory 0 is no limit: Redis never reaches it, so it never evicts, whatever the policy (a
    development Redis left at allkeys-lru lost 10 health points for nothing)."""
    for policy in ("allkeys-lru", "volatile-lru", "allkeys-random", "volatile-ttl"):
        assert not rules(redis_with(policy, 0)), policy
        assert not rules(redis_with(policy)), policy  # a snapshot that names no maxmemory


def test_faceit_auth_errors_and_429_storm():
    auth = snapshot(faceit={"available": True, "auth_errors": 1, "rate_limited": 0})
    assert ("faceit_auth", "-") in rules(auth)
    storm = snapshot(faceit={"available": True, "auth_errors": 0, "rate_limited": 20, "window_seconds": 60})
    assert ("faceit_rate_limit", "-") in rules(storm)
    calm = snapshot(faceit={"available": True, "auth_errors": 0, "rate_limited": 19})
    assert not rules(calm)
    absent = snapshot(faceit={"available": False})
    assert not rules(absent)  # no FACEIT layer: nothing to judge, nothing deducted


def test_health_score_for_a_known_bad_state_lists_each_deduction():
    snap = snapshot({
        "high": queue("high", depth=60, workers=0, oldest_waiting_age=4000),
        "default": queue("default", succeeded=5, failed=5, failure_rate=0.5, dead=2),
        "low": queue("low"),
    }, redis={"reachable": True, "memory_share": 0.9}, monitor={"stale": True, "last_recorded_age": 120})
    result = health(evaluate(snap, T))
    expected = {"no_workers", "queue_depth", "wait_time", "stale_jobs", "failure_rate", "redis_memory",
                "dead_letters", "monitor_stale"}
    assert {c["rule"] for c in result["components"]} == expected
    assert result["health_score"] == max(0, 100 - sum(DEDUCTIONS[r] for r in expected))
    assert result["health_score"] == 0  # 25+10+10+15+20+15+5+5 = 105 points lost, clamped
    losses = [c["score_lost"] for c in result["components"]]
    assert losses == sorted(losses, reverse=True)  # worst first
    assert result["reasons"] == [c["reason"] for c in result["components"]]


def test_health_score_of_one_failing_queue():
    snap = snapshot({"default": queue("default", succeeded=6, failed=4, failure_rate=0.4)})
    result = health(evaluate(snap, T))
    assert result["health_score"] == 80
    assert result["components"][0]["name"] == "queue:default"
    assert "40%" in result["reasons"][0]


def test_thresholds_come_from_settings(env_override):
    from settings import get_settings

    env_override(ALERT_DEPTH_HIGH="3", ALERT_WAIT_LOW="5", ALERT_FAILURE_RATE="0.5")
    t = Thresholds.from_settings(get_settings())
    assert t.depth_limit("high") == 3 and t.wait_target("low") == 5 and t.failure_rate == 0.5


def every_rule_at_once() -> list:
    """Findings of every rule but ``redis_unreachable`` (which stands alone), from one snapshot."""
    snap = snapshot({
        "high": queue("high", depth=60, workers=0, oldest_waiting_age=4000),
        "default": queue("default", succeeded=5, failed=5, failure_rate=0.5, dead=2, wait_p95=90),
        "low": queue("low", workers=0),
    }, redis={"reachable": True, "memory_share": 0.9, "refuses_writes": True, "used_memory_human": "1.20M",
              "maxmemory": 1 << 20, "maxmemory_human": "1.00M", "maxmemory_policy": "allkeys-lru"},
        faceit={"available": True, "auth_errors": 3, "rate_limited": 21, "window_seconds": 60,
                "auth_window_seconds": 300},
        monitor={"stale": True, "last_recorded_age": 120},
        broker_state={"reachable": False, "error": "RabbitMQ at amqp://u:***@rabbit:5672/ is unreachable "
                                                   "(AMQPConnectionError)"})
    return [*evaluate(snap, T), *evaluate(snapshot(redis={"reachable": False, "error": "ConnectionError"}), T)]


def test_every_rules_reason_reads_in_russian_from_the_findings_details():
    """The bot's /queues tells the same findings in the admin's language; English is what alerts,
    Sentry and the dashboard carry, and what a finding's message is."""
    from queues.health_texts import describe

    findings = every_rule_at_once()
    assert {f.rule for f in findings} == set(DEDUCTIONS)
    for f in findings:
        assert describe(f.rule, f.subject, f.details, "en") == f.message
        russian = describe(f.rule, f.subject, f.details, "ru")
        assert russian != f.message and re.search("[а-яё]", russian), russian
        assert not re.search(r"\b(queue|jobs?|waiting|limit|target|times?|the)\b", russian), russian
    by_rule = {f.rule: describe(f.rule, f.subject, f.details, "ru") for f in findings}
    assert by_rule["faceit_auth"] == "FACEIT отклонил наш API-ключ 3 раза за последние 5,0 мин"
    assert by_rule["wait_time"].startswith("очередь default: ожидание (p95) 1,5 мин")
    assert by_rule["monitor_stale"] == ("монитор в последний раз записал снимок 2,0 мин назад: "
                                        "запущен ли python scheduler.py?")
    assert "50%" in by_rule["failure_rate"] and "(5 из 10; порог 20%)" in by_rule["failure_rate"]
    # The English the alerts, Sentry and the dashboard carry, word for word (the loop above only
    # checks that a finding's message is the same function's English)
    english = {f.rule: f.message for f in findings}
    assert english["failure_rate"] == "queue default: 50% of jobs failed in the last 5.0 min (5 of 10; limit 20%)"
    assert english["faceit_auth"] == "FACEIT refused our API key 3 times in the last 5.0 min"
    assert english["monitor_stale"] == "the monitor last recorded 2.0 min ago: is python scheduler.py running?"
    assert english["redis_eviction"] == ("Redis may evict keys (maxmemory-policy allkeys-lru): job records, "
                                         "delivery marks and subscriptions can vanish; set maxmemory-policy "
                                         "noeviction")
    assert by_rule["redis_eviction"] == ("Redis может вытеснять ключи (maxmemory-policy allkeys-lru): записи "
                                         "задач, отметки доставки и подписки могут пропасть; задайте "
                                         "maxmemory-policy noeviction")
    assert english["broker_unreachable"] == ("the broker is unreachable: RabbitMQ at amqp://u:***@rabbit:5672/ is "
                                             "unreachable (AMQPConnectionError); jobs can be neither queued nor "
                                             "consumed, queue depths unknown")


def test_counts_take_their_word_form():
    from queues.health_texts import describe

    def auth(count: int, lang: str) -> str:
        return describe("faceit_auth", "-", {"auth_errors": count, "window_seconds": 60}, lang)

    assert auth(1, "en") == "FACEIT refused our API key 1 time in the last 1.0 min"
    unsent = {"auth_errors": 3, "key_missing": 3, "window_seconds": 60}
    assert describe("faceit_auth", "-", unsent, "en") == \
        "FACEIT_API_KEY is not set: a FACEIT call went unsent 3 times in the last 1.0 min"
    assert describe("faceit_auth", "-", unsent, "ru").startswith("FACEIT_API_KEY не задан: запрос к FACEIT не отправлен 3 раза")
    both = describe("faceit_auth", "-", {"auth_errors": 5, "key_missing": 1, "window_seconds": 60}, "en")
    assert both.startswith("FACEIT refused our API key 4 times in the last 1.0 min, and a call went unsent 1 time:")
    assert auth(2, "en").startswith("FACEIT refused our API key 2 times")
    assert [auth(n, "ru").split("API-ключ ")[1].split(" за ")[0] for n in (1, 3, 5, 21)] == [
        "1 раз", "3 раза", "5 раз", "21 раз"]

"""What each health rule says, in English and Russian, from a finding's rule, subject and details.

Why one place: the English text is what the alerts, Sentry, the dashboard and ``admin.py`` show;
the bot's ``/queues`` shows the same findings in the admin's language. Both are built here from
the same details, so the two never say different things. English is the fallback for a language
(or a rule) without its own text.

``describe(rule, subject, details, lang)``: ``subject`` is the queue for queue rules (``-``
otherwise); ``details`` are a :class:`~queues.alert_rules.Finding`'s (plain numbers).
``tell_alert(alert, lang)``: a stored alert told again in ``lang`` (``/alerts`` and the alerts
pushed to admins on Telegram); ``level_word`` names its level.
"""

from __future__ import annotations

from typing import Any

from faceit.i18n import plural

LANGS = ("en", "ru")

_UNITS = {"en": ("s", "min", "h"), "ru": ("с", "мин", "ч")}

TEXTS: dict[str, dict[str, str]] = {
    "redis_unreachable": {"en": "Redis is unreachable: {error}", "ru": "Redis недоступен: {error}"},
    "broker_unreachable": {
        "en": "the broker is unreachable: {error}; jobs can be neither queued nor consumed, queue depths unknown",
        "ru": "брокер недоступен: {error}; задачи нельзя ни поставить в очередь, ни выполнить, глубина очередей "
              "неизвестна",
    },
    "redis_full": {
        "en": "Redis refuses writes: its memory ({used}) reached maxmemory ({limit}); jobs cannot be queued "
              "and alerts are not stored until memory is freed or maxmemory is raised",
        "ru": "Redis отказывается принимать записи: память ({used}) достигла maxmemory ({limit}); задачи не "
              "ставятся в очередь, оповещения не сохраняются, пока память не освободят или не поднимут maxmemory",
    },
    "no_workers": {
        "en": "queue {subject} has {depth} waiting and {delayed} delayed job(s) and no live worker consumes it",
        "ru": "очередь {subject}: ждут {depth}, отложено {delayed}, но ни один живой воркер её не обслуживает",
    },
    "idle_queue": {"en": "no live worker consumes queue {subject}",
                   "ru": "очередь {subject} не обслуживает ни один живой воркер"},
    "failure_rate": {
        "en": "queue {subject}: {rate} of jobs failed in the last {window} ({failed} of {finished}; limit {limit})",
        "ru": "очередь {subject}: за последние {window} с ошибкой завершилось {rate} задач ({failed} из "
              "{finished}; порог {limit})",
    },
    "queue_depth": {"en": "queue {subject} holds {depth} waiting jobs (limit {limit})",
                    "ru": "очередь {subject}: ждущих задач {depth} (порог {limit})"},
    "wait_time_p95": {"en": "queue {subject}: p95 wait is {wait} (target {target})",
                      "ru": "очередь {subject}: ожидание (p95) {wait} (цель {target})"},
    "wait_time_oldest": {"en": "queue {subject}: the oldest job has waited {wait} (target {target})",
                         "ru": "очередь {subject}: самая давняя задача ждёт {wait} (цель {target})"},
    "stale_jobs": {
        "en": "queue {subject}: a job has waited {age} (more than {limit}) and is still queued",
        "ru": "очередь {subject}: задача ждёт уже {age} (больше {limit}) и всё ещё в очереди",
    },
    "redis_memory": {"en": "Redis uses {share} of its maxmemory (limit {limit})",
                     "ru": "Redis занимает {share} своего maxmemory (порог {limit})"},
    "redis_eviction": {
        "en": "Redis may evict keys (maxmemory-policy {policy}): job records, delivery marks and "
              "subscriptions can vanish; set maxmemory-policy noeviction",
        "ru": "Redis может вытеснять ключи (maxmemory-policy {policy}): записи задач, отметки доставки и "
              "подписки могут пропасть; задайте maxmemory-policy noeviction",
    },
    "dead_letters": {"en": "dead-lettered messages: {dead} (/requeue, or admin.py purge-dead)",
                     "ru": "мёртвых сообщений: {dead} (/requeue или admin.py purge-dead)"},
    "faceit_auth": {"en": "FACEIT refused our API key {auth} {times} in the last {window}",
                    "ru": "FACEIT отклонил наш API-ключ {auth} {times} за последние {window}"},
    "faceit_no_key": {"en": "FACEIT_API_KEY is not set: a FACEIT call went unsent {auth} {times} in the last {window}",
                      "ru": "FACEIT_API_KEY не задан: запрос к FACEIT не отправлен {auth} {times} за последние {window}"},
    "faceit_auth_and_no_key": {
        "en": "FACEIT refused our API key {auth} {times} in the last {window}, and a call went unsent {missing} "
              "{missing_times}: FACEIT_API_KEY is not set in some process",
        "ru": "FACEIT отклонил наш API-ключ {auth} {times} за последние {window}, и ещё {missing} {missing_times} "
              "запрос не отправлен: в каком-то процессе FACEIT_API_KEY не задан",
    },
    "faceit_rate_limit": {
        "en": "FACEIT answered {limited} {times} with 429 (too many requests) in the last {window} (storm "
              "threshold {threshold})",
        "ru": "FACEIT {limited} {times} ответил кодом 429 (слишком много запросов) за последние {window} (порог "
              "шторма {threshold})",
    },
    "monitor_stale_never": {"en": "the monitor has never recorded a snapshot: is python scheduler.py running?",
                            "ru": "монитор ещё не записал ни одного снимка: запущен ли python scheduler.py?"},
    "monitor_stale": {"en": "the monitor last recorded {age} ago: is python scheduler.py running?",
                      "ru": "монитор в последний раз записал снимок {age} назад: запущен ли python scheduler.py?"},
    "scheduler_task": {"en": "scheduled task {subject} failed: {error}",
                       "ru": "плановая задача {subject} завершилась ошибкой: {error}"},
}

_TIMES = {"en": ("time", "times"), "ru": ("раз", "раза", "раз")}

LEVEL_WORDS: dict[str, dict[str, str]] = {
    "critical": {"en": "critical", "ru": "критично"},
    "error": {"en": "error", "ru": "ошибка"},
    "warning": {"en": "warning", "ru": "предупреждение"},
    "info": {"en": "info", "ru": "инфо"},
}
#: English counts of alerts of a level ("2 errors"); Russian names the level, then the count.
_LEVEL_COUNTS_EN = {"error": ("error", "errors"), "warning": ("warning", "warnings")}
RESOLVED_WORD = {"en": "resolved:", "ru": "решено:"}


def duration(value: float, lang: str = "en") -> str:
    """``42.0 s``, ``1.5 min``, ``2.0 h`` (``42,0 с``, ``1,5 мин``, ``2,0 ч`` in Russian)."""
    seconds, minutes, hours = _UNITS.get(lang, _UNITS["en"])
    value = float(value or 0)
    if value >= 3600:
        text = f"{value / 3600:.1f} {hours}"
    elif value >= 60:
        text = f"{value / 60:.1f} {minutes}"
    else:
        text = f"{value:.1f} {seconds}"
    return text.replace(".", ",") if lang == "ru" else text  # a decimal comma in Russian


def _percent(value: float) -> str:
    return f"{float(value):.0%}"


def _times(count: int, lang: str) -> str:
    return plural(int(count), lang, _TIMES)


def _params(rule: str, subject: str, d: dict[str, Any], lang: str) -> tuple[str, dict[str, Any]]:
    """The text key and its values for ``rule``."""
    if rule == "failure_rate":
        return rule, {"rate": _percent(d["failure_rate"]), "window": duration(d["window_seconds"], lang),
                      "failed": d["failed"], "finished": d["finished"], "limit": _percent(d["limit"])}
    if rule == "wait_time":
        oldest_first = float(d.get("oldest_waiting_age") or 0) > float(d.get("wait_p95") or 0)
        return ("wait_time_oldest" if oldest_first else "wait_time_p95",
                {"wait": duration(d["wait"], lang), "target": duration(d["target"], lang)})
    if rule == "stale_jobs":
        return rule, {"age": duration(d["oldest_waiting_age"], lang), "limit": duration(d["limit"], lang)}
    if rule == "redis_memory":
        return rule, {"share": _percent(d["memory_share"]), "limit": _percent(d["limit"])}
    if rule in ("redis_unreachable", "broker_unreachable"):
        return rule, {"error": d.get("error") or "no answer"}
    if rule == "faceit_auth":  # FACEIT's refusals, calls not sent for want of a key, or both
        missing = int(d.get("key_missing") or 0)  # absent from an older monitor's record
        refused = int(d["auth_errors"]) - missing
        key = "faceit_auth" if not missing else "faceit_no_key" if refused <= 0 else "faceit_auth_and_no_key"
        count = refused if refused > 0 else missing
        return key, {"auth": count, "times": _times(count, lang), "missing": missing,
                     "missing_times": _times(missing, lang), "window": duration(d["window_seconds"], lang)}
    if rule == "faceit_rate_limit":
        return rule, {"limited": d["rate_limited"], "times": _times(d["rate_limited"], lang),
                      "window": duration(d["window_seconds"], lang), "threshold": d["threshold"]}
    if rule == "monitor_stale":
        if d.get("age") is None:
            return "monitor_stale_never", {}
        return rule, {"age": duration(d["age"], lang)}
    return rule, d  # the rest use their details as they are


def describe_or(stored: str, rule: Any, subject: Any, details: Any, lang: str) -> str:
    """:func:`describe`, or ``stored`` (the English text recorded with it) when the rule has no
    text here or the details are not all there (a record of an older monitor, a job's alert)."""
    try:
        return describe(str(rule), str(subject or "-"), details, lang)
    except (KeyError, TypeError, ValueError, AttributeError):
        return stored


def describe(rule: str, subject: str, details: dict[str, Any], lang: str = "en") -> str:
    """The finding's text in ``lang`` (English when there is none in it). Raises ``KeyError`` for
    an unknown rule or missing details (a summary recorded by an older monitor: callers fall back
    to its stored English text)."""
    key, values = _params(rule, subject, details, lang)
    texts = TEXTS[key]
    text = texts.get(lang) or texts["en"]
    return text.format(subject=subject, **values)


#: A job's bad end (middleware/alerts.py), by the ``reason`` in its details.
JOB_TEXTS: dict[str, dict[str, str]] = {
    "final_failure": {"en": "{actor} job failed: {error_type}: {error}",
                      "ru": "задача {actor} завершилась ошибкой: {error_type}: {error}"},
    "time_limit": {"en": "{actor} job stopped at its time limit: {error_type}: {error}",
                   "ru": "задача {actor} прервана по лимиту времени: {error_type}: {error}"},
    "crash_loop": {"en": "{actor} job killed its worker {workers_lost} {times}; failed",
                   "ru": "задача {actor} {workers_lost} {times} уронила воркер и завершилась ошибкой"},
    "auth": {"en": "FACEIT refused the API key ({actor})", "ru": "FACEIT отклонил API-ключ ({actor})"},
    "no_key": {"en": "FACEIT_API_KEY is not set: FACEIT jobs fail until it is ({actor})",
               "ru": "FACEIT_API_KEY не задан: задачи FACEIT не выполняются, пока его нет ({actor})"},
}
#: The details each reason's text needs (an alert written by an older worker may lack them).
_JOB_FIELDS = {"final_failure": ("error_type", "error"), "time_limit": ("error_type", "error"),
               "crash_loop": ("workers_lost",), "auth": (), "no_key": ()}


def tell_job_alert(details: dict[str, Any], lang: str = "en") -> str:
    """A job's bad end (``details``: ``reason``, ``actor`` and the reason's fields) in ``lang``;
    the error's own text stays as the exception wrote it. The English one is the alert's
    message. Raises ``KeyError`` when a field is missing."""
    reason = details["reason"]
    missing = [name for name in ("actor", *_JOB_FIELDS[reason]) if details.get(name) is None]
    if missing:
        raise KeyError(missing[0])
    values = {name: details.get(name) for name in ("actor", "error_type", "error", "workers_lost")}
    values["times"] = _times(int(details.get("workers_lost") or 0), lang)
    texts = JOB_TEXTS[reason]
    return (texts.get(lang) or texts["en"]).format(**values)


def level_word(level: str, lang: str = "en") -> str:
    """An alert level in ``lang`` (the level itself when it is not one of ours)."""
    words = LEVEL_WORDS.get(level)
    return (words.get(lang) or words["en"]) if words else level


def level_count(level: str, count: int, lang: str = "en") -> str:
    """``2 errors``, ``1 critical`` (``ошибка: 2`` in Russian): how many alerts of a level."""
    if lang == "ru":
        return f"{level_word(level, lang)}: {count}"
    forms = _LEVEL_COUNTS_EN.get(level)
    return f"{count} {plural(count, 'en', {'en': forms}) if forms else level_word(level, 'en')}"


def tell_alert(alert: Any, lang: str = "en") -> str:
    """A monitor's condition alert (or its resolve notice), or a job's bad end, told again in
    ``lang`` from its rule or reason and details; any other alert (or one recorded without the
    details) as it was written. ``alert`` is a :class:`~queues.alerts.Alert`."""
    if alert.state == "resolved" and isinstance(alert.details.get("opened_details"), dict):
        told = describe_or("", alert.rule, alert.subject, alert.details["opened_details"], lang)
        return f"{RESOLVED_WORD.get(lang) or RESOLVED_WORD['en']} {told}" if told else str(alert.message)
    if not alert.rule and alert.details.get("reason") in JOB_TEXTS:
        try:
            return tell_job_alert(alert.details, lang)
        except (KeyError, TypeError, ValueError):
            return str(alert.message)
    return describe_or(str(alert.message), alert.rule, alert.subject, alert.details, lang)

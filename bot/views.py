"""What users see of a job: the queued line, progress, failure and status messages, the Cancel button.

Used by the bot process (replies) and by workers (progress edits and final messages), so both
word a job the same way; no aiogram import here, since workers load this module. Failure texts
reuse :mod:`faceit.i18n` for what the FACEIT layer knows (not found, cancelled match …) and
say whether trying again makes sense.
"""

from __future__ import annotations

import time
from typing import Any

from bot.texts import TEXTS, Markup, escape, t
from faceit.i18n import ERROR_TEXTS, stage_text

CANCEL_PREFIX = "cancel:"
TRANSIENT_CODES = {"upstream", "storage", "rate_limited", "transient", "time_limit", "crash_loop", "error", "auth"}
INPUT_CODES = {"bad_input", "not_found"}
_BOT_REASONS = {"reason_upstream", "reason_storage", "reason_rate_limited", "reason_time_limit", "reason_crash_loop",
                "reason_error"}
_STATUS_KEYS = {f"status_{s}" for s in ("queued", "started", "retrying", "succeeded", "failed", "canceled")}
#: Reasons that already say what to do ("try again in a minute", "unfollow someone first"): a
#: general line of advice after them would repeat or contradict it.
SELF_ADVISING_KEYS = {"match_empty", "too_many_subscriptions", "player_no_cs2"}


def kind_name(actor: str | None, lang: str, kwargs: dict[str, Any] | None = None) -> str:
    """``Match analysis`` / ``Анализ матча`` for an actor name (``Job`` for others).

    A player lookup is /subscribe's job (the bot starts one for nothing else), so it is named
    ``Follow`` / ``Подписка``, as the user asked for it, not by the step it takes: "Player lookup"
    answered /subscribe with a name the user never used. ``kwargs`` (the job's record) tells a
    lookup without ``subscribe``, which is then named as one; without them (the queued, progress
    and cancelled lines know only the actor) the lookup is taken for /subscribe's."""
    if actor == "player_lookup" and (kwargs is None or kwargs.get("subscribe")):
        return t("kind_follow", lang)
    key = f"kind_{actor}"
    return t(key if key in TEXTS else "kind_job", lang)


def cancel_keyboard(job_id: str, lang: str) -> dict[str, Any]:
    """The Cancel button under a queued or running job's message (``cancel:<job id>``, < 64 bytes),
    as Bot API JSON (workers send it as is; the bot process wraps it in aiogram's model)."""
    button = {"text": t("cancel_button", lang), "callback_data": f"{CANCEL_PREFIX}{job_id}"}
    return {"inline_keyboard": [[button]]}


def queued_text(job_id: str, actor: str, position: int, coalesced: bool, lang: str) -> str:
    kind = kind_name(actor, lang)
    if coalesced:
        return t("joined", lang, kind=kind, job_id=job_id)
    return t("queued", lang, kind=kind, job_id=job_id, position=max(1, int(position)))


def asked_again_text(job_id: str, actor: str, lang: str, done: bool = False, elsewhere: str | None = None) -> str:
    """For a repeat of the user's own request (``done``: the job already succeeded). ``elsewhere``:
    their first answer is in another chat, ``"private"`` (ours with them) or ``"other"`` (a group):
    the job's progress and result go there, not to this chat."""
    key = ("asked_again_elsewhere" if elsewhere else "asked_again") + ("_done" if done else "")
    where = {"where": t(f"where_{elsewhere}_chat", lang)} if elsewhere else {}
    return t(key, lang, kind=kind_name(actor, lang), job_id=job_id, **where)


def shown_here_text(job_id: str, actor: str, lang: str, done: bool = False, replying: bool = True) -> str:
    """For a group member pointed at the answer the group already has (``replying``: this text is
    a reply to it; else it is being sent, just above)."""
    key = ("shown_here" if replying else "shown_above") + ("_done" if done else "")
    return t(key, lang, kind=kind_name(actor, lang), job_id=job_id)


def _progress_bits(progress: dict[str, Any] | None, lang: str) -> tuple[str, str, str]:
    progress = progress or {}
    stage = stage_text(str(progress.get("stage") or "analysis"), lang)
    done, total = progress.get("done"), progress.get("total")
    count = f" {done}/{total}" if done is not None and total else ""
    percent = progress.get("percent")
    shown = f"{float(percent):.0f}" if isinstance(percent, int | float) else "0"
    return stage, count, shown


def progress_text(job_id: str, actor: str | None, progress: dict[str, Any] | None, lang: str) -> str:
    """``⏳ Match analysis: players 6/10 · 45%`` (``загружаю игроков 6/10`` in Russian); between attempts
    (stage ``retrying``, :mod:`middleware.retry_notice`) what went wrong and when it is tried again."""
    if progress and progress.get("stage") == "retrying":
        seconds = max(1, round(float(progress.get("retry_in") or 0)))
        return t("progress_retrying", lang, kind=kind_name(actor, lang), reason=_retry_reason(progress, lang),
                 seconds=seconds, attempt=progress.get("attempt") or 2, attempts=progress.get("attempts") or "?",
                 job_id=job_id)
    stage, count, percent = _progress_bits(progress, lang)
    return t("progress", lang, kind=kind_name(actor, lang), stage=stage, count=count, percent=percent,
             job_id=job_id)


def _retry_reason(progress: dict[str, Any], lang: str) -> str:
    """Why the job waits to be tried again, as a sentence (a retry notice's ``code``)."""
    code = str(progress.get("code") or "")
    return t(f"retry_reason_{code}" if code in ("upstream", "storage", "rate_limited") else "retry_reason_other", lang)


def canceled_text(job_id: str, actor: str | None, lang: str, *, by_operator: bool = False) -> str:
    """``✖ Match analysis cancelled.``; ``by_operator``: stopped by the bot's operator, not the reader."""
    return t("canceled_by_operator" if by_operator else "canceled", lang, kind=kind_name(actor, lang), job_id=job_id)


def _faceit_text(key: str, lang: str, params: dict[str, Any]) -> str | None:
    entry = ERROR_TEXTS.get(key)
    if entry is None:
        return None
    try:
        return entry.get(lang, entry["en"]).format(**params)
    except (KeyError, IndexError):
        return None


def _refined_key(code: str, actor: str | None, kwargs: dict[str, Any], message: str) -> tuple[str, dict[str, Any]]:
    """The finest :mod:`faceit.i18n` key we can tell from a stored error (records keep only the code)."""
    if code == "not_found":
        if actor in ("player_report", "player_lookup"):
            ref = kwargs.get("player_id") or kwargs.get("player_ref")
            if ref:
                key = "player_no_cs2" if "no CS2 profile" in message else "player_not_found"
                return key, {"ref": str(ref)[:64]}
        if actor == "match_analysis" and kwargs.get("match_url_or_id"):
            return "match_not_found", {"ref": _match_id(str(kwargs["match_url_or_id"]))}
    if code == "match_not_analysable":
        lowered = message.lower()
        for word, key in (("cancel", "match_cancelled"), ("abort", "match_aborted"), ("no players", "match_empty")):
            if word in lowered:
                return key, {}
    return code, {}


def _match_id(text: str) -> str:
    try:
        from faceit.links import parse_match_ref

        return parse_match_ref(text).match_id
    except Exception:
        return text[:64]


def failure_reason(error: dict[str, Any] | None, actor: str | None, kwargs: dict[str, Any],
                   lang: str) -> tuple[str, str]:
    """(what happened, whether to try again) for a failed job, both in ``lang``; the advice is
    empty when the reason itself says what to do (:data:`SELF_ADVISING_KEYS`)."""
    error = error or {}
    code = str(error.get("code") or "error")
    key = error.get("key")
    params = error.get("params") or {}
    if not (isinstance(key, str) and key in ERROR_TEXTS):
        key, params = _refined_key(code, actor, kwargs or {}, str(error.get("message") or ""))
    known = code in ERROR_TEXTS or (isinstance(key, str) and key in ERROR_TEXTS)
    if (code in TRANSIENT_CODES or not known) and code != "auth":  # unknown codes are our bugs
        reason_key = f"reason_{code}" if f"reason_{code}" in _BOT_REASONS else "reason_error"
        return t(reason_key, lang), t("advice_retry", lang)
    text = _faceit_text(key, lang, params) or _faceit_text(code, lang, {}) or t("reason_error", lang)
    if key in SELF_ADVISING_KEYS:
        return text, ""
    if code == "auth":
        advice = "advice_retry"
    elif code in INPUT_CODES:
        advice = "advice_fix_input"
    else:
        advice = "advice_no_retry"
    return text, t(advice, lang)


def failure_text(job_id: str, actor: str | None, error: dict[str, Any] | None, kwargs: dict[str, Any],
                 lang: str) -> str:
    """``❌ Match analysis failed. FACEIT did not answer.`` + whether retrying makes sense: the reason
    is a full sentence with a capital, whether the FACEIT layer's or the bot's own."""
    reason, advice = failure_reason(error, actor, kwargs, lang)
    return t("failed", lang, kind=kind_name(actor, lang, kwargs), reason=reason, advice=advice).rstrip("\n")


def status_word(status: str, lang: str) -> str:
    """A job status in words (``done``, ``готово``); an unknown one as it is."""
    return t(f"status_{status}", lang) if f"status_{status}" in _STATUS_KEYS else status


def status_text(record: Any, lang: str, *, left: bool = False) -> str:
    """One job's state for ``/status``: status, progress while running, reason when failed.
    ``left``: the reader cancelled it for themselves while others still waited for it."""
    status = record.status
    extra = ""
    if status == "started" and record.progress:  # this run's own: a run's begin drops the one before's
        stage, count, percent = _progress_bits(record.progress, lang)
        extra = f" · {stage}{count} · {percent}%"
    elif status == "retrying" and (record.progress or {}).get("stage") == "retrying":
        # What the job message says (its retry notice), with the time left from now to the retry.
        notice = record.progress
        seconds = round((record.retry_at or 0) - time.time())
        when = t("status_retry_in", lang, seconds=seconds) if seconds >= 1 else t("status_retry_now", lang)
        extra = " · " + _retry_reason(notice, lang) + " " + when + " " + t(
            "status_retry_attempt", lang, attempt=notice.get("attempt") or 2, attempts=notice.get("attempts") or "?")
    elif status == "failed" and not left:
        reason, advice = failure_reason(record.error, record.actor, record.kwargs, lang)
        extra = f"\n{reason} {advice}".rstrip()
    word = status_word(status, lang)
    return t("status_line", lang, kind=kind_name(record.actor, lang, record.kwargs),
             status=t("status_left", lang, others=word) if left else word,
             progress=Markup(escape(extra)), job_id=record.id)

"""Sentry: initialised before the broker when ``SENTRY_DSN`` is set, with secrets scrubbed.

``before_send`` (and ``before_breadcrumb``) replace every secret value in force (tokens, keys,
passwords), anything shaped like a Telegram bot token, and the values of keys whose names say
they are secret (``token``, ``api_key``, ``password``, ``authorization`` …), and drop chat
contents (message texts, captions) wherever they appear. An event raised while serving a request
(the webhook: Sentry's aiohttp integration attaches the raw body, a Telegram update) keeps only
the shape of that body, no text of it, and no query string or cookies. Sentry reports every failed attempt
through its Dramatiq integration; our own alerts (final failures, monitor rules) are sent as
events with their level by :class:`SentrySink` (``critical`` becomes Sentry's ``fatal``),
grouped per rule and subject (or per job). Stack frames carry no local variables: locals hold
users' texts and tokens under names no scrubber can guess.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from queues.redaction import Redactor, redactor_in_force
from settings import Settings

_SCRUBBED = "[scrubbed]"
_CHAT_KEYS = {"text", "caption", "message_text", "chat_text"}
_scrubbers: dict[str, Any] = {}  # "init": built by init_sentry; "in_force": (base redactor, scrubber)
_initialized: dict[str, Any] = {}
logger = logging.getLogger(__name__)

SENTRY_LEVELS = {"critical": "fatal", "error": "error", "warning": "warning", "info": "info"}


def scrub(value: Any, secrets: list[str] | None = None) -> Any:
    """Return ``value`` with every secret replaced and chat texts dropped (recursively): the
    masking of :class:`queues.redaction.Redactor`, marked ``[scrubbed]``."""
    if secrets is not None:
        return scrubber_for(secrets).redact(value)
    return (_scrubbers.get("init") or _scrubber_in_force()).redact(value)


def scrubber_for(secrets: list[str]) -> Redactor:
    """Sentry's masking of ``secrets`` (marked ``[scrubbed]``, chat texts dropped), to reuse."""
    return Redactor(secrets, mask=_SCRUBBED, hidden_keys=_CHAT_KEYS)


def _scrubber_in_force() -> Redactor:
    """Before or without ``init_sentry``: the secrets of the settings in force
    (:func:`~queues.redaction.redactor_in_force`), built again only when those change."""
    try:
        base = redactor_in_force()
    except Exception:  # no settings readable: token shapes and key names are still masked
        return scrubber_for([])
    cached = _scrubbers.get("in_force")
    if cached is None or cached[0] is not base:
        cached = _scrubbers["in_force"] = (base, scrubber_for(base.values))
    return cached[1]


def _template(message: Any, params: Any) -> str:
    """A log template with its arguments replaced: Dramatiq logs whole messages (their kwargs
    hold users' texts), so its log lines travel without their arguments."""
    text = str(message or "")
    count = len(params) if isinstance(params, (list, tuple)) else (1 if params else 0)
    if not count:
        return text
    try:
        return text % tuple("[message]" for _ in range(count))
    except (TypeError, ValueError):
        return text


#: Keys of a request body whose text values stay: Telegram's names for kinds of things (a chat's
#: ``type``, an entity's), never a user's words.
_BODY_KINDS = {"type"}


def _body_shape(value: Any, key: Any = None) -> Any:
    """A parsed request body with every text replaced by ``[scrubbed]`` (numbers, booleans and
    kinds stay): the webhook's bodies are Telegram updates, whose texts are users' messages,
    names, button data, inline queries, captions of their photos."""
    if isinstance(value, dict):
        return {name: _body_shape(item, name) for name, item in value.items()}
    if isinstance(value, list):
        return [_body_shape(item, key) for item in value]
    if isinstance(value, str) and key not in _BODY_KINDS:
        return _SCRUBBED
    return value


def _request_body(data: Any) -> Any:
    """What an event keeps of a request's body: a JSON body's shape (:func:`_body_shape`),
    anything else (form data, text, a body Sentry left out) a placeholder."""
    if isinstance(data, bytes | bytearray):
        data = bytes(data).decode("utf-8", "replace")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            return _SCRUBBED
    if isinstance(data, dict | list):
        return _body_shape(data)
    return None if data is None else _SCRUBBED


def _scrub_request(event: dict[str, Any]) -> None:
    """The request an event happened in (the webhook's, by Sentry's aiohttp integration): its raw
    body (an update, with the user's message in it) reduced to its shape, and its query string and
    cookies dropped (a secret or a session could be in either)."""
    request = event.get("request")
    if not isinstance(request, dict):
        return
    if "data" in request:
        request["data"] = _request_body(request["data"])
    for key in ("query_string", "cookies"):
        if request.get(key):
            request[key] = _SCRUBBED


def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    entry = event.get("logentry")
    if str(event.get("logger", "")).startswith("dramatiq") and isinstance(entry, dict):
        entry["formatted"] = _template(entry.get("message"), entry.get("params"))
        entry["params"] = []
    _scrub_request(event)
    return scrub(event)


def before_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    record = (hint or {}).get("log_record")
    if str(crumb.get("category", "")).startswith("dramatiq") and record is not None:
        crumb["message"] = _template(record.msg, record.args)
    return scrub(crumb)


def init_sentry(settings: Settings, role: str, **options: Any) -> bool:
    """Initialise sentry-sdk for ``role`` (worker, bot, scheduler …); False when no DSN is set.

    ``options`` go to ``sentry_sdk.init`` (tests pass a ``transport``).
    """
    dsn = settings.sentry_dsn.get_secret_value()
    if not dsn:
        return False
    import os

    import sentry_sdk

    if _initialized.get("pid") == os.getpid() and sentry_sdk.is_initialized() and not options:
        return True  # the first role wins (the scheduler builds a broker too: keep "scheduler")
    from sentry_sdk.integrations.dramatiq import DramatiqIntegration

    _scrubbers["init"] = scrubber_for(settings.secret_values())
    sentry_sdk.init(
        dsn=dsn,
        environment=settings.sentry_environment,
        integrations=[DramatiqIntegration()],
        before_send=before_send,
        before_breadcrumb=before_breadcrumb,
        send_default_pii=False,
        include_local_variables=False,  # locals hold users' texts and tokens under any name
        server_name=role,
        **options,
    )
    sentry_sdk.set_tag("role", role)
    _initialized.update(pid=os.getpid(), role=role)
    return True


class SentrySink:
    """Sends our alerts to Sentry as messages with the alert's level."""

    name = "sentry"

    def send(self, alert) -> None:
        import sentry_sdk

        with sentry_sdk.new_scope() as scope:
            scope.set_tag("alert_source", alert.source)
            scope.set_tag("alert_state", alert.state)
            scope.set_tag("alert_level", alert.level)
            if alert.rule:
                scope.set_tag("alert_rule", alert.rule)
                scope.set_tag("alert_subject", alert.subject or "-")
                scope.fingerprint = ["alert", alert.rule, alert.subject or "-", alert.state]
            if alert.job_id:
                scope.set_tag("job_id", alert.job_id)
            if alert.details:
                scope.set_context("alert", dict(alert.details))
            level = SENTRY_LEVELS.get(alert.level, "error")
            sentry_sdk.capture_message(f"[{alert.state}] {alert.message}", level=level)

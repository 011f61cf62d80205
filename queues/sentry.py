"""Sentry: initialised before the broker when ``SENTRY_DSN`` is set, with secrets scrubbed.

``before_send`` replaces every secret value in force (tokens, keys, passwords) and drops chat
contents (message texts) from events, wherever they appear. Sentry reports every failed
attempt through its Dramatiq integration; our own alerts (final failures, monitor rules) are
sent as events with their level by :class:`SentrySink`.
"""

from __future__ import annotations

import logging
from typing import Any

from settings import Settings

_SCRUBBED = "[scrubbed]"
_CHAT_KEYS = {"text", "caption", "message_text", "chat_text"}
_secrets: list[str] = []
logger = logging.getLogger(__name__)


def scrub(value: Any, secrets: list[str] | None = None) -> Any:
    """Return ``value`` with every secret replaced and chat texts dropped (recursively)."""
    secrets = _secrets if secrets is None else secrets
    if isinstance(value, str):
        for secret in secrets:
            if secret and secret in value:
                value = value.replace(secret, _SCRUBBED)
        return value
    if isinstance(value, dict):
        return {k: (_SCRUBBED if k in _CHAT_KEYS else scrub(v, secrets)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(scrub(v, secrets) for v in value)
    return value


def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    return scrub(event)


def init_sentry(settings: Settings, role: str) -> bool:
    """Initialise sentry-sdk for ``role`` (worker, bot, scheduler …); False when no DSN is set."""
    dsn = settings.sentry_dsn.get_secret_value()
    if not dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.dramatiq import DramatiqIntegration

    _secrets[:] = sorted(settings.secret_values(), key=len, reverse=True)
    sentry_sdk.init(
        dsn=dsn,
        environment=settings.sentry_environment,
        integrations=[DramatiqIntegration()],
        before_send=before_send,
        send_default_pii=False,
        server_name=role,
    )
    sentry_sdk.set_tag("role", role)
    return True


class SentrySink:
    """Sends our alerts to Sentry as messages with the alert's level."""

    name = "sentry"

    def send(self, alert) -> None:
        import sentry_sdk

        with sentry_sdk.new_scope() as scope:
            scope.set_tag("alert_source", alert.source)
            scope.set_tag("alert_state", alert.state)
            if alert.rule:
                scope.set_tag("alert_rule", alert.rule)
            if alert.job_id:
                scope.set_tag("job_id", alert.job_id)
            level = "info" if alert.level == "info" else alert.level
            sentry_sdk.capture_message(f"[{alert.state}] {alert.message}", level=level)

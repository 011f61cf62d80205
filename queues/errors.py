"""Pipeline errors, on top of the shared hierarchy of :mod:`faceit.errors`."""

from __future__ import annotations

from dramatiq.errors import ConnectionError as BrokerConnectionError

from faceit.errors import FaceitBotError, PermanentError, TransientError

__all__ = [
    "BrokerUnreachableError", "FaceitBotError", "JobCanceled", "JobTimeLimitExceeded", "PermanentError", "TransientError",
    "UnknownActorError", "UnknownJobError", "error_summary",
]


class JobTimeLimitExceeded(FaceitBotError):
    """The job ran past its time limit; retried only when its actor says ``retry_on_timeout``."""

    code = "time_limit"

    def __init__(self, limit: float) -> None:
        super().__init__(f"time limit exceeded ({limit:g} s)")
        self.limit = limit


class JobCanceled(PermanentError):
    """Someone canceled the job while it ran."""

    code = "canceled"


class BrokerUnreachableError(BrokerConnectionError):
    """The message broker (RabbitMQ) did not answer a question about its queues.

    Raised instead of reporting the queues empty: an operator must see "unreachable", never
    "waiting 0". The message names the broker with its password redacted. A Dramatiq connection
    error, so the bot answers it as an outage ("try again shortly")."""


class UnknownActorError(PermanentError):
    code = "unknown_actor"


class UnknownJobError(PermanentError):
    code = "unknown_job"


def error_summary(exc: BaseException, traceback_text: str | None = None) -> dict[str, object]:
    """The JSON form of an error kept in job records: what operators and the bot need.

    ``texts`` is what a user is told, in each language (from :func:`faceit.i18n.error_payload`,
    which knows the translatable key and parameters the exception carries in the worker).
    """
    from faceit.i18n import error_payload
    from queues.redaction import redactor_in_force

    payload = error_payload(exc)
    scrub = redactor_in_force().text  # an error may quote a URL with a token or a key in it
    return {
        "type": type(exc).__name__,
        "code": getattr(exc, "code", "error"),
        "message": scrub(str(exc))[:2000],  # scrubbed whole: a secret cut in two would slip through
        "retryable": bool(getattr(exc, "retryable", True)),
        "key": payload.get("key"),
        "params": payload.get("params") or {},
        "texts": payload.get("texts") or {},
        "traceback": scrub(traceback_text or "")[-8000:],
    }

"""The error hierarchy every layer shares: permanent errors fail a job at once, transient ones
are retried on the schedule.

``code`` is a short stable name (``not_found``, ``rate_limited`` …) that the bot turns into a
message in the user's language; ``message`` is for operators and may be shown in job records.
"""

from __future__ import annotations


class FaceitBotError(Exception):
    """Base of our errors. ``retryable`` tells the pipeline whether trying again can help."""

    code = "error"
    retryable = False

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        self.retry_after = retry_after


class PermanentError(FaceitBotError):
    """Trying again cannot help: bad input, not found, refused credentials."""

    code = "permanent"


class TransientError(FaceitBotError):
    """May succeed later: network trouble, 5xx, rate limiting (with ``retry_after`` seconds)."""

    code = "transient"
    retryable = True


class BadInputError(PermanentError):
    """The user's text is not a valid link, id or nickname; ``message`` can be shown as is."""

    code = "bad_input"


class NotFoundError(PermanentError):
    """The Data API answered 404 for a player or match."""

    code = "not_found"


class AuthError(PermanentError):
    """The Data API refused our key (401/403): operators must act, users cannot."""

    code = "auth"


class KeyMissingError(AuthError):
    """No ``FACEIT_API_KEY`` against FACEIT's own Data API: nothing is sent (every call would be a
    401); the operator must set it. An auth error, told as its own cause."""


class MatchNotAnalysableError(PermanentError):
    """The match was cancelled or aborted: there is nothing to analyse."""

    code = "match_not_analysable"


class RateLimitedError(TransientError):
    """The Data API answered 429; ``retry_after`` comes from ``Retry-After`` when present."""

    code = "rate_limited"


class LowPriorityBudgetExhaustedError(RateLimitedError):
    """Low-priority work (a job of the low queue) found no FACEIT slot within the rate limiter's
    ``max_wait``: the low-priority budget (what the shared bucket holds above the share kept for
    interactive work) is used up for now. Nothing was sent. The client does not retry it inside
    and the cache does not remember it as the key's failure (a caller of that key waiting in
    another process then fetches at its own priority): the job's own retry schedule tries again
    (it carries no ``retry_after``, which would override that schedule and requeue it at once)."""


class UpstreamError(TransientError):
    """5xx, a timeout or a broken connection on the way to an outside service."""

    code = "upstream"


class StorageUnavailableError(UpstreamError):
    """Our Redis (the FACEIT cache, the shared rate limit) did not answer: retried as an outage,
    and told as ours, not as FACEIT's (users were told "FACEIT is not answering" while FACEIT
    answered and our Redis was restarting)."""

    code = "storage"


class FetchCancelledError(UpstreamError):
    """What the joiners of a single-flight fetch (:class:`faceit.cache.SingleFlightCache`) get when
    the task leading it is cancelled (its job cancelled or timed out): not the key's failure nor
    theirs, so a joiner fetches again itself instead of failing with it."""


#: Codes of errors about what was asked (not about how things went): running the job again
#: cannot change them, and they are the user's doing, not the system's.
REQUEST_ERROR_CODES = frozenset({BadInputError.code, NotFoundError.code, MatchNotAnalysableError.code})


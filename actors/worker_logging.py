"""Worker log lines: a retried upstream error is a warning in one line, not an ERROR traceback.

Dramatiq logs every exception a message raises at ERROR, with its traceback, before any
middleware has decided what happens next. For an upstream 503 or 429 (a
:class:`~faceit.errors.TransientError`) that Backoff retries on schedule, that is noise that
buries real errors: during a FACEIT outage every attempt of every job printed a traceback.
This filter turns those lines into one WARNING line naming the error. Bugs (anything else)
keep their ERROR line and traceback. Sentry is not affected: its Dramatiq integration still
reports every failed attempt (docs/design.md), and the job record keeps the traceback.

Dramatiq's ``throws`` actor option would quiet the log too, but it also stops Sentry's
per-attempt reports, so it stays limited to permanent errors.
"""

from __future__ import annotations

import logging

from queues.errors import TransientError

#: The logger Dramatiq's worker threads write "Failed to process message" to.
WORKER_THREAD_LOGGER = "dramatiq.worker.WorkerThread"


class RetriedErrorFilter(logging.Filter):
    """Downgrades Dramatiq's ERROR line for a :class:`TransientError` to a one-line WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if record.levelno >= logging.ERROR and isinstance(error, TransientError):
            text = record.getMessage().removesuffix(" with unhandled exception.")
            record.msg = f"{text}: {type(error).__name__}: {error} (transient: retried while attempts remain)"
            record.args = ()
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


def quiet_retried_errors() -> None:
    """Install :class:`RetriedErrorFilter` once on Dramatiq's worker-thread logger."""
    worker_logger = logging.getLogger(WORKER_THREAD_LOGGER)
    if not any(isinstance(f, RetriedErrorFilter) for f in worker_logger.filters):
        worker_logger.addFilter(RetriedErrorFilter())

"""Worker log lines: a retried upstream error, or a job stopped at its time limit, is a warning in
one line, not an ERROR traceback.

Dramatiq logs every exception a message raises at ERROR, with its traceback, before any
middleware has decided what happens next. For an upstream 503 or 429 (a
:class:`~faceit.errors.TransientError`) that Backoff retries on schedule, that is noise that
buries real errors: during a FACEIT outage every attempt of every job printed a traceback.
This filter turns those lines into one WARNING line naming the error. Bugs (anything else)
keep their ERROR line and traceback. Sentry is not affected: its Dramatiq integration still
reports every failed attempt (docs/design.md), and the job record keeps the traceback.

A job stopped at its time limit (:class:`~queues.errors.JobTimeLimitExceeded`) is an outcome the
pipeline handles too (the user is told, an alert fires): one WARNING line that names where the
job was when it was stopped (the innermost frame, what a traceback would have shown last), as an
"unhandled exception" with a traceback it read as a bug.

Dramatiq's ``throws`` actor option would quiet the log too, but it also stops Sentry's
per-attempt reports, so it stays limited to permanent errors.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

from queues.errors import JobTimeLimitExceeded, TransientError

#: The logger Dramatiq's worker threads write "Failed to process message" to.
WORKER_THREAD_LOGGER = "dramatiq.worker.WorkerThread"


class RetriedErrorFilter(logging.Filter):
    """Downgrades Dramatiq's ERROR line for a :class:`TransientError`, or a job stopped at its time
    limit, to a one-line WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if record.levelno < logging.ERROR:
            return True
        if isinstance(error, TransientError):
            _one_line(record, error, "transient: retried while attempts remain")
        elif isinstance(error, JobTimeLimitExceeded):
            _one_line(record, error, f"stopped in {_innermost(error)}")
        return True


def _one_line(record: logging.LogRecord, error: BaseException, why: str) -> None:
    text = record.getMessage().removesuffix(" with unhandled exception.")
    record.msg = f"{text}: {type(error).__name__}: {error} ({why})"
    record.args = ()
    record.levelno, record.levelname = logging.WARNING, "WARNING"
    record.exc_info, record.exc_text = None, None


#: The project's own files (not the standard library's, nor installed packages').
ROOT = Path(__file__).resolve().parents[1]


def _innermost(error: BaseException) -> str:
    """``file:line in function`` of the innermost frame of our own code the job was in when its
    time limit stopped it: the timeout ``error`` was raised from, and the cancellation under it."""
    timeout = error.__cause__
    for exc in (timeout.__context__ if timeout is not None else None, timeout):
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if _ours(f.filename)] if exc else []
        if frames:
            return f"{Path(frames[-1].filename).relative_to(ROOT)}:{frames[-1].lineno} in {frames[-1].name}"
    return "an unknown place"


def _ours(filename: str) -> bool:
    path = Path(filename).resolve()
    return path.is_relative_to(ROOT) and not path.is_relative_to(ROOT / ".venv")


def quiet_retried_errors() -> None:
    """Install :class:`RetriedErrorFilter` once on Dramatiq's worker-thread logger."""
    worker_logger = logging.getLogger(WORKER_THREAD_LOGGER)
    if not any(isinstance(f, RetriedErrorFilter) for f in worker_logger.filters):
        worker_logger.addFilter(RetriedErrorFilter())

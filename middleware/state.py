"""What our middleware knows about one delivery, carried on the message proxy as ``message.fb``.

Dramatiq's ``MessageProxy`` lives for exactly one delivery, so state kept on it never leaks
into a retry (which is a new message) and needs no cleanup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DeliveryState:
    attempt: int = 0                 # 0 until tracking started the attempt
    time_limit: float | None = None  # seconds, decided by QueueTimeLimit
    outcome: str = ""                # succeeded | retrying | failed | canceled | skipped
    retry_delay: float | None = None
    retry_at: float | None = None
    max_attempts: int = 0            # first try + retries, once Backoff decided to retry
    error: dict[str, Any] | None = None
    alert_reason: str = ""           # final_failure | time_limit | crash_loop | auth
    requesters: int = 0              # requesters on the record when it ended
    someone_waits: bool = True       # a skipped delivery's job: a delivery could tell anyone
    pending_retry: Any = None        # the message to re-enqueue before the ack
    dead_letter: bool = False        # Backoff's verdict: a final failure an operator should see;
                                     # Tracking dead-letters it once the outcome counted (not stale)
    acked: bool = False              # tracking's final write already acked the message
    result: Any = None               # the actor body's return value (kept off Dramatiq's path)
    extra: dict[str, Any] = field(default_factory=dict)


def state_of(message: Any) -> DeliveryState:
    """The delivery state of ``message`` (created on first use)."""
    state = getattr(message, "fb", None)
    if state is None:
        state = DeliveryState()
        message.fb = state
    return state

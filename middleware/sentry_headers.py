"""Messages carry Sentry's trace headers without the DSN's key.

Why: Sentry's Dramatiq integration puts its trace headers into every message it sees enqueued
(``message.options["_sentry_headers"]``), so a worker's error joins the trace of the request that
made the job. Their ``baggage`` names the DSN's public key (``sentry-public_key=…``), and messages
are kept in the broker, dead letters for days, where everyone who can read Redis or RabbitMQ reads
them. ``SENTRY_DSN`` is a secret here, as every other key. The trace id, sampling decision and
environment stay: the worker's own SDK knows the key it sends with.
"""

from __future__ import annotations

from typing import Any

import dramatiq

SENTRY_HEADERS = "_sentry_headers"  # (sentry_sdk.integrations.dramatiq.SentryMiddleware's name)
BAGGAGE = "baggage"
PUBLIC_KEY_ITEM = "sentry-public_key="


def without_public_key(baggage: str) -> str:
    """``baggage`` (W3C: comma-separated ``key=value`` items) without Sentry's public-key item."""
    return ",".join(item for item in baggage.split(",") if not item.strip().startswith(PUBLIC_KEY_ITEM))


class SentryHeadersScrub(dramatiq.Middleware):
    """Takes the DSN's public key out of the Sentry headers of each message enqueued; placed after
    Sentry's own middleware (which the integration puts first)."""

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message, delay: Any) -> None:
        headers = message.options.get(SENTRY_HEADERS)
        if isinstance(headers, dict) and isinstance(headers.get(BAGGAGE), str):
            headers[BAGGAGE] = without_public_key(headers[BAGGAGE])

"""Messages carry Sentry's trace headers without the DSN's key.

Why: Sentry's Dramatiq integration puts its trace headers into every message it sees enqueued
(``message.options["_sentry_headers"]``), so a worker's error joins the trace of the request that
made the job. Their ``baggage`` names the DSN's public key (``sentry-public_key=…``), and messages
are kept in the broker, dead letters for days, where everyone who can read Redis or RabbitMQ reads
them. ``SENTRY_DSN`` is a secret here, as every other key. The trace id, sampling decision and
environment stay. A worker puts its own DSN's key back before Sentry's middleware reads the
headers (:class:`SentryHeadersRestore`, placed before it): Sentry's trace context names the
project's key, and the worker sends with the same DSN.
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


def with_public_key(baggage: str, public_key: str) -> str:
    """``baggage`` with Sentry's public-key item, when it has Sentry items and lacks that one."""
    items = [item for item in baggage.split(",") if item.strip()]
    if not public_key or not any(i.strip().startswith("sentry-") for i in items) or any(
            i.strip().startswith(PUBLIC_KEY_ITEM) for i in items):
        return baggage
    return ",".join([*items, PUBLIC_KEY_ITEM + public_key])


class SentryHeadersScrub(dramatiq.Middleware):
    """Takes the DSN's public key out of the Sentry headers of each message enqueued; placed after
    Sentry's own middleware (which the integration puts first)."""

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message, delay: Any) -> None:
        headers = message.options.get(SENTRY_HEADERS)
        if isinstance(headers, dict) and isinstance(headers.get(BAGGAGE), str):
            headers[BAGGAGE] = without_public_key(headers[BAGGAGE])


class SentryHeadersRestore(dramatiq.Middleware):
    """Puts this process's DSN key back into a message's Sentry headers before Sentry's middleware
    continues the trace from them (placed before it: :func:`add_sentry_header_restore`)."""

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        headers = message.options.get(SENTRY_HEADERS)
        if isinstance(headers, dict) and isinstance(headers.get(BAGGAGE), str):
            headers[BAGGAGE] = with_public_key(headers[BAGGAGE], _own_public_key())


def _own_public_key() -> str:
    """The key of this process's DSN, as sentry-sdk parsed it at init ("" without Sentry)."""
    import sentry_sdk

    parsed = sentry_sdk.get_client().parsed_dsn
    return parsed.public_key if parsed is not None else ""


def add_sentry_header_restore(broker: dramatiq.Broker) -> None:
    """Place :class:`SentryHeadersRestore` just before Sentry's middleware, when Sentry is on
    (its integration puts its middleware first in every broker it sees built)."""
    try:
        from sentry_sdk.integrations.dramatiq import SentryMiddleware
    except ImportError:  # (no sentry-sdk: nothing reads the headers)
        return
    if any(isinstance(m, SentryMiddleware) for m in broker.middleware):
        broker.add_middleware(SentryHeadersRestore(), before=SentryMiddleware)

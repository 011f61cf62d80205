"""Run as a subprocess by the Sentry tests: a worker's broker with Sentry on (``SENTRY_DSN``)
reads a message whose Sentry headers came without the DSN's key, as its middleware runs in
turn before the actor; prints the middleware order and the baggage Sentry's middleware read."""

from __future__ import annotations

import json

import dramatiq
from sentry_sdk.integrations.dramatiq import SentryMiddleware

from middleware.sentry_headers import SentryHeadersRestore


def main() -> None:
    import actors  # noqa: F401  (builds the broker, which initialises Sentry)

    broker = dramatiq.get_broker()
    order = [type(m).__name__ for m in broker.middleware]
    seen: dict[str, str] = {}
    sentry = next(m for m in broker.middleware if isinstance(m, SentryMiddleware))

    def reading(broker_: dramatiq.Broker, message: dramatiq.Message) -> None:
        seen["baggage"] = message.options["_sentry_headers"]["baggage"]  # (what it continues the trace from)

    sentry.before_process_message = reading  # type: ignore[method-assign]
    message = dramatiq.Message(queue_name="default", actor_name="t", args=(), kwargs={}, options={
        "_sentry_headers": {"baggage": "sentry-trace_id=0123456789abcdef0123456789abcdef,sentry-environment=test",
                            "sentry-trace": "0123456789abcdef0123456789abcdef-0123456789abcdef"}})
    message = dramatiq.MessageProxy(message)  # (as a worker holds it)
    for middleware in broker.middleware:
        if isinstance(middleware, SentryHeadersRestore | SentryMiddleware):
            middleware.before_process_message(broker, message)
    print(json.dumps({"order": order, "baggage": seen.get("baggage", "")}))


if __name__ == "__main__":
    main()

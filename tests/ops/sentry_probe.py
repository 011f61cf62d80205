"""Run as a subprocess by the Sentry tests: init Sentry from settings (as every process does),
send alerts through SentrySink and capture an exception, then flush and exit.

Kept out of the test process because ``sentry_sdk.init`` is process-global and its Dramatiq
integration patches the broker class.
"""

from __future__ import annotations

import os

import sentry_sdk

from queues.alerts import Alert
from queues.sentry import SentrySink, init_sentry
from settings import get_settings


def main() -> None:
    settings = get_settings()
    assert init_sentry(settings, "probe")
    key = os.environ["FACEIT_API_KEY"]
    token = os.environ["TELEGRAM_BOT_TOKEN"]
    sink = SentrySink()
    sink.send(Alert("critical", "faceit", f"FACEIT refused the API key {key}", rule="faceit_auth", subject="-",
                    details={"api_key": key, "text": "hello from a user's private chat"}))
    sink.send(Alert("warning", "monitor", "queue high holds 60 waiting jobs", rule="queue_depth", subject="high"))
    sink.send(Alert("info", "monitor", "resolved: queue high holds 60 waiting jobs", rule="queue_depth",
                    subject="high", state="resolved"))
    try:
        url = f"https://api.telegram.org/bot{token}/sendMessage"
        raise ConnectionError(f"could not reach {url}")
    except ConnectionError:
        sentry_sdk.capture_exception()
    sentry_sdk.flush(timeout=10)


if __name__ == "__main__":
    main()

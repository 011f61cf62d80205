"""Run as a subprocess by the Sentry tests: the bot's process set-up, then the actors (whose
broker initialises Sentry as a worker), then one captured message, flushed."""

from __future__ import annotations

import sentry_sdk

from bot.app import init_process
from settings import get_settings


def main() -> None:
    init_process(get_settings())
    import actors  # noqa: F401  (builds the broker, which calls init_sentry(settings, "worker"))

    sentry_sdk.capture_message("role probe")
    sentry_sdk.flush(timeout=10)


if __name__ == "__main__":
    main()

"""Run as a subprocess by the Sentry tests: a process with Sentry on (``SENTRY_DSN``) enqueues one
job through the broker, as the bot and the scheduler do, inside a transaction (so its trace
headers carry a sampling decision); prints the job id."""

from __future__ import annotations

import sentry_sdk

from queues.manager import get_queue_manager


def main() -> None:
    import actors  # noqa: F401  (builds the broker, which initialises Sentry)
    import tests.ops.ops_actors  # noqa: F401  (declares the actor)

    with sentry_sdk.start_transaction(name="probe", op="probe"):
        handle = get_queue_manager().enqueue_job("ops_leaky_failure", text="x")
    print(handle.id)
    sentry_sdk.flush(timeout=10)


if __name__ == "__main__":
    main()

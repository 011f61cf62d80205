"""``python -m dashboard [--host H] [--port P]``: serve the dashboard.

Binds ``QUEUE_DASHBOARD_HOST:QUEUE_DASHBOARD_PORT`` (127.0.0.1:9181) unless told otherwise, and
refuses to listen anywhere else without credentials. Exit status 2 on a refused configuration or
an address it cannot listen on (one line, e.g. the port is taken).
"""

from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web

from dashboard.app import create_app
from dashboard.security import StartupRefused
from queues.sentry import init_sentry
from queues.waitfor import keep_cancellations
from settings import load_settings_or_exit

ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tfs'  # no headers: credentials never reach the log


def main(argv: list[str] | None = None) -> int:
    settings = load_settings_or_exit()
    parser = argparse.ArgumentParser(prog="python -m dashboard", description="The queue dashboard.")
    parser.add_argument("--host", default=settings.queue_dashboard_host, help="address to listen on")
    parser.add_argument("--port", type=int, default=settings.queue_dashboard_port, help="port to listen on")
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:  # the socket layer would raise OverflowError, a traceback
        print(f"dashboard: --port must be a number from 1 to 65535 (got {args.port})", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    init_sentry(settings, "dashboard")  # before the actors are imported: their broker would say "worker"
    keep_cancellations()  # a cancel landing while a Redis command is sent is not lost (queues.waitfor)
    if not settings.queue_dashboard_enabled:
        logging.getLogger("dashboard").warning("the dashboard is disabled (QUEUE_DASHBOARD_ENABLED=false)")
        return 0
    try:
        app = create_app(settings, host=args.host)
    except StartupRefused as exc:
        print(f"dashboard: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("dashboard").info("dashboard on http://%s:%s/", args.host, args.port)
    # handler_cancellation: a closed tab ends its pending request (the sandbox chat long-polls).
    try:
        web.run_app(app, host=args.host, port=args.port, access_log_format=ACCESS_LOG_FORMAT, print=None,
                    handler_cancellation=True, shutdown_timeout=5)
    except OSError as exc:  # the port is taken (another dashboard?) or the address is not ours
        print(f"dashboard: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

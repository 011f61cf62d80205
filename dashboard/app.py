"""Builds the dashboard's aiohttp application from settings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from dashboard import api, pages
from dashboard.chat import setup_chat
from dashboard.data import DashboardData
from dashboard.monitor import Figures
from dashboard.security import Credentials, RevokedSessions, Signer, check_startup, signing_key
from dashboard.web import (
    DASHBOARD,
    STATIC_DIR,
    Dashboard,
    authenticate,
    errors,
    guard_posts,
    security_headers,
)
from queues.manager import QueueManager
from queues.runtime import get_alert_store, get_job_store, get_redis
from settings import Settings, get_settings

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, host: str | None = None,
               monitor_factory: Callable[[], Any] | None = None) -> web.Application:
    """The application; raises :class:`~dashboard.security.StartupRefused` when unsafe.

    ``host`` is the address it will listen on (the bind check); ``monitor_factory`` replaces
    ``queues.monitoring.get_queue_monitor`` (tests pass one that is absent).
    """
    settings = settings or get_settings()
    credentials = Credentials.from_settings(settings)
    check_startup(host if host is not None else settings.queue_dashboard_host, credentials)  # "" is every address
    store = get_job_store(settings)
    data = DashboardData(
        settings, QueueManager(settings), store, get_alert_store(settings),
        figures=Figures(store, settings, monitor_factory),
    )
    redis_client = get_redis(settings)
    key = signing_key(credentials, redis_client, f"{settings.redis_key_prefix}dashboard:signing_key")
    revoked = RevokedSessions(redis_client, f"{settings.redis_key_prefix}dashboard:revoked_session:")
    chat_url = None
    if settings.sandbox_telegram:
        chat_url = settings.telegram_api_url.rstrip("/") + "/chat"
    dashboard = Dashboard(settings=settings, data=data, credentials=credentials, signer=Signer(key),
                          revoked=revoked, sandbox_chat_url=chat_url)
    # The security headers outermost: the error pages that ``errors`` makes get them too.
    app = web.Application(middlewares=[security_headers, errors, authenticate, guard_posts],
                          client_max_size=1024 * 1024)
    app[DASHBOARD] = dashboard
    app.add_routes(api.routes)
    app.add_routes(pages.routes)
    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=False)
    if chat_url is not None:
        setup_chat(app)
    return app

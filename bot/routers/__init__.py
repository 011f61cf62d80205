"""One router per feature; :func:`all_routers` lists them in the order the dispatcher tries them."""

from __future__ import annotations

from aiogram import Router


def all_routers() -> list[Router]:
    """Feature routers first, the catch-all for unknown commands and stray text last."""
    from bot.routers import admin, analysis, bulk, fallback, jobs, members, players, reports, start, subscriptions

    return [start.router, admin.router, analysis.router, players.router, bulk.router, subscriptions.router,
            jobs.router, reports.router, members.router, fallback.router]

"""One router per feature; :func:`all_routers` builds them in the order the dispatcher tries them."""

from __future__ import annotations

from aiogram import Router


def all_routers() -> list[Router]:
    """Feature routers first, the catch-all for unknown commands and stray text last."""
    from bot.routers import (
        admin,
        analysis,
        bulk,
        fallback,
        jobs,
        members,
        players,
        reports,
        start,
        subscriptions,
    )

    modules = (start, admin, analysis, players, bulk, subscriptions, jobs, reports, members, fallback)
    return [module.build() for module in modules]

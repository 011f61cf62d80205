"""Counts the updates being served, so background work waits for them (:mod:`bot.background`).

Registered outermost: an update counts from the moment the dispatcher starts on it until its
last middleware and handler returned or raised.

Parameters:
  background: the process's :class:`~bot.background.BackgroundWork`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject

from bot.background import BackgroundWork


class InFlightMiddleware(BaseMiddleware):
    """Outer update middleware: ``background.update_started()`` / ``update_finished()``."""

    def __init__(self, background: BackgroundWork) -> None:
        self.background = background

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        self.background.update_started()
        try:
            return await handler(event, data)
        finally:
            self.background.update_finished()

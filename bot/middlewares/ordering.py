"""A user's ``/lang`` and the updates around it are served in the order they were sent.

Why: the dispatcher serves up to ``BOT_UPDATE_CONCURRENCY`` updates at once. A phone that comes
back online sends what was typed meanwhile in one go (``/lang ru``, then ``/help``); served side
by side, ``/help`` read the language before ``/lang`` had written it, and came in English, before
or after "Язык: русский".

So a ``/lang`` waits until the user's earlier updates were served (they answer in the language
they were sent under), and a later update of theirs waits until that ``/lang`` was (it answers in
the new one). Nothing else waits: a user's other updates still run side by side, as before, so
one person's commands cannot hold more update slots than the flood guards allow
(:mod:`bot.telegram`: three answers waiting for their chat at most), and a burst of users waits
for nobody.

Registered after the flood guard (an update it skips takes no turn) and before the language
lookup. The dispatcher starts its update tasks in the order of the updates, and nothing before
this middleware waits, so each update sees exactly the earlier ones.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update

#: ``/lang``, ``/lang ru``, ``/lang@our_bot en``: the command that changes the user's language.
LANG_COMMAND = re.compile(r"^/lang(?:@\w+)?(?:\s|$)", re.IGNORECASE)


def changes_language(event: TelegramObject) -> bool:
    """Whether the update is a ``/lang`` message (a new one; an edit serves nothing new)."""
    message = event.message if isinstance(event, Update) else None
    return message is not None and LANG_COMMAND.match(message.text or "") is not None


class LanguageOrderMiddleware(BaseMiddleware):
    """Outer update middleware: a user's ``/lang`` waits for their earlier updates, their later
    updates wait for it."""

    def __init__(self) -> None:
        # Per user with updates being served: each one's end (a future) and whether it is a /lang.
        self._serving: dict[int, list[tuple[asyncio.Future[None], bool]]] = {}

    def users_served(self) -> int:
        """Users with an update being served (what the map holds: none when idle)."""
        return len(self._serving)

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        user = data.get("event_from_user")
        if user is None:
            return await handler(event, data)
        changes = changes_language(event)
        serving = self._serving.setdefault(user.id, [])
        earlier = [end for end, is_lang in serving if changes or is_lang]
        entry: tuple[asyncio.Future[None], bool] = (asyncio.get_running_loop().create_future(), changes)
        serving.append(entry)
        try:
            if earlier:
                await asyncio.wait(earlier)
            return await handler(event, data)
        finally:
            entry[0].set_result(None)
            serving.remove(entry)
            if not serving:
                del self._serving[user.id]

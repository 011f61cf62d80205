"""The bot process's own word that it served an update to its end, read from its log.

A test that checks "nothing more was sent" for some updates must first know the bot is done
with them; a short sleep only guesses. aiogram's dispatcher logs ``Update id=N is handled``
(or ``is not handled``) once the update's middlewares and handler returned or raised: every
answer, edit or flood notice they sent is in the sandbox by then. The Telegram sandbox's update
ids keep increasing across its resets, so an id names one update in a module's bot log.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from tests.support.waiting import wait_until

#: aiogram's line at the end of each update it served (its ``aiogram.event`` logger, INFO).
SERVED = re.compile(r"Update id=(\d+) is (?:not )?handled\.")


def served_updates(log: str) -> set[int]:
    """The ids of the updates the bot's log says were served to their end."""
    return {int(update_id) for update_id in SERVED.findall(log)}


def wait_served(read_log: Callable[[], str], update_ids: Iterable[int], timeout: float = 20) -> None:
    """Wait until the bot's log (``read_log()``, e.g. ``BotProcess.log``) says each of
    ``update_ids`` (what the sandbox's ``inject`` returned) was served; fail after ``timeout``."""
    wanted = set(update_ids)
    wait_until(lambda: wanted <= served_updates(read_log()), timeout=timeout, interval=0.1,
               what=f"the bot serving updates {sorted(wanted)}")

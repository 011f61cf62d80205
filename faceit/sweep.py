"""A pass over followed players that may run out of time (match monitoring, the cache sweep).

Each player costs FACEIT calls paced by the shared rate limit, so past some thousands of players
a pass cannot end within its job's time limit. Killed at the limit, it told nothing (monitoring)
or refreshed the same first players every hour (the cache sweep), and the next pass died at the
same place. A :class:`Sweep` stops beginning players at its budget; a pass of everyone then
stores where it stopped, and the next one starts there (players in id order, round the end).
"""

from __future__ import annotations

import logging
import time
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Sweep:
    """``name``: the pass of every followed player this is (``monitoring``, ``cache:player``),
    which resumes where the last one stopped; None: a pass of some players only (nothing kept).
    ``budget``: seconds after which no further player is begun (None: no limit)."""

    def __init__(self, store: Any, name: str | None, budget: float | None) -> None:
        self.store = store
        self.name = name
        self.budget = budget
        self.started = time.monotonic()
        self.left: list[str] = []

    async def ordered(self, players: dict[str, T]) -> dict[str, T]:
        """``players`` in id order from where the last pass stopped (the first after it when that
        player is followed no more), then those before it; as given for a pass of some."""
        if self.name is None:
            return players
        resume = await self.store.sweep_resume(self.name)
        ids = sorted(players)
        at = next((i for i, pid in enumerate(ids) if pid >= resume), 0) if resume is not None else 0
        return {pid: players[pid] for pid in ids[at:] + ids[:at]}

    def begins(self, player_id: str) -> bool:
        """Whether ``player_id`` is begun now (False past the budget: it is left for the next pass)."""
        if self.budget is not None and time.monotonic() - self.started > self.budget:
            self.left.append(player_id)
            return False
        return True

    async def end(self, order: list[str]) -> None:
        """Keep where the next pass of everyone starts: the first player of ``order`` (this pass's)
        it did not begin, or the first of all when it began every one."""
        if self.name is None:
            return
        unreached = set(self.left)
        resume = next((pid for pid in order if pid in unreached), None)
        await self.store.set_sweep_resume(self.name, resume)
        if resume is not None:
            log.warning("%s: %d of %d followed players done within %.0f s; the next pass starts with the %d left",
                        self.name, len(order) - len(self.left), len(order), self.budget or 0, len(self.left))

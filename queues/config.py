"""The first version's import path of :class:`QueuePriority` (``from queues.config import
QueuePriority``), kept so its code runs unchanged; the class lives in :mod:`queues.priorities`."""

from queues.priorities import QueuePriority

__all__ = ["QueuePriority"]

"""The three queues, their priority names and their default time limits."""

from __future__ import annotations

from enum import StrEnum

from settings import Settings


class QueuePriority(StrEnum):
    """Where a job runs: HIGH (match analysis), DEFAULT (reports, monitoring), LOW (bulk work)."""

    HIGH = "high"
    DEFAULT = "default"
    LOW = "low"


def queue_name(priority: QueuePriority | str, settings: Settings) -> str:
    """The broker queue of a priority (``QUEUE_NAME_PREFIX`` + ``high`` and so on)."""
    return settings.queue_name_prefix + QueuePriority(priority).value


def known_queue(name: str, settings: Settings) -> str | None:
    """The broker queue ``name`` means, or None: ``high``/``default``/``low`` as given, else the
    same with ``QUEUE_NAME_PREFIX`` in front (``xhigh`` with the prefix ``x``).

    A bare name is taken as is before any prefix is stripped: with the prefix ``l``, stripping
    first turned ``low`` into ``ow``, an unknown queue (``h`` did the same to ``high``)."""
    bare = {priority.value for priority in QueuePriority}
    prefix = settings.queue_name_prefix
    if name not in bare and prefix and name.startswith(prefix):
        name = name[len(prefix):]
    return queue_name(QueuePriority(name), settings) if name in bare else None


def all_queue_names(settings: Settings) -> list[str]:
    return [queue_name(p, settings) for p in QueuePriority]


def priority_of_queue(name: str, settings: Settings) -> QueuePriority | None:
    base = name.removeprefix(settings.queue_name_prefix).removesuffix(".DQ")
    try:
        return QueuePriority(base)
    except ValueError:
        return None


def queue_timeout(name: str, settings: Settings) -> float:
    """The queue's time limit in seconds (3, 5 and 10 minutes by default)."""
    return {
        QueuePriority.HIGH: settings.queue_high_priority_timeout,
        QueuePriority.DEFAULT: settings.queue_default_timeout,
        QueuePriority.LOW: settings.queue_low_priority_timeout,
    }.get(priority_of_queue(name, settings), settings.queue_default_timeout)

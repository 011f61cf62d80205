"""Where Dramatiq's Redis broker keeps a queue's messages, spelled once.

Dramatiq's broker script (``dramatiq/brokers/redis/dispatch.lua``) keeps, under the broker's
namespace:

- ``<ns>:<queue>``: a list of the ids of waiting messages (a delay queue ``<queue>.DQ`` is a
  queue of its own, its ids held until due);
- ``<ns>:<queue>.msgs``: a hash, message id → encoded message, for waiting and running ones;
- ``<ns>:<queue>.XQ`` and ``<ns>:<queue>.XQ.msgs``: the dead letters (a sorted set of ids by
  time, and their bodies), one set for a queue and its delay queue;
- ``<ns>:__acks__.<broker id>.<queue>``: the ids a worker process has taken and not yet acked;
- ``<ns>:__heartbeats__``: a sorted set of worker processes by last heartbeat.

The queue manager, the admin tool, the monitoring and our broker read these directly (a job's
place in its queue, counts, requeue, purging dead letters, putting back what a dropped
connection held). Spelling them here means a Dramatiq upgrade that moves one fails one test
(``tests/pipeline/test_dramatiq_keys.py``) instead of quietly breaking those features.
"""

from __future__ import annotations

from dramatiq.common import xq_name


def queue_key(namespace: str, queue: str) -> str:
    """The list of ``queue``'s waiting message ids."""
    return f"{namespace}:{queue}"


def messages_key(namespace: str, queue: str) -> str:
    """The hash of ``queue``'s message bodies by message id (waiting and running)."""
    return f"{queue_key(namespace, queue)}.msgs"


def dead_letters_key(namespace: str, queue: str) -> str:
    """The sorted set (by time) of the dead letters of ``queue`` and of its delay queue."""
    return queue_key(namespace, xq_name(queue))


def dead_messages_key(namespace: str, queue: str) -> str:
    """The hash of the dead letters' bodies (see :func:`dead_letters_key`)."""
    return f"{dead_letters_key(namespace, queue)}.msgs"


def acks_key(namespace: str, broker_id: str, queue: str) -> str:
    """The set of ``queue``'s message ids that worker process ``broker_id`` holds unacked."""
    return f"{namespace}:__acks__.{broker_id}.{queue}"


def heartbeats_key(namespace: str) -> str:
    """The sorted set of worker processes (broker ids) by their last heartbeat, in ms."""
    return f"{namespace}:__heartbeats__"


def enqueue_marker_key(namespace: str, redis_message_id: str) -> str:
    """Ours, not Dramatiq's: the short-lived marker that a message was enqueued once
    (:mod:`queues.enqueue_once`), so a repeated enqueue of the same Redis id is a no-op."""
    return f"{namespace}:__enqueued__.{redis_message_id}"

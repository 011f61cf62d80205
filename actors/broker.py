"""Builds the broker and its middleware stack from settings: the one place that knows both.

Middleware order matters because ``after_*`` hooks run in reverse list order. The list, as
:func:`build_middleware` builds it (Sentry's only when ``SENTRY_DSN`` is set):

1. ``SentryMiddleware`` — only with ``SENTRY_DSN``: Sentry's Dramatiq integration, initialised
   before the broker is created, patches the broker class and puts it first (a scope per
   message, the job's exception reported).
2. ``CurrentMessage`` — the actor wrapper reads the message (time limit, job id) from it.
3. ``AsyncIO`` — one event loop thread per process runs every ``async def`` actor.
4. ``AlertOnFailure`` — its ``after`` hook runs after Tracking's and DeliveryTrigger's, when the
   outcome is final and recorded.
5. ``DeliveryTrigger`` — after tracking recorded a final status, sends the delivery job.
6. ``RetryNotice`` — after tracking recorded ``retrying``, tells the waiting users when the
   next attempt comes.
7. ``Tracking`` — writes the outcome Backoff decided (its ``after`` runs after Backoff's).
8. ``Backoff`` — decides retry or failure first; sends the retry in ``before_ack``.
9. ``QueueTimeLimit`` — decides the limit before the actor runs.
10. ``WorkerPresence`` — heartbeats, running jobs, dead-worker sweep.
11. ``WorkerCpuPriority`` — at worker boot, lowers the process's CPU priority (``WORKER_NICE``).
12. ``StopSignals`` — after process boot, makes two stop signals at once stop the worker once,
    and a later one end it at once.

Dramatiq's ``Retries``, ``TimeLimit``, ``AgeLimit``, ``Callbacks`` and ``Pipelines`` are left
out on purpose: Backoff and QueueTimeLimit replace the first two, and we use neither callbacks
nor pipelines.
"""

from __future__ import annotations

import logging
import re
import time
import weakref
from collections.abc import Iterable
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis, dq_name
from dramatiq.encoder import JSONEncoder
from dramatiq.middleware import AsyncIO, CurrentMessage

from actors.brokers import TrackedRedisBroker
from actors.worker_logging import quiet_retried_errors
from middleware.alerts import AlertOnFailure
from middleware.backoff import Backoff
from middleware.cpu_priority import WorkerCpuPriority
from middleware.delivery_trigger import DeliveryTrigger
from middleware.retry_notice import RetryNotice
from middleware.sentry_headers import SentryHeadersScrub, add_sentry_header_restore
from middleware.stop_signals import StopSignals
from middleware.time_limits import QueueTimeLimit
from middleware.tracking import Tracking
from middleware.worker_presence import WorkerPresence
from queues.connection import as_text, async_redis_client, redis_client, with_hiredis_packing
from queues.dramatiq_keys import acks_key, dead_letters_key, dead_messages_key, heartbeats_key
from queues.priorities import QueuePriority, all_queue_names, queue_name, queue_timeout
from queues.redaction import install_token_scrubber
from queues.runtime import get_alert_store, get_job_store, get_redis
from queues.sentry import init_sentry
from queues.waitfor import keep_cancellations
from queues.workers import WorkerRegistry
from settings import Settings

logger = logging.getLogger(__name__)


def write_broker_heartbeat(broker: Any) -> None:
    """Mark this process alive in Dramatiq's own heartbeat set, which the dead-worker sweep reads.

    Dramatiq refreshes it only when a consumer talks to Redis, and a consumer that lost its
    connection sleeps three seconds before it comes back: a live worker's heartbeat could go
    stale after a short Redis restart and another process would then re-queue the jobs this
    one is still running (they would run twice). Writing it from the presence thread keeps it
    tied to the process being alive, not to its consumers' state.
    """
    if isinstance(broker, RedisBroker):
        broker.client.zadd(heartbeats_key(broker.namespace), {broker.broker_id: current_millis()})


#: Removes dead workers' entries from Dramatiq's heartbeat set, each only while it is still dead.
#: KEYS[1]: the heartbeat set; ARGV[1]: the cutoff (ms); ARGV[2..]: broker ids. A worker whose
#: heartbeat came back since the caller read it keeps its entry: Dramatiq's ``fetch`` writes the
#: heartbeat before it adds ids to an ack set (one script), so an entry still at or before the
#: cutoff belongs to a process that has taken nothing since the caller checked its ack sets.
_FORGET_DEAD = """
local removed = {}
for i = 2, #ARGV do
  local score = redis.call("ZSCORE", KEYS[1], ARGV[i])
  if score and tonumber(score) <= tonumber(ARGV[1]) then
    redis.call("ZREM", KEYS[1], ARGV[i])
    removed[#removed + 1] = ARGV[i]
  end
end
return removed
"""
#: The sweep's scripts registered once per client and script (the sweep runs every few seconds).
_scripts: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def _script(client: Any, source: str) -> Any:
    """``source`` as a script of ``client``, registered on first use."""
    scripts = _scripts.setdefault(client, {})
    if source not in scripts:
        scripts[source] = client.register_script(source)
    return scripts[source]


def _forget_dead(client: Any) -> Any:
    """:data:`_FORGET_DEAD` as a script of ``client``."""
    return _script(client, _FORGET_DEAD)


#: Drops dead letters older than the broker's ``dead_message_ttl`` (what Dramatiq's maintenance did,
#: rolled on 1 command in 1,000, before the broker stopped rolling it: :mod:`actors.brokers`).
#: KEYS: each queue's dead-letter set and its messages hash, in pairs; ARGV[1]: the cutoff (ms),
#: ARGV[2]: at most this many per queue. Returns how many were dropped.
_TRIM_DEAD_LETTERS = """
local dropped = 0
for i = 1, #KEYS, 2 do
  local ids = redis.call("ZRANGEBYSCORE", KEYS[i], 0, ARGV[1], "LIMIT", 0, tonumber(ARGV[2]))
  if #ids > 0 then
    redis.call("ZREM", KEYS[i], unpack(ids))
    redis.call("HDEL", KEYS[i + 1], unpack(ids))
    dropped = dropped + #ids
  end
end
return dropped
"""
#: Seconds between two trims of the dead letters by one process (its first sweep trims at once).
DEAD_LETTER_TRIM_INTERVAL = 60.0
#: At most this many dead letters per queue per trim (a Lua unpack stays small; a backlog clears
#: over a few trims).
DEAD_LETTER_TRIM_BATCH = 1000
_last_trim: dict[str, float] = {}  # namespace → when (time.monotonic) this process last trimmed


def trim_dead_letters(broker: Any, queue_names: Iterable[str], now_ms: int | None = None) -> int:
    """Drop the dead letters of ``queue_names`` older than ``broker.dead_message_ttl``
    (``QUEUE_FAILURE_TTL``): how many. The job records keep the failures for the dashboard and
    ``admin.py``; the dead-letter queues are for ``admin.py requeue``, within the same day."""
    script = _script(broker.client, _TRIM_DEAD_LETTERS)
    keys = []
    for name in sorted({q.removesuffix(".DQ") for q in queue_names}):
        keys += [dead_letters_key(broker.namespace, name), dead_messages_key(broker.namespace, name)]
    cutoff = (now_ms if now_ms is not None else current_millis()) - broker.dead_message_ttl
    return int(script(keys=keys, args=[cutoff, DEAD_LETTER_TRIM_BATCH])) if keys else 0


def _ack_queues(queue_names: Iterable[str]) -> list[str]:
    """The queues Dramatiq keeps ack sets for, for ``queue_names``: each queue and its delay
    queue. Ack sets are written only by ``fetch`` (``dispatch.lua``), under the name of the queue
    a consumer fetched from; dead letters (``.XQ``) are never fetched, so they have none."""
    return sorted({q for name in queue_names for q in (name, dq_name(name))})


#: How long this process trusts its finding that a dead process holds ack sets on queues it does
#: not know (:func:`_acks_elsewhere`) before it looks again, in seconds.
ELSEWHERE_RECHECK = 600.0
#: (namespace, dead broker id) → when (``time.monotonic``) its ack sets on queues this process
#: does not know were found: such an id is neither forgotten nor looked for again until
#: :data:`ELSEWHERE_RECHECK` has passed. Only ids still dead at the last sweep are kept.
_HOLDING_ELSEWHERE: dict[tuple[str, str], float] = {}
_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")


def _glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis ``MATCH`` pattern."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def _acks_elsewhere(client: Any, namespace: str, worker_id: str) -> list[str]:
    """The queues ``worker_id`` holds an ack set on, any queue (``SCAN``, never ``KEYS``: it walks
    the keyspace a batch at a time, without blocking Redis for the whole of it)."""
    prefix = acks_key(namespace, worker_id, "")
    found = client.scan_iter(match=f"{_glob_escape(prefix)}*", count=1000)
    return sorted({as_text(key)[len(prefix):] for key in found})


def sweep_dead_workers(broker: Any, queue_names: list[str], *,
                       elsewhere_recheck: float = ELSEWHERE_RECHECK) -> int:
    """Put back the unacked messages of dead worker processes on ``queue_names``, and forget dead
    processes that hold nothing; and, once every :data:`DEAD_LETTER_TRIM_INTERVAL` seconds, drop
    their dead letters older than the broker's TTL (:func:`trim_dead_letters`), which Dramatiq's
    random maintenance did before the broker stopped rolling it. Returns how many dead processes held messages on those queues
    (0 on brokers that need no sweep: RabbitMQ re-delivers unacked messages itself when a
    connection drops).

    Dramatiq's maintenance (its ``dispatch`` script) runs ``KEYS <ns>:__acks__.<id>*`` for every
    dead entry of the heartbeat set, on every call, and removes an entry only once that finds no
    ack set at all. ``KEYS`` walks the whole database, and an entry whose ack sets are on a queue
    no live pool consumes (a pool removed, ``QUEUE_NAME_PREFIX`` changed) stayed for ever: one
    full walk of the keyspace per queue every few seconds. Here each dead id is first checked
    with ``EXISTS`` on its ack sets of every queue this process knows (the broker's declared
    queues and ``queue_names``, with their delay queues). Dramatiq's maintenance then runs only
    on this process's queues where a dead id still holds messages, and moves them back to their
    queue.

    A dead id holding nothing on those queues is removed from the heartbeat set directly
    (Dramatiq removes it too, when it finds nothing), but only once ``SCAN MATCH
    <ns>:__acks__.<id>.*`` finds no ack set of it on any queue: Dramatiq puts back only the
    messages of ids its heartbeat set lists, so forgetting one that holds messages on queues
    nobody here knows (a ``QUEUE_NAME_PREFIX`` changed while the old pools still consume the old
    names, a pool of other queues) would strand them for good. Such an id keeps its entry, for a
    pool of those queues to put them back, and is told once at WARNING; this process looks for
    its ack sets again every ``elsewhere_recheck`` seconds (:data:`ELSEWHERE_RECHECK` unless
    given; tests pass 0 to stand for the time gone by), not on every sweep. (For a pool removed for
    good, nothing will: an operator starts one on those queues once, or deletes the ack sets.)
    """
    if not isinstance(broker, RedisBroker):
        return 0
    client = broker.client
    namespace = broker.namespace
    now = current_millis()
    if time.monotonic() - _last_trim.get(namespace, float("-inf")) >= DEAD_LETTER_TRIM_INTERVAL:
        _last_trim[namespace] = time.monotonic()
        dropped = trim_dead_letters(broker, queue_names, now)
        if dropped:
            logger.info("dropped %d dead letter(s) older than %.0f s", dropped, broker.dead_message_ttl / 1000)
    cutoff = now - broker.heartbeat_timeout
    heartbeats = heartbeats_key(namespace)
    dead = [as_text(i) for i in client.zrangebyscore(heartbeats, 0, cutoff)]
    _forget_checks(namespace, dead)
    if not dead:
        return 0
    known = _ack_queues([*broker.get_declared_queues(), *queue_names])
    pipe = client.pipeline(transaction=False)
    for worker_id in dead:
        for queue in known:
            pipe.exists(acks_key(namespace, worker_id, queue))
    found = iter(pipe.execute())
    holding = {worker_id: [queue for queue in known if next(found)] for worker_id in dead}
    idle = [worker_id for worker_id, queues in holding.items() if not queues]
    empty = [worker_id for worker_id in idle
             if not _holds_acks_elsewhere(client, namespace, worker_id, elsewhere_recheck)]
    if empty:
        forgotten = [as_text(i) for i in _forget_dead(client)(keys=[heartbeats], args=[cutoff, *empty])]
        if forgotten:
            logger.info("forgot %d dead worker process(es) holding no unacked message on any queue: %s",
                        len(forgotten), ", ".join(forgotten))
    ours = set(_ack_queues(queue_names))
    owners = {worker_id: sorted(set(queues) & ours) for worker_id, queues in holding.items()}
    owners = {worker_id: queues for worker_id, queues in owners.items() if queues}
    dispatch = broker.scripts["dispatch"]
    for queue in sorted({queue for queues in owners.values() for queue in queues}):
        dispatch(
            args=["qsize", now, queue, broker.broker_id, broker.heartbeat_timeout,
                  broker.dead_message_ttl, 1, broker._max_unpack_size()],
            keys=[namespace],
        )
    for worker_id, queues in owners.items():
        logger.info("putting back the unacked messages of dead worker process %s on %s",
                    worker_id, ", ".join(queues))
    return len(owners)


def _forget_checks(namespace: str, dead: list[str]) -> None:
    """Drop what :data:`_HOLDING_ELSEWHERE` knows of ids of ``namespace`` no longer dead (put
    back and forgotten by a pool of their queues, or alive again)."""
    still_dead = set(dead)
    for key in [key for key in _HOLDING_ELSEWHERE if key[0] == namespace and key[1] not in still_dead]:
        del _HOLDING_ELSEWHERE[key]


def _holds_acks_elsewhere(client: Any, namespace: str, worker_id: str, recheck: float) -> bool:
    """Whether dead ``worker_id``, which holds nothing on the queues this process knows, holds an
    ack set on another queue: looked for with ``SCAN`` once per ``recheck`` seconds, and told at
    WARNING the first time it is found."""
    key = (namespace, worker_id)
    checked = _HOLDING_ELSEWHERE.get(key)
    if checked is not None and time.monotonic() - checked < recheck:
        return True
    queues = _acks_elsewhere(client, namespace, worker_id)
    if not queues:
        _HOLDING_ELSEWHERE.pop(key, None)
        return False
    if checked is None:
        logger.warning("dead worker process %s holds unacked messages on queues this pool does not consume: %s; "
                       "a pool of those queues will put them back", worker_id, ", ".join(queues))
    _HOLDING_ELSEWHERE[key] = time.monotonic()
    return True


def build_middleware(settings: Settings, worker_registry) -> list[dramatiq.Middleware]:
    queue_limits = {name: queue_timeout(name, settings) for name in all_queue_names(settings)}
    return [
        SentryHeadersScrub(),  # after Sentry's, which its integration puts first
        CurrentMessage(),
        AsyncIO(),
        AlertOnFailure(alert_store=get_alert_store),
        DeliveryTrigger(queue_name=queue_name(QueuePriority.HIGH, settings)),
        RetryNotice(),
        Tracking(job_store=get_job_store, max_retries=settings.queue_max_retries,
                 worker_name=lambda: _presence_name()),
        Backoff(max_retries=settings.queue_max_retries, retry_delays=settings.queue_retry_delays),
        QueueTimeLimit(queue_limits=queue_limits, default_limit=settings.queue_default_timeout),
        worker_registry,
        WorkerCpuPriority(settings.worker_nice),
        StopSignals(settings.worker_stop_repeat_window),
    ]


_presence: WorkerPresence | None = None


def _presence_name() -> str:
    return _presence.worker_id if _presence is not None else ""


def build_broker(settings: Settings) -> dramatiq.Broker:
    """The broker for ``BROKER`` (redis or rabbitmq) with our middleware, set as global."""
    global _presence
    # ``dramatiq`` configures logging at INFO before it imports us: LOG_LEVEL must win, or a
    # WARNING setting still writes a line per job through the worker's log pipe.
    logging.getLogger().setLevel(settings.log_level)
    token = getattr(settings, "telegram_bot_token", None)  # workers deliver results: they hold it
    install_token_scrubber(token.get_secret_value() if token is not None else "")
    quiet_retried_errors()
    keep_cancellations()  # a job's cancel or time limit landing while a Redis command is sent is not lost
    init_sentry(settings, "worker")
    import faceit.context

    faceit.context.sentinel_client_factory = async_redis_client  # the FACEIT cache follows failovers too
    faceit.context.client_finish = with_hiredis_packing  # and packs its commands as ours do
    dramatiq.set_encoder(JSONEncoder())
    _presence = WorkerPresence(
        registry=lambda: WorkerRegistry.from_settings(get_redis(settings), settings),
        interval=settings.queue_maintenance_interval,
        sweep=sweep_dead_workers,
        beat=write_broker_heartbeat,
        heartbeat_timeout=settings.queue_heartbeat_timeout,
    )
    middleware = build_middleware(settings, _presence)
    if settings.broker == "rabbitmq":
        from actors.rabbit_broker import IdleSafeRabbitmqBroker

        if logging.getLogger().level >= logging.INFO:  # pika says each connect in six INFO lines
            logging.getLogger("pika").setLevel(logging.WARNING)
        # Publisher confirms: a publish returns once RabbitMQ has the message. Without them a
        # retry published just before RabbitMQ went down could be lost after its original was
        # acked, leaving a job "retrying" that nothing would run.
        # Each thread's publishing connection is renewed before RabbitMQ drops it for idling.
        broker: dramatiq.Broker = IdleSafeRabbitmqBroker(url=settings.rabbitmq_url, middleware=middleware,
                                                         confirm_delivery=True)
    else:
        broker = TrackedRedisBroker(
            client=redis_client(settings, decode=False),
            namespace=settings.dramatiq_namespace,
            middleware=middleware,
            heartbeat_timeout=int(settings.queue_heartbeat_timeout * 1000),
            dead_message_ttl=int(settings.queue_failure_ttl * 1000),
            # Messages a resent fetch left in a live worker's ack set come back on the same
            # time scale as a dead worker's.
            reconcile_interval=settings.queue_heartbeat_timeout,
        )
    for name in all_queue_names(settings):
        broker.declare_queue(name)
    add_sentry_header_restore(broker)  # (a worker reads its DSN's key back into the trace headers)
    dramatiq.set_broker(broker)
    return broker



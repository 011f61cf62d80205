"""The queue manager: what the bot, the admin tool, the scheduler and the dashboard call.

It keeps the first version's call shapes (``get_queue_manager()``,
``enqueue_match_analysis(match_url_or_id, user_id)`` returning a handle with ``.id`` …) on
Dramatiq. :meth:`QueueManager.submit` takes three Redis round trips for a new job on the Redis
broker: the job record (with coalescing, one Lua script), the message, then the queue's length
(the place shown); a request that joins the in-flight job skips the message. The bot does all
of it, and its user limits, in one (``bot/jobstart.py``, from a :meth:`QueueManager.prepare_job`).
A match analysis requested while the same match is queued or running joins that job: the
requester is added and both get the result.

Calls are synchronous (a few Redis round trips each); ``initialize()`` is async for the
callers that already await it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import dramatiq
import redis
from dramatiq import Message
from dramatiq.common import dq_name, xq_name

from faceit.errors import REQUEST_ERROR_CODES
from queues.dramatiq_keys import dead_letters_key, dead_messages_key, messages_key, queue_key
from queues.errors import BrokerUnreachableError, UnknownActorError, UnknownJobError
from queues.jobstore import ACTIVE_STATUSES, CANCELED_BY_OPERATOR, FINAL_STATUSES, Created, JobRecord
from queues.priorities import QueuePriority, all_queue_names, queue_name
from queues.runtime import get_job_store, get_redis
from queues.workers import WorkerRegistry
from settings import Settings, get_settings, redact_url

logger = logging.getLogger(__name__)

#: Seconds a requeue whose message could not be sent tries to put its record back.
UNDO_REQUEUE_WAIT = 30.0

REDACTED = "***"

#: The actor that tells a job's requesters how it ended (actors/deliver.py).
DELIVERY_ACTOR = "deliver_result"

T = TypeVar("T")

#: Drops what waits in a queue, and nothing else: the ids in the queue's list with their bodies,
#: and every message of its delay queue (list and bodies). A delay queue holds only messages
#: waiting for their time, in its list or in a worker's memory (Dramatiq fetches them early and
#: moves each to its queue when due); none of them runs. Left alone: the dead letters (``.XQ``,
#: ``.XQ.msgs``), the workers' ack sets and the bodies of the queue's messages workers took, so
#: a running job that fails is still dead-lettered and a dead worker's jobs are still
#: re-delivered. One script: a worker's fetch (Dramatiq's, a script too) runs wholly before or
#: after it, so an id is either still listed (dropped) or in an ack set (kept with its body).
#: KEYS: the queue's list and bodies, its delay queue's list and bodies; ARGV[1]: ids per HDEL
#: (Lua's ``unpack`` has a limit). Returns {waiting dropped, delayed dropped}.
CLEAR_WAITING_LUA = """
local per_call, keep_actor = tonumber(ARGV[1]), ARGV[2]
local function kept(hash, id)
  local ok, message = pcall(cjson.decode, redis.call("HGET", hash, id) or "")
  return ok and type(message) == "table" and message["actor_name"] == keep_actor
end
local function hdel(hash, ids)
  for first = 1, #ids, per_call do
    redis.call("HDEL", hash, unpack(ids, first, math.min(first + per_call - 1, #ids)))
  end
end
-- The list KEYS[list] (ids, bodies in KEYS[hash]) rewritten with only the ids in keep, in order.
local function relist(list, keep)
  redis.call("DEL", list)
  for first = 1, #keep, per_call do
    redis.call("RPUSH", list, unpack(keep, first, math.min(first + per_call - 1, #keep)))
  end
end
-- Waiting: every listed message but keep_actor's (the running ones' bodies are not listed: kept).
local stay, drop = {}, {}
for _, id in ipairs(redis.call("LRANGE", KEYS[1], 0, -1)) do
  if kept(KEYS[2], id) then stay[#stay + 1] = id else drop[#drop + 1] = id end
end
hdel(KEYS[2], drop)
relist(KEYS[1], stay)
-- Delayed: every body but keep_actor's (listed, or held by a worker until due).
local held, gone = {}, {}
for _, id in ipairs(redis.call("HKEYS", KEYS[4])) do
  if kept(KEYS[4], id) then held[id] = true else gone[#gone + 1] = id end
end
hdel(KEYS[4], gone)
local still = {}
for _, id in ipairs(redis.call("LRANGE", KEYS[3], 0, -1)) do
  if held[id] then still[#still + 1] = id end
end
relist(KEYS[3], still)
return {#drop, #gone}
"""
#: Message ids per ``HDEL`` in :data:`CLEAR_WAITING_LUA` (well under Lua's ``unpack`` limit).
CLEAR_BATCH = 1000


def delivery_message(job_id: str, queue: str) -> Message:
    """The message of the delivery job of ``job_id`` (sent when it ends, or is canceled before it ran)."""
    return Message(queue_name=queue, actor_name=DELIVERY_ACTOR, args=(job_id,), kwargs={}, options={})


def redacted_arguments(actor: Any, args: Any, kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """Args and kwargs as stored in job records: the actor's ``secret_fields`` masked."""
    secret = set(actor.options.get("secret_fields", ())) if actor is not None else set()
    return list(args), {k: (REDACTED if k in secret else v) for k, v in (kwargs or {}).items()}


@dataclass(frozen=True)
class JobHandle:
    """What an enqueue returns: the job id, where it went and its place in the queue."""

    id: str
    actor: str
    queue: str
    position: int = 0
    coalesced: bool = False
    status: str = "queued"
    again: bool = False  # met a job this requester had already asked for (in flight or just done)
    shown_here: int | None = None  # in a group: the message there that already shows the job (0: being sent)
    again_in_chat: int | None = None  # again: the chat of the requester's first answer (None: not known)


#: The failed (and canceled) jobs one bulk requeue looks at: the newest.
REQUEUE_BATCH = 1000


class RequeuedJobs(list[str]):
    """The ids of the jobs sent again, and what a bulk requeue left alone: ``skipped``, failed
    jobs refused for their request (:data:`REQUEST_ERROR_CODES`), and ``superseded``, failed jobs
    whose every requester has asked again since and got (or is getting) the answer."""

    skipped: int = 0
    superseded: int = 0
    #: A bulk requeue looks at the newest ``limit`` failed (and canceled) jobs: True when it met
    #: that many, so more may be left (``admin.py requeue`` said "requeued 1000" and nothing more).
    more: bool = False


@dataclass(frozen=True)
class PreparedJob:
    """A job built but not yet written (:meth:`QueueManager.prepare_job`): the arguments of its
    record's ``create_job`` script, and its Dramatiq message (the job id is the message id)."""

    job_id: str
    actor: str
    queue: str
    create_args: list[Any]
    message: Message
    user_id: int | None = None


@dataclass
class QueueStats:
    """Per-queue figures. ``delayed`` is None on RabbitMQ, where it cannot be counted; ``waiting``
    is None only where the broker did not answer (the monitor's snapshot: unknown, not 0)."""

    name: str
    waiting: int | None
    delayed: int | None
    in_progress: int | None
    dead: int | None
    workers: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class QueueManager:
    """Enqueue, look up, cancel and requeue jobs; count what is in the queues."""

    def __init__(self, settings: Settings | None = None, broker: dramatiq.Broker | None = None) -> None:
        self.settings = settings or get_settings()
        self._broker = broker
        self._clear_waiting: Any = None  # CLEAR_WAITING_LUA, registered on first use

    # --- wiring ---------------------------------------------------------------------------

    @property
    def broker(self) -> dramatiq.Broker:
        if self._broker is None:
            import actors  # noqa: F401  (builds the broker and declares every actor)

            self._broker = dramatiq.get_broker()
        return self._broker

    @property
    def jobs(self):
        return get_job_store(self.settings)

    async def initialize(self) -> None:
        """Check that Redis answers and load the actors (raises if Redis is unreachable)."""
        get_redis(self.settings).ping()
        _ = self.broker

    def _actor(self, actor: Any) -> dramatiq.Actor:
        name = actor if isinstance(actor, str) else getattr(actor, "actor_name", None)
        try:
            return self.broker.get_actor(name)
        except Exception:
            raise UnknownActorError(f"unknown actor {name!r}") from None

    # --- enqueue --------------------------------------------------------------------------

    def prepare_job(
        self,
        actor: Any,
        *,
        priority: QueuePriority | str | None = None,
        retry: int | None = None,
        timeout: float | None = None,
        requester: dict[str, Any] | None = None,
        coalesce: str | None = None,
        **kwargs: Any,
    ) -> PreparedJob:
        """Build ``actor(**kwargs)``'s record and message without writing anything (no I/O).

        ``retry``/``timeout`` override the actor's defaults; ``requester`` ({user_id, chat_id,
        message_id, lang}) is who gets the result; ``coalesce`` joins an in-flight job of the
        same actor and subject instead of a new one. :meth:`submit` writes it.
        """
        target = self._actor(actor)
        queue = queue_name(priority, self.settings) if priority is not None else target.queue_name
        options: dict[str, Any] = {}
        if retry is not None:
            options["max_retries"] = int(retry)
        if timeout is not None:
            options["time_limit"] = float(timeout)
        max_retries = options.get("max_retries", target.options.get("max_retries", self.settings.queue_max_retries))
        job_id = str(uuid.uuid4())
        args, stored_kwargs = redacted_arguments(target, (), kwargs)
        create_args = self.jobs.create_args(
            job_id, actor=target.actor_name, queue=queue, args=args, kwargs=stored_kwargs,
            options=options, max_retries=int(max_retries), requester=requester, coalesce=coalesce,
        )
        message = Message(queue_name=queue, actor_name=target.actor_name, args=(), kwargs=kwargs,
                          options=options, message_id=job_id)
        return PreparedJob(job_id, target.actor_name, queue, create_args, message, (requester or {}).get("user_id"))

    def submit(self, job: PreparedJob) -> JobHandle:
        """Write a prepared job: its record (or join the in-flight one), then its message."""
        created = self.jobs.create_from(job.create_args)
        if created.state != "new":
            return self.joined(job, created, self._position(job.queue))
        try:
            self.send(job.message)
        except Exception:
            self.jobs.cancel(job.job_id)  # never leave a queued record without a message
            raise
        return self.queued(job, self._position(job.queue))

    @staticmethod
    def joined(job: PreparedJob, created: Created, position: int) -> JobHandle:
        """The handle (and the log line) of a request that met the in-flight job of its subject:
        joined it, asked for it again, or was pointed at the message showing it in its group."""
        how = ("asked for again" if created.again
               else "already shown in the chat" if created.shown_here is not None else "joined")
        logger.info("job %s: %s by user %s (%s)", created.job_id, how, job.user_id, created.state)
        return JobHandle(created.job_id, job.actor, job.queue, position, True, created.state, created.again,
                         created.shown_here, created.again_in_chat)

    @staticmethod
    def queued(job: PreparedJob, position: int) -> JobHandle:
        """The handle (and the log line) of a job whose message was queued."""
        logger.info("job %s: %s queued on %s", job.job_id, job.actor, job.queue)
        return JobHandle(job.job_id, job.actor, job.queue, position, False, "queued")

    def send(self, message: Message) -> Message:
        """Hand ``message`` to the broker. On RabbitMQ, a broker that does not answer raises
        :class:`BrokerUnreachableError` naming it (password redacted), as counting its queues does:
        Dramatiq raises its own ``ConnectionClosed`` (or pika's error), which callers would
        otherwise show as a traceback. The Redis broker's errors are Redis errors already."""
        if self.settings.broker != "rabbitmq":
            return self.broker.enqueue(message)
        try:
            return self.broker.enqueue(message)
        except rabbit_failures() as exc:  # Dramatiq already tried again on a new connection
            raise rabbitmq_unreachable(self.settings.rabbitmq_url, exc) from None

    def enqueue_job(self, actor: Any = None, /, *, func: Any = None, **options: Any) -> JobHandle:
        """Enqueue ``actor(**kwargs)`` now (:meth:`prepare_job` takes the same arguments). The actor
        (or its name) comes first, or as ``func=`` (the first version's keyword), not both."""
        if (actor is None) == (func is None):
            raise TypeError("enqueue_job() takes the actor first or as func=, once")
        return self.submit(self.prepare_job(actor if func is None else func, **options))

    def _position(self, queue: str) -> int:
        """How many messages wait in ``queue`` (the new job is among them); on RabbitMQ its ready
        count (0, "first", when RabbitMQ does not say: the job is queued, a count is not worth
        failing its request over)."""
        if self.settings.broker == "redis":
            return int(get_redis(self.settings).llen(queue_key(self.settings.dramatiq_namespace, queue)))
        try:
            return self._ask_rabbit(lambda: int(self.broker.channel.queue_declare(queue, passive=True)
                                                .method.message_count))
        except BrokerUnreachableError as exc:
            logger.info("place in queue %s not known: %s", queue, exc)
            return 0

    def prepare_match_analysis(self, match_url_or_id: str, user_id: int | None = None,
                               priority: QueuePriority = QueuePriority.HIGH,
                               requester: dict[str, Any] | None = None) -> PreparedJob:
        """Analyse a match; joins the in-flight analysis of the same match if there is one.

        ``match_url_or_id`` should already be validated (``faceit.links``); the coalescing
        subject is the normalised match reference.
        """
        subject = _match_subject(match_url_or_id)
        return self.prepare_job("match_analysis", priority=priority, requester=_requester(requester, user_id),
                                coalesce=subject, match_url_or_id=match_url_or_id, user_id=user_id)

    def prepare_player_report(self, player_id: str, user_id: int | None = None,
                              requester: dict[str, Any] | None = None, *, shared: bool = True) -> PreparedJob:
        """A player's report; requests for the same player (as written: nicknames are case-sensitive)
        share the job in flight, and a repeat meets the one just done (``shared=False``: a job of
        its own)."""
        return self.prepare_job("player_report", requester=_requester(requester, user_id),
                                coalesce=player_id if shared else None, player_id=player_id, user_id=user_id)

    def prepare_bulk_analysis(self, match_ids: list[str], user_id: int | None = None,
                              requester: dict[str, Any] | None = None) -> PreparedJob:
        """Several matches in one job; the same set of matches (in any order) shares it."""
        return self.prepare_job("bulk_analysis", requester=_requester(requester, user_id),
                                coalesce="|".join(sorted(set(match_ids))), match_ids=list(match_ids), user_id=user_id)

    def prepare_analytics_report(self, user_id: int | None = None, report_type: str = "weekly",
                                 requester: dict[str, Any] | None = None, *,
                                 scheduled: bool = False, period_end: float | None = None,
                                 period_start: float | None = None) -> PreparedJob:
        """One user's report (their own figures): shared only by that user's repeats.

        ``scheduled``: the scheduler's run, nobody's request (nothing is said when there is
        nothing to report or when it fails: the scheduler tries again). Its subject is its own,
        ``<user>:<type>:scheduled``: sharing the user's made their own ``/report`` meanwhile
        answer "you already asked … in the message that answered you first", a message that
        does not exist, and start nothing. ``period_end``: the moment the summary's period ends
        (the scheduler's: the user's Monday 09:00 it is for; ``period_start``, the one before),
        else the days up to when it runs."""
        marked: dict[str, Any] = {"scheduled": True} if scheduled else {}  # (not sent at all for a request)
        if period_end is not None:
            marked["period_end"] = float(period_end)
        if period_start is not None:
            marked["period_start"] = float(period_start)
        return self.prepare_job("analytics_report", requester=_requester(requester, user_id),
                                coalesce=f"{user_id}:{report_type}" + (":scheduled" if scheduled else ""),
                                user_id=user_id, report_type=report_type, **marked)

    def enqueue_match_analysis(self, match_url_or_id: str, user_id: int | None = None,
                               priority: QueuePriority = QueuePriority.HIGH,
                               requester: dict[str, Any] | None = None) -> JobHandle:
        return self.submit(self.prepare_match_analysis(match_url_or_id, user_id, priority, requester))

    def enqueue_player_report(self, player_id: str, user_id: int | None = None,
                              requester: dict[str, Any] | None = None) -> JobHandle:
        return self.submit(self.prepare_player_report(player_id, user_id, requester))

    def enqueue_bulk_analysis(self, match_ids: list[str], user_id: int | None = None,
                              requester: dict[str, Any] | None = None) -> JobHandle:
        return self.submit(self.prepare_bulk_analysis(match_ids, user_id, requester))

    def enqueue_match_monitoring(self, user_ids: list[int] | None = None) -> JobHandle:
        """A monitoring run (of ``user_ids``' subscriptions, or everyone's). A run of everyone
        joins one still waiting or running, so runs do not pile up while no worker takes them."""
        return self.enqueue_job("match_monitoring", user_ids=list(user_ids) if user_ids else None,
                                coalesce=None if user_ids else "all")

    def enqueue_cache_update(self, cache_type: str, identifiers: list[str] | None = None) -> JobHandle:
        """A cache refresh of ``identifiers``, or of every one of ``cache_type`` (the scheduler's
        hourly sweep of followed players), which joins a sweep still waiting or running, as
        :meth:`enqueue_match_monitoring` does: sweeps queued behind a stalled low queue ran back to
        back once it moved, each spending the shared FACEIT rate limit on the same players."""
        return self.enqueue_job("cache_update", cache_type=cache_type,
                                identifiers=list(identifiers) if identifiers else None,
                                coalesce=None if identifiers else f"{cache_type}:all")

    def enqueue_analytics_report(self, user_id: int | None = None, report_type: str = "weekly",
                                 requester: dict[str, Any] | None = None) -> JobHandle:
        return self.submit(self.prepare_analytics_report(user_id, report_type, requester))

    # --- look up --------------------------------------------------------------------------

    def get_job(self, job_id: str) -> JobRecord | None:
        return self.jobs.get(job_id)

    def get_job_status(self, job_id: str) -> str | None:
        return self.jobs.status(job_id)

    def get_job_result(self, job_id: str) -> Any:
        """The result of a succeeded job, else None."""
        record = self.jobs.get(job_id)
        return record.result if record is not None and record.status == "succeeded" else None

    # --- act ------------------------------------------------------------------------------

    def cancel_job(self, job_id: str, *, tell: bool = True, alone: int | None = None,
                   by: str = CANCELED_BY_OPERATOR) -> str:
        """``canceled`` (queued: it will never run), ``canceling`` (running: stops at its next
        await), ``already_canceled``, or the final status it already had. Raises UnknownJobError
        for an unknown id. ``tell=False``: the caller tells the one user waiting itself (the
        bot answering that user's own /cancel), so no delivery is sent for it. ``alone``: cancel
        only if that user is its one requester, else ``others`` and nothing changes. ``by``: who
        cancels, the operator unless said (the dashboard, the admin tool: its users are told
        the operator stopped it) or ``user`` (their own Cancel)."""
        outcome, waits = self.jobs.cancel(job_id, alone=alone, by=by)
        if outcome == "missing":
            raise UnknownJobError(f"no job {job_id}")
        if outcome == "canceled" and waits and tell:
            self.tell_ended(job_id)
        return outcome

    def cancel_dropped(self, job_ids: list[str]) -> int:
        """Cancel the jobs whose messages were just dropped from their queue (they will never run),
        telling whoever waits for them; returns how many were canceled now."""
        canceled = 0
        for job_id in job_ids:
            outcome, waits = self.jobs.cancel(job_id, by=CANCELED_BY_OPERATOR)  # (a queue cleared)
            if outcome == "canceled":
                if waits:
                    self.tell_ended(job_id)
                canceled += 1
        return canceled

    def enqueue_delivery(self, job_id: str) -> None:
        """Send the delivery job of ``job_id`` (the message the trigger sends when a job ends) on
        the high queue; a broker error raises."""
        self.broker.enqueue(delivery_message(job_id, queue_name(QueuePriority.HIGH, self.settings)))

    def tell_ended(self, job_id: str) -> None:
        """A job ended before it ran (canceled; failed as orphaned by the monitor) is told to
        whoever waits for it now: its message may sit in a backlog, wait for a retry up to 90 s,
        or never come, and the users saw "queued" (or "trying again in 90 s") with a Cancel
        button. The delivery is idempotent: when a message comes up and is skipped, the delivery
        it triggers sends nothing twice."""
        try:
            self.enqueue_delivery(job_id)
        except Exception as exc:  # a canceled job's skipped message still tells them, later
            logger.warning("job %s: ended before it ran; its requesters are not told now (%s)", job_id,
                           type(exc).__name__)

    def requeue_failed(self, queue: str | None = None, job_id: str | None = None, *,
                       include_canceled: bool = False, limit: int = REQUEUE_BATCH) -> RequeuedJobs:
        """Send failed jobs (one, those of a queue, or all) again with fresh counters.

        In bulk, jobs refused for their request itself (:data:`REQUEST_ERROR_CODES`: a nickname
        that does not exist, a cancelled match) are left alone: running them again would only
        fail again, after turning their users' failure notes back into progress lines; how many
        is in the result's ``skipped``. Named by ``job_id``, a job is requeued whatever its error.
        """
        if job_id is not None:
            records = [self.jobs.get(job_id)]
            if records[0] is None:
                raise UnknownJobError(f"no job {job_id}")
        else:
            records, _ = self.jobs.list_jobs(status="failed", queue=queue, limit=limit)
            more = len(records) >= limit
            if include_canceled:
                canceled = self.jobs.list_jobs(status="canceled", queue=queue, limit=limit)[0]
                records += canceled
                more = more or len(canceled) >= limit
        requeued = RequeuedJobs()
        requeued.more = job_id is None and more
        for record in records:
            if record is None or record.status not in ("failed", "canceled"):
                continue
            if job_id is None and (record.error or {}).get("code") in REQUEST_ERROR_CODES:
                requeued.skipped += 1
                continue
            if job_id is None and self._superseded(record):
                requeued.superseded += 1
                continue
            now = time.time()
            if self.jobs.reset_for_requeue(record.id, now) not in ("failed", "canceled"):
                continue
            message = Message(queue_name=record.queue, actor_name=record.actor, args=tuple(record.args),
                              kwargs=record.kwargs, options=dict(record.options), message_id=record.id)
            try:
                self.send(message)
            except Exception:
                # Not sent: the record goes back as it was (and its dead letter stays), so the
                # requeue can be tried again once the broker answers.
                self._undo_requeue(record, now)
                raise
            try:
                self.jobs.retake_coalesce(record.id)
                self._remove_dead_letter(record)
            except redis.RedisError as exc:  # sent all the same: the job runs
                logger.warning("job %s: requeued, but its coalesce key or dead letter not updated: %s",
                               record.id, exc)
            requeued.append(record.id)
            logger.info("job %s: requeued", record.id)
        if requeued.skipped:
            logger.info("requeue: %d failed job(s) left alone: refused for their request (bad input, not found)",
                        requeued.skipped)
        if requeued.superseded:
            logger.info("requeue: %d failed job(s) left alone: their users asked again since and were answered",
                        requeued.superseded)
        return requeued

    def _undo_requeue(self, record: JobRecord, now: float, wait: float = UNDO_REQUEUE_WAIT) -> None:
        """Put ``record`` back as it was before its requeue, whose message could not be sent.
        Most often Redis itself is away (it holds both the queues and the records): the undo is
        tried again for ``wait`` seconds. Past that the record stays "queued" with no message,
        which an operator must hear of: its dead letter is kept, the error log names it."""
        deadline = time.monotonic() + wait
        while True:
            try:
                self.jobs.undo_reset(record, now)
                return
            except redis.RedisError as exc:
                if time.monotonic() > deadline:
                    logger.error("job %s: its requeue could not be sent nor undone (%s): its record says queued "
                                 "with no message; its dead letter is kept", record.id, type(exc).__name__)
                    return
                time.sleep(0.5)

    def _superseded(self, record: JobRecord) -> bool:
        """Whether everyone who asked for the failed job ``record`` has asked for its subject again
        since, in a job that succeeded or still runs: running it again would only send them the
        answer twice (and turn the old failure note into a second copy)."""
        subject = record.raw.get("coalesce_key")
        users = {int(r["user_id"]) for r in record.requesters if r.get("user_id") is not None}
        if not subject or not users:
            return False
        client = self.jobs.client
        for user_id in users:
            later = [j for j in client.zrangebyscore(self.jobs.index_key("user", user_id),
                                                     f"({record.enqueued_at or 0}", "+inf") if j != record.id]
            pipe = client.pipeline(transaction=False)
            for other in later:
                pipe.hmget(self.jobs.job_key(other), ["coalesce_key", "status"])
            answered = any(key == subject and status in ("succeeded", *ACTIVE_STATUSES)
                           for key, status in pipe.execute())
            if not answered:
                return False
        return True

    def _remove_dead_letter(self, record: JobRecord) -> None:
        """Drop the dead-lettered copy of a job we are sending again (Redis broker only)."""
        if self.settings.broker != "redis":
            return
        client = get_redis(self.settings)
        namespace = self.settings.dramatiq_namespace
        xq, xq_messages = dead_letters_key(namespace, record.queue), dead_messages_key(namespace, record.queue)
        for redis_id, raw in client.hscan_iter(xq_messages, count=500):
            if record.id in raw:
                client.zrem(xq, redis_id)
                client.hdel(xq_messages, redis_id)

    def clear_queues(self, *names: str) -> dict[str, int]:
        """Drop every waiting and delayed message of the named queues (all three if none); returns
        how many per queue.

        Only those: dead letters stay (an operator requeues or purges them, ``admin.py
        purge-dead``), and so do the messages workers are running, which end normally (a failure
        is still dead-lettered). Dramatiq's ``flush`` deleted all of it, the running messages'
        bodies included. On Redis the deliveries waiting there stay too (:meth:`_clear_redis_queue`);
        a RabbitMQ purge cannot pick, so emptying the high queue there drops them."""
        names = names or tuple(all_queue_names(self.settings))
        for name in names:
            if name not in all_queue_names(self.settings):
                raise ValueError(f"unknown queue {name!r}")
        clear = self._clear_redis_queue if self.settings.broker == "redis" else self._clear_rabbit_queue
        return {name: clear(name) for name in names}

    def _clear_redis_queue(self, name: str) -> int:
        """Drop the waiting and delayed messages of Redis queue ``name`` (:data:`CLEAR_WAITING_LUA`),
        but for deliveries: each sends an ended job's result, or tells its users it was stopped
        (the notices of the very jobs a clear cancels among them), and has no record to send it
        again from; dropped, users were left on "queued" or a progress line for good."""
        client = get_redis(self.settings)
        if self._clear_waiting is None:
            self._clear_waiting = client.register_script(CLEAR_WAITING_LUA)
        ns, delayed = self.settings.dramatiq_namespace, dq_name(name)
        keys = [queue_key(ns, name), messages_key(ns, name), queue_key(ns, delayed), messages_key(ns, delayed)]
        waiting, delayed_dropped = self._clear_waiting(keys=keys, args=[CLEAR_BATCH, DELIVERY_ACTOR], client=client)
        return int(waiting) + int(delayed_dropped)

    def _clear_rabbit_queue(self, name: str) -> int:
        """Purge RabbitMQ queue ``name`` and its delay queue, never its dead-letter queue; returns
        how many messages the purges dropped. A purge drops only ready messages: the unacked ones
        (running, or a worker's delayed ones) stay with their consumers, and their records are
        canceled by :meth:`clear_and_cancel`, so they are skipped when they come up."""
        return sum(self._ask_rabbit(lambda q=queue: self._purge_rabbit(q)) for queue in (name, dq_name(name)))

    def _purge_rabbit(self, queue: str) -> int:
        """Purge one RabbitMQ queue; a queue that does not exist (nothing was ever sent to it)
        holds nothing. RabbitMQ closes the channel on that answer: Dramatiq opens a new one."""
        import pika.exceptions

        try:
            return int(self.broker.channel.queue_purge(queue).method.message_count)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 404:
                raise
            del self.broker.channel
            return 0

    def clear_and_cancel(self, *names: str) -> tuple[dict[str, int], int]:
        """Empty the named queues (:meth:`clear_queues`) and cancel the records of the jobs they
        held, queued or waiting for a retry, telling whoever waited (:meth:`cancel_dropped`): the
        dropped messages never run, and left "queued" the records would count against their users'
        limits for a day. By the records, so it works on either broker. Returns the messages
        dropped per queue and the records canceled."""
        cleared = self.clear_queues(*names)
        canceled = 0
        for name in cleared:
            for status in ("queued", "retrying"):
                records, _ = self.jobs.list_jobs(status=status, queue=name, limit=self.jobs.index_limit)
                canceled += self.cancel_dropped([r.id for r in records])
        return cleared, canceled

    # --- counts ---------------------------------------------------------------------------

    def queue_stats_of(self, name: str, live: dict[str, int] | None = None) -> QueueStats:
        live = live if live is not None else self.workers_by_queue()
        if self.settings.broker != "redis":
            waiting, dead = self._rabbit_counts(name)
            return QueueStats(name, waiting, None, None, dead, live.get(name, 0))
        client = get_redis(self.settings)
        ns = self.settings.dramatiq_namespace
        pipe = client.pipeline(transaction=False)
        pipe.llen(queue_key(ns, name))
        pipe.hlen(messages_key(ns, name))
        pipe.hlen(messages_key(ns, dq_name(name)))
        pipe.zcard(dead_letters_key(ns, name))
        waiting, stored, delayed, dead = pipe.execute()
        return QueueStats(name, waiting, delayed, max(0, stored - waiting), dead, live.get(name, 0))

    def _rabbit_counts(self, name: str) -> tuple[int, int]:
        """Messages waiting in RabbitMQ queue ``name`` and in its dead-letter queue (nothing consumes
        that one, so its ready count is all of it; the delay queue's messages are held by workers
        until due, so its count is not); raises :class:`BrokerUnreachableError` when RabbitMQ does
        not answer (an unreachable broker is not an empty one)."""
        waiting, _, dead = self._ask_rabbit(lambda: self.broker.get_queue_message_counts(name))
        return int(waiting), int(dead)

    def purge_rabbit_dead(self, *names: str) -> dict[str, int]:
        """Drop every dead letter of the RabbitMQ queues ``names`` (their dead-letter queues purged
        whole: RabbitMQ cannot pick messages by age, nor the copy of a job sent again); returns how
        many per queue. The failed jobs' records stay, and a job is sent again from its record."""
        return {name: self._ask_rabbit(lambda q=xq_name(name): self._purge_rabbit(q)) for name in names}

    def _ask_rabbit(self, call: Callable[[], T]) -> T:
        """``call()`` on this thread's RabbitMQ channel; raises :class:`BrokerUnreachableError`
        when RabbitMQ does not answer.

        Dramatiq keeps each thread's connection and channel, and a call that fails leaves them
        broken: after RabbitMQ restarted (or dropped an idle connection) every later call would
        fail on the dead channel, even with RabbitMQ back. So a failed call drops them and is
        tried once more on a new connection before the broker counts as unreachable."""
        try:
            return call()
        except rabbit_failures():
            self._drop_rabbit_connection()
        try:
            return call()
        except rabbit_failures() as exc:
            self._drop_rabbit_connection()
            raise rabbitmq_unreachable(self.settings.rabbitmq_url, exc) from None

    def _drop_rabbit_connection(self) -> None:
        """Forget this thread's RabbitMQ connection and channel (Dramatiq opens new ones next time)."""
        try:
            del self.broker.connection
        except Exception as exc:  # closing a dead connection may fail too
            logger.debug("broken RabbitMQ connection not closed: %s", type(exc).__name__)

    def queue_stats(self) -> dict[str, QueueStats]:
        live = self.workers_by_queue()
        return {name: self.queue_stats_of(name, live) for name in all_queue_names(self.settings)}

    def queue_stats_known(self, live: dict[str, int] | None = None) -> tuple[dict[str, QueueStats], str | None]:
        """Each queue's figures, and why the broker could not be read (None: it was). A broker that
        does not answer is asked no more: the remaining queues' depths are unknown (None, never 0),
        their live workers (``live``, read here when not given) still counted."""
        live = self.workers_by_queue() if live is None else live
        stats: dict[str, QueueStats] = {}
        error: str | None = None
        for name in all_queue_names(self.settings):
            if error is None:
                try:
                    stats[name] = self.queue_stats_of(name, live)
                    continue
                except BrokerUnreachableError as exc:
                    error = str(exc)
            stats[name] = QueueStats(name, None, None, None, None, live.get(name, 0))
        return stats, error

    def worker_registry(self) -> WorkerRegistry:
        return WorkerRegistry.from_settings(get_redis(self.settings), self.settings)

    def workers_by_queue(self) -> dict[str, int]:
        return self.worker_registry().live_workers_by_queue()

    def is_final(self, job_id: str) -> bool:
        return self.get_job_status(job_id) in FINAL_STATUSES

    def wait_for(self, job_id: str, timeout: float = 30, interval: float = 0.05) -> JobRecord | None:
        """Poll until the job ends or ``timeout`` passes (for the admin tool and tests)."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.get_job(job_id)
            if (record is not None and record.is_final) or time.monotonic() >= deadline:
                return record
            time.sleep(interval)


def rabbitmq_unreachable(url: str, exc: BaseException) -> BrokerUnreachableError:
    """The error that says RabbitMQ at ``url`` (password redacted) cannot be used, naming the
    cause: Dramatiq wraps pika's error in its own (``ConnectionClosed(AMQPConnectionError)``), and
    the inner one says what happened. A broker that answers but refuses the login, the virtual
    host or an operation says so: "unreachable" would send the operator to the network."""
    import pika.exceptions

    cause = getattr(exc, "message", None) if isinstance(exc, dramatiq.DramatiqError) else None
    inner = cause if isinstance(cause, BaseException) else exc
    where = f"RabbitMQ at {redact_url(url)}"
    if isinstance(inner, pika.exceptions.ProbableAuthenticationError):
        return BrokerUnreachableError(f"{where} refused the login: check the user and password in RABBITMQ_URL")
    if isinstance(inner, pika.exceptions.ProbableAccessDeniedError):
        return BrokerUnreachableError(f"{where} refused the virtual host: check it in RABBITMQ_URL, and the "
                                      "user's permissions on it")
    if isinstance(inner, pika.exceptions.ChannelClosedByBroker) and inner.reply_code == 403:
        return BrokerUnreachableError(f"{where} refused the operation ({inner.reply_text}): the user lacks "
                                      "a permission on the queues")
    return BrokerUnreachableError(f"{where} is unreachable ({type(inner).__name__})")


def rabbit_failures() -> tuple[type[BaseException], ...]:
    """What a RabbitMQ call raises when the broker does not answer: pika's errors, Dramatiq's
    connection errors (wrapping pika's), and the socket's (pika is imported only when used)."""
    import pika.exceptions
    from dramatiq.errors import BrokerConnectionError

    return (pika.exceptions.AMQPError, BrokerConnectionError, OSError)


def _requester(requester: dict[str, Any] | None, user_id: int | None) -> dict[str, Any] | None:
    """Who gets the result: ``requester`` as given, else just the user (None: nobody)."""
    return requester or ({"user_id": user_id} if user_id is not None else None)


def _match_subject(match_url_or_id: str) -> str:
    """The coalescing subject of a match reference: its id when it parses, else the text. A bare
    UUID is analysed as either of two ids (``1-<uuid>``, or the very old ``<uuid>``), so its
    subject names both: it must not join a job that tries only the first (and fails where the
    old id exists)."""
    try:
        from faceit.links import parse_match_ref

        ref = parse_match_ref(match_url_or_id)
        candidates = getattr(ref, "candidates", None)
        return "|".join(map(str, candidates)) if candidates else str(getattr(ref, "match_id", match_url_or_id))
    except Exception:
        return match_url_or_id.strip().lower()


_manager: QueueManager | None = None


def get_queue_manager() -> QueueManager:
    """The process-wide manager (built on first use)."""
    global _manager
    if _manager is None:
        _manager = QueueManager()
    return _manager


def reset_queue_manager() -> None:
    global _manager
    _manager = None

"""The bot's job start in one round trip: the user's limits, the job's record and its message.

Why: a job request used to take five round trips (the limit check, the record, the message,
the queue's length, then turning the limit reservation into the job), three of them synchronous
in a thread. Measured in process against a private Redis and the sandbox Bot API, that was
1.2 ms of the bot's CPU per request, two thirds of all the bot did for a burst of ``/analyze``.
Here one Lua call on the bot's async client does all of it, with the very same code the other
paths run:

1. the user's limits (``check_user_limits``, :data:`bot.limits.LIMITS_LUA`);
2. the record, or joining the in-flight job of the same subject (``create_job``,
   :data:`queues.jobstore.CREATE_JOB_LUA`);
3. for a new job, its Dramatiq message, pushed once (``enqueue_once``,
   :data:`queues.enqueue_once.ENQUEUE_ONCE_LUA`);
4. the request counted in the user's minute window and the job put in their active set
   (``record_request``);
5. the queue's length: the place shown in the reply.

It is atomic, so nothing needs a reservation or an undo: a refused or failed call wrote nothing;
and a resent call (a lost reply) returns what the first one did. Calls go through the bot's
:class:`~bot.scriptbatch.ScriptBatcher`, so the starts of a burst share round trips.

Only on the Redis broker; otherwise :meth:`JobStarter.available` is False and the bot takes the
general path (limits, then :meth:`queues.manager.QueueManager.submit` in a thread). The broker's
middleware sees these enqueues as it sees Dramatiq's own: ``before_enqueue`` runs on the message
before it is written and ``after_enqueue`` once it was queued (a join queues nothing). Sentry's
middleware (``SENTRY_DSN`` set) puts its trace headers into the message so; when the start
bypassed the hooks instead, it had to turn itself off whenever Sentry was on.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from bot.limits import LIMITS_LUA, LimitDecision, UserLimits
from bot.scriptbatch import ScriptBatcher
from queues.enqueue_once import ENQUEUE_ONCE_LUA
from queues.jobstore import ATTACH_MESSAGE, CREATE_JOB_LUA, RUN_FIELD, Created, detached_mark
from queues.manager import JobHandle, PreparedJob, QueueManager

# KEYS: rate, active, queue, queue.msgs, enqueue marker, request marker.
# ARGV: 1-6 check_user_limits's A, 7 request id, 8 active ttl, 9 Redis message id, 10 body,
# 11 marker ttl (ms), 12… create_job's A.
# → {"rate", seconds} | {"active", count} | {"ok", job id, "new" or the joined job's status, queue length,
#    create_job's tail: "again" and the chat of their first answer (this user had already asked for
#    the joined job) or "here" and the message that already shows it in this group, else ""}
# The request marker makes a resent call (redis-py resends when a reply is lost) return what the
# first one did: running it again would count the new job against the user's own limit.
# Asking again for a job already theirs is not a new request, nor being pointed at the message
# that shows the job in the group ("here": they watch it, no job of theirs): the limits do not
# refuse them and they are not counted (create_job tells which; answered_already asks first).
_START_JOB = LIMITS_LUA + CREATE_JOB_LUA + ENQUEUE_ONCE_LUA + """
local earlier = redis.call("GET", KEYS[6])
if earlier then
  local job_id, state, kind, shown = string.match(earlier, "^(%S+) (%S+) ?(%S*) ?(%S*)$")
  return {"ok", job_id, state, redis.call("LLEN", KEYS[3]), kind, shown}
end
local create_args = {unpack(ARGV, 12)}
local refusal = check_user_limits({KEYS[1], KEYS[2]}, ARGV)
if refusal and not answered_already(create_args) then return refusal end
local created = create_job(create_args)
local job_id, state, kind, shown = created[1], created[2], created[3] or "", tostring(created[4] or "")
if state == "new" then
  enqueue_once({KEYS[3], KEYS[4], KEYS[5]}, {ARGV[9], ARGV[10], ARGV[11]})
end
if kind == "" then
  record_request({KEYS[1], KEYS[2]}, tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[7], job_id, ARGV[8])
end
redis.call("SET", KEYS[6], job_id .. " " .. state .. " " .. kind .. " " .. shown, "PX", ARGV[11])
return {"ok", job_id, state, redis.call("LLEN", KEYS[3]), kind, shown}
"""


@dataclass(frozen=True)
class StartOutcome:
    """The limits' decision, and the job's handle when the user was let through."""

    decision: LimitDecision
    handle: JobHandle | None = None


class JobStarter:
    """Starts jobs for the bot in one call (``redis``: the bot's async client) and records, in one
    more, which message shows a job to a user."""

    def __init__(self, redis: Any, manager: QueueManager, limits: UserLimits, scripts: ScriptBatcher) -> None:
        self.manager = manager
        self.limits = limits
        self.scripts = scripts
        self._start = redis.register_script(_START_JOB)
        self._attach = redis.register_script(ATTACH_MESSAGE)

    def available(self) -> bool:
        """Whether jobs can start here: on the Redis broker (its queues are what the script writes)."""
        from actors.brokers import TrackedRedisBroker  # not at import: importing actors builds the broker

        return isinstance(self.manager.broker, TrackedRedisBroker)

    async def start(self, user_id: int, job: PreparedJob) -> StartOutcome:
        """Check ``user_id``'s limits and, if they allow it, write ``job`` (or join the in-flight
        job of its subject) and queue its message."""
        broker: Any = self.manager.broker  # a TrackedRedisBroker: available() said so
        message = broker.stamp(job.message)
        broker.emit_before("enqueue", message, None)  # as Dramatiq's enqueue does (Sentry's trace headers)
        redis_id = message.options["redis_message_id"]
        enqueue_keys, enqueue_args = broker.enqueue_once_call(job.queue, redis_id, message.encode())
        request_id = uuid.uuid4().hex
        reply = await self.scripts.run(
            self._start,
            keys=[*self.limits.limit_keys(user_id), *enqueue_keys, self.limits.keys.started_request(request_id)],
            args=[*self.limits.check_args(time.time()), request_id, self.limits.active_ttl, *enqueue_args,
                  *job.create_args],
        )
        if reply[0] != "ok":
            return StartOutcome(self.limits.decision(reply[0], reply[1]))
        position = int(reply[3])
        created = Created.from_reply([reply[1], reply[2], *reply[4:]])
        if created.state == "new":
            broker.emit_after("enqueue", message, None)  # queued: a join queues nothing
            handle = self.manager.queued(job, position)
        else:
            handle = self.manager.joined(job, created, position)
        return StartOutcome(LimitDecision("ok"), handle)

    async def attach(self, job_id: str, user_id: int, chat_id: int, message_id: int) -> str:
        """Remember which message of the user shows the job (progress edits and the result go there).

        "attached"; "late" when the job's delivery no longer waited for the message and sent the
        result as a message of its own (this one was held up: a flood wait, a slow chat), so the
        message would stand stale; "unknown" when the job or the requester is gone."""
        outcome = await self.scripts.run(
            self._attach, keys=[self.manager.jobs.job_key(job_id), self.limits.keys.delivered(job_id)],
            args=[int(user_id), int(chat_id), int(message_id), detached_mark(user_id), RUN_FIELD])
        return {1: "attached", 2: "late"}.get(int(outcome), "unknown")

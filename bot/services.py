"""What the bot's handlers call: one method per user action, no Telegram in here.

Handlers parse the text (``faceit.links``), call one method of :class:`BotServices`, and reply.
Starting a job checks the user's limits (:mod:`bot.limits`) and writes the job the queue
manager prepared, in one round trip on the Redis broker (:mod:`bot.jobstart`); nothing here
calls the FACEIT API. Refusals the user should read are raised as
:class:`UserFacingError` (a text key and its parameters) or as the FACEIT layer's
``BadInputError``; the errors middleware turns either into a short answer in the user's
language. Redis trouble surfaces as ``redis.RedisError`` ("try again shortly").

The queue manager is synchronous (one or two Redis round trips per call); its calls run in a
thread so a slow Redis never stalls the event loop that serves every other user.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from bot.background import BackgroundWork
from bot.jobstart import JobStarter
from bot.keys import BotKeys
from bot.limits import UserLimits
from bot.scriptbatch import ScriptBatcher
from faceit.errors import BadInputError
from faceit.i18n import ERROR_TEXTS, with_key
from faceit.keys import FaceitKeys
from faceit.links import MatchRef, PlayerRef
from faceit.store import MAX_SUBSCRIPTIONS, FaceitStore
from queues.errors import UnknownJobError
from queues.jobids import whole_job_id
from queues.jobstore import CANCELED_BY_OPERATOR, CANCELED_BY_USER, JobRecord
from queues.manager import PreparedJob, QueueManager, RequeuedJobs

logger = logging.getLogger(__name__)

REPORT_TYPES = ("weekly", "monthly")

# KEYS: languages hash, inactive users set. ARGV: user id, "1" when they wrote in their own chat (they
# are active again). → {the chosen language or nil, 1 when they had been inactive}.
_SEEN_USER = """
local back = 0
if ARGV[2] == '1' then back = redis.call('SREM', KEYS[2], ARGV[1]) end
return {redis.call('HGET', KEYS[1], ARGV[1]) or false, back}
"""
#: Jobs of a user who comes back whose results a delivery withheld (they had blocked the bot), looked
#: at most: the newest, within the hour a result is kept.
WITHHELD_LOOKED_AT = 50


class UserFacingError(Exception):
    """A refusal to show the user: ``key`` of :mod:`bot.texts` with its parameters."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


@dataclass(frozen=True)
class Requester:
    """Who asked, where to answer, in which language."""

    user_id: int
    chat_id: int
    lang: str
    thread_id: int | None = None  # the forum topic the user wrote in (a forum group)
    reply_to: int | None = None  # in a group: their message, which a result sent on its own answers

    def as_dict(self) -> dict[str, Any]:
        asked = {"user_id": self.user_id, "chat_id": self.chat_id, "message_id": None, "lang": self.lang}
        if self.thread_id is not None:
            asked["thread_id"] = self.thread_id
        if self.reply_to is not None:
            asked["reply_to"] = self.reply_to
        return asked


@dataclass(frozen=True)
class StartedJob:
    job_id: str
    actor: str
    position: int
    coalesced: bool
    user_id: int = 0
    token: str = ""  # a limit reservation (general path): :meth:`BotServices.confirm` turns it into the job, or gives it back
    again: bool = False  # the user had already asked for this job (in flight or just done): their first message shows it
    shown_here: int | None = None  # in a group: the message there that already shows the job (0: being sent)
    status: str = "queued"  # the job's status when asked (a repeat may find it "succeeded")
    again_in_chat: int | None = None  # again: the chat of their first answer (another one: say so)


@dataclass(frozen=True)
class CancelOutcome:
    """``canceled`` / ``canceling`` / ``already_canceling`` / ``shared`` / ``left`` / ``ended`` (it
    had ended before: ``record.status`` says how) / a final status (it ended meanwhile);
    ``record`` as it was before."""

    outcome: str
    record: JobRecord


def _asked_in(record: JobRecord, chat_id: int) -> bool:
    """Whether someone asked for the job in the chat ``chat_id`` (where its message is)."""
    return any(int(r.get("chat_id") or r.get("user_id") or 0) == int(chat_id) for r in record.requesters)


class BotServices:
    """The bot process's services (async Redis client ``redis``, decoded strings)."""

    def __init__(self, settings: Any, redis: Any, manager: QueueManager | None = None) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = BotKeys(settings.redis_key_prefix)
        self.faceit_keys = FaceitKeys(settings.redis_key_prefix)
        self.store = FaceitStore(redis, self.faceit_keys)
        self.manager = manager or QueueManager(settings)
        self.admin_ids = {int(a) for a in settings.admin_user_ids}
        self.background = BackgroundWork()
        self._seen_user = redis.register_script(_SEEN_USER)
        self.limits = UserLimits(redis, self.keys, per_minute=settings.user_jobs_per_minute,
                                 max_active=settings.user_max_active_jobs,
                                 job_key_prefix=self.manager.jobs.job_key(""),
                                 active_ttl=int(settings.queue_failure_ttl))
        self.scripts = ScriptBatcher(redis)  # the hot-path scripts of concurrent updates share round trips
        self.starter = JobStarter(redis, self.manager, self.limits, self.scripts)
        self._one_call_start: bool | None = None  # known once the broker is loaded

    def is_admin(self, user_id: int | None) -> bool:
        return user_id is not None and int(user_id) in self.admin_ids

    # --- users ------------------------------------------------------------------------------

    async def seen_user(self, user_id: int, *, private: bool = False) -> str | None:
        """On every update: the user's chosen language (None: not chosen), and, ``private``: they
        wrote in their own chat with the bot, so they are active again (a user who writes there
        has not blocked the bot). Not in a group (nor by default): there they may still block the
        bot, or never have started it (Telegram lets no bot write first), and marking them active
        only sent their next notification into a 403 again. One small script: on the hot path it
        costs a third of the CPU of a two-command pipeline."""
        chosen, back = await self.scripts.run(self._seen_user, keys=[self.keys.user_languages(),
                                                                     self.faceit_keys.inactive_users()],
                                              args=[int(user_id), "1" if private else "0"])
        if back:
            self.in_background(lambda: self.resend_withheld(user_id), f"user {user_id}: results withheld while away")
        return chosen

    async def set_language(self, user_id: int, lang: str) -> None:
        await self.redis.hset(self.keys.user_languages(), str(int(user_id)), lang)

    async def set_timezone(self, user_id: int, name: str) -> None:
        """Remember the time zone a user chose with ``/tz`` (a name :func:`bot.timezones.parse_timezone` gave),
        and when: the scheduler judges a moved user's week by it."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.user_timezones(), str(int(user_id)), name)
            pipe.hset(self.keys.user_timezone_changes(), str(int(user_id)), repr(time.time()))
            await pipe.execute()

    async def timezone_of(self, user_id: int) -> str | None:
        """The time zone a user chose with ``/tz``; None: never chosen (their summary goes by UTC)."""
        return await self.redis.hget(self.keys.user_timezones(), str(int(user_id)))

    async def note_language(self, user_id: int, lang: str) -> None:
        """Remember the language a user was just answered in, for messages sent to them outside a
        request (an admin's alerts on Telegram, as a follower's notifications): ``/lang`` still
        overrides it."""
        await self.redis.hset(self.keys.user_seen_languages(), str(int(user_id)), lang)

    async def set_blocked(self, user_id: int, blocked: bool) -> None:
        """``my_chat_member`` updates: the user blocked (or unblocked) the bot."""
        if blocked:
            await self.store.set_user_inactive(user_id)
        else:
            await self.store.set_user_active(user_id)
            await self.resend_withheld(user_id)

    async def resend_withheld(self, user_id: int) -> list[str]:
        """Deliver again the results a delivery withheld from ``user_id`` because they had blocked
        the bot (its ``<user>:blocked`` marker), now that they are back: their job's message stood
        at its progress line with a Cancel button, and asking again pointed them at it. Within the
        hour results are kept; each part still goes once (the delivery's markers). Returns the
        jobs sent again; safe to run twice (a marker taken is not there the second time)."""
        from bot.delivery import BLOCKED

        since = time.time() - float(self.settings.queue_result_ttl)
        index = self.manager.jobs.index_key("user", int(user_id))
        ids = await self.redis.zrevrangebyscore(index, "+inf", since, start=0, num=WITHHELD_LOOKED_AT)
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hdel(self.keys.delivered(job_id), f"{int(user_id)}:{BLOCKED}")
        withheld = [job_id for job_id, taken in zip(ids, await pipe.execute(), strict=True) if taken]
        if withheld:
            await asyncio.to_thread(lambda: [self.manager.tell_ended(job_id) for job_id in withheld])
            logger.info("user %s is back: %d withheld result(s) delivered again (%s)", user_id, len(withheld),
                        ", ".join(withheld))
        return withheld

    # --- jobs -------------------------------------------------------------------------------

    async def _start(self, requester: Requester, prepare: Callable[[dict[str, Any]], PreparedJob]) -> StartedJob:
        """Check the user's limits and start the job ``prepare`` builds (or join the in-flight one):
        one round trip on the Redis broker (:mod:`bot.jobstart`), else reserve, enqueue in a thread
        and give the reservation back if the enqueue failed."""
        job = prepare(requester.as_dict())
        if self._one_call_start is None:
            self._one_call_start = self.starter.available()
        if self._one_call_start:
            outcome = await self.starter.start(requester.user_id, job)
            decision, handle = outcome.decision, outcome.handle
        else:
            decision = await self.limits.acquire(requester.user_id, job.create_args)
            handle = None
        if decision.verdict == "rate":
            raise UserFacingError("rate_limited", limit=self.limits.per_minute,
                                  seconds=max(1, round(decision.retry_after)))
        if decision.verdict == "active":
            raise UserFacingError("too_many_active", count=decision.count, limit=self.limits.max_active)
        if handle is None:
            try:
                handle = await asyncio.to_thread(self.manager.submit, job)
            except BaseException:
                try:
                    await self.limits.release(requester.user_id, decision.token)
                except Exception:  # Redis is probably what failed: the reservation expires by itself
                    pass
                raise
            if decision.repeat and not handle.again and handle.shown_here is None:
                await self.limits.record_started(requester.user_id, handle.id)  # its job ended meanwhile
        return StartedJob(handle.id, handle.actor, handle.position, handle.coalesced, requester.user_id,
                          decision.token, handle.again, handle.shown_here, handle.status, handle.again_in_chat)

    async def start_match_analysis(self, requester: Requester, ref: MatchRef) -> StartedJob:
        # A bare UUID keeps both candidate ids (very old rooms); otherwise the canonical id.
        target = ref.candidates[-1] if len(ref.candidates) > 1 else ref.match_id
        return await self._start(requester, lambda r: self.manager.prepare_match_analysis(
            target, requester.user_id, requester=r))

    async def start_player_report(self, requester: Requester, ref: PlayerRef) -> StartedJob:
        def report(shared: bool) -> Callable[[dict[str, Any]], PreparedJob]:
            return lambda r: self.manager.prepare_player_report(ref.value, requester.user_id, requester=r,
                                                                shared=shared)

        job = await self._start(requester, report(shared=True))
        if job.again and job.status == "succeeded" and await self._played_since(job.job_id):
            # The report of a moment ago predates a match monitoring has seen since (a notice
            # about it may be just above): pointing at it would contradict that. A new one.
            job = await self._start_anew(requester, job, report(shared=False))
        return job

    async def _start_anew(self, requester: Requester, repeat: StartedJob,
                          prepare: Callable[[dict[str, Any]], PreparedJob]) -> StartedJob:
        """Start ``prepare``'s job after all, for a request answered as a ``repeat`` of an earlier
        job whose answer must not be pointed at; the repeat's limit reservation is given back."""
        if repeat.token:
            await self.limits.release(repeat.user_id, repeat.token)
        return await self._start(requester, prepare)

    async def _played_since(self, report_job_id: str) -> bool:
        """Whether monitoring has seen the reported player finish a match after the report."""
        record = await asyncio.to_thread(self.manager.get_job, report_job_id)
        data = (record.result or {}).get("data") if record is not None and isinstance(record.result, dict) else None
        if not isinstance(data, dict) or not data.get("player_id") or not record.finished_at:
            return False
        state = await self.store.monitor_state(str(data["player_id"]))
        return bool(state) and float(state.get("finished_at") or 0) > float(record.finished_at)

    async def start_bulk_analysis(self, requester: Requester, refs: list[MatchRef]) -> StartedJob:
        ids = [ref.candidates[-1] if len(ref.candidates) > 1 else ref.match_id for ref in refs]
        return await self._start(requester, lambda r: self.manager.prepare_bulk_analysis(
            ids, requester.user_id, requester=r))

    async def start_report(self, requester: Requester, report_type: str) -> StartedJob:
        return await self._start(requester, lambda r: self.manager.prepare_analytics_report(
            requester.user_id, report_type, requester=r))

    async def start_subscription(self, requester: Requester, ref: PlayerRef) -> StartedJob:
        """Subscribe by nickname: a lookup job resolves the player (the bot never calls FACEIT);
        its delivery makes the subscription. Already followed or too many: refused here."""
        current = await self.store.list_subscriptions(requester.user_id)
        for sub in current:
            if sub["player_id"] == ref.value or sub["nickname"].lower() == ref.value.lower():
                raise UserFacingError("already_subscribed", nickname=sub["nickname"])
        if len(current) >= MAX_SUBSCRIPTIONS:
            raise with_key(BadInputError(ERROR_TEXTS["too_many_subscriptions"]["en"].format(limit=MAX_SUBSCRIPTIONS)),
                           "too_many_subscriptions", limit=MAX_SUBSCRIPTIONS)
        def lookup(coalesce: str | None) -> Callable[[dict[str, Any]], PreparedJob]:
            return lambda r: self.manager.prepare_job("player_lookup", requester=r, coalesce=coalesce,
                                                      player_ref=ref.value, user_id=requester.user_id, subscribe=True)

        job = await self._start(requester, lookup(f"subscribe:{ref.value}"))
        if (job.again and job.status == "succeeded") or job.shown_here is not None:
            # Pointing at an earlier answer would follow nobody: their own lookup of a moment ago
            # followed the player and they unfollowed since (they are not following now), or a
            # group's answer followed another member. A following is personal: look it up.
            job = await self._start_anew(requester, job, lookup(None))
        return job

    async def confirm(self, job: StartedJob, chat_id: int, message_id: int | None) -> str:
        """After the queued reply: the limit reservation becomes the job, and the job remembers the
        message that shows it to this user (progress and the result edit it); ``None``: it keeps
        the one it has (the user asked again). What :meth:`JobStarter.attach` said ("late": the
        result went out on its own meanwhile, the message is stale), or "kept"."""
        if job.token:  # a reservation (the general path); the one-call start recorded the job itself
            if job.again or job.shown_here is not None:  # not a new job of theirs: give the slot back
                await self.limits.release(job.user_id, job.token)
            else:
                await self.limits.commit(job.user_id, job.token, job.job_id)
        if message_id is None:
            return "kept"
        return await self.starter.attach(job.job_id, job.user_id, chat_id, message_id)

    def in_background(self, make: Callable[[], Coroutine[Any, Any, Any]], what: str) -> None:
        """Run ``make()`` after the handler returned, off the reply's critical path: once no update
        is being served, or a second later at the latest (:mod:`bot.background`); tried again
        while Redis is unreachable (:meth:`~bot.background.BackgroundWork.add_retrying`), so
        ``make()`` must be safe to run twice. What runs here records which message shows a job:
        dropped, nothing would edit that message afterwards (it would stay "queued" with a Cancel
        button, the result sent beside it)."""
        self.background.add_retrying(make, what)

    async def drain(self, timeout: float = 5.0, *, stop: bool = False) -> None:
        """Run queued background work now (up to ``timeout`` s); with ``stop`` end the runner too."""
        await self.background.drain(timeout, stop=stop)

    async def resolve_job_id(self, ref: str, user_id: int, chat_id: int | None = None) -> str:
        """The full id of the job ``ref`` names: a full id as is (no Redis call), or the one job
        whose id starts with ``ref`` (lower-case hex, the dashboard's 8 characters or more) among
        the user's jobs (admins: all jobs), else, typed in a group, among the jobs asked for in
        that group (every member sees them). None or several: :class:`UserFacingError`
        (``no_job_prefix``, ``ambiguous_job_prefix``), so a typo reads as one, not as a usage line."""
        scope = None if self.is_admin(user_id) else int(user_id)
        # A whole id names itself (no Redis call, no thread); a start is looked up.
        ids = [ref] if whole_job_id(ref) else await asyncio.to_thread(self.manager.jobs.ids_named, ref, scope)
        if not ids and scope is not None and chat_id is not None and int(chat_id) < 0:
            ids = await asyncio.to_thread(self._group_jobs_starting_with, ref, int(chat_id))
        if not ids:
            raise UserFacingError("no_job_prefix" if scope is not None else "no_job_prefix_any", prefix=ref)
        if len(ids) > 1:
            raise UserFacingError("ambiguous_job_prefix", prefix=ref, count=len(ids))
        return ids[0]

    def _group_jobs_starting_with(self, ref: str, chat_id: int) -> list[str]:
        """The ids starting with ``ref`` of the jobs someone asked for in the group ``chat_id``."""
        ids = self.manager.jobs.ids_starting_with(ref, None)
        records = [self.manager.get_job(job_id) for job_id in ids]
        return [r.id for r in records if r is not None and _asked_in(r, chat_id)]

    def _is_theirs(self, record: JobRecord, user_id: int) -> bool:
        """Whether the user asked for (or watches) the job; admins: every job."""
        return int(user_id) in record.user_ids or self.is_admin(user_id)

    async def job_of_user(self, job_id: str, user_id: int, *, chat_id: int | None = None,
                          not_theirs: str = "unknown_job") -> JobRecord:
        """The job if this user asked for it (admins: any job), or if it was asked for in the chat
        ``chat_id`` the user writes in (a group: its message is there for every member to see);
        else :class:`UserFacingError` (``unknown_job``, or ``not_theirs`` when the job exists but
        is someone else's). A private chat shows only the user's own jobs, as before."""
        record = await asyncio.to_thread(self.manager.get_job, job_id)
        if record is None:  # an admin may look up anyone's job: tell them it is not there at all
            raise UserFacingError("no_such_job" if self.is_admin(user_id) else "unknown_job", job_id=job_id)
        if not self._is_theirs(record, user_id) and not (chat_id is not None and _asked_in(record, chat_id)) \
                and int(user_id) not in record.left_user_ids:  # (cancelled for them: /status says so)
            raise UserFacingError(not_theirs, job_id=job_id)
        return record

    async def cancel(self, job_id: str, user_id: int, *, chat_id: int | None = None,
                     not_theirs: str = "unknown_job") -> CancelOutcome:
        """Cancel the job, or, when others asked for it too, stop waiting for it alone (``left``:
        the user's message and limits let go of it, the others still get it). ``shared`` when
        members of a group watch the asker's message: it is theirs too. Someone else's job is
        ``not_theirs`` (unknown to a typed /cancel, as to /status), unless it was asked for in
        the chat ``chat_id`` the /cancel is typed in: there all see it, so it is
        ``not_your_job``, as another member's press of its Cancel button says."""
        record = await self.job_of_user(job_id, user_id, chat_id=chat_id, not_theirs=not_theirs)
        if int(user_id) in record.left_user_ids:  # cancelled for them already: said again
            return CancelOutcome("left", record)
        if not self._is_theirs(record, user_id):  # seen in this chat, asked by another member
            raise UserFacingError("not_your_job", job_id=job_id)
        if record.is_final:  # (canceled included: a second /cancel is no new cancel)
            return CancelOutcome("ended", record)
        if record.raw.get("cancel_requested"):  # a second press: it is on its way out already
            return CancelOutcome("already_canceling", record)
        others = [u for u in record.user_ids if u != int(user_id)]
        if others and not self.is_admin(user_id):
            if record.watchers:
                return CancelOutcome("shared", record)
            stopped = await self._stop_waiting(job_id, user_id, record)
            if stopped is not None:
                return stopped
        try:
            # The user's own answer tells them; others (an admin cancelling theirs) get a delivery.
            # A user who is not an admin gets here alone (``leave`` said so, whatever ``others``
            # was when the record was read): nobody else to tell.
            by_operator = bool(others) and self.is_admin(user_id)  # an admin stopping others' job
            outcome = await asyncio.to_thread(self.manager.cancel_job, job_id, tell=by_operator,
                                              alone=None if self.is_admin(user_id) else int(user_id),
                                              by=CANCELED_BY_OPERATOR if by_operator else CANCELED_BY_USER)
        except UnknownJobError:  # gone meanwhile
            raise UserFacingError("no_such_job" if self.is_admin(user_id) else "unknown_job", job_id=job_id) from None
        if outcome == "others":
            # Someone asked for it since the record was read: the user leaves it to them, or, when
            # they only watch it (members of the group shown its message), it keeps running.
            return await self._stop_waiting(job_id, user_id, record) or CancelOutcome("shared", record)
        logger.info("job %s: cancel asked by user %s: %s", job_id, user_id, outcome)
        return CancelOutcome(outcome, record)

    async def _stop_waiting(self, job_id: str, user_id: int, record: JobRecord) -> CancelOutcome | None:
        """``user_id`` stops waiting for a job others asked for too (``left``: their message and
        limits let go of it); the status it had if it ended meanwhile; None when nobody else asked
        for it after all (``leave`` found them alone)."""
        left = await asyncio.to_thread(self.manager.jobs.leave, job_id, int(user_id))
        if left == "left":
            await self.redis.zrem(self.keys.user_active(user_id), job_id)  # no longer theirs to count
            logger.info("job %s: user %s stopped waiting for it; others still do", job_id, user_id)
            return CancelOutcome("left", record)
        return None if left == "alone" else CancelOutcome(left, record)

    # --- subscriptions ----------------------------------------------------------------------

    async def unsubscribe(self, user_id: int, ref: PlayerRef) -> str | None:
        """The nickname no longer followed, as stored; None when the user did not follow it."""
        return await self.store.unsubscribe(user_id, ref.value)

    async def subscriptions(self, user_id: int) -> list[dict[str, str]]:
        return await self.store.list_subscriptions(user_id)

    # --- admin ------------------------------------------------------------------------------

    async def queue_overview(self) -> dict[str, Any]:
        def collect() -> dict[str, Any]:
            stats = self.manager.queue_stats()
            health = None
            try:
                from queues.monitoring import get_queue_monitor

                health = get_queue_monitor().get_system_health_summary(fresh=True)  # as the counts: now
            except Exception as exc:  # the score is a bonus; the counts must still answer
                logger.warning("health summary unavailable: %s", exc)
            return {"queues": {n: s.to_dict() for n, s in stats.items()}, "health": health}

        return await asyncio.to_thread(collect)

    async def recent_alerts(self, hours: float) -> list[Any]:
        from queues.runtime import get_alert_store

        return await asyncio.to_thread(lambda: get_alert_store(self.settings).recent(hours, limit=50))

    async def requeue_failed(self, job_id: str | None = None, *, queue: str | None = None) -> RequeuedJobs:
        """The failed job ``job_id``, or those of ``queue`` (a broker queue name), or all, sent again."""
        try:
            return await asyncio.to_thread(lambda: self.manager.requeue_failed(queue=queue, job_id=job_id))
        except UnknownJobError:
            raise UserFacingError("no_such_job", job_id=job_id or "") from None  # admins only

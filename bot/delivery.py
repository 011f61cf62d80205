"""How workers talk to users: progress edits while a job runs, then its result, exactly once each.

Two entry points, both called in worker processes:

* :func:`on_progress` — registered in ``actors.base.PROGRESS_LISTENERS`` by ``actors/deliver.py``.
  After each progress write it edits every requester's job message ("players 6/10"). Edits are
  best effort: only when the chat has a free send slot right now, never waiting, never raising.
  They run inside the job (awaited by ``ctx.progress``), so none can land after the job ended
  and overwrite its result.
* :func:`deliver_job` — the body of the ``deliver_result`` actor, enqueued by
  ``middleware.delivery_trigger`` when a job ends. For each requester it replaces the job
  message with the first part of the result (or a short failure / cancel note), sends the other
  parts and the charts. A succeeded job's ``notifications`` (match monitoring, reports) go out
  at the same time, not after: monitoring is first moved past the matches told
  (``advance_monitoring``), then requesters and subscribers are served concurrently (one
  ``gather``, at most ``RECIPIENT_CONCURRENCY`` at once), each subscriber's notices in order and
  each notice about a player only to a user who still follows them. A job the scheduler started
  (``scheduled``: the weekly summary) tells its user only its result, and nothing when that is
  ``quiet`` (nothing to report).
  A job an operator requeued leaves its messages as its earlier run ended them (no progress
  edits): its result comes as new messages, the first answering the old one, so users notice.

Exactly once: each part sent to each user is recorded in ``bot:delivered:<job id>`` (field
``<user id>:<part>``) right after Telegram accepted it, and a part already recorded is never
sent again, so a retried delivery job, or one re-delivered after its worker died, sends only
what is missing. Two deliveries of one job never send at once: each holds the job's lease
(:mod:`bot.delivery_lease`) while it reads the job and its markers and sends, so the second
reads what the first marked (and a requeued job's new run waits for its old run's delivery). The first part is an edit of the job message, which is idempotent by nature; where it is a
new message instead (a requeued run, a requester whose message was recorded too late), a worker
that dies after Telegram took it and before its mark sends it once more on the retry. A delivery
cut by its time limit (or a cancel) while a part was on its way to Telegram first waits for that
part's answer and marks it (:func:`_send_and_mark`): the retry does not send it again.
A user who blocked the bot is marked inactive (:mod:`faceit.store`) and skipped from then on;
that ends their delivery without failing the job (a group the bot was removed from ends the
delivery to that group only: the user who asked there is not marked). A worker without Telegram settings (no token
while ``TELEGRAM_API_URL`` is Telegram's) cannot deliver: it fires an error alert
(``telegram_not_configured``, once per dedupe window and host), logs an error and fails the
attempt (:class:`TelegramNotConfigured`), retried and redelivered like a Telegram outage: a worker
that has the token sends the result (another host, or this one restarted with it). The alert is
resolved by the host's first delivery that sends a message again. Flood control and network trouble raise
retryable errors after the other recipients were served, so the pipeline retries the job.
A failed attempt keeps the job's record (and its markers) at least as long as those retries and
the scheduler's redelivery go on (``queues.jobstore.OWED_TTL``): a succeeded job's record lives
only ``QUEUE_RESULT_TTL``, an hour, and a longer outage outlived it. A record gone anyway (a
delivery that waited longer than that, a lost Redis) fails the delivery with
:class:`ResultLostError` (an error alert) when no recipient had been served, instead of passing
for delivered.
"""

from __future__ import annotations

import asyncio
import base64
import html
import json
import logging
import re
import socket
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from bot.botapi import NO_PREVIEW, BadRequest, BotAPI, ChatMigrated, reply_to_json
from bot.config import BotConfigError
from bot.delivery_lease import DeliveryLeases
from bot.keys import BotKeys
from bot.sender import SKIPPED, Sender, UserBlocked
from bot.sendlimit import SendLimiter
from bot.texts import normalize_lang, t, user_language
from bot.views import cancel_keyboard, canceled_text, failure_text, progress_text
from faceit.errors import FaceitBotError, PermanentError, RateLimitedError, UpstreamError
from faceit.htmltext import split_html
from faceit.i18n import user_message
from faceit.keys import FaceitKeys
from faceit.store import FaceitStore
from queues.connection import async_redis_client
from queues.jobstore import (
    CANCELED_BY_OPERATOR,
    DETACH_UNATTACHED,
    DETACHED,
    KEEP_OWED,
    OWED_TTL,
    RUN_FIELD,
    JobRecord,
)

logger = logging.getLogger(__name__)

#: Characters a photo caption may hold (Telegram's limit).
CAPTION_LIMIT = 1024
#: Set once this process said at ERROR that it cannot deliver for want of Telegram settings.
_not_configured_told = threading.Event()
#: Markers ``<user id>:<this>``: the user blocked the bot (nothing more to them), or the group
#: they asked in removed it (nothing more there; their own notifications still go out).
BLOCKED = "blocked"
CHAT_GONE = "chat_gone"
#: Marker ``<user id>:counted``: the job was counted in the user's reports, once, even when a
#: later part failed (flood control on the chart) and a retry finished the delivery.
COUNTED = "counted"
# KEYS: the markers. ARGV: run field, run, ttl. Markers of another run are dropped (atomically:
# two deliveries of the new run must not both clear what the first one already marked).
_MARKS_OF_RUN = """
if (redis.call("HGET", KEYS[1], ARGV[1]) or "") ~= ARGV[2] then
  redis.call("DEL", KEYS[1])
  if ARGV[2] ~= "" then
    redis.call("HSET", KEYS[1], ARGV[1], ARGV[2])
    redis.call("EXPIRE", KEYS[1], ARGV[3])
  end
  return {}
end
local marks = {}
for _, field in ipairs(redis.call("HKEYS", KEYS[1])) do
  if field ~= ARGV[1] then table.insert(marks, field) end
end
return marks
"""

RECIPIENT_CONCURRENCY = 16
#: Seconds a delivery that is cut gives the part it was sending to be marked, beyond the request's
#: own timeout (:func:`_send_and_mark`).
MARK_GRACE = 5.0
PROGRESS_TIMEOUT = 2.0  # a progress edit runs inside the job: it must not hold it up for long
#: Seconds a follower's "told of this match" claim outlives the records of the runs that could
#: tell it (:func:`told_ttl`): a day to spare.
TOLD_MARGIN = 86400
ATTACH_GRACE = 3.0  # seconds after enqueue the bot may still be recording its job message
_TAG = re.compile(r"<[^>]+>")
ACTIVITY_KIND = {"match_analysis": "match", "player_report": "player", "bulk_analysis": "bulk",
                 "analytics_report": "report"}
#: Markers that show a recipient was served: a requester's first part, a notice's first part, or
#: their chat refused for good (see :func:`_record_gone`).
_SERVED = re.compile(rf"^-?\d+:(?:0|n\d+\.0|{BLOCKED}|{CHAT_GONE})$")
#: The marker a failed delivery writes beside the record it keeps (:data:`KEEP_OWED`): a later
#: delivery that finds the record gone knows the result was owed, and lost. Without it, a record
#: gone is no proof of a loss (a delivery that waited in a backlog past the record's hour, with
#: nothing to send: a quiet weekly summary, notices already told), and stays a warning.
OWED_MARK = "owed"


class ResultLostError(PermanentError):
    """The job's record expired while its result was still owed: nothing can send it now. A
    permanent error, so the delivery fails at once (no retry), raises the pipeline's failure alert
    (``middleware.alerts``), and is not one the scheduler's redelivery sends again."""

    code = "result_lost"


class TelegramNotConfigured(UpstreamError):
    """This worker cannot reach Telegram (no token): another worker can, or this one once restarted
    with its token. Retried and redelivered (``scheduler.REDELIVERABLE``) as Telegram's own outages
    are, so the result still arrives; ending the delivery instead lost it for good."""

    code = "not_configured"


# Per-loop resources --------------------------------------------------------------------------------


@dataclass
class DeliveryResources:
    """What delivery needs on one event loop: Redis, the Bot, the sender, the user store."""

    settings: Any
    redis: Any
    keys: BotKeys
    sender: Sender
    store: FaceitStore
    job_key_prefix: str
    marker_ttl: int
    leases: DeliveryLeases
    quiet_jobs: set[str] = field(default_factory=set)  # jobs whose progress edits timed out: no more
    # A message went out from here: this host's telegram_not_configured alert was resolved (or
    # there was none). Once per loop (one per worker process), not a Redis call per delivery.
    configured_told: bool = False
    _api: BotAPI | None = None
    _marks_of_run: Any = None
    _detach_unattached: Any = None
    _keep_owed: Any = None

    def __post_init__(self) -> None:
        self._marks_of_run = self.redis.register_script(_MARKS_OF_RUN)  # EVALSHA, not the text each time
        self._detach_unattached = self.redis.register_script(DETACH_UNATTACHED)
        self._keep_owed = self.redis.register_script(KEEP_OWED)

    @property
    def api(self) -> BotAPI:
        """Built on first use: a worker without Telegram settings still runs jobs nobody waits for."""
        if self._api is None:
            self._api = BotAPI.from_settings(self.settings)
        return self._api

    def job_key(self, job_id: str) -> str:
        return f"{self.job_key_prefix}{job_id}"

    async def load(self, job_id: str) -> JobRecord | None:
        data = await self.redis.hgetall(self.job_key(job_id))
        return JobRecord.from_hash(job_id, data) if data else None

    async def delivered(self, job_id: str, run: str = "") -> set[str]:
        """The parts already sent for this run of the job. A requeued job is a new run (``run``:
        when it was requeued): what its failure note was marked as must not hold its result back."""
        return set(await self._marks_of_run(keys=[self.keys.delivered(job_id)],
                                            args=[RUN_FIELD, run, self.marker_ttl]))

    async def detach_unattached(self, job_id: str) -> list[str]:
        """Mark the requesters whose job message is still not recorded as served by messages of
        their own (``<user id>:detached``); a message the bot records later is refused as late.
        Their user ids."""
        return [str(uid) for uid in await self._detach_unattached(keys=[self.job_key(job_id), self.keys.delivered(job_id)],
                                                                  args=[DETACHED, self.marker_ttl])]

    async def keep_owed(self, job_id: str) -> int:
        """A delivery of the job failed: keep its record and markers until the scheduler's
        redelivery is over (:data:`queues.jobstore.KEEP_OWED`). The record's TTL after."""
        return int(await self._keep_owed(keys=[self.job_key(job_id), self.keys.delivered(job_id)],
                                         args=[OWED_TTL, OWED_MARK]))

    async def keep_going(self, job_id: str) -> int:
        """A delivery of the job goes on in a new delivery job: keep its record and markers as a
        failed one's (:meth:`keep_owed`, without saying the result is owed: some were served).
        A long chain of continuations outlived the record's hour, and the rest were never told."""
        return int(await self._keep_owed(keys=[self.job_key(job_id), self.keys.delivered(job_id)],
                                         args=[OWED_TTL, ""]))

    async def mark(self, job_id: str, part: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self.keys.delivered(job_id), part, "1")
        pipe.expire(self.keys.delivered(job_id), self.marker_ttl)
        await pipe.execute()

    async def close(self) -> None:
        if self._api is not None:
            await self._api.close()
        await self.redis.aclose()


_resources: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, DeliveryResources] = weakref.WeakKeyDictionary()


def build_resources(settings: Any) -> DeliveryResources:
    from queues.jobstore import JobStore

    redis = async_redis_client(settings)
    keys = BotKeys(settings.redis_key_prefix)
    limiter = SendLimiter.from_settings(redis, keys, settings)
    return DeliveryResources(
        settings=settings, redis=redis, keys=keys, sender=Sender(limiter), store=FaceitStore(redis, FaceitKeys(settings.redis_key_prefix)),
        job_key_prefix=JobStore(redis, prefix=settings.redis_key_prefix).job_key(""),
        marker_ttl=int(settings.queue_failure_ttl),
        # A delivery's lease outlives a dead holder as long as its heartbeat does: the dead
        # worker's messages come back about then.
        leases=DeliveryLeases(redis, ttl=float(settings.queue_heartbeat_timeout)),
    )


async def get_resources() -> DeliveryResources:
    """The running loop's resources (built from settings on first use)."""
    loop = asyncio.get_running_loop()
    res = _resources.get(loop)
    if res is None:
        from settings import get_settings

        res = _resources[loop] = build_resources(get_settings())
    return res


# Progress ------------------------------------------------------------------------------------------


async def on_progress(job_id: str, progress: dict[str, Any]) -> None:
    """Edit each requester's job message to show ``progress`` (best effort; never raises)."""
    try:
        res = await get_resources()
        if job_id in res.quiet_jobs:
            return
        raw, actor, requeued = await res.redis.hmget(res.job_key(job_id), ["requesters", "actor", "requeued_at"])
        if requeued:  # its messages show how the earlier run ended; the result comes as a new one
            return
        requesters = [r for r in (json.loads(raw) if raw else []) if r.get("message_id")]
        if requesters:
            chosen = await _chosen_languages(res, [int(r["user_id"]) for r in requesters])
            # Every edit ends before this returns, even when one fails (Redis under the send
            # limiter): an edit left running could land after the job's result and replace it.
            outcomes = await asyncio.gather(*(_edit_progress(res, job_id, actor, r, progress,
                                                             chosen.get(int(r["user_id"]))) for r in requesters),
                                            return_exceptions=True)
            failed = next((o for o in outcomes if isinstance(o, BaseException)), None)
            if failed is not None:
                logger.debug("job %s: progress edit skipped: %s: %s", job_id, type(failed).__name__, failed)
    except Exception as exc:  # progress must never fail a job
        logger.debug("job %s: progress edit skipped: %s: %s", job_id, type(exc).__name__, exc)


async def _edit_progress(res: DeliveryResources, job_id: str, actor: str | None, requester: dict[str, Any],
                         progress: dict[str, Any], chosen: str | None = None) -> None:
    chat_id = int(requester.get("chat_id") or requester["user_id"])
    lang = normalize_lang(chosen or requester.get("lang"))  # /lang while the job runs: from then on
    text = progress_text(job_id, actor, progress, lang)

    async def edit() -> Any:
        return await res.api.edit_message_text(chat_id, int(requester["message_id"]), text,
                                               reply_markup=cancel_keyboard(job_id, lang), timeout=PROGRESS_TIMEOUT)

    # A retry notice waits for the chat's turn (it may stand for minutes); ordinary progress is
    # skipped when the chat's budget is spent (the next one comes within a second).
    best_effort = progress.get("stage") != "retrying"
    try:
        outcome = await asyncio.wait_for(res.sender.call(chat_id, edit, best_effort=best_effort, job_id=job_id),
                                         PROGRESS_TIMEOUT + 1)
    except (BadRequest, UserBlocked) as exc:
        logger.debug("job %s: progress edit for chat %s not applied: %s", job_id, chat_id, exc)
        return
    except (FaceitBotError, TimeoutError) as exc:  # Telegram slow or unreachable: stop holding the job up
        if len(res.quiet_jobs) > 10_000:
            res.quiet_jobs.clear()
        res.quiet_jobs.add(job_id)
        logger.info("job %s: Telegram did not take a progress edit (%s); no more for this job", job_id,
                    type(exc).__name__)
        return
    if outcome is SKIPPED:
        logger.debug("job %s: progress edit for chat %s skipped (send budget)", job_id, chat_id)


# Result parts --------------------------------------------------------------------------------------


@dataclass
class Part:
    """One message of a delivery: text (``replace``: edit the job message) or a photo."""

    name: str
    text: str = ""
    photo: bytes | None = None
    replace: bool = False


@dataclass
class Summary:
    sent: int = 0
    skipped: int = 0
    refused: int = 0  # parts Telegram refused for good (logged as errors), not counted as sent
    blocked: list[int] = field(default_factory=list)
    chats_gone: list[int] = field(default_factory=list)  # groups the bot was removed from
    errors: list[BaseException] = field(default_factory=list)
    left: int = 0  # recipients not begun within the delivery's budget: a continuation serves them

    def to_dict(self, job_id: str) -> dict[str, Any]:
        done = {"kind": "delivery", "job_id": job_id, "sent": self.sent, "already_sent": self.skipped,
                "refused": self.refused, "blocked": sorted(self.blocked), "chats_gone": sorted(self.chats_gone)}
        return {**done, "left": self.left} if self.left else done


def _texts_of(result: dict[str, Any], lang: str) -> list[str]:
    texts = result.get("texts") or {}
    return list(texts.get(lang) or texts.get("en") or [])


def _photos_of(result: dict[str, Any], lang: str) -> list[Part]:
    parts = []
    for index, photo in enumerate(result.get("photos") or []):
        try:
            data = base64.b64decode(photo.get("png_b64") or "", validate=True)
        except (ValueError, TypeError):
            logger.warning("a photo of the result is not valid base64; skipped")
            continue
        # Rendered Telegram HTML like every other text of a result (already escaped), cut with its
        # tags balanced to what a caption may hold.
        caption = (photo.get("caption") or {}).get(lang) or (photo.get("caption") or {}).get("en") or ""
        parts.append(Part(f"p{index}", text=next(iter(split_html(caption, CAPTION_LIMIT)), ""), photo=data))
    return parts


def _scheduled(record: JobRecord) -> bool:
    """Whether the scheduler started the job for its user (the weekly summary), nobody asked."""
    return bool((record.kwargs or {}).get("scheduled"))


async def _requester_parts(res: DeliveryResources, record: JobRecord, user_id: int, lang: str,
                           done: set[str], in_group: bool) -> list[Part]:
    """What a requester gets: nothing when there is nothing to tell them (a scheduled job that
    ended without its result: they never asked, so a failure note would be news of a request
    they did not make, and the scheduler tries again; or a result with ``quiet``: a scheduled
    summary with nothing to report)."""
    if record.status != "succeeded" and _scheduled(record):
        return []
    if record.status == "canceled":
        # Not their own Cancel: said who, or "cancelled" reads as a fault of ours.
        by_operator = record.raw.get("canceled_by") == CANCELED_BY_OPERATOR
        return [Part("0", canceled_text(record.id, record.actor, lang, by_operator=by_operator), replace=True)]
    if record.status == "failed":
        return [Part("0", failure_text(record.id, record.actor, record.error, record.kwargs, lang), replace=True)]
    result = record.result if isinstance(record.result, dict) else {}
    if result.get("quiet"):
        return []
    if result.get("kind") == "player_lookup":
        return [Part("0", await _lookup_text(res, result, user_id, lang, first=f"{user_id}:0" not in done,
                                             in_group=in_group), replace=True)]
    texts = _texts_of(result, lang) or [t("done", lang)]
    parts = [Part(str(i), text, replace=(i == 0)) for i, text in enumerate(texts)]
    return parts + _photos_of(result, lang)


async def _lookup_text(res: DeliveryResources, result: dict[str, Any], user_id: int, lang: str,
                       first: bool, in_group: bool) -> str:
    """A player lookup's answer; with ``subscribe`` the subscription is made here, for the requester.
    Asked in a group, it says that notices come in a private chat, which Telegram lets the bot
    open only once the user has started it there."""
    player = result.get("data") or {}
    nickname = str(player.get("nickname") or "?")
    if not result.get("subscribe"):
        known = [t(key, lang, value=player[field]) for field, key in (("elo", "lookup_elo"), ("level", "lookup_level"))
                 if player.get(field) is not None]  # a figure FACEIT did not give is left out, not "None"
        return " · ".join([f"👤 <b>{html.escape(nickname)}</b>", *known])
    if first:
        await res.redis.hset(res.keys.user_seen_languages(), str(user_id), lang)
        try:
            await res.store.subscribe(user_id, str(player["player_id"]), nickname)
        except FaceitBotError as exc:  # too many subscriptions
            return "❌ " + html.escape(user_message(exc, lang))
        if isinstance(result.get("baseline"), dict):  # monitoring starts now, not at its next scan
            await res.store.set_monitor_state(str(player["player_id"]), result["baseline"], if_absent=True)
    text = t("subscribed", lang, nickname=nickname)
    return f"{text}\n{t('subscribed_in_group', lang)}" if in_group else text


async def close_resources() -> None:
    """Close this event loop's delivery resources (its Redis client and Bot API session)."""
    res = _resources.pop(asyncio.get_running_loop(), None)
    if res is not None:
        await res.close()


# Sending -------------------------------------------------------------------------------------------


async def _send_and_mark(res: DeliveryResources, job_id: str, marker: str, chat_id: int, part: Part,
                         message_id: int | None, thread_id: int | None = None,
                         reply_to: int | None = None) -> int | None:
    """Send one part, then mark it sent (``marker``); returns where it went (:func:`_send_part`).
    One step that a cut (the delivery's time limit, a cancel) does not split once the request went
    to Telegram. Cut before that, nothing
    was sent and the step ends at once; cut after, Telegram may have taken it, and a part sent
    but not marked would go out again on the retry (a second chart, the later parts twice). So
    the step runs in a task of its own, shielded: the cut waits for its answer and its mark, at
    most the request's own timeout (and :data:`MARK_GRACE`), then goes on."""
    started = asyncio.Event()

    async def send_then_mark() -> int | None:
        sent_to = await _send_part(res, job_id, chat_id, part, message_id, thread_id, reply_to, started=started)
        await res.mark(job_id, marker)
        return sent_to

    step = asyncio.ensure_future(send_then_mark())
    try:
        return await asyncio.shield(step)
    except asyncio.CancelledError:
        if not step.done() and started.is_set():
            logger.info("job %s: delivery cut while part %s was sent; finishing that part first", job_id, marker)
            await asyncio.wait({step}, timeout=res.api.timeout + MARK_GRACE)  # (does not cancel it)
        if not step.done():
            step.cancel()
        elif not step.cancelled() and step.exception() is not None:  # (read: the cut is what is raised)
            logger.info("job %s: part %s failed after the cut: %s", job_id, marker, step.exception())
        raise


async def _send_part(res: DeliveryResources, job_id: str, chat_id: int, part: Part,
                     message_id: int | None, thread_id: int | None = None, reply_to: int | None = None,
                     started: asyncio.Event | None = None) -> int | None:
    """Send one part (new messages into the forum topic ``thread_id`` where the user asked) and
    return the chat it went to: ``chat_id``, or the supergroup the group became meanwhile
    (Telegram gives its new id; the part goes there as a new message, the job message and
    topics stayed behind in the old group). A part Telegram refuses for good (a photo it cannot
    read, a text refused even as plain text) is logged and dropped (None): retrying cannot change
    the answer, and the other parts still go out; markup it cannot read goes as plain text.
    ``reply_to``: the message a new message of this part answers (in a group, so it shows whom it
    is for; see :func:`_to_requester`). ``started`` is set as a request goes to Telegram (after
    the wait for the chat's send slot)."""
    try:
        return chat_id if await _send_part_to(res, job_id, chat_id, part, message_id, thread_id, reply_to,
                                              started) else None
    except ChatMigrated as exc:
        moved_to = exc.migrate_to_chat_id
    if started is not None:
        started.clear()  # refused: nothing of it is on its way to Telegram until the next request
    logger.info("job %s: group %s is now the supergroup %s; part %s goes there", job_id, chat_id, moved_to, part.name)
    try:
        return moved_to if await _send_part_to(res, job_id, moved_to, part, None, None, None, started) else None
    except BadRequest as exc:  # (a supergroup moves no more: refused for good)
        logger.error("job %s: Telegram refused part %s for chat %s: %s", job_id, part.name, moved_to,
                     exc.description[:200])
        return None


async def _send_part_to(res: DeliveryResources, job_id: str, chat_id: int, part: Part, message_id: int | None,
                        thread_id: int | None, reply_to: int | None, started: asyncio.Event | None) -> bool:
    """:func:`_send_part` in ``chat_id`` as it is: False when the part was dropped; a group that
    became a supergroup raises :class:`~bot.botapi.ChatMigrated`."""
    api, sender = res.api, res.sender

    def request(call: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
        async def run() -> Any:
            if started is not None:
                started.set()
            return await call()
        return run

    async def send_photo(photo: bytes, caption: str | None, html: bool = True) -> None:
        await sender.call(chat_id, request(lambda: api.send_photo(chat_id, photo, caption=caption, thread_id=thread_id,
                                                                  reply_to=reply_to, html=html)), job_id=job_id)

    try:
        if part.photo is not None:
            await send_photo(part.photo, part.text or None)
            return True
        await _edit_else_send(
            res, job_id, chat_id, request,
            (lambda: api.edit_message_text(chat_id, message_id, part.text)) if part.replace and message_id else None,
            lambda: api.send_message(chat_id, part.text, thread_id=thread_id, reply_to=reply_to))
        return True
    except ChatMigrated:
        raise
    except BadRequest as exc:
        if "parse entities" in exc.description:
            # Our markup broke somewhere: the text as plain text, where the HTML would have gone
            # (the job message, so its progress line and Cancel button do not stay; else a new
            # message answering what the HTML one would have answered; a chart keeps its photo).
            plain = html.unescape(_TAG.sub("", part.text))
            edit = {"chat_id": chat_id, "message_id": message_id, "text": plain[:4096],
                    "link_preview_options": NO_PREVIEW}
            send = {"chat_id": chat_id, "text": plain[:4096], "message_thread_id": thread_id,
                    "link_preview_options": NO_PREVIEW, "reply_parameters": reply_to_json(reply_to) if reply_to else None}
            try:
                if part.photo is not None:
                    await send_photo(part.photo, plain[:CAPTION_LIMIT] or None, html=False)
                    return True
                await _edit_else_send(res, job_id, chat_id, request,
                                      (lambda: api.call("editMessageText", edit)) if part.replace and message_id else None,
                                      lambda: api.call("sendMessage", send))
                return True
            except ChatMigrated:
                raise
            except BadRequest as plain_refused:  # refused as plain text too: for good, not worth a retry
                exc = plain_refused
        logger.error("job %s: Telegram refused part %s for chat %s: %s", job_id, part.name, chat_id,
                     exc.description[:200])
        return False


async def _edit_else_send(res: DeliveryResources, job_id: str, chat_id: int,
                          request: Callable[[Callable[[], Awaitable[Any]]], Callable[[], Awaitable[Any]]],
                          edit: Callable[[], Awaitable[Any]] | None, send: Callable[[], Awaitable[Any]]) -> None:
    """The job message edited (``edit``; None: there is none), else a new message (``send``).
    "Not modified" is done (an earlier attempt put it there); markup Telegram cannot read is
    raised (a new message of it would be refused too); a migrated group is raised as it is."""
    if edit is not None:
        try:
            await res.sender.call(chat_id, request(edit), job_id=job_id)
            return
        except ChatMigrated:
            raise
        except BadRequest as exc:
            if "not modified" in exc.description:
                return
            if "parse entities" in exc.description:
                raise
            logger.info("job %s: job message in chat %s cannot be edited (%s); sending a new one",
                        job_id, chat_id, exc.description[:120])
    await res.sender.call(chat_id, request(send), job_id=job_id)


async def _deliver_parts(res: DeliveryResources, job_id: str, user_id: int, chat_id: int, parts: list[Part],
                         message_id: int | None, done: set[str], summary: Summary, prefix: str = "",
                         thread_id: int | None = None, reply_to: int | None = None,
                         follow_to: int | None = None) -> bool:
    """Send what is not yet marked; False when the user blocked the bot. A new message of the
    first part answers ``reply_to``, the later parts answer ``follow_to``."""
    for part in parts:
        marker = f"{user_id}:{prefix}{part.name}"
        if marker in done:
            summary.skipped += 1
            continue
        try:
            sent_to = await _send_and_mark(res, job_id, marker, chat_id, part, message_id, thread_id,
                                           reply_to if part.replace else follow_to)
        except UserBlocked:  # marked here too: this run's later notices to them stop at once
            done.add(await _blocked(res, job_id, user_id, chat_id, summary))
            return False
        done.add(marker)
        if sent_to is None:
            summary.refused += 1
            continue
        summary.sent += 1
        if sent_to != chat_id:  # the group became a supergroup: the rest goes there, as new messages
            chat_id, message_id, thread_id, reply_to, follow_to = sent_to, None, None, None, None
    return True


async def _blocked(res: DeliveryResources, job_id: str, user_id: int, chat_id: int, summary: Summary) -> str:
    """Telegram refused the chat for good (403). In the user's private chat they blocked the bot:
    inactive from now on. In a group the bot was removed from that group: nothing more goes
    there for this job, but the user still gets their own notifications. Returns the marker
    written."""
    if chat_id != user_id:
        logger.info("job %s: the bot is no longer in chat %s where user %s asked; nothing more is sent there",
                    job_id, chat_id, user_id)
        summary.chats_gone.append(chat_id)
        marker = f"{user_id}:{CHAT_GONE}"
    else:
        logger.info("job %s: user %s blocked the bot; marked inactive, nothing more is sent to them", job_id, user_id)
        await res.store.set_user_inactive(user_id)
        summary.blocked.append(user_id)
        marker = f"{user_id}:{BLOCKED}"
    await res.mark(job_id, marker)
    return marker


async def _to_requester(res: DeliveryResources, record: JobRecord, requester: dict[str, Any], done: set[str],
                        summary: Summary, chosen: str | None = None) -> None:
    user_id = int(requester["user_id"])
    if f"{user_id}:{BLOCKED}" in done or f"{user_id}:{CHAT_GONE}" in done:
        return
    chat_id = int(requester.get("chat_id") or user_id)
    # The language they chose with /lang, even after asking; else the request's. A job the
    # scheduler started for a user (the weekly report) names none: theirs.
    asked_in = chosen or requester.get("lang")
    lang = normalize_lang(asked_in) if asked_in else await _user_lang(res, user_id)
    in_group = chat_id != user_id
    parts = await _requester_parts(res, record, user_id, lang, done, in_group=in_group)
    if not parts:  # nothing sent: nothing counted either
        logger.info("job %s: nothing to tell user %s", record.id, user_id)
        return
    message_id = requester.get("message_id")
    thread_id = requester.get("thread_id")
    # A new message answers theirs: when there is no job message, or when it cannot be edited
    # (deleted meanwhile: in a busy group the result would otherwise answer nobody).
    reply_to = requester.get("reply_to")
    if message_id and record.raw.get("requeued_at"):
        # Run again by an operator: the job message shows how the earlier run ended, maybe hours
        # ago. The result comes as a new message answering it (an edit would go unnoticed).
        reply_to, message_id = message_id, None
    # In a group the later parts (the chart, a long result's next parts) answer the job message,
    # as the group's other answers do: among other members' messages they show whose they are.
    follow_to = (message_id or reply_to) if in_group else None
    delivered = await _deliver_parts(res, record.id, user_id, chat_id, parts,
                                     int(message_id) if message_id else None, done, summary,
                                     thread_id=int(thread_id) if thread_id else None,
                                     reply_to=int(reply_to) if reply_to else None,
                                     follow_to=int(follow_to) if follow_to else None)
    counted = f"{user_id}:{COUNTED}"
    if delivered and counted not in done and _counts_as_analysis(record):
        try:
            await res.store.record_analysis(user_id, ACTIVITY_KIND[record.actor])
            await res.mark(record.id, counted)
            done.add(counted)
        except Exception as exc:  # activity counts are a bonus for reports
            logger.warning("job %s: activity not recorded: %s", record.id, exc)


def _counts_as_analysis(record: JobRecord) -> bool:
    """Whether the delivered job counts in the user's reports: a succeeded analysis, not a bulk
    list whose every match failed (it succeeds, to say why each one did)."""
    if record.status != "succeeded" or record.actor not in ACTIVITY_KIND:
        return False
    data = (record.result if isinstance(record.result, dict) else {}).get("data")
    return not (isinstance(data, dict) and data.get("analysed") == 0)


async def _to_subscriber(res: DeliveryResources, job_id: str, user_id: int, lang: str, index: int,
                         note: dict[str, Any], done: set[str], summary: Summary) -> None:
    if f"{user_id}:{BLOCKED}" in done:  # their own chat (a group gone does not count), in this run or before
        return
    player_id = note.get("player_id")
    if player_id and not await res.store.follows(user_id, str(player_id)):
        # They unfollowed after the run read the player's followers: no more news of them.
        logger.info("job %s: user %s no longer follows %s; notice not sent", job_id, user_id, player_id)
        return
    if not await _first_to_tell(res, job_id, user_id, note):
        summary.skipped += 1
        return
    texts = note.get("texts") or {}
    chosen = list(texts.get(lang) or texts.get("en") or texts.get("ru") or [])
    parts = [Part(str(i), text) for i, text in enumerate(chosen)]
    await _deliver_parts(res, job_id, user_id, user_id, parts, None, done, summary, prefix=f"n{index}.")


async def _first_to_tell(res: DeliveryResources, job_id: str, user_id: int, note: dict[str, Any]) -> bool:
    """Whether this job's delivery is the one that tells ``user_id`` of the note's match: the
    first to claim it (or this job again, on a retry). Two monitoring runs that overlap (a
    backlog, a late start) both see the same new match; its follower hears of it once. A note
    without ids (nothing to tell it by) always goes."""
    player_id, match_id = note.get("player_id"), note.get("match_id")
    if not player_id or not match_id:
        return True
    key = res.keys.told(user_id, str(player_id), str(match_id))
    if await res.redis.set(key, job_id, nx=True, ex=told_ttl(res.settings)):
        return True
    holder = await res.redis.get(key)  # (the client decodes)
    if holder in (None, job_id):  # (expired meanwhile: nobody else is telling it now)
        return True
    logger.info("job %s: user %s is told of match %s by job %s; not again", job_id, user_id, match_id, holder)
    return False


def told_ttl(settings: Any) -> int:
    """How long a "told of this match" claim is kept: as long as a run that saw the match can
    still deliver (its record, and so its delivery and a requeue of it, lasts at most the result or
    failure TTL, a day by default; the scheduler's redelivery looks 3 hours back), plus
    :data:`TOLD_MARGIN`. One claim per follower per match: kept a week, they were the bulk of a
    busy bot's keys; kept less than a record, a requeued delivery could tell a match again."""
    return max(int(settings.queue_result_ttl), int(settings.queue_failure_ttl)) + TOLD_MARGIN


def _notes_by_user(notes: list[Any]) -> dict[Any, list[tuple[int, dict[str, Any]]]]:
    """The notifications (with their index) of each user, in the order the job wrote them."""
    mine: dict[Any, list[tuple[int, dict[str, Any]]]] = {}
    for index, note in enumerate(notes):
        if isinstance(note, dict):
            mine.setdefault(note.get("user_id"), []).append((index, note))
    return mine


async def _to_subscriber_in_order(res: DeliveryResources, job_id: str, notes: list[tuple[int, dict[str, Any]]],
                                  done: set[str], inactive: set[int], summary: Summary) -> None:
    """One user's notifications one after another: sent side by side they raced for the chat's
    send slot and arrived in any order (a player's matches shuffled, the Elo total not last)."""
    try:
        user_id = int(notes[0][1]["user_id"])
    except (KeyError, TypeError, ValueError):
        return
    if user_id in inactive:
        return
    served = [_parts_served(user_id, index, note, done) for index, note in notes]
    if all(served):  # told in an earlier attempt: no round trip (a continuation meets thousands)
        summary.skipped += sum(served)
        return
    lang = await _user_lang(res, user_id)  # once for all of them
    for index, note in notes:
        await _to_subscriber(res, job_id, user_id, lang, index, note, done, summary)


def _parts_served(user_id: int, index: int, note: dict[str, Any], done: set[str]) -> int:
    """How many parts of notice ``index`` reached ``user_id`` in an earlier attempt: every part of
    it in one of its languages (0 when none did wholly)."""
    texts = note.get("texts") or {}
    for chosen in texts.values():
        if isinstance(chosen, list) and chosen and all(f"{user_id}:n{index}.{i}" in done
                                                       for i in range(len(chosen))):
            return len(chosen)
    return 0


async def _chosen_languages(res: DeliveryResources, user_ids: list[int]) -> dict[int, str]:
    """The languages these users chose with ``/lang`` (those who chose one); none when Redis
    cannot say (each result then goes out in the language it was asked in)."""
    if not user_ids:
        return {}
    try:
        values = await res.redis.hmget(res.keys.user_languages(), [str(uid) for uid in user_ids])
    except RedisError as exc:
        logger.warning("chosen languages not read, delivering in the requests' languages: %s", exc)
        return {}
    return {uid: value for uid, value in zip(user_ids, values, strict=True) if value}


async def _user_lang(res: DeliveryResources, user_id: int) -> str:
    """A user's language when no request of theirs says it (notifications, scheduled reports):
    chosen with ``/lang``, else the one seen when they subscribed."""
    pipe = res.redis.pipeline(transaction=False)
    pipe.hget(res.keys.user_languages(), str(user_id))
    pipe.hget(res.keys.user_seen_languages(), str(user_id))
    chosen, seen = await pipe.execute()
    return user_language(chosen, seen)


async def deliver_job(job_id: str, budget: float | None = None) -> dict[str, Any]:
    """Deliver the ended job ``job_id`` to its requesters and notified users (see the module docstring).

    ``budget``: seconds after which no further recipient is begun (the delivery's time limit less
    room for those under way). When some are left and this attempt sent something, a new
    delivery of the job is queued for them (each part goes once: the markers), and this one
    ends well; one that sent nothing is retried on the schedule. A notice to thousands of
    followers of one player otherwise outran the 120 s limit at every attempt and, past the
    retries, was lost for the rest of them. The budget counts from here: a wait for another
    delivery's lease of the job is part of it."""
    deadline = time.monotonic() + budget if budget is not None else None
    res = await get_resources()
    try:
        res.api  # noqa: B018 (built here: a worker without Telegram settings cannot deliver)
    except BotConfigError as exc:
        # People wait for this result and this worker cannot reach Telegram: an operator must act.
        # An error alert says so (once per dedupe window and host). The delivery fails as Telegram
        # being away does: its retries may land on a worker that has the token, and the
        # scheduler's redelivery sends it again once the workers were restarted with it.
        # An error once per process (a Sentry event each with its logging integration; the host's
        # alert says it to the admins once), then a warning for every delivery it holds back.
        level = logging.WARNING if _not_configured_told.is_set() else logging.ERROR
        _not_configured_told.set()
        logger.log(level, "job %s: not delivered, Telegram is not configured in this worker: %s", job_id, exc)
        await asyncio.to_thread(_alert_not_configured, res.settings, str(exc))
        await _keep_owed(res, job_id)
        raise TelegramNotConfigured(f"Telegram is not configured in this worker: {exc}") from None
    try:
        async with res.leases.hold(res.keys.delivering(job_id), job_id):
            # Read under the lease: another delivery may have run meanwhile, or the job been requeued.
            record = await res.load(job_id)
            if record is None:
                return await _record_gone(res, job_id)
            if not record.is_final:
                logger.info("job %s: %s, not ended; delivery skipped", job_id, record.status)
                return {"kind": "delivery", "job_id": job_id, "sent": 0, "not_final": record.status}
            summary = await _deliver_run(res, record, deadline)
    except ResultLostError:
        raise
    except (Exception, asyncio.CancelledError):
        # This attempt failed (Telegram unreachable, flood control, Redis, its time limit): the
        # result is still owed. A succeeded job's record lives QUEUE_RESULT_TTL (an hour), the
        # retries and the scheduler's redelivery go on for hours: keep the record as long as they do.
        await _keep_owed(res, job_id)
        raise
    if (summary["sent"] or summary["refused"]) and not res.configured_told:  # Telegram was reached
        await _resolve_not_configured(res)
    if summary.get("left"):  # after the lease, which the continuation takes
        await res.keep_going(job_id)
        await asyncio.to_thread(_continue_delivery, job_id)
    return summary


def _continue_delivery(job_id: str) -> None:
    """Queue another delivery of ``job_id`` for the recipients this one left (a failure raises:
    this delivery is then retried, and sends only what is still due)."""
    from queues.manager import get_queue_manager

    get_queue_manager().enqueue_delivery(job_id)
    logger.info("job %s: delivery goes on in a new delivery job", job_id)


async def _keep_owed(res: DeliveryResources, job_id: str) -> None:
    """Keep the record of a job whose delivery just failed (never raises: the delivery's own
    error is the one the pipeline must see)."""
    try:
        left = await res.keep_owed(job_id)
    except Exception as exc:  # Redis down too: the retry (or the redelivery) tries again
        logger.warning("job %s: record not kept for its redelivery: %s: %s", job_id, type(exc).__name__, exc)
        return
    logger.info("job %s: delivery failed; its record is kept %s s for the retries and redelivery", job_id,
                left if left >= 0 else ("forever" if left == -1 else "no longer (gone)"))


async def _record_gone(res: DeliveryResources, job_id: str) -> dict[str, Any]:
    """The job's record is gone (expired). When an earlier attempt failed with the result owed
    (:data:`OWED_MARK`, written as it kept the record) and no attempt served anyone (a marker
    shows that: a requester's first part, a notice, a chat refused for good), the result is lost:
    the delivery fails (:class:`ResultLostError`: an error alert, and no retry or redelivery,
    which could not send it either) instead of passing for delivered while the user's message
    stays at its progress line. Otherwise nothing says anything was owed (a delivery that waited
    past the record's hour with nothing to send), and a warning says the record was gone."""
    marks = await res.redis.hkeys(res.keys.delivered(job_id))  # (a Redis error: the retry reads them)
    if OWED_MARK in marks and not any(_SERVED.match(mark) for mark in marks):
        logger.error("job %s: record gone (expired?) before its result was delivered to anyone; the result is lost",
                     job_id)
        raise ResultLostError(f"the record of job {job_id} expired before its result was delivered; "
                              "its users never got it")
    logger.warning("job %s: record gone (expired?) after its delivery served someone; nothing more to deliver",
                   job_id)
    return {"kind": "delivery", "job_id": job_id, "sent": 0, "missing": True}


async def _deliver_run(res: DeliveryResources, record: JobRecord, deadline: float | None = None) -> dict[str, Any]:
    """Deliver the current run of an ended job, holding its lease: the markers read here are the
    latest, and no other delivery of the job adds to them meanwhile. Past ``deadline``
    (``time.monotonic()``) no further recipient is begun (:func:`deliver_job`)."""
    job_id = record.id
    run = str(record.raw.get("requeued_at") or "")
    record = await _await_job_messages(res, record)
    done = await res.delivered(job_id, run)
    if _unattached(record):
        record = await _detach_unattached(res, record)
    summary = Summary()
    semaphore = asyncio.Semaphore(RECIPIENT_CONCURRENCY)

    async def guarded(coro: Any) -> None:
        async with semaphore:
            if deadline is not None and time.monotonic() > deadline:
                coro.close()  # never begun: the continuation serves this recipient
                summary.left += 1
                return
            try:
                await coro
            except Exception as exc:
                summary.errors.append(exc)

    requesters = [r for r in record.requesters if r.get("user_id")]
    chosen = await _chosen_languages(res, [int(r["user_id"]) for r in requesters])
    tasks = [guarded(_to_requester(res, record, r, done, summary, chosen.get(int(r["user_id"]))))
             for r in requesters]
    result = record.result if isinstance(record.result, dict) else {}
    notes = result.get("notifications") or [] if record.status == "succeeded" else []
    if notes:
        # Monitoring moves past the matches told now that their notices go out (not when the
        # job ended: a worker dying before its result was stored would have lost them).
        await res.store.advance_monitoring(result.get("marks"))
        inactive = await res.store.inactive_users()
        tasks += [guarded(_to_subscriber_in_order(res, job_id, mine, done, inactive, summary))
                  for mine in _notes_by_user(notes).values()]
    await asyncio.gather(*tasks)
    logger.info("job %s: delivery sent %d, already sent %d, refused %d, blocked %d, groups gone %d, errors %d%s",
                job_id, summary.sent, summary.skipped, summary.refused, len(summary.blocked), len(summary.chats_gone),
                len(summary.errors), f", left for a new delivery {summary.left}" if summary.left else "")
    if summary.errors:
        raise _most_telling(summary.errors)
    if summary.left and not summary.sent:  # no way on: the retry schedule, not a loop of new deliveries
        raise UpstreamError(f"delivery began no recipient's send within its time; {summary.left} left")
    return summary.to_dict(job_id)


def _alert_not_configured(settings: Any, reason: str) -> None:
    from queues.runtime import get_alert_store

    host = socket.gethostname()
    try:
        get_alert_store(settings).fire("error", "delivery", f"results are not delivered from {host}: {reason}",
                                       rule="telegram_not_configured", subject=host)
    except Exception as exc:  # the log line above still says it
        logger.warning("alert not recorded: %s: %s", type(exc).__name__, exc)


async def _resolve_not_configured(res: DeliveryResources) -> None:
    """Telegram took a message from this host: an open ``telegram_not_configured`` alert of the
    host (fired before its workers were restarted with the token) is over, so resolve it — or it
    would stay open, and ``admin.py alerts --open`` exit 1, forever: nothing else resolves it.
    Done after the first delivery that sent something; a Redis error leaves it for the next."""
    from queues.runtime import get_alert_store

    res.configured_told = True
    host = socket.gethostname()
    try:
        resolved = await asyncio.to_thread(get_alert_store(res.settings).resolve, "telegram_not_configured", host,
                                           f"resolved: results are delivered from {host} again")
    except Exception as exc:  # the next delivery tries again
        res.configured_told = False
        logger.warning("telegram_not_configured alert of %s not resolved: %s: %s", host, type(exc).__name__, exc)
        return
    if resolved:
        logger.info("results are delivered from %s again: its telegram_not_configured alert is resolved", host)


def _unattached(record: JobRecord) -> list[dict[str, Any]]:
    """Requesters who asked through the bot (they have a chat) but whose job message is not recorded yet."""
    return [r for r in record.requesters if r.get("chat_id") and not r.get("message_id")]


async def _await_job_messages(res: DeliveryResources, record: JobRecord) -> JobRecord:
    """A job can end before the bot recorded the message that shows it (a cached result takes
    milliseconds; the bot records its message right after replying). Give the bot a moment, so
    the result replaces that message instead of arriving beside it."""
    deadline = (record.enqueued_at or 0) + ATTACH_GRACE
    while _unattached(record) and time.time() < deadline:
        await asyncio.sleep(0.05)
        record = await res.load(record.id) or record
    return record


async def _detach_unattached(res: DeliveryResources, record: JobRecord) -> JobRecord:
    """Requesters whose job message is still not recorded after the wait (the bot's answer was
    held up: a flood wait, a slow chat) get their result as a message of their own, replying to
    theirs in a group. One script marks them, so a message is either recorded in time (and
    replaced by the result) or refused as late when the bot records it (the bot then deletes it:
    a "queued" line with a Cancel button would stand stale above the result)."""
    detached = await res.detach_unattached(record.id)
    if detached:
        logger.info("job %s: no job message recorded in time for users %s; their results go out as new messages",
                    record.id, ", ".join(detached))
    return await res.load(record.id) or record  # (some may have been recorded just before the script)


def _most_telling(errors: list[BaseException]) -> BaseException:
    """The error to retry on: the longest flood wait, else the first."""
    floods = [e for e in errors if isinstance(e, RateLimitedError)]
    if floods:
        return max(floods, key=lambda e: e.retry_after or 0)
    return errors[0]

"""Small pieces the feature routers share: who is asking, and the reply that starts a job."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command
from aiogram.types import Message

from bot.fastsend import send_reply
from bot.replies import in_group
from bot.services import BotServices, Requester, StartedJob
from bot.views import asked_again_text, cancel_keyboard, queued_text, shown_here_text

logger = logging.getLogger(__name__)


def command(*names: str) -> Command:
    """A command filter that ignores case (``/Analyze`` works too)."""
    return Command(*names, ignore_case=True)


def text_of(message: Message) -> str | None:
    """What a user wrote: the text, or a photo's caption (a lobby screenshot with its room link
    under it); None for a message with neither (a sticker, a photo alone)."""
    return message.text if message.text is not None else message.caption


def requester_of(message: Message, lang: str) -> Requester:
    user_id = message.from_user.id if message.from_user else message.chat.id
    thread_id = message.message_thread_id if message.is_topic_message else None
    return Requester(user_id=user_id, chat_id=message.chat.id, lang=lang, thread_id=thread_id,
                     reply_to=message.message_id if in_group(message) else None)


async def reply_started(message: Message, job: StartedJob, lang: str, services: BotServices) -> None:
    """Answer at once with the job id and its place in the queue (with a Cancel button); then, off
    the critical path, record that message so progress edits and the result land in it (tried
    again while Redis is unreachable, :meth:`BotServices.in_background`). A user
    asking again for a job a message of theirs already shows is pointed at that message instead;
    so is a group member asking for what a message in the group already shows (one copy of the
    result per group, not one per member).

    The answer goes out through :func:`bot.fastsend.send_reply` (a JSON body, no aiogram models):
    it is the reply a burst of users waits for, and the bot's most frequent call."""
    bot: Bot = message.bot  # type: ignore[assignment]
    if job.shown_here is not None or job.again:
        # The message that already shows the job (theirs, or the group's) keeps showing it
        # (progress, result, Cancel): this answer only points at it, so no message is left behind
        # at a stale progress line. Nothing of theirs was started: any reservation goes back
        # (queued first, so a failed answer does not keep it).
        services.in_background(lambda: services.confirm(job, message.chat.id, None),
                        f"job {job.job_id}: already shown")
        done = job.status == "succeeded"
        if job.shown_here is not None:
            await send_reply(bot, message, shown_here_text(job.job_id, job.actor, lang, done, bool(job.shown_here)),
                             reply_to=job.shown_here or None)
        else:
            await send_reply(bot, message, asked_again_text(job.job_id, job.actor, lang, done,
                                                            _elsewhere(job, message)))
        return
    try:
        message_id = await send_reply(bot, message, queued_text(job.job_id, job.actor, job.position, job.coalesced,
                                                                lang), cancel_keyboard(job.job_id, lang))
    except TelegramAPIError:
        # No answer (a flooded group gives it up): the job runs all the same, and its result comes
        # as a message of its own. Its limit reservation still becomes the job, or the job would
        # stop counting against the user's active jobs once the reservation expired.
        services.in_background(lambda: services.confirm(job, message.chat.id, None),
                        f"job {job.job_id}: unanswered")
        raise
    services.in_background(lambda: _record_answer(bot, services, job, message.chat.id, message_id),
                    f"job {job.job_id}: attach")


def _elsewhere(job: StartedJob, message: Message) -> str | None:
    """Where the user's first answer to a job they asked for again is, when not in this chat:
    "private" (our chat with them) or "other" (another group); None when here or not known."""
    first = job.again_in_chat
    if first is None or first == message.chat.id:
        return None
    return "private" if first == job.user_id else "other"


async def _record_answer(bot: Bot, services: BotServices, job: StartedJob, chat_id: int, message_id: int) -> None:
    """Record the answer as the message that shows the job. Too late (it was held up by a flood
    wait or a slow chat, and the result already went out as a message of its own): it is deleted,
    rather than left behind as a stale "queued" line with a Cancel button that does nothing."""
    if await services.confirm(job, chat_id, message_id) != "late":
        return
    logger.info("job %s: its result went out before this answer was recorded; answer %s deleted",
                job.job_id, message_id)
    try:
        await bot.delete_message(chat_id, message_id)
    except TelegramAPIError as exc:  # it only stays behind
        logger.info("job %s: stale answer %s not deleted: %s", job.job_id, message_id, exc)

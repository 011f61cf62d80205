"""Every Redis key of the bot, built in this one module.

All live under ``<REDIS_KEY_PREFIX>bot:`` (``fb:bot:`` by default). Only integers and job ids
(UUIDs made by the queue manager) go into keys, never user text.

=============================  ===============================================================
key                            what
=============================  ===============================================================
``bot:lang``                   hash user id → chosen language (``/lang``); user data, no TTL
``bot:lang:seen``              hash user id → the Telegram language seen when they subscribed
                               (notifications go out in it unless ``/lang`` chose one)
``bot:tz``                     hash user id → time zone chosen with ``/tz`` (a tz database
                               name, ``UTC`` or ``UTC±hh:mm``): when the weekly summary is due,
                               and the times ``/alerts`` shows an admin; no TTL
``bot:tz:changed``             hash user id → when ``/tz`` last chose (epoch seconds), read by
                               ``scheduler.subscribed_users`` (``weekly_due`` judges a user
                               who moved east by it); no TTL
``bot:rate:<uid>``             sorted set of the user's job requests in the last minute
``bot:active:<uid>``           sorted set of the user's unfinished job ids (and short-lived
                               ``p:<token>`` reservations while an enqueue is in flight)
``bot:started:<request id>``   "<job id> <state> <kind> <shown>" of a job request that went
                               through (state ``new`` or the joined job's status; kind and
                               shown ``again`` and a chat, ``here`` and a message, or empty),
                               for 15 minutes: a resent start script returns it instead of
                               running twice
``bot:delivered:<job id>``     hash ``<uid>:<part>`` → 1: parts Telegram accepted (exactly once)
``bot:delivering:<job id>``    the lease of the one delivery of a job sending now; renewed
                               while it runs, gone when it ends
``bot:told:<uid>:<digest>``    the id of the job whose delivery tells the user of one finished
                               match of one followed player (digest of the two FACEIT ids), for
                               the longer of the result and failure TTLs plus a day (2 days by
                               default, ``bot.delivery.told_ttl``): two monitoring runs that saw
                               the same match tell it once
``bot:tg:chat:<chat id>``      GCRA time of the next free send slot of one chat
``bot:tg:global``              the same for the whole bot (every process shares it)
=============================  ===============================================================
"""

from __future__ import annotations

import hashlib


class BotKeys:
    """Builds the bot's Redis keys under one prefix."""

    def __init__(self, prefix: str = "fb:") -> None:
        self.base = f"{prefix}bot:"

    def user_languages(self) -> str:
        return f"{self.base}lang"

    def user_seen_languages(self) -> str:
        return f"{self.base}lang:seen"

    def user_timezones(self) -> str:
        return f"{self.base}tz"

    def user_timezone_changes(self) -> str:
        """When each user last chose a zone with ``/tz`` (epoch seconds): the weekly summary of
        one who moved east past their new Monday 09:00 still goes (``scheduler.weekly_due``)."""
        return f"{self.base}tz:changed"

    def user_rate(self, user_id: int) -> str:
        return f"{self.base}rate:{int(user_id)}"

    def user_active(self, user_id: int) -> str:
        return f"{self.base}active:{int(user_id)}"

    def started_request(self, request_id: str) -> str:
        return f"{self.base}started:{request_id}"

    def delivered(self, job_id: str) -> str:
        return f"{self.base}delivered:{job_id}"

    def delivering(self, job_id: str) -> str:
        return f"{self.base}delivering:{job_id}"

    def told(self, user_id: int, player_id: str, match_id: str) -> str:
        digest = hashlib.sha1(f"{player_id}|{match_id}".encode()).hexdigest()[:20]
        return f"{self.base}told:{int(user_id)}:{digest}"

    def chat_slot(self, chat_id: int) -> str:
        return f"{self.base}tg:chat:{int(chat_id)}"

    def global_slot(self) -> str:
        return f"{self.base}tg:global"

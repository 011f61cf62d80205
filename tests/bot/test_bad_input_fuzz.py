"""Bad input, at volume, and Redis going away.

1. 10,000 generated command texts go through the real handlers: a real aiogram Dispatcher
   (``bot.app.build_dispatcher``) fed updates in-process, replying through the sandbox Bot API,
   with real Redis and the real queue manager (no workers: jobs just wait). Each text comes
   from its own user, in English or Russian. For every one: nothing escapes the dispatcher,
   the user gets an answer in their language, and a job exists exactly when the text was a
   valid request (judged independently with ``faceit.links``).
2. A Redis outage, against the real ``python -m bot`` process: it starts while Redis is down
   (and says so in its log), answers commands sent during an outage with "try again shortly"
   in the user's language, and serves them again once Redis is back — no restart.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections import defaultdict
from typing import Any

import pytest
import redis
from aiogram import Bot
from aiogram.types import Update
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faceit.errors import BadInputError
from faceit.links import find_match_refs, parse_match_ref, parse_player_ref
from tests.bot.conftest import BotProcess, SandboxProcess, base_env, new_user

CYRILLIC = re.compile(r"[А-Яа-яЁё]")
# What an answer quotes back from the user (/bulk names the words it could not read) is as they
# wrote it, in any script: the language check is of the bot's own words.
QUOTED = re.compile(r"<code>.*?</code>", re.DOTALL)
BOT_USERNAME = "faceit_sandbox_bot"
BATCH = 100
EXAMPLES = 100  # x BATCH = 10,000 texts
JOB_COMMANDS = {"analyze", "analyse", "player", "bulk", "subscribe", "report"}
COMMANDS = ["start", "help", "analyze", "analyse", "player", "bulk", "subscribe", "unsubscribe", "subscriptions",
            "status", "cancel", "report", "lang", "tz", "queues", "alerts", "requeue", "frobnicate", ""]


# The independent judge of what is a valid request ------------------------------------------------


def _valid(parse: Any, *args: Any, **kwargs: Any) -> bool:
    try:
        parse(*args, **kwargs)
        return True
    except BadInputError:
        return False


def _command(text: str) -> tuple[str, str | None] | None:
    """(command, args) as Telegram bots read them, or None when the text is no command for us."""
    tokens = text.split(maxsplit=1)
    if not tokens or not tokens[0].startswith("/"):
        return None
    name, _, mention = tokens[0][1:].partition("@")
    if mention and mention.lower() != BOT_USERNAME:
        return None
    return name.casefold(), tokens[1] if len(tokens) > 1 else None


def expects_job(text: str) -> bool:
    parsed = _command(text)
    if parsed is None:
        if text.split(maxsplit=1) and text.split(maxsplit=1)[0].startswith("/"):
            return False
        from faceit.links import names_a_match

        return names_a_match(text) and _valid(parse_match_ref, text)
    name, args = parsed
    if name not in JOB_COMMANDS:
        return False
    if name == "report":
        from bot.routers.reports import REPORT_ALIASES

        typed = (args or "weekly").strip().lower()
        return REPORT_ALIASES.get(typed, typed) in ("weekly", "monthly")
    if not (args or "").strip():
        return False
    if name in ("analyze", "analyse"):
        return _valid(parse_match_ref, args)
    if name == "bulk":
        return _valid(find_match_refs, args, limit=20)
    return _valid(parse_player_ref, args)


def answer_lang(text: str, lang: str) -> str:
    """``/lang xx`` answers in the language just chosen."""
    parsed = _command(text)
    if parsed and parsed[0] == "lang" and (parsed[1] or "").strip().lower() in ("en", "ru"):
        return (parsed[1] or "").strip().lower()
    return lang


# Texts -----------------------------------------------------------------------------------------------

NICK_CHARS = "abcXYZ019_-.!@ йё"
uuids = st.uuids().map(str)
match_ids = st.one_of(uuids.map(lambda u: f"1-{u}"), uuids, uuids.map(lambda u: f"match-1-{u}"))
noise = st.text(max_size=24)
room_links = st.builds(lambda lang, game, ref, tail: f"https://www.faceit.com/{lang}/{game}/room/{ref}{tail}",
                       st.sampled_from(["en/", "ru/", "pt-br/", ""]), st.sampled_from(["cs2", "csgo", "dota"]),
                       st.one_of(match_ids, match_ids, noise),
                       st.sampled_from(["", "/scoreboard", "?a=1", "#x", "/../x"]))
nicknames = st.one_of(st.text(alphabet=NICK_CHARS, min_size=1, max_size=18), noise,
                      st.text(alphabet=NICK_CHARS, max_size=18).map(lambda n: f"faceit.com/en/players/{n}"))
id_lists = st.builds(lambda items, sep: sep.join(items), st.lists(st.one_of(match_ids, room_links), max_size=24),
                     st.sampled_from([" ", "\n", ", "]))
arguments = st.one_of(noise, noise, noise, match_ids, room_links, nicknames, id_lists, uuids,
                      st.sampled_from(["weekly", "monthly", "Weekly ", "yearly", "ru", "en", "EN", "de", "",
                                       "Moscow", "+3", "Europe/Berlin", "UTC+99"]))
# "/name@mention<sep>" heads are one draw (hypothesis pays per draw; 10,000 texts add up).
HEADS = [f"/{name}{mention}{sep}" for name in COMMANDS + [c.upper() for c in COMMANDS]
         for mention in ("", f"@{BOT_USERNAME}", "@other_bot") for sep in (" ", "\n", "  ")]
commands = st.one_of(st.builds(str.__add__, st.sampled_from(HEADS), arguments),
                     st.builds(lambda name, arg: f"/{name} {arg}", noise, arguments))
texts = st.one_of(commands, commands, commands, commands, noise, noise.map(lambda n: "/" + n), room_links,
                  st.builds(lambda a, b: f"{a} {b}", noise, room_links)).filter(
    lambda text: bool(text.strip()) and len(text) <= 4096)
requests = st.lists(texts, min_size=BATCH, max_size=BATCH)


# The harness: one loop, one Bot on the sandbox, the real dispatcher ----------------------------------


class Harness:
    def __init__(self, tg: Any, redis_url: str) -> None:
        from bot.app import build_dispatcher
        from bot.redisclient import bot_redis_client
        from bot.services import BotServices
        from bot.telegram import build_bot
        from queues.runtime import reset_runtime
        from settings import get_settings

        reset_runtime()
        self.tg = tg
        self.loop = asyncio.new_event_loop()
        self.settings = get_settings().model_copy(update={"telegram_api_url": tg.base_url})
        self.client = redis.Redis.from_url(redis_url, decode_responses=True)

        async def build() -> None:
            self.bot: Bot = build_bot(self.settings)
            self.aredis = bot_redis_client(self.settings)
            self.services = BotServices(self.settings, self.aredis)
            self.dp = build_dispatcher(self.services)
            await self.bot.me()

        self.loop.run_until_complete(build())
        self.services.manager.broker  # noqa: B018 (declare the actors before the clock starts)
        self.update_ids = itertools.count(10_000_000)
        self.seq = 0

    def update(self, user_id: int, text: str, lang: str) -> Update:
        return Update.model_validate({
            "update_id": next(self.update_ids),
            "message": {"message_id": 1, "date": int(time.time()), "text": text,
                        "chat": {"id": user_id, "type": "private", "first_name": "Fuzz"},
                        "from": {"id": user_id, "is_bot": False, "first_name": "Fuzz", "language_code": lang}},
        }, context={"bot": self.bot})

    def feed(self, batch: list[tuple[int, str, str]]) -> list[BaseException | None]:
        async def one(user_id: int, text: str, lang: str) -> BaseException | None:
            try:
                await self.dp.feed_update(self.bot, self.update(user_id, text, lang))
            except BaseException as exc:  # what the test looks for: nothing may escape
                return exc
            return None

        async def run() -> list[BaseException | None]:
            outcomes = await asyncio.gather(*(one(*item) for item in batch))
            await self.services.drain()
            return outcomes

        return self.loop.run_until_complete(run())

    def answers(self) -> dict[int, list[str]]:
        events = self.tg.messages(after=self.seq)
        if events:
            self.seq = events[-1]["seq"]
        found: dict[int, list[str]] = defaultdict(list)
        for event in events:
            if event["kind"] == "sent":
                found[event["chat_id"]].append(event["text"])
        return found

    def jobs(self, users: list[int]) -> list[int]:
        pipe = self.client.pipeline(transaction=False)
        for user in users:
            pipe.zcard(f"fb:jobs:user:{user}")
        return pipe.execute()

    def close(self) -> None:
        async def close() -> None:
            await self.services.drain(stop=True)
            await self.bot.session.close()
            await self.aredis.aclose()

        self.loop.run_until_complete(close())
        self.loop.close()
        self.client.close()


@pytest.fixture(scope="module")
def sandbox_process(tmp_path_factory):
    """The sandbox Bot API in its own process: its half of the work runs on the other core."""
    with SandboxProcess(tmp_path_factory.mktemp("tg") / "sandbox.log") as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def harness(redis_server, sandbox_process):
    redis_server.client().flushall()
    running = Harness(sandbox_process, redis_server.url)
    yield running
    running.close()


def test_10000_generated_texts_never_break_the_bot_and_only_valid_ones_make_jobs(harness: Harness):
    seen = {"texts": 0, "jobs": 0}

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(requests)
    def check(batch: list[str]) -> None:
        users = [new_user() for _ in batch]
        # Every other user writes in Russian (not drawn: the draws go to the texts).
        items = [(user, text, "ru" if user % 2 else "en") for user, text in zip(users, batch, strict=True)]
        outcomes = harness.feed(items)
        escaped = [(text, exc) for (_, text, _), exc in zip(items, outcomes, strict=True) if exc is not None]
        assert not escaped, escaped[:3]
        answers = harness.answers()
        jobs = harness.jobs(users)
        for (user, text, lang), job_count in zip(items, jobs, strict=True):
            replies = answers.get(user, [])
            assert replies, f"no answer to {text!r}"
            want = answer_lang(text, lang)
            for reply in replies:
                assert len(reply) <= 4096
                own = QUOTED.sub("", reply)
                if want == "ru":
                    assert CYRILLIC.search(own), (text, reply)
                else:
                    assert not CYRILLIC.search(own), (text, reply)
            assert bool(job_count) == expects_job(text), (text, replies, job_count)
            seen["jobs"] += bool(job_count)
        seen["texts"] += len(batch)

    check()
    assert seen["texts"] == EXAMPLES * BATCH
    assert seen["jobs"] > 0  # valid requests were among them, and they did start jobs


# Redis outage ----------------------------------------------------------------------------------------


def test_a_redis_outage_gets_a_clear_answer_and_the_bot_recovers_without_restart(redis_server, telegram_sandbox,
                                                                                  tmp_path):
    tg = telegram_sandbox
    redis_server.client().flushall()
    match = "1-" + "5" * 8 + "-5555-4555-8555-" + "5" * 12
    bot = BotProcess(base_env(tg, BOT_REDIS_WAIT="60"), tmp_path / "bot.log")
    try:
        redis_server.stop()
        bot.start(ready=None)
        bot.wait_for_log("is unreachable")  # it waits for Redis, saying so
        redis_server.start()
        bot.wait_for_log("Run polling")
        en, ru = new_user(), new_user()
        tg.inject(en, "/start")
        tg.wait_for(lambda es: es, chat_id=en)

        redis_server.stop()
        tg.inject(en, f"/analyze {match}", language_code="en")
        tg.inject(ru, f"/analyze {match}", language_code="ru")
        down_en = tg.wait_for(lambda es: [e for e in es if "unavailable" in (e["text"] or "")], chat_id=en)
        down_ru = tg.wait_for(lambda es: [e for e in es if "недоступен" in (e["text"] or "")], chat_id=ru)
        assert "try again in a few seconds" in down_en[0]["text"]
        assert "Попробуйте ещё раз" in down_ru[0]["text"]

        redis_server.start()
        tg.inject(en, f"/analyze {match}")
        queued = tg.wait_for(lambda es: [e for e in es if "queued" in (e["text"] or "")], chat_id=en, timeout=15)
        job_id = re.search(r"<code>([0-9a-f-]{36})</code>", queued[0]["text"]).group(1)
        client = redis_server.client()
        assert client.hget(f"fb:job:{job_id}", "status") == b"queued"
        assert bot.process is not None and bot.process.poll() is None  # the same process throughout
        assert "sandbox-token-not-secret" not in bot.log()
    finally:
        if redis_server.process is None:
            redis_server.start()
        bot.stop()

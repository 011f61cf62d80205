"""The bot's answer to a job request is recorded as the job's message, whatever happens meanwhile.

The bot answers first and records which message shows the job afterwards, in the background
(:mod:`bot.background`): at once when no other update is being served, else up to a second
later. Neither Redis going down in that moment nor the bot being stopped may lose the record:
nothing edits an answer that was never recorded, so it would stay "⏳ queued" with a Cancel
button for good while the result came as a message of its own.

The real ``python -m bot`` process (stopped with SIGTERM in the second test, then started
again), a real ``redis-server`` stopped for 8 s (AOF flushed, as a restart does) and real
workers, against both sandboxes. The workers start only once the answer is recorded, so that
the job cannot end first (its delivery would stop waiting for the answer, by design).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.bot.conftest import BotProcess, Stack, is_final_text, new_user, start_stack, stop_stack
from tests.support.waiting import wait_until
from tests.support.workers import WorkerPool

OUTAGE = 8.0  # seconds Redis is down


@pytest.fixture(scope="module")
def no_workers_stack(telegram_sandbox_server, faceit_sandbox, redis_server,
                     tmp_path_factory) -> Iterator[Stack]:
    """The bot process and both sandboxes; the test starts the workers once Redis is back, so the
    job cannot end (and its delivery stop waiting for the answer) while the bot retries."""
    running = start_stack(telegram_sandbox_server, faceit_sandbox, redis_server,
                          tmp_path_factory.mktemp("reply_recorded"), pool=False)
    yield running
    stop_stack(running)


def _recorded_message(stack: Stack, job_id: str, user: int) -> int | None:
    """The message the job record says shows the job to ``user`` (None: none recorded)."""
    raw = stack.job(job_id).get("requesters")
    for requester in json.loads(raw) if raw else []:
        if int(requester.get("user_id") or 0) == user:
            return requester.get("message_id")
    return None


def _standing(events: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Each message of the bot still in the chat, as it reads now (its last send or edit)."""
    shown: dict[int, dict[str, Any]] = {}
    for event in events:
        if event["kind"] == "deleted":
            shown.pop(event["message_id"], None)
        elif event["kind"] in ("sent", "photo", "edited"):
            shown[event["message_id"]] = event
    return shown


def _has_cancel(event: dict[str, Any]) -> bool:
    rows = (event.get("reply_markup") or {}).get("inline_keyboard") or []
    return any(str(button.get("callback_data", "")).startswith("cancel:") for row in rows for button in row)


def _result_replaces_answer(stack: Stack, user: int, answer: dict[str, Any], job_id: str, tmp_path: Path) -> None:
    """Start the workers: the job's result is edited into ``answer``; nothing "⏳" or with a Cancel
    button is left in the chat, and the result did not also go out beside it."""
    pool = WorkerPool(queues=["high", "default", "low"], processes=1, threads=8, modules=(), env=stack.bot.env,
                      log_path=tmp_path / "worker.log").start(timeout=60)
    try:
        final = stack.final_of(user, answer["message_id"], timeout=30)
        stack.wait_job(job_id, "succeeded")
        wait_until(lambda: [d for d in stack.deliveries_of(job_id) if d.get("status") == "succeeded"],
                   timeout=20, what="the delivery's end")
    finally:
        pool.stop(graceful=False)
    assert "Match analysis" in final["text"] and not _has_cancel(final), final
    standing = _standing(stack.events(user))
    stale = [e for e in standing.values() if (e.get("text") and not is_final_text(e["text"])) or _has_cancel(e)]
    assert not stale, f"left standing in the chat: {stale}"
    beside = [e for e in standing.values() if e["message_id"] != answer["message_id"] and e["kind"] == "sent"
              and "Match analysis" in (e.get("text") or "")]
    assert not beside, f"the result also went out as a message of its own: {beside}"


def test_an_answer_sent_as_redis_goes_down_is_recorded_once_it_is_back_and_edited_into_the_result(
        no_workers_stack: Stack, redis_server, tmp_path: Path):
    stack = no_workers_stack
    tg = stack.tg
    user = new_user()
    # The job is started, then its answer meets a 6 s flood control: Redis goes down while the bot
    # waits it out, so the answer goes out, and is to be recorded, with Redis down (for 8 s). (The
    # test has those 6 s to stop Redis once the bot logs the wait; the answer is recorded right
    # after it is sent, so stopping Redis only once the answer was seen would race it.)
    seen = len(stack.bot.log())
    tg.flood(1, retry_after=6, methods=["sendMessage"])
    stack.say(user, f"/analyze https://www.faceit.com/en/cs2/room/{stack.next_match()}")
    wait_until(lambda: "Telegram flood control on" in stack.bot.log()[seen:], timeout=10,
               what="the answer waiting out flood control")
    stopped_at = time.monotonic()
    try:
        redis_server.stop()  # SHUTDOWN: the AOF is complete, the restart keeps every key
        time.sleep(max(0.0, stopped_at + OUTAGE - time.monotonic()))
    finally:
        redis_server.start()  # the same port
    answer = stack.first_reply(user)
    assert answer["kind"] == "sent" and answer["text"].startswith("⏳") and _has_cancel(answer), answer
    (job_id,) = stack.job_ids_of(user)
    assert job_id in answer["text"]
    # Redis is back: the bot's retry records the answer as the job's message.
    try:
        wait_until(lambda: _recorded_message(stack, job_id, user) == answer["message_id"], timeout=10,
                   what=f"the bot recording its answer {answer['message_id']} as job {job_id}'s message")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; job record's requesters: {stack.job(job_id).get('requesters')}; "
                             f"bot log: ...{stack.bot.log()[-1500:]}") from None
    # The outage did meet the recording (on a slow machine it could have come before it, and
    # the test would pass without a retry): the bot said it tried again, and got through.
    log = stack.bot.log()
    assert "Redis not answering" in log and "trying again for up to" in log, log[-1500:]
    assert "done after" in log and "failed tries" in log, log[-1500:]

    _result_replaces_answer(stack, user, answer, job_id, tmp_path)


def test_an_answer_still_being_sent_when_the_bot_stops_goes_out_and_is_recorded_before_it_exits(
        no_workers_stack: Stack, tmp_path: Path):
    """SIGTERM while an answer waits out flood control: the bot stops taking updates, lets the
    handler finish (the answer goes out), records the answer, and only then exits; the result,
    after a new bot started, replaces it."""
    stack = no_workers_stack
    tg = stack.tg
    user = new_user()
    seen = len(stack.bot.log())
    tg.flood(1, retry_after=2, methods=["sendMessage"])  # the answer's first try; it waits 2 s
    stack.say(user, f"/analyze https://www.faceit.com/en/cs2/room/{stack.next_match()}")
    wait_until(lambda: "Telegram flood control on" in stack.bot.log()[seen:], timeout=10,
               what="the answer waiting out flood control")
    began = time.monotonic()
    code = stack.bot.stop()  # SIGTERM, then waits for the exit (SIGKILL after 10 s)
    took = time.monotonic() - began
    log = stack.bot.log()[seen:]
    # 0: it exited by itself (stop()'s SIGKILL after 10 s would say -9), with no clock to race.
    assert code == 0, f"exit {code} after {took:.1f} s; bot log: ...{log[-1500:]}"
    sent = [e for e in stack.events(user) if e["kind"] == "sent"]
    assert sent, f"the answer never went out; bot log: ...{log[-1500:]}"
    answer = sent[0]
    assert answer["text"].startswith("⏳") and _has_cancel(answer), answer
    (job_id,) = stack.job_ids_of(user)
    assert _recorded_message(stack, job_id, user) == answer["message_id"], (
        f"not recorded before the bot exited: {stack.job(job_id).get('requesters')}; bot log: ...{log[-1500:]}")

    stack.bot = BotProcess(stack.bot.env, tmp_path / "bot.log").start()  # the module's teardown stops it
    _result_replaces_answer(stack, user, answer, job_id, tmp_path)

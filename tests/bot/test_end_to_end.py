"""End to end through ``python -m bot``, real workers, real Redis and both sandboxes.

One bot process and one worker pool serve every test of this module; each test talks as its
own users. FACEIT latency is injected where a job must last long enough to watch it. The last
tests are delivery under trouble: a user who blocked the bot, a 429 storm, a worker killed
after sending, a delivery run again — every result still reaches every user exactly once.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from queues.jobstore import FINAL_STATUSES
from sandbox.telegram_api import SANDBOX_BOT_TOKEN
from tests.bot.conftest import ADMIN_ID, Stack, is_final_text, new_user
from tests.support.bot_log import wait_served
from tests.support.waiting import wait_until
from tests.support.workers import WorkerPool

CYRILLIC = re.compile(r"[А-Яа-яЁё]")
JOB_ID = re.compile(r"<code>([0-9a-f-]{36})</code>")


@pytest.fixture
def tg(telegram_sandbox):
    return telegram_sandbox


def job_id_in(text: str) -> str:
    found = JOB_ID.search(text)
    assert found, text
    return found.group(1)


def results_in(stack: Stack, user: int, message_id: int) -> list[dict]:
    return [e for e in stack.events(user) if e["message_id"] == message_id and e["kind"] == "edited"
            and is_final_text(e["text"])]


def job_of(stack: Stack, user: int) -> str:
    (job_id,) = stack.job_ids_of(user)
    return job_id


def delivery_result(stack: Stack, job_id: str, timeout: float = 20) -> dict:
    """The result of the delivery of ``job_id`` once the job succeeded and its delivery ended."""
    stack.wait_job(job_id, "succeeded")
    ended = wait_until(lambda: [d for d in stack.deliveries_of(job_id)[:1] if d.get("status") == "succeeded"],
                       timeout=timeout, what="the delivery's end")
    return json.loads(ended[0]["result"])


def deliveries_ended(stack: Stack, job_id: str, timeout: float = 30) -> list[dict]:
    """The job's own delivery records (:meth:`Stack.deliveries_of`: the ones its end enqueued, not
    one a test enqueued by hand) once there is one and every one has ended: what they send has
    gone out by then, so a check that nothing more came after it cannot pass only because
    something more is still on its way."""

    def ended() -> list[dict] | None:
        records = stack.deliveries_of(job_id)
        return records if records and all(r.get("status") in FINAL_STATUSES for r in records) else None

    return wait_until(ended, timeout=timeout, what=f"the deliveries of job {job_id} ended")


def first_in_group(tg, group: int) -> dict:
    """The bot's first new message in the group ``group``."""
    return tg.wait_for(lambda es: next((e for e in es if e["kind"] == "sent"), None), timeout=10, chat_id=group)


def test_analyze_answers_at_once_then_edits_progress_then_result(stack: Stack, tg, faceit_faults):
    faceit_faults(latency_ms=80)
    user = new_user()
    match = stack.next_match()
    sent_at = time.monotonic()
    stack.say(user, f"/analyze https://www.faceit.com/en/cs2/room/{match}")
    first = stack.first_reply(user)
    assert time.monotonic() - sent_at < 5
    assert first["kind"] == "sent" and "queued, place" in first["text"]
    job_id = job_id_in(first["text"])
    assert first["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == f"cancel:{job_id}"

    final = stack.final_of(user, first["message_id"])
    assert "Match analysis" in final["text"] and job_id not in final["text"]
    assert not final.get("reply_markup")  # the Cancel button is gone with the result
    edits = [e for e in stack.events(user) if e["message_id"] == first["message_id"] and e["kind"] == "edited"]
    progress = [e["text"] for e in edits if e["text"].startswith("⏳")]
    assert progress, "no progress edit before the result"
    assert all(job_id in text and "%" in text for text in progress)
    assert any(re.search(r"players \d+/10", text) for text in progress), progress
    assert edits[-1] == final  # nothing after the result
    assert len([e for e in stack.events(user) if e["kind"] in ("sent", "photo")]) == 1  # the result replaced it
    record = stack.wait_job(job_id, "succeeded")
    assert json.loads(record["requesters"])[0]["message_id"] == first["message_id"]


def test_a_pasted_room_link_is_analysed_in_the_users_language(stack: Stack, tg):
    user = new_user()
    stack.say(user, f"гляньте https://www.faceit.com/ru/cs2/room/{stack.next_match()}/scoreboard", lang="ru")
    first = stack.first_reply(user)
    assert "Анализ матча: в очереди" in first["text"]
    final = stack.final_of(user, first["message_id"])
    assert "Анализ матча" in final["text"] and CYRILLIC.search(final["text"])


def test_two_users_asking_for_the_same_match_share_one_job_and_both_get_the_result(stack: Stack, tg, faceit_faults):
    faceit_faults(latency_ms=150)
    match = stack.next_match()
    alice, boris = new_user(), new_user()
    stack.say(alice, f"/analyze {match}")
    first_a = stack.first_reply(alice)
    stack.say(boris, f"https://www.faceit.com/ru/cs2/room/{match}", lang="ru")
    first_b = stack.first_reply(boris)
    job_id = job_id_in(first_a["text"])
    assert job_id_in(first_b["text"]) == job_id
    assert "присоединились" in first_b["text"]  # Boris is told he joined Alice's job
    final_a = stack.final_of(alice, first_a["message_id"])
    final_b = stack.final_of(boris, first_b["message_id"])
    assert "Match analysis" in final_a["text"] and "Анализ матча" in final_b["text"]
    assert stack.job_ids_of(alice) == stack.job_ids_of(boris) == [job_id]
    assert len(stack.redis.zrange("fb:jobs:actor:match_analysis", 0, -1)) == len(
        set(stack.redis.zrange("fb:jobs:actor:match_analysis", 0, -1)))
    requesters = json.loads(stack.wait_job(job_id, "succeeded")["requesters"])
    assert sorted(r["user_id"] for r in requesters) == sorted([alice, boris])
    for user, first in ((alice, first_a), (boris, first_b)):
        results = [e for e in stack.events(user) if e["message_id"] == first["message_id"]
                   and e["kind"] == "edited" and is_final_text(e["text"])]
        assert len(results) == 1


def test_the_cancel_button_stops_a_running_job(stack: Stack, tg, faceit_faults):
    faceit_faults(latency_ms=700)
    user = new_user()
    stack.say(user, f"/analyze {stack.next_match()}")
    first = stack.first_reply(user)
    job_id = job_id_in(first["text"])
    stack.wait_job(job_id, "started")
    stack.say(user, f"/status {job_id}")
    status = stack.wait(user, lambda es: next((e for e in es if e["kind"] == "sent" and "running" in e["text"]), None))
    assert job_id in status["text"]
    tg.click(user, first["message_id"], f"cancel:{job_id}")
    final = stack.final_of(user, first["message_id"])
    assert "cancelled" in final["text"] and "Match analysis" in final["text"]
    assert stack.wait_job(job_id, "canceled")["status"] == "canceled"
    answers = [c for c in tg.callbacks() if c.get("data") == f"cancel:{job_id}"]
    assert answers and answers[0].get("answer", {}).get("text") in ("Stopping…", "Cancelled")
    # Canceled is written once the run ended; the delivery (the cancel note) ended too: no more can come.
    deliveries_ended(stack, job_id)
    assert not any("🎮" in (e["text"] or "") for e in stack.events(user))  # no result after the cancel
    # A /cancel typed afterwards: the job had ended already, and its message is left as it is.
    edits = [e for e in stack.events(user) if e["kind"] == "edited"]
    typed = stack.say(user, f"/cancel {job_id[:8]}")
    told = stack.wait(user, lambda es: next((e for e in es if e["kind"] == "sent" and "/cancel" not in e["text"]
                                             and "has already ended" in e["text"]), None))
    assert told["text"] == f"Job <code>{job_id}</code> has already ended (status: cancelled)."
    wait_served(stack.bot.log, [typed["update_id"]])  # the /cancel's handler returned: it edits nothing more
    assert [e for e in stack.events(user) if e["kind"] == "edited"] == edits


def test_someone_elses_job_cannot_be_seen_or_canceled(stack: Stack, tg, faceit_faults):
    faceit_faults(latency_ms=400)
    owner, stranger = new_user(), new_user()
    stack.say(owner, f"/analyze {stack.next_match()}")
    job_id = job_id_in(stack.first_reply(owner)["text"])
    stack.say(stranger, f"/cancel {job_id}")
    answer = stack.first_reply(stranger)
    assert answer["text"].startswith("You have no job <code>")  # as /status says: not theirs to know of
    assert stack.job(job_id)["status"] in ("queued", "started", "succeeded")
    assert not stack.job(job_id).get("cancel_requested")


def test_status_and_cancel_take_the_start_of_a_job_id(stack: Stack, tg, faceit_faults):
    """The dashboard lists jobs by their first 8 characters and the usage line shows that many:
    such a start names the user's job when one of theirs starts with it. A start of none, or of
    several, and what is not an id at all, are each told as such (not with the usage line)."""
    from queues.jobstore import JobStore

    faceit_faults(latency_ms=1500)
    stack.clear_faceit_cache()  # the report asks FACEIT, slowly: the /cancel comes while it runs
    user = new_user()
    stack.say(user, f"/player {stack.world['nicknames'][12]}")
    job_id = job_id_in(stack.first_reply(user)["text"])
    start = job_id[:8]
    expired = f"{start}-ffff-4fff-8fff-ffffffffffff"  # an index entry whose record has expired: not a second job
    stack.redis.zadd(f"fb:jobs:user:{user}", {expired: time.time()})
    stack.say(user, f"/status {start}")
    assert f"Job <code>{job_id}</code>" in stack.replies(user, 2)[1]["text"]  # its status, by its whole id
    other_start = ("0" if start[0] != "0" else "1") + start[1:]
    stack.say(user, f"/status {other_start}")
    assert stack.replies(user, 3)[2]["text"] == f"You have no job starting with <code>{other_start}</code>."
    stack.say(user, "/status zzz")
    assert stack.replies(user, 4)[3]["text"].startswith("That is not a job id")
    twin = f"{start}-0000-4000-8000-000000000000"  # a second job of theirs starting the same
    JobStore(stack.redis).create(twin, actor="player_report", queue="high",
                                 requester={"user_id": user, "chat_id": user, "message_id": None, "lang": "en"})
    stack.say(user, f"/cancel {start}", lang="ru")
    assert stack.replies(user, 5)[4]["text"] == f"С <code>{start}</code> начинаются id нескольких задач (2): " \
                                                "пришлите больше символов id."
    assert not stack.job(job_id).get("cancel_requested")
    stack.say(user, f"/cancel {job_id[:13]}")  # longer: one job again
    assert job_id in stack.replies(user, 6)[5]["text"]
    assert stack.wait_job(job_id, "canceled")["status"] == "canceled"
    stack.say(user, f"/cancel {twin}")  # a whole id still names its job
    assert "cancelled" in stack.replies(user, 7)[6]["text"]
    assert stack.job(twin)["status"] == "canceled"


def test_a_player_report_arrives_as_text_and_a_chart(stack: Stack, tg):
    user = new_user()
    nickname = stack.world["nicknames"][5]
    stack.say(user, f"/player https://www.faceit.com/en/players/{nickname}")
    first = stack.first_reply(user)
    assert "Player report: queued" in first["text"]
    final = stack.final_of(user, first["message_id"])
    assert nickname in final["text"]
    photo = stack.wait(user, lambda es: next((e for e in es if e["kind"] == "photo"), None))
    assert nickname in photo["caption"]
    deliveries_ended(stack, job_id_in(first["text"]))  # every part it sends is in: a second chart would be too
    assert len([e for e in stack.events(user) if e["kind"] == "photo"]) == 1


def test_a_player_report_asked_again_after_a_new_match_is_made_again(stack: Stack, tg):
    """Asked twice in a minute, the report is pointed at; but not once monitoring has seen the
    player finish a match after it (its notice would contradict the report pointed at)."""
    user = new_user()
    nickname = stack.world["nicknames"][11]
    stack.say(user, f"/player {nickname}")
    first = stack.first_reply(user)
    stack.final_of(user, first["message_id"])
    stack.say(user, f"/player {nickname}")
    assert stack.replies(user, 2)[1]["text"].startswith("🔁")
    report = json.loads(stack.job(job_id_in(first["text"]))["result"])
    player_id = report["data"]["player_id"]
    stack.redis.set(f"fb:faceit:monitor:{player_id}", json.dumps(
        {"match_id": "1-new", "finished_at": time.time() + 1, "elo": 1500}))  # what a scan records
    stack.say(user, f"/player {nickname}")
    fresh = stack.replies(user, 3)[2]
    assert "Player report: queued" in fresh["text"] and job_id_in(fresh["text"]) != job_id_in(first["text"])


def test_in_a_forum_topic_every_answer_and_the_chart_stay_in_that_topic(stack: Stack, tg):
    user, group, topic = new_user(), -1_000_000_000_000 - new_user(), 7
    nickname = stack.world["nicknames"][6]
    asked = tg.inject(user, f"/player {nickname}", chat_id=group, thread_id=topic)
    first = first_in_group(tg, group)
    assert first["message"]["message_thread_id"] == topic
    assert first["message"]["reply_to_message"]["message_id"] == asked["message_id"]
    photo = tg.wait_for(lambda es: next((e for e in es if e["kind"] == "photo"), None), timeout=20, chat_id=group)
    assert nickname in photo["caption"] and photo["message"]["message_thread_id"] == topic  # not in General
    final = tg.wait_for(lambda es: next((e for e in es if e["kind"] == "edited" and e["message_id"] ==
                                         first["message_id"] and is_final_text(e["text"])), None), chat_id=group)
    assert nickname in final["text"]
    requester = json.loads(stack.job(job_id_in(first["text"]))["requesters"])[0]
    assert requester["thread_id"] == topic


def test_a_pasted_profile_link_gets_the_player_report(stack: Stack, tg):
    user = new_user()
    nickname = stack.world["nicknames"][8]
    stack.say(user, f"who is this? https://www.faceit.com/ru/players/{nickname}", lang="ru")
    first = stack.first_reply(user)
    assert "Отчёт по игроку: в очереди" in first["text"]
    assert nickname in stack.final_of(user, first["message_id"])["text"]


def test_a_photo_with_a_room_link_in_its_caption_is_analysed_and_one_without_text_gets_a_hint(stack: Stack, tg):
    """A lobby screenshot with its room link as the caption is a pasted link; a photo alone (or a
    sticker: any message without text) gets the short hint, never "something went wrong"."""
    user = new_user()
    tg.send_photo(user, language_code="ru")
    hint = stack.first_reply(user)
    assert hint["text"] == ("Пришлите ссылку на комнату матча FACEIT, а для отчёта по игроку — /player &lt;никнейм&gt;. "
                            "Остальное — в /help.")
    nickname = stack.world["nicknames"][9]
    tg.send_photo(user, caption=f"https://www.faceit.com/en/players/{nickname}", language_code="ru")
    report = stack.replies(user, 2)[1]
    assert "Отчёт по игроку: в очереди" in report["text"]
    match = stack.world["matches"]["FINISHED"][5]  # the module's pre-game matches are counted out
    tg.send_photo(user, caption=f"наше лобби https://www.faceit.com/ru/cs2/room/{match}", language_code="ru")
    first = stack.replies(user, 3)[2]
    assert "Анализ матча: в очереди" in first["text"]
    assert stack.wait_job(job_id_in(first["text"]), "succeeded")["kwargs"].count(match) == 1
    assert nickname in stack.final_of(user, report["message_id"])["text"]
    assert "Traceback" not in stack.bot.log() and "internal error" not in stack.bot.log().lower()


def test_a_usage_line_with_a_faceit_link_in_it_shows_no_link_preview(stack: Stack, tg):
    user = new_user()
    stack.say(user, "/analyze")
    usage = stack.first_reply(user)
    assert "https://www.faceit.com/en/cs2/room/" in usage["text"]
    assert usage["message"]["link_preview_options"] == {"is_disabled": True}


def test_two_room_links_in_one_message_point_at_bulk_and_start_nothing(stack: Stack, tg):
    user = new_user()
    room = "https://www.faceit.com/en/cs2/room/"
    one, two = "1-11111111-1111-4111-8111-111111111111", "1-22222222-2222-4222-8222-222222222222"
    stack.say(user, f"{room}{one}\n{room}{two}")
    answer = stack.first_reply(user)
    assert answer["text"] == "❌ That message names 2 matches: send one, or put them all after /bulk."
    assert stack.job_ids_of(user) == []


def test_a_nickname_that_does_not_exist_ends_in_a_short_failure_message(stack: Stack, tg):
    user = new_user()
    stack.say(user, "/player nobody_here_x", lang="ru")
    first = stack.first_reply(user)
    final = stack.final_of(user, first["message_id"])
    assert "не найден" in final["text"] and "nobody_here_x" in final["text"]
    assert "Traceback" not in final["text"] and len(final["text"]) < 300
    record = stack.wait_job(job_id_in(first["text"]), "failed")
    assert record["attempts"] == "1"  # a permanent error: not retried


def test_an_account_with_no_cs2_profile_is_told_as_that_not_as_a_nickname_to_check(stack: Stack, tg):
    """FACEIT knows the account, spelled just so, from another game: "nicknames are case-sensitive,
    check what you sent" sent the user looking for a typo that is not there."""
    user, nickname = new_user(), stack.world["no_cs2_nicknames"][0]
    stack.say(user, f"/player {nickname}")
    final = stack.final_of(user, stack.first_reply(user)["message_id"])["text"]
    assert f"“{nickname}” has a FACEIT account, but no CS2 profile on it" in final, final
    assert "case-sensitive" not in final and "Check what you sent" not in final, final
    stack.say(user, f"/subscribe {stack.world['no_cs2_nicknames'][1]}", lang="ru")
    told = stack.wait(user, lambda es: next((e for e in es if "нет профиля CS2" in (e.get("text") or "")), None))
    assert "Регистр букв" not in told["text"], told["text"]


def _analysis_while_faceit_is_down(stack: Stack, faceit_faults) -> tuple[int, dict, dict]:
    """A user's /analyze while FACEIT answers 503: (user, the first reply, the job's final message)."""
    faceit_faults(error_rate=1.0, status=503)
    stack.clear_faceit_cache()
    user = new_user()
    stack.say(user, f"/analyze {stack.next_match()}")
    first = stack.first_reply(user)
    return user, first, stack.final_of(user, first["message_id"], timeout=30)


def test_faceit_down_ends_in_a_message_that_says_to_try_again_later(stack: Stack, tg, faceit_faults):
    user, first, final = _analysis_while_faceit_is_down(stack, faceit_faults)
    assert "FACEIT did not answer" in final["text"] and "Send it again in a few minutes" in final["text"]
    record = stack.wait_job(job_id_in(first["text"]), "failed")
    assert int(record["attempts"]) == 4  # first try + 3 retries on the scaled schedule
    # Between attempts the message said so, not its last progress line.
    edits = [e["text"] for e in stack.events(user) if e["message_id"] == first["message_id"] and e["kind"] == "edited"]
    retrying = [text for text in edits if "FACEIT is not answering. Trying again in" in text]
    assert retrying and re.search(r"\(attempt [234] of 4\)", retrying[0]), edits


def test_a_requeued_job_answers_its_failure_note_with_the_result(stack: Stack, tg, faceit_faults):
    """The result of a job an operator ran again comes as a new message answering the failure
    note (an edit of a message maybe hours old would go unnoticed); the note stays as it was."""
    from queues.manager import QueueManager
    from queues.runtime import reset_runtime

    user, first, final = _analysis_while_faceit_is_down(stack, faceit_faults)
    job_id = job_id_in(first["text"])
    assert "FACEIT did not answer" in final["text"]
    stack.wait_job(job_id, "failed")
    faceit_faults()  # FACEIT answers again; the operator requeues the job
    reset_runtime()
    assert QueueManager().requeue_failed(job_id=job_id) == [job_id]
    stack.wait_job(job_id, "succeeded")
    result = stack.wait(user, lambda es: next((e for e in es if e["kind"] == "sent"
                                               and e["text"].startswith("🎮")), None), timeout=30)
    assert "<b>Match analysis</b>" in result["text"]  # the result itself, not a progress line
    assert result["message"]["reply_to_message"]["message_id"] == first["message_id"]
    delivery_result(stack, job_id)
    edits = [e for e in stack.events(user) if e["kind"] == "edited" and e["message_id"] == first["message_id"]]
    assert edits[-1]["text"] == final["text"]  # the failure note, untouched by the new run


def test_bulk_and_report_run_on_the_low_queue_and_replace_their_messages(stack: Stack, tg):
    user = new_user()
    finished = stack.world["matches"]["FINISHED"][10:13]
    stack.say(user, "/bulk " + "\n".join(f"https://www.faceit.com/en/cs2/room/{m}" for m in finished))
    bulk = stack.first_reply(user)
    assert "Bulk analysis: queued" in bulk["text"]
    result = stack.final_of(user, bulk["message_id"])
    assert "3/3" in result["text"] and all(m in result["text"] for m in finished)
    stack.say(user, "/report weekly", lang="ru")
    report = stack.replies(user, 2)[1]
    assert "Сводка: в очереди" in report["text"]
    summary = stack.final_of(user, report["message_id"])
    assert "❌" not in summary["text"] and CYRILLIC.search(summary["text"])
    assert "Получено анализов: <b>1</b> (списки матчей: 1)" in summary["text"]  # the one bulk, counted once
    queues = {stack.job(job_id)["actor"]: stack.job(job_id)["queue"] for job_id in stack.job_ids_of(user)}
    assert queues == {"bulk_analysis": "low", "analytics_report": "low"}


def test_report_takes_the_russian_words_and_refuses_a_type_it_does_not_know(stack: Stack, tg):
    """The Russian help shows "/report неделя|месяц": "/report неделя" was answered "Which report?".
    Each word starts its report's job (run to its summary); a word that names no report gets the
    usage line, which shows those words, and starts nothing."""
    user = new_user()
    asked = []
    for typed, report_type in (("неделя", "weekly"), ("месяц", "monthly")):
        stack.say(user, f"/report {typed}", lang="ru")
        queued = stack.replies(user, len(asked) + 1)[-1]
        assert "Сводка: в очереди" in queued["text"], queued["text"]
        job_id = job_id_in(queued["text"])
        summary = stack.final_of(user, queued["message_id"])
        assert "❌" not in summary["text"] and CYRILLIC.search(summary["text"])
        record = stack.wait_job(job_id, "succeeded")
        assert record["actor"] == "analytics_report" and json.loads(record["kwargs"])["report_type"] == report_type
        assert json.loads(record["result"])["data"]["report_type"] == report_type  # the summary it made
        asked.append(job_id)
    refused = stack.say(user, "/report год", lang="ru")
    assert stack.replies(user, 3)[2]["text"] == "Какой отчёт? /report неделя или /report месяц"
    wait_served(stack.bot.log, [refused["update_id"]])  # its handler returned: it started nothing
    assert sorted(stack.job_ids_of(user)) == sorted(asked)


def test_a_bulk_request_names_the_room_links_it_could_not_read(stack: Stack, tg):
    user = new_user()
    finished = stack.world["matches"]["FINISHED"][14:16]
    room = "https://www.faceit.com/en/cs2/room/"
    cut = f"{room}{finished[0][:20]}"  # a link cut short when pasted
    stack.say(user, f"/bulk {room}{finished[0]}, {cut}, {room}{finished[1]}.", lang="ru")
    queued, skipped = stack.replies(user, 2)
    assert "в очереди" in queued["text"]
    assert skipped["text"] == ("⚠️ Не проанализировано (1):\n"
                               "Ссылки на комнаты с нечитаемым id матча — может быть, обрезаны? (1):\n"
                               f"• <code>{cut}</code>")
    result = stack.final_of(user, queued["message_id"])
    assert "2/2" in result["text"] and all(m in result["text"] for m in finished)
    stack.say(user, f"/bulk {cut}", lang="ru")  # nothing readable at all: say which link, not "no links"
    none = stack.replies(user, 3)[2]
    assert none["text"].startswith("❌ Не удалось прочитать ни одной ссылки или id матча FACEIT (не разобрано: 1):")
    assert f"<code>{cut}</code>" in none["text"]
    assert len(stack.job_ids_of(user)) == 1  # and no job


def test_a_bulk_request_names_ids_cut_short_and_words_that_are_no_match(stack: Stack, tg):
    """The tester's list: one whole id, two cut short, a stray word. It answered "analysed 1/1"
    and never named the ids cut short; now each is either analysed or named, with why (a word of
    letters alone is prose, not a match anyone meant)."""
    user = new_user()
    whole = stack.world["matches"]["FINISHED"][16]
    cut1, cut2 = stack.world["matches"]["FINISHED"][17][:-1], stack.world["matches"]["FINISHED"][18][:25]
    stack.say(user, f"/bulk {whole} {cut1} hello\n• {cut2} and {whole} x{whole[2:10]}")
    queued, skipped = stack.replies(user, 2)
    assert "Bulk analysis: queued" in queued["text"]
    assert skipped["text"] == ("⚠️ Not analysed (3):\n"
                               "Match ids that look cut short or mistyped (2):\n"
                               f"• <code>{cut1}</code>\n• <code>{cut2}</code>\n"
                               f"Not a match link or id (1):\n• <code>x{whole[2:10]}</code>")
    assert "1/1" in stack.final_of(user, queued["message_id"])["text"]
    stack.say(user, f"/bulk {cut1}, {cut2}", lang="ru")  # nothing readable: which, and why
    none = stack.replies(user, 3)[2]
    assert none["text"] == ("❌ Не удалось прочитать ни одной ссылки или id матча FACEIT (не разобрано: 2):\n"
                            "Id матчей — похоже, обрезаны или с опечаткой (2):\n"
                            f"• <code>{cut1}</code>\n• <code>{cut2}</code>")
    assert len(stack.job_ids_of(user)) == 1  # and no second job


def test_a_bulk_list_whose_every_match_fails_says_why_for_each(stack: Stack, tg):
    user = new_user()
    matches = stack.world["matches"]
    missing = "1-00000000-0000-4000-8000-00000000000f"
    stack.say(user, f"/bulk {matches['CANCELLED'][1]} {missing} {matches['ABORTED'][0]}")
    queued = stack.first_reply(user)
    result = stack.final_of(user, queued["message_id"])["text"]
    assert "0/3" in result and result.count("❌") == 3
    assert all(m in result for m in (matches["CANCELLED"][1], missing, matches["ABORTED"][0]))
    assert stack.redis.zcard(f"fb:faceit:activity:{user}") == 0  # nothing analysed: not counted in reports


def test_subscribe_list_and_unsubscribe(stack: Stack, tg):
    user = new_user()
    nickname = stack.world["nicknames"][7]
    stack.say(user, f"/subscribe {nickname}")
    first = stack.first_reply(user)
    final = stack.final_of(user, first["message_id"])
    assert f"You follow <b>{nickname}</b> now" in final["text"]
    assert "private chat" not in final["text"]  # it is one
    subs = stack.redis.hgetall(f"fb:faceit:subs:user:{user}")
    assert list(subs.values()) == [nickname]
    stack.say(user, f"/subscribe {nickname.upper() if nickname.upper() != nickname else nickname}")
    already = stack.replies(user, 2)[1]
    assert "already follow" in already["text"]
    stack.say(user, "/subscriptions")
    listing = stack.replies(user, 3)[2]
    assert nickname in listing["text"] and "(1)" in listing["text"]
    stack.say(user, f"/unsubscribe {nickname.swapcase()}")  # typed in another case
    assert f"no longer follow <b>{nickname}</b>" in stack.replies(user, 4)[3]["text"]  # named as FACEIT does
    assert not stack.redis.hgetall(f"fb:faceit:subs:user:{user}")
    assert len(stack.job_ids_of(user)) == 1  # only the lookup was a job
    # Following again a moment later follows again (the first lookup's answer is undone)
    stack.say(user, f"/subscribe {nickname}")
    again = stack.replies(user, 5)[4]
    assert "🔁" not in again["text"]
    assert f"You follow <b>{nickname}</b> now" in stack.final_of(user, again["message_id"])["text"]
    assert list(stack.redis.hgetall(f"fb:faceit:subs:user:{user}").values()) == [nickname]


def test_lang_switches_every_answer(stack: Stack, tg):
    user = new_user()
    stack.say(user, "/lang ru")
    assert stack.replies(user, 1)[0]["text"] == "Язык: русский."
    stack.say(user, "/help")  # Telegram says English; the choice wins
    assert "Что я умею" in stack.replies(user, 2)[1]["text"]
    stack.say(user, "/lang en")
    stack.replies(user, 3)
    stack.say(user, "/nonsense")
    texts = [e["text"] for e in stack.replies(user, 4)]
    assert texts[2] == "Language: English." and not CYRILLIC.search(texts[3])


def test_tz_chooses_the_zone_of_the_weekly_summary(stack: Stack, tg):
    user = new_user()
    stack.say(user, "/tz")
    assert "09:00 UTC" in stack.replies(user, 1)[0]["text"]  # none chosen yet
    before = time.time()
    stack.say(user, "/tz moscow")  # a city, as typed on a phone
    assert stack.replies(user, 2)[1]["text"].startswith("Time zone: Europe/Moscow (UTC+03:00).")
    assert stack.redis.hget("fb:bot:tz", str(user)) == "Europe/Moscow"  # what the scheduler reads
    # and when it was chosen (a user who moved east past Monday 09:00 still gets the week's summary)
    assert before <= float(stack.redis.hget("fb:bot:tz:changed", str(user))) <= time.time()
    stack.say(user, "/tz +5:30", lang="ru")
    assert stack.replies(user, 3)[2]["text"].startswith("Часовой пояс: UTC+05:30.")
    stack.say(user, "/tz Atlantis")  # refused: the choice stands
    assert "I don't know that time zone" in stack.replies(user, 4)[3]["text"]
    stack.say(user, "/tz")
    assert "Your time zone: UTC+05:30." in stack.replies(user, 5)[4]["text"]
    assert stack.job_ids_of(user) == []


def test_a_quick_burst_of_commands_is_answered_whole_and_its_last_language_choice_kept(stack: Stack, tg):
    user = new_user()
    # One language choice only: updates of a burst are served concurrently, so two choices could
    # land in either order.
    burst = ["/start", "/help", "/lang", "/help", "/help", "/lang de", "hello", "/foo", "/lang ru", "/start"]
    for text in burst:  # well within a second: over the flood guard's burst of 8
        stack.say(user, text, lang="ru")
    answers = [e["text"] for e in stack.replies(user, len(burst))]  # served at once: in any order
    assert answers.count("Язык: русский.") == 1 and len([a for a in answers if "Привет" in a]) == 2, answers
    stack.say(user, "/help")
    assert "Что я умею" in stack.replies(user, len(burst) + 1)[-1]["text"]
    assert not any("skipped" in text or "пропустил" in text for text in answers)


def test_commands_sent_at_once_with_lang_are_each_answered_in_the_language_chosen_before_them(stack: Stack,
                                                                                              tg):
    """A phone back online sends what was typed meanwhile in one go. Served side by side, the help
    read the language before /lang had written it (English help after "Язык: русский"), before
    or after that answer."""
    user = new_user()
    for text in ("/lang ru", "/help", "/lang en", "/help", "/lang ru", "/subscriptions"):
        stack.say(user, text)
    answers = [e["text"] for e in stack.replies(user, 6)]
    assert answers[0] == "Язык: русский." and "Что я умею" in answers[1], answers
    assert "What I can do" in answers[3], answers
    assert answers[2] == "Language: English." and answers[4] == "Язык: русский.", answers
    assert answers[5].startswith("Вы пока ни за кем не следите"), answers


def test_an_admin_is_never_held_back_by_the_flood_guard(stack: Stack, tg):
    """An operator's quick run of admin commands is no flood: a test sending ten of them in a row
    once got the flood notice for its ninth."""
    before = len([e for e in stack.events(ADMIN_ID) if e["kind"] == "sent"])
    for _ in range(12):
        stack.say(ADMIN_ID, "/queues")
    answers = stack.replies(ADMIN_ID, before + 12, timeout=30)[before:]
    assert all("<b>Queues</b>" in a["text"] for a in answers), [a["text"][:60] for a in answers]


def test_a_flooding_user_is_told_once_what_was_skipped_and_can_send_it_again(stack: Stack, tg):
    user, group = new_user(), -4_000_321
    # a member's fast chatter in a group: skipped without a word (not answered anyway)
    chatter = [tg.inject(user, "gg wp", chat_id=group) for _ in range(12)]
    typed = [stack.say(user, f"/analyze not-a-match-{i}") for i in range(30)]
    sent = stack.wait(user, lambda es: (lambda s: s if any("skipped" in e["text"] for e in s) else None)(
        [e for e in es if e["kind"] == "sent"]))
    notice = next(e["text"] for e in sent if "skipped" in e["text"])
    seconds = int(re.search(r"again in (\d+) s", notice).group(1))
    assert notice.startswith("⏳ Too many messages at once — I skipped some.") and 1 <= seconds <= 4
    wait_served(stack.bot.log, [u["update_id"] for u in chatter + typed])  # all answered or skipped by now
    sent = [e for e in stack.events(user) if e["kind"] == "sent"]
    assert len([e for e in sent if "skipped" in e["text"]]) == 1  # one notice, not one per skipped message
    assert len(sent) <= 12  # the burst's answers and the notice; the rest skipped
    assert tg.messages(group) == []
    time.sleep(seconds)  # as told
    stack.say(user, "/analyze again-not-a-match")
    stack.wait(user, lambda es: len([e for e in es if e["kind"] == "sent"]) > len(sent))
    assert "That is not a FACEIT match" in stack.events(user)[-1]["text"]


def test_a_link_fixed_by_editing_the_message_is_analysed(stack: Stack, tg):
    user = new_user()
    match = stack.world["matches"]["FINISHED"][3]
    typo = tg.inject(user, f"/analyze {match[:-3]}")  # pasted short
    assert stack.first_reply(user)["text"].startswith("❌")
    tg.inject(user, f"/analyze {match}", edit_message_id=typo["message_id"])  # the user fixes it
    queued = stack.replies(user, 2)[1]
    assert "Match analysis: queued" in queued["text"]
    assert match in stack.final_of(user, queued["message_id"])["text"]
    tg.inject(user, "/analyze 1-nope", edit_message_id=typo["message_id"])  # edited wrong again: said so
    assert stack.replies(user, 3)[2]["text"].startswith("❌")
    tg.inject(user, "hello there", edit_message_id=typo["message_id"])  # an edit to plain text: no answer
    tg.inject(user, "/help")  # served after the edit: once its answer is there, any answer to the edit would be
    stack.replies(user, 4)
    sent = [e for e in stack.events(user) if e["kind"] == "sent"]
    assert len([e for e in sent if e["text"].startswith("❌") or "queued" in e["text"]]) == 3
    assert len(sent) == 4


def test_a_language_chosen_while_a_job_runs_is_the_results(stack: Stack, tg, faceit_faults):
    faceit_faults(latency_ms=1500)
    stack.clear_faceit_cache()  # the analysis asks FACEIT, slowly: /lang comes while it runs
    user = new_user()
    stack.say(user, f"/analyze {stack.world['matches']['FINISHED'][16]}")  # Telegram says English
    queued = stack.first_reply(user)
    stack.say(user, "/lang ru")
    assert stack.replies(user, 2)[1]["text"] == "Язык: русский."
    # Progress from then on is Russian too (each FACEIT call takes 1.5 s: it comes after the answer)
    stack.wait(user, lambda es: next((e for e in es if e["kind"] == "edited" and e["message_id"] == queued["message_id"]
                                      and (e["text"] or "").startswith("⏳ Анализ матча")), None), timeout=30)
    result = stack.final_of(user, queued["message_id"], timeout=60)
    assert "Матч завершён" in result["text"], result["text"][:200]


def test_admin_commands_answer_admins_and_look_unknown_to_everyone_else(stack: Stack, tg):
    user = new_user()
    for command in ("/queues", "/alerts", "/requeue"):
        stack.say(user, command)
    answers = stack.replies(user, 3)
    assert all("I don't know that command" in a["text"] for a in answers)
    stack.say(ADMIN_ID, "/queues")
    queues = stack.first_reply(ADMIN_ID)["text"]
    assert "<b>Queues</b>" in queues and re.search(r"high: waiting \d+ .* workers 1", queues)
    stack.say(ADMIN_ID, "/alerts 2")
    assert "alerts" in stack.replies(ADMIN_ID, 2)[1]["text"].lower()
    stack.say(ADMIN_ID, "/requeue")
    assert re.search(r"Requeued: \d+\.", stack.replies(ADMIN_ID, 3)[2]["text"])
    stack.say(ADMIN_ID, "/requeue junk")
    assert stack.replies(ADMIN_ID, 4)[3]["text"].startswith("That is not a job id")
    stack.say(ADMIN_ID, "/requeue 00000000-0000-4000-8000-000000000000")  # an admin sees every job: none such
    assert stack.replies(ADMIN_ID, 5)[4]["text"].startswith("There is no job <code>00000000-")
    stack.say(ADMIN_ID, "/alerts 99999")
    assert stack.replies(ADMIN_ID, 6)[5]["text"] == "Usage: /alerts [hours], at most 168 (24 by default)"
    stack.say(ADMIN_ID, f"/analyze {stack.world['matches']['FINISHED'][19]}")
    done = stack.replies(ADMIN_ID, 7)[6]
    stack.final_of(ADMIN_ID, done["message_id"])
    stack.say(ADMIN_ID, f"/requeue {job_id_in(done['text'])[:8]}")  # its start, as the dashboard shows it
    assert "is done: only a failed or cancelled job" in stack.replies(ADMIN_ID, 8)[7]["text"]
    # A typed /cancel of someone else's job answers as /status does: not theirs to know of
    stranger = new_user()
    stack.say(stranger, f"/cancel {job_id_in(done['text'])}")
    assert stack.first_reply(stranger)["text"].startswith("You have no job <code>")
    # No scheduler runs here, so the health score says the monitor never recorded: in each language.
    assert "• the monitor has never recorded a snapshot: is python scheduler.py running?" in queues
    stack.say(ADMIN_ID, "/queues", lang="ru")
    russian = stack.replies(ADMIN_ID, 9)[8]["text"]
    reasons = [line for line in russian.splitlines() if line.startswith("• ")]
    assert "<b>Очереди</b>" in russian and "монитор ещё не записал ни одного снимка" in russian
    assert reasons and all(CYRILLIC.search(reason) for reason in reasons), reasons
    # The alerts pushed to the admin now come in the language they were last answered in.
    from queues.alerts import Alert
    from queues.telegram_alerts import TelegramAlertSink

    sink = TelegramAlertSink(stack.redis, admin_ids=[ADMIN_ID], api_url=tg.base_url, token=SANDBOX_BOT_TOKEN,
                             batch_seconds=0.01)
    sink.send(Alert("warning", "monitor", "queue high holds 60 waiting jobs (limit 50)", rule="queue_depth",
                    subject="high", details={"depth": 60, "limit": 50}))
    pushed = stack.wait(ADMIN_ID, lambda es: next((e for e in es if e["kind"] == "sent" and "FACEIT bot" in e["text"]),
                                                  None))["text"]
    assert pushed.startswith("FACEIT bot: 1 оповещение (предупреждение: 1), время UTC")
    assert "ПРЕДУПРЕЖДЕНИЕ monitor: очередь high: ждущих задач 60 (порог 50)" in pushed
    # A queue, or all, as the admin tool takes them (they read "That is not a job id").
    for argument in ("high", "all"):
        sent = len([e for e in stack.events(ADMIN_ID) if e["kind"] == "sent"])
        stack.say(ADMIN_ID, f"/requeue {argument}")
        assert re.search(r"Requeued: \d+\.", stack.replies(ADMIN_ID, sent + 1)[-1]["text"])
    # Their /help lists their commands; nobody else's does.
    sent = len([e for e in stack.events(ADMIN_ID) if e["kind"] == "sent"])
    stack.say(ADMIN_ID, "/help")
    assert "<b>For operators</b>\n/queues" in stack.replies(ADMIN_ID, sent + 1)[-1]["text"]
    stack.say(user, "/help")
    assert "For operators" not in stack.replies(user, 4)[3]["text"]


def test_two_members_of_a_group_following_one_player_both_follow_them(stack: Stack, tg):
    first, second, group = new_user(), new_user(), -1_000_000_000_000 - new_user()
    nickname = stack.world["nicknames"][9]
    tg.inject(first, f"/subscribe {nickname}", chat_id=group)
    answer = first_in_group(tg, group)
    followed = stack.wait(group, lambda es: next((e for e in es if e["kind"] == "edited"
                                                  and e["message_id"] == answer["message_id"]
                                                  and "now" in (e["text"] or "")), None))
    # The notices come in a private chat, which Telegram opens to the bot only once the member
    # started it there: said in the group, or they never hear of a match and never know why.
    assert "The notices come in our private chat" in followed["text"] and "press Start" in followed["text"]
    tg.inject(second, f"/subscribe {nickname}", chat_id=group)  # a moment later, the same player
    wait_until(lambda: stack.redis.hgetall(f"fb:faceit:subs:user:{second}"), timeout=20)
    for member in (first, second):
        assert list(stack.redis.hgetall(f"fb:faceit:subs:user:{member}").values()) == [nickname]


def test_in_a_group_only_the_member_who_asked_can_cancel_with_the_button(stack: Stack, tg, faceit_faults):
    faceit_faults(latency_ms=1500)
    stack.clear_faceit_cache()  # the analysis asks FACEIT, slowly: both presses come while it runs
    owner, other, group = new_user(), new_user(), -1_000_000_000_000 - new_user()
    tg.inject(owner, f"/analyze {stack.world['matches']['FINISHED'][6]}", chat_id=group)
    first = first_in_group(tg, group)
    job_id = job_id_in(first["text"])
    tg.click(other, first["message_id"], f"cancel:{job_id}", chat_id=group)
    answers = wait_until(lambda: [e for e in tg.feed(chat_id=group)["events"] if e["kind"] == "callback_answer"],
                         timeout=10, what="an answer to the other member's press")
    assert answers[0]["show_alert"] and "Only whoever asked for job" in answers[0]["answer_text"]
    assert stack.job(job_id)["status"] in ("queued", "started")  # untouched by someone else's press
    tg.click(owner, first["message_id"], f"cancel:{job_id}", chat_id=group)
    stack.wait_job(job_id, "canceled")
    canceled = tg.wait_for(lambda es: next((e for e in es if e["kind"] == "edited" and e["message_id"] ==
                                            first["message_id"] and "cancelled" in e["text"]), None), chat_id=group)
    assert not canceled.get("reply_markup")


def test_in_a_group_a_member_may_see_the_groups_jobs_but_not_cancel_another_members(stack: Stack, tg,
                                                                                     faceit_faults):
    """A job asked for in a group shows in the group: another member's /status there shows it,
    and their /cancel there says whose it is, as the Cancel button does. Elsewhere (their private
    chat, another group) it stays unknown to them: no one learns of others' jobs."""
    faceit_faults(latency_ms=1500)
    stack.clear_faceit_cache()  # the report asks FACEIT, slowly: every command comes while it runs
    owner, other = new_user(), new_user()
    group, elsewhere = -1_000_000_000_000 - new_user(), -1_000_000_000_000 - new_user()

    def nth_in(chat: int, count: int) -> dict:
        """The bot's ``count``-th new message in ``chat`` (waits for it)."""
        return tg.wait_for(lambda es: (sent := [e for e in es if e["kind"] == "sent"])[count - 1:] and sent,
                           timeout=10, chat_id=chat)[count - 1]

    tg.inject(owner, f"/player {stack.world['nicknames'][13]}", chat_id=group)
    job_id = job_id_in(nth_in(group, 1)["text"])
    tg.inject(other, f"/status {job_id[:8]}", chat_id=group)  # as the dashboard shows it
    shown = nth_in(group, 2)["text"]
    assert shown.startswith("Player report: ") and f"Job <code>{job_id}</code>" in shown, shown
    tg.inject(other, f"/cancel {job_id}", chat_id=group)
    assert nth_in(group, 3)["text"] == f"Only whoever asked for job <code>{job_id}</code> can cancel it."
    tg.inject(other, f"/cancel {job_id}", chat_id=group, language_code="ru")
    assert nth_in(group, 4)["text"] == f"Отменить задачу <code>{job_id}</code> может только тот, кто её запросил."
    assert stack.job(job_id)["status"] in ("queued", "started") and not stack.job(job_id).get("cancel_requested")
    stack.say(other, f"/status {job_id}")  # in their private chat: not theirs to know of
    assert stack.first_reply(other)["text"] == f"You have no job <code>{job_id}</code>."
    tg.inject(other, f"/cancel {job_id}", chat_id=elsewhere)  # nor in another group
    assert nth_in(elsewhere, 1)["text"] == f"You have no job <code>{job_id}</code>."
    tg.inject(other, f"/status {job_id[:8]}", chat_id=elsewhere)
    assert nth_in(elsewhere, 2)["text"] == f"You have no job starting with <code>{job_id[:8]}</code>."
    assert not stack.job(job_id).get("cancel_requested")
    tg.inject(owner, f"/cancel {job_id}", chat_id=group)  # whoever asked still can
    stack.wait_job(job_id, "canceled")


def test_in_a_group_a_results_chart_answers_the_job_message(stack: Stack, tg):
    """Among other members' messages, a chart sent loose did not show whose report it was."""
    member, group = new_user(), -1_000_000_000_000 - new_user()
    tg.inject(member, f"/player {stack.world['nicknames'][14]}", chat_id=group)
    first = first_in_group(tg, group)
    chart = tg.wait_for(lambda es: next((e for e in es if e["kind"] == "photo"), None), timeout=30, chat_id=group)
    assert chart["message"]["reply_to_message"]["message_id"] == first["message_id"]


def test_in_a_group_a_second_member_asking_for_the_same_match_is_pointed_at_the_first_answer(
        stack: Stack, tg, faceit_faults):
    """The group gets the result once, in the message that answered the first member."""
    faceit_faults(latency_ms=150)
    stack.clear_faceit_cache()  # still running when the second member asks
    first_member, second_member, group = new_user(), new_user(), -1_000_000_000_000 - new_user()
    link = f"https://www.faceit.com/en/cs2/room/{stack.world['matches']['FINISHED'][7]}"
    tg.inject(first_member, f"/analyze {link}", chat_id=group)
    first = first_in_group(tg, group)
    job_id = job_id_in(first["text"])
    # The bot records the answer's message on the job just after sending it (off the reply's path).
    wait_until(lambda: json.loads(stack.job(job_id)["requesters"])[0].get("message_id") == first["message_id"])
    asked = tg.inject(second_member, link, chat_id=group)
    pointer = tg.wait_for(lambda es: next((e for e in es if e["kind"] == "sent" and e["message_id"] !=
                                           first["message_id"]), None), timeout=10, chat_id=group)
    assert "already in progress in this chat" in pointer["text"] and job_id_in(pointer["text"]) == job_id
    assert pointer["message"]["reply_to_message"]["message_id"] == first["message_id"]  # tap it to see the job
    assert not pointer.get("reply_markup") and asked["message_id"] != first["message_id"]
    stack.wait_job(job_id, "succeeded")
    final = tg.wait_for(lambda es: next((e for e in es if e["kind"] == "edited" and e["message_id"] ==
                                         first["message_id"] and is_final_text(e["text"])), None), chat_id=group)
    assert "Match finished" in final["text"]
    assert [r["user_id"] for r in json.loads(stack.job(job_id)["requesters"])] == [first_member]
    delivery_result(stack, job_id)
    group_messages = tg.messages(group)
    assert len([e for e in group_messages if e["kind"] in ("sent", "photo")]) == 2  # the answer and the pointer
    assert not [e for e in group_messages if e["message_id"] == pointer["message_id"] and e["kind"] == "edited"]


def _two_users_share_a_slow_job(stack: Stack, faceit_faults, finished: int) -> tuple[int, int, dict, dict, str]:
    """Two users ask in their own chats for one finished match, analysed slowly (FACEIT answers in
    1.5 s): (leaving, staying, the first's answer, the second's, the job id), both answers recorded."""
    faceit_faults(latency_ms=1500)
    stack.clear_faceit_cache()  # the analysis asks FACEIT, slowly: a cancel comes while it runs
    leaving, staying = new_user(), new_user()
    link = f"https://www.faceit.com/en/cs2/room/{stack.world['matches']['FINISHED'][finished]}"
    stack.say(leaving, link)
    first = stack.first_reply(leaving)
    stack.say(staying, link)
    joined = stack.first_reply(staying)
    job_id = job_id_in(first["text"])
    assert job_id_in(joined["text"]) == job_id
    # The bot records each answer's message just after sending it (off the reply's path).
    wait_until(lambda: all(r.get("message_id") for r in json.loads(stack.job(job_id)["requesters"])))
    return leaving, staying, first, joined, job_id


def test_one_of_two_users_cancelling_a_shared_job_lets_go_of_it_alone(stack: Stack, tg, faceit_faults):
    leaving, staying, first, joined, job_id = _two_users_share_a_slow_job(stack, faceit_faults, 4)
    tg.click(leaving, first["message_id"], f"cancel:{job_id}")
    left = stack.wait(leaving, lambda es: next((e for e in es if e["kind"] == "edited" and
                                                "cancelled for you" in (e["text"] or "")), None))
    assert not left.get("reply_markup")
    assert "Match finished" in stack.final_of(staying, joined["message_id"])["text"]  # the other still gets it
    delivery_result(stack, job_id)
    assert not [e for e in stack.events(leaving) if e["kind"] == "edited" and is_final_text(e["text"])
                and "cancelled for you" not in e["text"]]
    # Their message shows the job's id: /status answers for it (it said "You have no job").
    sent_before = len([e for e in stack.events(leaving) if e["kind"] == "sent"])
    stack.say(leaving, f"/status {job_id[:8]}")
    status = stack.replies(leaving, sent_before + 1)[-1]["text"]
    assert status.startswith("Match analysis: cancelled for you (for the others: done)"), status
    stack.say(leaving, f"/cancel {job_id[:8]}")  # cancelled for them already: said again, nothing else
    again = stack.replies(leaving, sent_before + 2)[-1]["text"]
    assert again.startswith("✖ Match analysis: cancelled for you"), again
    assert stack.job(job_id)["status"] == "succeeded"


def test_a_typed_cancel_of_a_shared_job_tells_the_leaving_user_in_their_language_now(stack: Stack, tg,
                                                                                     faceit_faults):
    leaving, _, first, _, job_id = _two_users_share_a_slow_job(stack, faceit_faults, 2)
    stack.say(leaving, "/lang ru")  # asked in English, then chose Russian
    stack.replies(leaving, 2)
    stack.say(leaving, f"/cancel {job_id}")
    stack.wait(leaving, lambda es: next((e for e in es if e["kind"] == "edited" and e["message_id"] == first["message_id"]
                                         and "отменено для вас" in (e["text"] or "")), None))


def test_asking_twice_for_the_same_match_leaves_no_message_behind(stack: Stack, tg, faceit_faults):
    faceit_faults(latency_ms=150)
    stack.clear_faceit_cache()  # still running when asked again
    user = new_user()
    link = f"https://www.faceit.com/en/cs2/room/{stack.world['matches']['FINISHED'][18]}"
    stack.say(user, link)
    first = stack.first_reply(user)
    stack.say(user, f"/analyze {link}")
    again = stack.replies(user, 2)[1]
    assert "you already asked for this" in again["text"] and job_id_in(again["text"]) == job_id_in(first["text"])
    assert not again.get("reply_markup")  # the Cancel button stays on the first message only
    final = stack.final_of(user, first["message_id"])
    assert "Match finished" in final["text"]
    assert not [e for e in stack.events(user) if e["message_id"] == again["message_id"] and e["kind"] == "edited"]
    # Done now, and asked once more a moment later: pointed at the answer, no second analysis.
    stack.say(user, link)
    third = stack.replies(user, 3)[2]
    assert "you asked for this a moment ago" in third["text"] and job_id_in(third["text"]) == job_id_in(first["text"])
    assert stack.job_ids_of(user) == [job_id_in(first["text"])]


def test_a_link_sent_twice_at_once_leaves_no_message_at_queued(stack: Stack, tg, faceit_faults):
    """Both updates are served together, before the first answer's id is recorded: the second is
    still a repeat (not "someone else asked", and not a second message that takes the job over)."""
    faceit_faults(latency_ms=150)
    stack.clear_faceit_cache()
    user = new_user()
    link = f"https://www.faceit.com/en/cs2/room/{stack.world['matches']['FINISHED'][9]}"
    stack.say(user, link)
    stack.say(user, link)
    answers = stack.replies(user, 2)
    first = next(a for a in answers if "queued" in a["text"])
    again = next(a for a in answers if a is not first)
    assert "you already asked for this" in again["text"] and not again.get("reply_markup")
    final = stack.final_of(user, first["message_id"])
    assert "Match finished" in final["text"]
    assert not [e for e in stack.events(user) if e["message_id"] == again["message_id"] and e["kind"] == "edited"]


def test_two_members_of_a_group_asking_at_the_same_moment_get_one_answer(stack: Stack, tg, faceit_faults):
    faceit_faults(latency_ms=150)
    stack.clear_faceit_cache()
    group = -1_000_000_000_000 - new_user()
    members = [new_user(), new_user()]
    link = f"https://www.faceit.com/en/cs2/room/{stack.world['matches']['FINISHED'][8]}"
    for member in members:  # back to back: the first answer's id is not recorded yet
        tg.inject(member, f"/analyze {link}", chat_id=group)
    answers = tg.wait_for(lambda es: (sent := [e for e in es if e["kind"] == "sent"]) and len(sent) >= 2 and sent,
                          timeout=10, chat_id=group)
    # Either answer may reach the chat first: the two updates are served at once.
    first = next(a for a in answers if "queued" in a["text"])
    pointer = next(a for a in answers if a is not first)
    assert "already in progress in this chat" in pointer["text"], pointer["text"]
    job_id = job_id_in(first["text"])
    assert job_id_in(pointer["text"]) == job_id
    stack.wait_job(job_id, "succeeded")
    delivery_result(stack, job_id)
    finals = [e for e in tg.messages(group) if e["kind"] == "edited" and is_final_text(e["text"])]
    assert len(finals) == 1 and finals[0]["message_id"] == first["message_id"]  # one copy, in the first answer


def test_a_link_asked_for_in_private_then_in_a_group_says_where_the_result_goes(stack: Stack, tg, faceit_faults):
    """The group cannot see the private answer: the reply says the result goes to the private
    chat, not "the message that answered you first"."""
    faceit_faults(latency_ms=300)
    stack.clear_faceit_cache()
    user, group = new_user(), -1_000_000_000_000 - new_user()
    match = stack.world["matches"]["FINISHED"][6]  # the module's pre-game matches are counted out
    stack.say(user, f"/analyze {match}")
    first = stack.first_reply(user)
    tg.inject(user, f"https://www.faceit.com/en/cs2/room/{match}", chat_id=group)
    pointer = first_in_group(tg, group)
    assert "in our private chat" in pointer["text"], pointer["text"]  # in progress, or done a moment ago
    assert job_id_in(pointer["text"]) == job_id_in(first["text"])
    final = stack.final_of(user, first["message_id"])  # the result is in the private chat's first answer
    assert match in final["text"] and job_id_in(first["text"]) not in final["text"]
    assert [e["kind"] for e in tg.messages(group)] == ["sent"]  # and the group got the pointer alone


def test_in_a_group_the_bot_answers_what_is_for_it_and_keeps_quiet_about_the_rest(stack: Stack, tg):
    user, group = new_user(), -1_000_000_000_000 - new_user()
    username = tg.request("GET", "/_sandbox/bot")["bot"]["username"]
    for text in ("gg wp", "/roll@dice_bot 20", "/frobnicate", f"/help@{username}"):
        asked = tg.inject(user, text, chat_id=group)
    help_reply = first_in_group(tg, group)
    assert "What I can do" in help_reply["text"]
    assert help_reply["message"]["reply_to_message"]["message_id"] == asked["message_id"]  # whom it answers
    stack.say(user, "gg wp")  # the same in private is answered, plainly
    private = stack.first_reply(user)
    assert "Send me a FACEIT match room link" in private["text"] and "reply_to_message" not in private["message"]
    assert [e["text"] for e in tg.messages(group) if e["kind"] == "sent"] == [help_reply["text"]]
    # An unknown command written to this bot by name is meant for it: answered, in the group too.
    tg.inject(user, f"/frobnicate@{username.upper()} now", chat_id=group)
    unknown = tg.wait_for(lambda es: [e for e in es if e["kind"] == "sent"][1:], chat_id=group)
    assert [e["text"] for e in unknown] == ["I don't know that command. /help lists what I can do."]


def test_an_admins_operator_commands_answer_in_private_only_not_to_the_whole_group(stack: Stack, tg):
    """A security review: an admin's /queues, /alerts and /requeue in a group showed every member the
    queues' health, the alerts and what was requeued. There they now say where to ask (in the
    admin's language), /help lists them in private only, and a member's are unknown as before."""
    group, member = -1_000_000_000_000 - new_user(), new_user()
    for text in ("/queues", "/alerts 2", "/requeue"):
        tg.inject(ADMIN_ID, text, chat_id=group)
    told = tg.wait_for(lambda es: [e for e in es if e["kind"] == "sent"][2:] and
                       [e for e in es if e["kind"] == "sent"], chat_id=group)
    assert [e["text"] for e in told] == ["Operator commands answer in a private chat with me only: queue health "
                                         "and alerts are not for the whole group."] * 3
    tg.inject(ADMIN_ID, "/queues", chat_id=group, language_code="ru")
    russian = tg.wait_for(lambda es: [e for e in es if e["kind"] == "sent"][3:], chat_id=group)
    assert russian[0]["text"].startswith("Команды оператора отвечают только в личном чате")
    tg.inject(ADMIN_ID, "/help", chat_id=group)
    help_text = tg.wait_for(lambda es: [e for e in es if e["kind"] == "sent"][4:], chat_id=group)[0]["text"]
    assert "What I can do" in help_text and "/queues" not in help_text
    tg.inject(member, "/queues", chat_id=group)  # unknown to a member: a group hears nothing of it
    stack.say(ADMIN_ID, "/help")  # (something to wait for after it)
    assert "/queues" in stack.first_reply(ADMIN_ID)["text"]  # listed in private
    assert len([e for e in tg.messages(group) if e["kind"] == "sent"]) == 5
    assert not [e for e in tg.messages(group) if "Queues" in (e.get("text") or "")]


def test_rate_limits_three_active_jobs_and_five_a_minute(stack: Stack, tg, faceit_faults):
    faceit_faults(latency_ms=300)
    stack.clear_faceit_cache()
    user = new_user()
    for _ in range(4):
        stack.say(user, f"/analyze {stack.next_match()}")
    answers = stack.replies(user, 4)
    queued = [a for a in answers if "queued" in a["text"]]
    refused = [a for a in answers if "Jobs in progress" in a["text"]]
    assert len(queued) == 3 and len(refused) == 1
    assert "3 of the 3 you may have" in refused[0]["text"]
    assert len(stack.job_ids_of(user)) == 3
    for answer in queued:
        stack.final_of(user, answer["message_id"], timeout=40)
    faceit_faults()
    matches = [stack.world["matches"]["FINISHED"][i] for i in range(3)]
    for match in matches:
        stack.say(user, f"/analyze {match}")
    later = stack.replies(user, 7)[4:]
    assert sum("queued" in a["text"] for a in later) == 2
    minute = [a for a in later if "Too many requests" in a["text"]]
    assert len(minute) == 1 and "at most 5 a minute" in minute[0]["text"]
    assert len(stack.job_ids_of(user)) == 5


BAD_INPUTS = [
    # (text, expected english fragment)
    ("/analyze", "Send a match room link or id"),
    ("/analyze not-a-match", "That is not a FACEIT match"),
    ("/analyze https://www.faceit.com/en/cs2/room/1-abc", "was it cut short?"),
    ("/player", "Send a nickname or profile link"),
    ("/player no spaces allowed!", "That is not a FACEIT nickname"),
    ("/player " + "x" * 4000, "That is not a FACEIT nickname"),
    ("/bulk", "Send up to 20"),
    ("/bulk nothing to see", "No FACEIT match links"),
    ("/bulk 1-abc 42", "Match ids that look cut short or mistyped (1)"),
    ("/bulk , and •", "No FACEIT match links"),
    ("/bulk " + " ".join(f"1-{i:08x}-0000-4000-8000-000000000000" for i in range(21)), "at most 20"),
    ("/subscribe", "Send a nickname"),
    ("/subscribe @@@", "That is not a FACEIT nickname"),
    ("/unsubscribe nobodyfollowed", "You don't follow"),
    ("/status", "Send a job id"),
    ("/status 12345", "That is not a job id"),
    ("/status 11111111-2222-4333-8444-555555555555", "You have no job"),
    ("/status 0adf2eb6", "You have no job starting with <code>0adf2eb6</code>"),
    ("/cancel nope", "That is not a job id"),
    ("/cancel", "Send a job id"),
    ("/report yearly", "Which report?"),
    ("/lang de", "Choose a language"),
    ("/tz Mars/Olympus", "I don't know that time zone"),
    ("/frobnicate", "I don't know that command"),
    ("/queues", "I don't know that command"),
    ("hello there", "Send me a FACEIT match room link"),
]


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_bad_input_gets_a_short_answer_in_the_users_language_and_no_job(stack: Stack, tg, lang):
    users, updates = [], []
    for text, _ in BAD_INPUTS:
        user = new_user()
        users.append(user)
        updates.append(stack.say(user, text, lang=lang)["update_id"])
    for (text, fragment), user in zip(BAD_INPUTS, users, strict=True):
        answer = stack.first_reply(user)["text"]
        assert len(answer) < 400, (text, answer)
        if lang == "en":
            assert fragment in answer and not CYRILLIC.search(answer), (text, answer)
        else:
            assert CYRILLIC.search(answer), (text, answer)
        assert stack.job_ids_of(user) == [], text
    wait_served(stack.bot.log, updates)  # each handler returned (no job: nothing else answers them)
    assert all(len(stack.events(user)) == 1 for user in users)  # one answer each, nothing more


# Delivery under trouble ---------------------------------------------------------------------------


def test_a_user_who_blocked_the_bot_is_marked_inactive_and_the_delivery_ends_cleanly(stack: Stack, tg,
                                                                                     faceit_faults):
    faceit_faults(latency_ms=300)
    user = new_user()
    stack.say(user, f"/analyze {stack.next_match()}")
    first = stack.first_reply(user)
    tg.block(user)
    job_id = job_of(stack, user)
    assert delivery_result(stack, job_id)["blocked"] == [user]
    assert str(user) in stack.redis.smembers("fb:faceit:users:inactive")
    assert results_in(stack, user, first["message_id"]) == []
    # Writing in a group is no unblock: they still block the bot, and stay inactive (they used to
    # be marked active, and their next notification went into a 403 again).
    group = -1_000_000_000_000 - new_user()
    tg.inject(user, "/help", chat_id=group)
    assert "What I can do" in first_in_group(tg, group)["text"]
    assert str(user) in stack.redis.smembers("fb:faceit:users:inactive")
    # Writing again unblocks the bot (as in Telegram) and the user is active again.
    stack.say(user, "/help")
    assert "What I can do" in stack.replies(user, 2)[1]["text"]
    assert str(user) not in stack.redis.smembers("fb:faceit:users:inactive")
    # The result withheld while they were away comes now, into the message that waited for it
    # (it stood at its progress line with a Cancel button, and asking again pointed at it).
    final = stack.final_of(user, first["message_id"], timeout=20)
    assert "Match" in final["text"] and "failed" not in final["text"] and "cancelled" not in final["text"]
    assert not final.get("reply_markup")
    assert len(results_in(stack, user, first["message_id"])) == 1


def test_a_user_who_unblocks_the_bot_gets_the_result_withheld_meanwhile(stack: Stack, tg, faceit_faults):
    """Unblocking (Telegram's my_chat_member update), without writing: the result comes then."""
    faceit_faults(latency_ms=300)
    stack.clear_faceit_cache()  # the analysis asks FACEIT, slowly: the block comes first
    user = new_user()
    stack.say(user, f"/analyze {stack.world['matches']['FINISHED'][11]}")  # (no other test of the module asks for it)
    first = stack.first_reply(user)
    tg.block(user)
    assert delivery_result(stack, job_of(stack, user))["blocked"] == [user]
    tg.block(user, blocked=False)
    final = stack.final_of(user, first["message_id"], timeout=20)
    assert "failed" not in final["text"] and not final.get("reply_markup")
    assert str(user) not in stack.redis.smembers("fb:faceit:users:inactive")


def test_a_group_that_removed_the_bot_ends_its_delivery_without_marking_the_user_inactive(stack: Stack, tg,
                                                                                         faceit_faults):
    """Asked in a group, answered in that group; the user then removes the bot from it. Neither
    the removal nor the delivery's 403 there means the user blocked the bot: their private
    notifications go on."""
    faceit_faults(latency_ms=300)
    stack.clear_faceit_cache()  # the analysis asks FACEIT, slowly: the removal comes first
    user, group = new_user(), -1_000_000_000_000 - new_user()
    asked = tg.inject(user, f"/analyze {stack.world['matches']['FINISHED'][17]}", chat_id=group)
    first = first_in_group(tg, group)
    assert "queued, place" in first["text"]
    assert first["message"]["reply_to_message"]["message_id"] == asked["message_id"]
    tg.block(user, chat_id=group)
    job_id = job_of(stack, user)
    result = delivery_result(stack, job_id)
    assert result["chats_gone"] == [group] and result["blocked"] == []
    assert tg.stats()["pending_updates"] == 0  # the bot took the removal update too
    assert str(user) not in stack.redis.smembers("fb:faceit:users:inactive")
    assert not [e for e in tg.messages(group) if e["kind"] == "edited" and is_final_text(e["text"])]


def test_a_429_storm_during_delivery_still_delivers_every_result_once(stack: Stack, tg, faceit_faults):
    faceit_faults(latency_ms=250)
    stack.clear_faceit_cache()
    users = [new_user() for _ in range(4)]
    nicknames = stack.world["nicknames"][10:14]
    for user, nickname in zip(users, nicknames, strict=True):
        stack.say(user, f"/player {nickname}")
    firsts = [stack.first_reply(user) for user in users]
    tg.flood(12, retry_after=1)  # the next 12 Bot API calls (all but getUpdates) get 429
    for user, first, nickname in zip(users, firsts, nicknames, strict=True):
        stack.wait(user, lambda es: any(e["kind"] == "photo" for e in es), timeout=40)
        final = stack.final_of(user, first["message_id"])
        assert nickname in final["text"]
    for user in users:  # through its retries: each delivery ended, nothing of it still waits out a 429
        deliveries_ended(stack, job_of(stack, user), timeout=40)
    for user, first in zip(users, firsts, strict=True):
        assert len(results_in(stack, user, first["message_id"])) == 1
        assert len([e for e in stack.events(user) if e["kind"] == "photo"]) == 1
        assert len([e for e in stack.events(user) if e["kind"] == "sent"]) == 1  # only the queued reply
    errors = tg.stats().get("errors", {})
    assert sum(n for key, n in errors.items() if key.endswith(":429")) == 12, errors  # the storm was real


def test_an_answer_held_up_past_the_delivery_is_withdrawn_and_the_result_replies_to_the_member(stack: Stack, tg):
    """Flood control holds the bot's "queued" answer (8 s) past the delivery's wait for it (3 s):
    the result goes out as a message of its own, replying to the member who asked, and the late
    answer is deleted, not left above it as a stale "queued" line with a Cancel button."""
    member, group = new_user(), -1_000_000_000_000 - new_user()
    link = f"https://www.faceit.com/en/cs2/room/{stack.world['matches']['FINISHED'][9]}"
    tg.flood(1, retry_after=8, methods=["sendMessage"])  # the answer's first try; nothing else sends meanwhile
    asked = tg.inject(member, f"/analyze {link}", chat_id=group)

    def settled(events: list[dict]) -> list[dict] | None:
        sent = [e for e in events if e["kind"] == "sent"]
        return sent if len(sent) == 2 and any(e["kind"] == "deleted" for e in events) else None

    result, late = tg.wait_for(settled, timeout=30, chat_id=group)
    assert "Match finished" in result["text"] and result["message"]["reply_to_message"]["message_id"] == asked["message_id"]
    assert late["text"].startswith("⏳") and job_id_in(late["text"]) == job_of(stack, member)
    (deleted,) = [e for e in tg.messages(group) if e["kind"] == "deleted"]
    assert deleted["message_id"] == late["message_id"]
    assert delivery_result(stack, job_of(stack, member))["sent"] == 1
    assert not [e for e in tg.messages(group) if e["kind"] == "edited"]  # nothing wrote into the late answer


def test_a_worker_killed_after_sending_part_of_a_result_sends_no_duplicate(stack: Stack, tg):
    user = new_user()
    nickname = stack.world["nicknames"][16]
    tg.flood(1, retry_after=3, methods=["sendPhoto"])  # the chart waits 3 s in the worker: kill it then
    stack.say(user, f"/player {nickname}")
    first = stack.first_reply(user)
    stack.final_of(user, first["message_id"])  # part 0 (the report text) is in; the chart is not
    assert not any(e["kind"] == "photo" for e in stack.events(user))
    # The operator's supervisor brings a pool back; it boots while the old one dies.
    replacement = WorkerPool(queues=["high", "default", "low"], processes=1, threads=8, modules=(),
                             env=stack.pool.env, log_path=stack.pool.log_path).start(wait=False)
    stack.pool.kill_worker()
    stack.pool.stop(graceful=False)
    stack.pool = replacement
    stack.wait(user, lambda es: any(e["kind"] == "photo" for e in es), timeout=30)
    (delivery,) = stack.deliveries_of(job_of(stack, user))
    delivery = stack.wait_job(delivery["id"], "succeeded")  # ended: nothing more can follow the chart
    assert len(results_in(stack, user, first["message_id"])) == 1
    assert len([e for e in stack.events(user) if e["kind"] == "photo"]) == 1
    assert int(delivery["deliveries"]) == 2
    result = json.loads(delivery["result"])
    assert result["sent"] == 1 and result["already_sent"] == 1  # the chart only; the text was marked


def test_a_second_delivery_while_the_first_still_sends_adds_no_duplicate(stack: Stack, tg):
    """A job run again after its worker died enqueues its delivery again while the first one may
    still be sending (here: waiting out flood control before the chart). The second waits for
    the first's lease, then finds every part marked."""
    from queues.manager import QueueManager
    from queues.runtime import reset_runtime

    reset_runtime()
    manager = QueueManager()
    user = new_user()
    nickname = stack.world["nicknames"][17]
    tg.flood(1, retry_after=2, methods=["sendPhoto"])  # the first delivery waits 2 s before the chart
    stack.say(user, f"/player {nickname}")
    first = stack.first_reply(user)
    stack.final_of(user, first["message_id"])  # part 0 is in and marked; the chart waits
    job_id = job_of(stack, user)
    second = manager.enqueue_job("deliver_result", job_id=job_id)
    record = manager.wait_for(second.id, timeout=20)
    assert record.status == "succeeded", record
    assert record.result["sent"] == 0 and record.result["already_sent"] == 2, record.result
    stack.wait(user, lambda es: any(e["kind"] == "photo" for e in es), timeout=20)
    # The second ended above; the first (the job's own) has ended too: all either could send is in.
    ended = deliveries_ended(stack, job_id)
    assert len([e for e in stack.events(user) if e["kind"] == "photo"]) == 1
    assert len(results_in(stack, user, first["message_id"])) == 1
    (original,) = [d for d in ended if d["id"] != second.id]
    assert original["status"] == "succeeded" and json.loads(original["result"])["sent"] == 2


def test_running_a_delivery_again_sends_nothing_new(stack: Stack, tg):
    from queues.manager import QueueManager
    from queues.runtime import reset_runtime

    reset_runtime()
    manager = QueueManager()
    user = new_user()
    stack.say(user, f"/analyze {stack.world['matches']['FINISHED'][5]}")
    first = stack.first_reply(user)
    stack.final_of(user, first["message_id"])
    job_id = job_of(stack, user)
    deliveries_ended(stack, job_id)  # the first delivery is through: what it sent is all in `before`
    before = stack.events(user)
    again = [manager.enqueue_job("deliver_result", job_id=job_id) for _ in range(2)]
    for handle in again:
        record = manager.wait_for(handle.id, timeout=20)
        assert record.status == "succeeded"
        assert record.result["sent"] == 0 and record.result["already_sent"] == 1
    # Each of the three has ended (the job's own before `before`, the two just now): none still sends.
    assert stack.events(user) == before


def test_a_followed_player_finishing_a_match_notifies_each_active_follower_once(stack: Stack, tg):
    from queues.manager import QueueManager
    from queues.runtime import reset_runtime

    reset_runtime()
    manager = QueueManager()
    follower, blocker = new_user(), new_user()
    nickname = stack.world["nicknames"][18]
    for user, lang in ((follower, "ru"), (blocker, "en")):
        stack.say(user, f"/subscribe {nickname}", lang=lang)
        stack.final_of(user, stack.first_reply(user)["message_id"])
    # Monitoring starts at /subscribe: the match finished before its next scan is notified too.
    tg.block(blocker)
    stack.faceit.finish_match(nickname=nickname, won=True)
    scan = manager.enqueue_match_monitoring([follower, blocker])
    data = manager.wait_for(scan.id, timeout=20).result["data"]
    assert (data["baselined"], data["new_matches"]) == (0, 1)
    note = stack.wait(follower, lambda es: next((e for e in es if e["kind"] == "sent" and nickname in e["text"]),
                                                None))
    assert CYRILLIC.search(note["text"])  # in the language the follower subscribed in
    wait_until(lambda: str(blocker) in stack.redis.smembers("fb:faceit:users:inactive"), timeout=20,
               what="the blocked follower marked inactive")
    deliveries_ended(stack, scan.id)  # the scan's notices all went out (or met the block)
    assert len([e for e in stack.events(follower) if e["kind"] == "sent" and nickname in e["text"]]) == 1


def test_a_follower_who_blocked_the_bot_is_tried_once_for_several_matches(stack: Stack, tg):
    """A block met on the first notice was written down for later runs only: the same run went on
    to send the follower's other notices (403 each), marked them inactive again and counted them
    blocked once per notice."""
    from queues.manager import QueueManager
    from queues.runtime import reset_runtime

    reset_runtime()
    manager = QueueManager()
    blocker, nickname = new_user(), stack.world["nicknames"][19]
    stack.say(blocker, f"/subscribe {nickname}")
    stack.final_of(blocker, stack.first_reply(blocker)["message_id"])
    tg.block(blocker)
    # The bot hears of a block at once (Telegram's member update) and monitoring then skips the
    # user. Here it is learnt only from the notices' 403s, as when that update is late or lost.
    wait_until(lambda: str(blocker) in stack.redis.smembers("fb:faceit:users:inactive"), timeout=10,
               what="the block update taken")
    stack.redis.srem("fb:faceit:users:inactive", blocker)
    start = time.time() + 60
    for i in range(3):
        stack.faceit.finish_match(nickname=nickname, won=True, at=start + 600 * i)
    scan = manager.enqueue_match_monitoring([blocker])
    assert manager.wait_for(scan.id, timeout=20).result["data"]["new_matches"] == 3
    log = stack.pool.log_path
    line = wait_until(lambda: next((x for x in log.read_text(errors="replace").splitlines()
                                    if f"job {scan.id}: delivery sent" in x), None), timeout=20, what="the delivery's end")
    assert ", blocked 1," in line, line
    assert str(blocker) in stack.redis.smembers("fb:faceit:users:inactive")


def test_two_monitoring_runs_that_see_the_same_match_tell_it_once(stack: Stack, tg):
    """Runs overlap after a backlog (or one starts late): the second read where the player
    stood before the first wrote the match down, and its follower heard of the match twice."""
    from queues.manager import QueueManager
    from queues.runtime import reset_runtime

    reset_runtime()
    manager = QueueManager()
    follower, nickname = new_user(), stack.world["nicknames"][3]
    stack.say(follower, f"/subscribe {nickname}")
    stack.final_of(follower, stack.first_reply(follower)["message_id"])
    player_id = next(p["player_id"] for p in stack.world["players"] if p["nickname"] == nickname)
    state_key = f"fb:faceit:monitor:{player_id}"
    before = stack.redis.get(state_key)
    assert before  # /subscribe took the baseline
    played = stack.faceit.finish_match(nickname=nickname, won=True)
    first = manager.enqueue_match_monitoring([follower])
    assert manager.wait_for(first.id, timeout=20).result["data"]["new_matches"] == 1
    stack.wait(follower, lambda es: [e for e in es if e["kind"] == "sent" and played["match_id"] in e["text"]])
    # The delivery moved monitoring on as it sent the notice (not the run, before its result was safe).
    assert json.loads(stack.redis.get(state_key))["match_id"] == played["match_id"]
    stack.redis.set(state_key, before)  # the second run read the state before the first wrote it
    second = manager.enqueue_match_monitoring([follower])
    assert manager.wait_for(second.id, timeout=20).result["data"]["new_matches"] == 1  # it saw the match too
    log = stack.pool.log_path
    wait_until(lambda: f"job {second.id}: delivery sent" in log.read_text(errors="replace"), timeout=20,
               what="the second run's delivery ended")
    assert f"job {second.id}: delivery sent 0, already sent 1" in log.read_text(errors="replace")
    told = [e for e in stack.events(follower) if e["kind"] == "sent" and played["match_id"] in e["text"]]
    assert len(told) == 1
    (claim,) = stack.redis.keys(f"fb:bot:told:{follower}:*")  # kept while a run could tell it again, no longer
    assert 86400 < stack.redis.ttl(claim) <= 2 * 86400


def test_a_follower_who_unfollows_while_notices_go_out_gets_no_more_of_them(stack: Stack, tg):
    """A monitoring run reads each player's followers; its delivery came later and told every
    notice to whoever followed then, even one who had sent ``/unsubscribe`` in between. Here the
    first of two notices waits out flood control while its follower unfollows both players: the
    second is not sent."""
    import asyncio

    from faceit.keys import FaceitKeys
    from faceit.store import FaceitStore
    from queues.connection import async_redis_client
    from queues.manager import QueueManager
    from queues.runtime import reset_runtime
    from settings import get_settings

    reset_runtime()
    manager = QueueManager()
    follower, nicknames = new_user(), stack.world["nicknames"][0:2]  # followed by nobody else here
    for count, nickname in enumerate(nicknames, start=1):
        stack.say(follower, f"/subscribe {nickname}")
        stack.final_of(follower, stack.replies(follower, count)[-1]["message_id"])
    for nickname in nicknames:
        stack.faceit.finish_match(nickname=nickname, won=True)

    def floods() -> int:
        return tg.stats().get("errors", {}).get("sendMessage:429", 0)

    flooded = floods()
    tg.flood(1, retry_after=5, methods=["sendMessage"])  # the first notice waits 5 s in the delivery
    scan = manager.enqueue_match_monitoring([follower])
    wait_until(lambda: floods() > flooded, timeout=20, what="the first notice held by flood control")

    async def unfollow() -> None:
        settings = get_settings()
        client = async_redis_client(settings)
        try:
            store = FaceitStore(client, FaceitKeys(settings.redis_key_prefix))
            for nickname in nicknames:
                assert await store.unsubscribe(follower, nickname) == nickname
        finally:
            await client.aclose()

    asyncio.run(unfollow())
    notes = manager.wait_for(scan.id, timeout=20).result["notifications"]
    assert len([n for n in notes if n["user_id"] == follower]) >= 2  # (a lobby may hold both players)
    log = stack.pool.log_path
    line = wait_until(lambda: next((x for x in log.read_text(errors="replace").splitlines()
                                    if f"job {scan.id}: delivery sent" in x), None), timeout=20, what="the delivery's end")
    assert f"job {scan.id}: delivery sent 1," in line, line  # the notice flood control held, alone
    told = [e for e in stack.events(follower) if e["kind"] == "sent" and e["text"].startswith(("🟢", "🔴", "⚪"))]
    assert len(told) == 1, [e["text"] for e in told]


def test_a_followers_notices_of_several_matches_arrive_oldest_first(stack: Stack, tg):
    """Sent side by side, one user's notices raced for the chat's send slot: a player's matches
    arrived shuffled, and the one that carries the Elo total was not the last."""
    from queues.manager import QueueManager
    from queues.runtime import reset_runtime

    reset_runtime()
    follower, nickname = new_user(), stack.world["nicknames"][15]
    stack.say(follower, f"/subscribe {nickname}")
    stack.final_of(follower, stack.first_reply(follower)["message_id"])
    start = time.time() + 60
    played = [stack.faceit.finish_match(nickname=nickname, won=True, at=start + 600 * i) for i in range(4)]
    QueueManager().wait_for(QueueManager().enqueue_match_monitoring([follower]).id, timeout=20)
    notices = stack.wait(follower, lambda es: (n := [e for e in es if e["kind"] == "sent" and nickname in e["text"]])
                         [3:] and n)
    assert [next(m["match_id"] for m in played if m["match_id"] in n["text"]) for n in notices] == \
        [m["match_id"] for m in played]
    assert "over the last 4 matches" in notices[-1]["text"]


def test_a_scheduled_weekly_report_comes_in_the_users_language(stack: Stack, tg):
    from queues.manager import QueueManager
    from queues.runtime import reset_runtime

    reset_runtime()
    chose, subscribed = new_user(), new_user()
    stack.say(chose, "/lang ru", lang="en")  # chose Russian in an English Telegram
    stack.wait(chose, lambda es: next((e for e in es if e["kind"] == "sent"), None))
    nickname = stack.world["nicknames"][19]
    stack.faceit.finish_match(nickname=nickname, won=True)  # something to tell this week
    for user, lang in ((chose, "en"), (subscribed, "ru")):  # the second seen in Russian
        stack.say(user, f"/subscribe {nickname}", lang=lang)
        stack.final_of(user, stack.replies(user, 2 if user == chose else 1)[-1]["message_id"])
    manager = QueueManager()
    for user in (chose, subscribed):
        # As the scheduler enqueues it: its own run, a requester with no language of its own.
        manager.submit(manager.prepare_analytics_report(user, "weekly", {"user_id": user, "chat_id": user},
                                                        scheduled=True))
        report = stack.wait(user, lambda es: next((e for e in es if e["kind"] == "sent" and "📅" in e["text"]), None))
        assert CYRILLIC.search(report["text"]), report["text"]


def test_alerts_full_of_markup_reach_the_admin_whole(stack: Stack, tg):
    from queues.alerts import AlertStore

    store = AlertStore(stack.redis, sinks=[])  # recorded only: no alert goes out to the admins
    for i in range(15):  # escaped, 15 messages of 200 '&' are ~15,000 characters
        store.fire("error", f"test-{i}", f"{i} " + "&<" * 100)
    before = len([e for e in stack.events(ADMIN_ID) if e["kind"] == "sent"])
    stack.say(ADMIN_ID, "/alerts 1")
    parts = stack.wait(ADMIN_ID, lambda es: (lambda sent: sent if len(sent) >= 4 else None)(
        [e for e in es if e["kind"] == "sent"][before:]))
    shown = "\n".join(p["text"] for p in parts)
    assert all(f"{i} &amp;&lt;&amp;&lt;" in shown for i in range(15))  # every alert shown, escaped
    # "Dec 6 20:16", not "06.12 20:16" (the 12th of June, read in English)
    assert re.search(r"^• (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{1,2} \d\d:\d\d <b>", shown, re.M)
    assert not re.search(r"^• \d\d\.\d\d ", shown, re.M)


def test_alerts_are_shown_in_the_admins_time_zone(stack: Stack, tg):
    """An admin who chose a zone with /tz read every alert time in UTC, and had to convert."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from bot.keys import BotKeys
    from queues.alerts import AlertStore

    AlertStore(stack.redis, sinks=[]).fire("error", "test-zone", "a failure to read the time of")
    fired = datetime.now(UTC).astimezone(ZoneInfo("Asia/Kolkata"))
    title = re.compile(r"^<b>Alerts, last 1 h</b> \(\d+, times in (.+)\)$", re.M)
    before = len(stack.events(ADMIN_ID))

    def sent_since(predicate):
        return lambda es: next((e["text"] for e in es[before:] if e["kind"] == "sent" and predicate(e["text"] or "")),
                               None)

    try:
        stack.say(ADMIN_ID, "/tz Asia/Kolkata")  # UTC+05:30: the minutes move too
        stack.wait(ADMIN_ID, sent_since(lambda text: "Asia/Kolkata" in text))  # chosen before /alerts asks
        stack.say(ADMIN_ID, "/alerts 1")
        shown = stack.wait(ADMIN_ID, sent_since(title.search))
    finally:  # the admin as the other tests know them: no zone ever chosen
        keys = BotKeys()
        stack.redis.hdel(keys.user_timezones(), str(ADMIN_ID))
        stack.redis.hdel(keys.user_timezone_changes(), str(ADMIN_ID))
    assert title.search(shown).group(1) == "Asia/Kolkata (UTC+05:30)"
    line = next(row for row in shown.splitlines() if "test-zone" in row)
    hour, minute = map(int, re.match(r"^• \w{3} \d{1,2} (\d\d):(\d\d) ", line).groups())
    # The minute it fired (or the next), as Kolkata's clock reads it (not UTC's, 5 h 30 min apart)
    assert abs((fired.hour * 60 + fired.minute) - (hour * 60 + minute)) % 1440 in (0, 1, 1439), line


def test_an_operators_cancel_of_a_job_waiting_to_try_again_is_told_at_once(stack: Stack, tg, faceit_faults):
    """The cancel only marked the record: the user read "trying again in 30 s" under a Cancel
    button until the delayed message came up (up to 90 s on the real schedule)."""
    from queues.manager import QueueManager
    from queues.runtime import reset_runtime

    faceit_faults(error_rate=1.0, status=429, retry_after=30)  # FACEIT: come back in 30 s
    stack.clear_faceit_cache()
    user = new_user()
    stack.say(user, f"/analyze {stack.world['matches']['FINISHED'][-1]}")  # (no other test of the module asks for it)
    first = stack.first_reply(user)
    job_id = job_id_in(first["text"])
    stack.wait(user, lambda es: [e for e in es if e["message_id"] == first["message_id"]
                                 and "Trying again in" in (e["text"] or "")], timeout=30)
    # /status says what the job message says, not only "waiting to retry".
    stack.say(user, f"/status {job_id[:8]}")
    status = stack.wait(user, lambda es: [e for e in es if e["kind"] == "sent" and "waiting to retry" in
                                          (e["text"] or "")], timeout=10)[-1]["text"]
    assert re.search(r"waiting to retry · FACEIT is overloaded\. Trying again in \d+ s \(attempt 2 of \d\)\.",
                     status), status
    reset_runtime()
    assert QueueManager().cancel_job(job_id) == "canceled"
    told = stack.wait(user, lambda es: [e for e in es if e["message_id"] == first["message_id"]
                                        and "stopped" in (e["text"] or "")], timeout=10)
    # Told who stopped it: "cancelled" alone, when they pressed nothing, read as a fault of ours.
    assert told[-1]["text"].startswith("✖ Match analysis stopped by the bot's operator.\nJob <code>")

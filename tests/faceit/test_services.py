"""The services contract end to end: real client, real Redis, sandbox Data API."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from typing import Any

import pytest
import redis

from faceit import errors, render, services, store
from faceit.context import close_faceit_context, get_faceit_context
from tests.faceit.conftest import ProgressLog
from tests.support.faceit_sandbox import FaceitSandbox

pytestmark = pytest.mark.usefixtures("faceit_env")


async def _monitor(user_ids: list[int] | None, progress: ProgressLog) -> dict[str, Any]:
    """A monitoring run, and its delivery's first step: the players whose matches it tells move on."""
    result = await services.monitor_matches(user_ids, progress)
    await (await get_faceit_context()).store.advance_monitoring(result["marks"])
    return result


def _check_result(result: dict[str, Any], kind: str) -> None:
    assert result["kind"] == kind
    json.dumps(result)  # JSON-serialisable as a whole
    extra = {"marks"} if kind == "match_monitoring" else set()  # what its delivery moves monitoring on to
    assert set(result) == {"kind", "data", "texts", "photos", "notifications"} | extra
    for lang in ("en", "ru"):
        assert result["texts"][lang], lang
        assert all(0 < len(part) <= 4096 for part in result["texts"][lang])


async def test_cold_analysis_within_31_calls_and_warm_within_1(sandbox: FaceitSandbox, progress: ProgressLog) -> None:
    match_id = sandbox.world()["matches"]["VOTING"][0]
    result = await services.analyze_match(f"https://www.faceit.com/ru/cs2/room/{match_id}/scoreboard", progress)
    _check_result(result, "match_analysis")
    assert sandbox.calls() <= 31
    data = result["data"]
    assert data["state"] == "pre_game" and data["match_id"] == match_id
    players = [p for t in data["teams"].values() for p in t["players"]]
    assert len(players) == 10 and all(p["elo"] and p["form"]["matches"] == 20 for p in players)
    assert all(p["form"]["rating"] for p in players)
    assert data["maps"]["pool_source"] == "veto" and len(data["maps"]["maps"]) == 7
    assert data["maps"]["advice"]["faction1"]["pick"]
    stages = [c[1] for c in progress.calls]
    assert stages[0] == "match" and "players" in stages and stages[-1] == "render"
    assert ("players", 10, 10) in [c[1:] for c in progress.calls]
    assert [c[0] for c in progress.calls] == sorted(c[0] for c in progress.calls)

    sandbox.reset()
    again = await services.analyze_match(match_id, ProgressLog())
    assert sandbox.calls() <= 1
    assert again["data"] == data


async def test_every_pre_game_state_is_analysable(sandbox: FaceitSandbox, progress: ProgressLog) -> None:
    matches = sandbox.world()["matches"]
    check_in = await services.analyze_match(matches["CHECK_IN"][0], progress)
    assert check_in["data"]["maps"]["pool_source"] == "active_duty"  # no veto yet
    ready = await services.analyze_match(matches["READY"][0], progress)
    assert len(ready["data"]["maps"]["picked"]) == 1
    assert "★" in ready["texts"]["en"][0] or "★" in "".join(ready["texts"]["en"])
    for status in ("ONGOING", "CONFIGURING"):
        result = await services.analyze_match(matches[status][0], progress)
        assert result["data"]["status"] == status


@pytest.mark.parametrize(("status", "key"), [("CANCELLED", "match_cancelled"), ("ABORTED", "match_aborted")])
async def test_cancelled_and_aborted_are_refused(sandbox: FaceitSandbox, progress: ProgressLog, status: str,
                                                 key: str) -> None:
    with pytest.raises(errors.MatchNotAnalysableError) as caught:
        await services.analyze_match(sandbox.world()["matches"][status][0], progress)
    assert caught.value.key == key and caught.value.code == "match_not_analysable"
    assert sandbox.calls() == 1


async def test_finished_match_shows_the_result(sandbox: FaceitSandbox, progress: ProgressLog) -> None:
    result = await services.analyze_match(sandbox.world()["matches"]["FINISHED"][0], progress)
    _check_result(result, "match_analysis")
    data = result["data"]
    assert data["state"] == "finished" and data["winner"] in ("faction1", "faction2")
    assert data["maps"][0]["rounds"] >= 13 and len(data["maps"][0]["teams"]) == 2
    assert sandbox.calls() == 2  # the match and its stats
    assert "Match finished" in result["texts"]["en"][0] and "Матч завершён" in result["texts"]["ru"][0]


async def test_old_bare_uuid_room_falls_back_to_the_bare_id(sandbox: FaceitSandbox, progress: ProgressLog) -> None:
    legacy = sandbox.world()["matches"]["LEGACY"][0]
    result = await services.analyze_match(f"https://www.faceit.com/en/csgo/room/{legacy}", progress)
    assert result["data"]["state"] == "finished"
    assert sandbox.calls("match") == 2  # 1-<uuid> (404), then the bare uuid


async def test_bad_input_and_unknown_match(sandbox: FaceitSandbox, progress: ProgressLog) -> None:
    with pytest.raises(errors.BadInputError) as bad:
        await services.analyze_match("https://example.com/not-a-room", progress)
    assert bad.value.key == "bad_match_ref"
    assert sandbox.calls() == 0 and progress.calls == []
    with pytest.raises(errors.NotFoundError) as missing:
        await services.analyze_match("1-00000000-0000-4000-8000-000000000000", progress)
    assert missing.value.key == "match_not_found"


async def test_player_report_with_chart_and_elo_history(sandbox: FaceitSandbox, progress: ProgressLog) -> None:
    player = sandbox.world()["players"][5]
    result = await services.build_player_report(f"https://www.faceit.com/en/players/{player['nickname']}", progress)
    _check_result(result, "player_report")
    assert sandbox.calls() == 3
    data = result["data"]
    assert data["player_id"] == player["player_id"] and data["elo"] == player["elo"]
    assert data["progress"]["level"] == player["level"]
    assert data["form"]["matches"] == 20 and data["maps"] and data["lifetime"]["matches"]
    assert data["trend"]["direction"] in ("up", "down", "flat")
    png = base64.b64decode(result["photos"][0]["png_b64"])
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert player["nickname"] in result["photos"][0]["caption"]["ru"]
    assert len(data["chart"]["elo"]) == 1

    finished = sandbox.finish_match(player_id=player["player_id"], won=True)
    ctx = await get_faceit_context()
    await ctx.client.get_player(player["player_id"], refresh=True)  # a monitor/cache run would do this
    await ctx.store.record_elo(player["player_id"], player["elo"] + finished["elo_changes"][player["player_id"]],
                               now=time.time() + 3600)  # an hour on
    again = await services.build_player_report(player["player_id"], ProgressLog())
    assert len(again["data"]["chart"]["elo"]) == 2
    assert again["data"]["elo_seen_change"] == finished["elo_changes"][player["player_id"]]


async def test_a_player_report_is_one_moments_picture(sandbox: FaceitSandbox, progress: ProgressLog,
                                                      redis_client: redis.Redis) -> None:
    """Monitoring reads a followed player's recent matches fresh; a profile and lifetime stats cached
    minutes before the newest match must not sit beside it (a win streak of 1 under five wins, the
    old Elo under the notice's new one): parts fetched apart are fetched again together."""
    player = sandbox.world()["players"][18]
    pid, nick = player["player_id"], player["nickname"]
    first = await services.build_player_report(nick, progress)
    matches_before = first["data"]["lifetime"]["matches"]
    finished = sandbox.finish_match(player_id=pid, won=True)
    ctx = await get_faceit_context()
    await ctx.client.get_recent_stats(pid, refresh=True)  # as a monitoring scan does
    for key in (f"fb:faceit:cache:player_nick:{nick}", f"fb:faceit:cache:lifetime:{pid}"):
        redis_client.expire(key, redis_client.ttl(key) - 120)  # cached two minutes before it
    sandbox.reset()
    again = (await services.build_player_report(nick, ProgressLog()))["data"]
    assert again["form"]["results"].startswith("W")
    assert again["elo"] == player["elo"] + finished["elo_changes"][pid]
    assert again["lifetime"]["matches"] == matches_before + 1
    assert sandbox.calls() == 2  # the profile and lifetime again, not the matches monitoring just read
    sandbox.reset()
    await services.build_player_report(nick, ProgressLog())
    assert sandbox.calls() == 0  # now from one moment: the cache serves it
    # The other way round: the profile and lifetime fresh (a lookup), the matches cached before
    # the newest one finished: the matches are read again.
    lost = sandbox.finish_match(player_id=pid, won=False)
    redis_client.expire(f"fb:faceit:cache:recent:{pid}:30", redis_client.ttl(f"fb:faceit:cache:recent:{pid}:30") - 120)
    await ctx.client.get_player_by_nickname(nick, refresh=True)
    await ctx.client.get_lifetime_stats(pid, refresh=True)
    sandbox.reset()
    third = (await services.build_player_report(nick, ProgressLog()))["data"]
    assert third["form"]["results"].startswith("LW") and third["lifetime"]["matches"] == matches_before + 2
    assert third["elo"] == again["elo"] + lost["elo_changes"][pid] and sandbox.calls() == 1


async def test_a_player_report_reads_matches_again_when_fresher_lifetime_stats_contradict_them(
        sandbox: FaceitSandbox, progress: ProgressLog, redis_client: redis.Redis) -> None:
    """A tester's /player seconds after a match: the lifetime stats (their cache just expired)
    said "streak" with the new win, the matches cached half a minute before did not have it, and
    the profile showed the Elo before it. Within a minute of each other, but they contradict."""
    player = sandbox.world()["players"][6]
    pid, nick = player["player_id"], player["nickname"]
    first = (await services.build_player_report(nick, progress))["data"]
    for key in (f"fb:faceit:cache:player_nick:{nick}", f"fb:faceit:cache:recent:{pid}:30"):
        redis_client.expire(key, redis_client.ttl(key) - 30)  # cached half a minute ago
    won = not first["form"]["results"].startswith("W")  # a result that moves the win streak
    finished = sandbox.finish_match(player_id=pid, won=won)
    redis_client.delete(f"fb:faceit:cache:lifetime:{pid}")  # expired just now: read fresh
    sandbox.reset()
    again = (await services.build_player_report(nick, ProgressLog()))["data"]
    assert again["form"]["results"] == ("W" if won else "L") + first["form"]["results"][:19]
    assert again["elo"] == first["elo"] + finished["elo_changes"][pid] != first["elo"]
    assert sandbox.calls() == 3  # lifetime (expired), then the matches and the profile again
    sandbox.reset()
    await services.build_player_report(nick, ProgressLog())
    assert sandbox.calls() == 0  # one moment now: the cache serves it


async def test_lifetime_stats_read_again_are_checked_against_the_matches_too(
        sandbox: FaceitSandbox, progress: ProgressLog, redis_client: redis.Redis) -> None:
    """Monitoring read the matches after one match; another ended since. The profile and lifetime
    stats, older than the first, were read again, and knew the second: "streak 2" beside a list
    without it. The list is read again then, and the profile after it."""
    player = sandbox.world()["players"][4]
    pid, nick = player["player_id"], player["nickname"]
    first = (await services.build_player_report(nick, progress))["data"]
    for key in (f"fb:faceit:cache:player_nick:{nick}", f"fb:faceit:cache:lifetime:{pid}"):
        redis_client.expire(key, redis_client.ttl(key) - 30)  # cached half a minute ago
    seen = sandbox.finish_match(player_id=pid, won=True)
    ctx = await get_faceit_context()
    await ctx.client.get_recent_stats(pid, refresh=True)  # as a monitoring scan does
    unseen = sandbox.finish_match(player_id=pid, won=False)  # a loss: the streak moves
    again = (await services.build_player_report(nick, ProgressLog()))["data"]
    assert again["form"]["results"] == "LW" + first["form"]["results"][:18]
    assert again["elo"] == first["elo"] + seen["elo_changes"][pid] + unseen["elo_changes"][pid]


async def test_resolve_player(sandbox: FaceitSandbox) -> None:
    player = sandbox.world()["players"][2]
    resolved = await services.resolve_player(player["nickname"])
    assert resolved["player_id"] == player["player_id"] and resolved["elo"] == player["elo"]
    assert resolved["level"] == player["level"]
    with pytest.raises(errors.NotFoundError) as caught:
        await services.resolve_player("Nobody_Here")
    assert caught.value.key == "player_not_found"
    with pytest.raises(errors.BadInputError):
        await services.resolve_player("no spaces allowed")


async def test_an_elo_snapshot_from_a_cached_profile_carries_the_time_faceit_sent_it(sandbox: FaceitSandbox) -> None:
    """A /subscribe lookup reads the nickname's cached profile, two minutes old; monitoring
    recorded the Elo of a match since, a minute ago. The lookup's snapshot was stamped "now", so
    the history read 1025 → 1000 (a dip that never was) and the player's Elo went back in reports."""
    player = sandbox.world()["players"][3]
    pid, elo = player["player_id"], player["elo"]
    await services.resolve_player(player["nickname"])  # cached now (and snapshot taken now)
    ctx = await get_faceit_context()
    key = ctx.keys.cache("player_nick", player["nickname"])
    raw = json.loads(await ctx.redis.get(key))
    await ctx.redis.delete(ctx.keys.elo_history(pid))
    await ctx.client.cache.put(key, raw, ctx.client.ttls.profile - 120)  # as if fetched 120 s ago
    now = time.time()
    await ctx.store.record_elo(pid, elo + 25, now - 60)  # monitoring: a match won since
    resolved = await services.resolve_player(player["nickname"])
    assert resolved["elo"] == elo  # the cached copy is what the lookup saw
    history = await ctx.store.elo_history(pid)
    assert [e for _, e in history] == [elo, elo + 25]  # in the order FACEIT sent them
    assert history[0][0] == pytest.approx(now - 120, abs=5)


def test_a_bulk_line_shows_an_unknown_map_score_as_a_question_mark() -> None:
    finished = {"match_id": "1-x", "winner": "faction2", "teams": {"faction1": {"name": "A"}, "faction2": {"name": "B"}},
                "maps": [{"label": "Nuke", "teams": [{"faction": "faction1", "score": None},
                                                     {"faction": "faction2", "score": None}]},
                         {"label": "Mirage", "teams": [{"faction": "faction1", "score": 9},
                                                       {"faction": "faction2", "score": 13}]}]}
    summary = services.bulk_summary("finished", finished)
    assert summary["maps"] == [{"label": "Nuke", "score": [None, None]}, {"label": "Mirage", "score": [13, 9]}]
    bulk = {"total": 1, "analysed": 1, "failed": 0,
            "matches": [{"ref": "1-x", "match_id": "1-x", "outcome": "finished", "summary": summary}]}
    assert "finished · winner <b>B</b> · Nuke ?:?, Mirage 13:9" in render.render_bulk(bulk, "en")


async def test_bulk_analysis_reports_each_match(sandbox: FaceitSandbox, progress: ProgressLog) -> None:
    matches = sandbox.world()["matches"]
    refs = [matches["READY"][1], f"https://www.faceit.com/en/cs2/room/{matches['READY'][1]}",
            matches["FINISHED"][1], matches["CANCELLED"][0], "junk"]
    result = await services.analyze_bulk(refs, progress)
    _check_result(result, "bulk_analysis")
    data = result["data"]
    assert data["total"] == 4 and data["analysed"] == 2 and data["failed"] == 2
    outcomes = [m["outcome"] for m in data["matches"]]
    assert outcomes == ["analysed", "finished", "failed", "failed"]
    assert data["matches"][2]["error"]["code"] == "match_not_analysable"
    assert data["matches"][3]["error"]["texts"]["ru"]
    assert progress.calls[-2][1:] == ("matches", 4, 4)
    with pytest.raises(errors.BadInputError) as too_many:
        await services.analyze_bulk([f"1-{i:08d}-0000-4000-8000-000000000000" for i in range(21)], progress)
    assert too_many.value.key == "too_many_matches"
    with pytest.raises(errors.MatchNotAnalysableError):  # the one match failed: the job fails
        await services.analyze_bulk([matches["CANCELLED"][0]], progress)
    # Every match of a longer list refused for itself: the summary says why, match by match
    missing = "1-00000000-0000-4000-8000-00000000000f"
    refused = await services.analyze_bulk([matches["CANCELLED"][0], missing, matches["ABORTED"][0]], progress)
    assert (refused["data"]["analysed"], refused["data"]["failed"]) == (0, 3)
    assert [m["error"]["code"] for m in refused["data"]["matches"]] == [
        "match_not_analysable", "not_found", "match_not_analysable"]
    text = refused["texts"]["en"][0]
    assert text.count("❌") == 3 and missing in text


async def test_a_bulk_match_faceit_did_not_answer_for_says_so_without_promising_a_retry(
        sandbox: FaceitSandbox, progress: ProgressLog) -> None:
    """The list succeeded for the others, so it is not retried: that match's line must not say
    "will be retried" (the job-level text for a transient error)."""
    matches = sandbox.world()["matches"]
    down, fine = matches["FINISHED"][2], matches["FINISHED"][3]
    sandbox.faults(error_rate=1.0, status=503, path=down)
    data = (await services.analyze_bulk([down, fine], progress))["data"]
    assert (data["analysed"], data["failed"]) == (1, 1)
    error = data["matches"][0]["error"]
    assert error["code"] == "upstream"
    assert "Send it again in a few minutes" in error["texts"]["en"] and "retried" not in error["texts"]["en"]
    assert "Пришлите его ещё раз" in error["texts"]["ru"]


async def test_a_bulk_list_fails_when_faceit_refuses_our_key(sandbox: FaceitSandbox, progress: ProgressLog) -> None:
    """Every match failed, but not for itself: the key was refused. The job fails (its alert tells
    the operators), rather than succeed with a list of internal errors."""
    matches = sandbox.world()["matches"]
    sandbox.faults(error_rate=1.0, status=401)
    with pytest.raises(errors.AuthError):
        await services.analyze_bulk([matches["FINISHED"][0], matches["READY"][0]], progress)


async def test_monitoring_notifies_active_followers_once(sandbox: FaceitSandbox, progress: ProgressLog) -> None:
    player = sandbox.world()["players"][7]
    pid = player["player_id"]
    await store.subscribe(1, pid, player["nickname"])
    await store.subscribe(2, pid, player["nickname"])
    await store.subscribe(3, pid, player["nickname"])
    await store.set_user_inactive(3)
    first = await _monitor(None, progress)
    assert first["data"]["baselined"] == 1 and first["notifications"] == []

    finished = sandbox.finish_match(player_id=pid, won=False)
    second = await _monitor([1], ProgressLog())
    _check_result(second, "match_monitoring")
    notes = second["notifications"]
    assert sorted(n["user_id"] for n in notes) == [1, 2]  # user 3 blocked the bot
    assert all(n["match_id"] == finished["match_id"] for n in notes)
    text = notes[0]["texts"]["en"][0]
    delta = finished["elo_changes"][pid]
    assert "Loss" in text and f"Elo −{abs(delta)}" in text
    assert "Поражение" in notes[0]["texts"]["ru"][0]

    third = await _monitor(None, ProgressLog())
    assert third["notifications"] == [] and third["data"]["new_matches"] == 0


async def test_players_followed_only_by_users_who_blocked_the_bot_are_not_scanned(
        sandbox: FaceitSandbox, progress: ProgressLog) -> None:
    """A blocked user never unfollows: their players were read from FACEIT every monitoring run
    and every cache refresh, for good, though nobody was told of them. They are passed over until
    the user writes to the bot again; a player someone active follows too is still scanned."""
    players = sandbox.world()["players"]
    left, kept = players[17], players[11]  # (no other test finishes a match of theirs)
    await store.subscribe(21, left["player_id"], left["nickname"])
    await store.subscribe(21, kept["player_id"], kept["nickname"])
    await store.subscribe(22, kept["player_id"], kept["nickname"])
    assert (await _monitor(None, ProgressLog()))["data"]["baselined"] == 2  # both marked while 21 reads us
    await store.set_user_inactive(21)
    first = await _monitor(None, progress)
    assert first["data"]["players"] == 1  # the player someone active follows: the other is not read
    cached = await services.update_cache("players", None, ProgressLog())
    assert cached["data"]["refreshed"] == 1
    sandbox.finish_match(player_id=left["player_id"], won=True)  # while they are away
    await store.set_user_active(21)  # they wrote to the bot again
    back = await _monitor(None, ProgressLog())
    # Their player is scanned again, from a quiet baseline: no notice of what was played meanwhile
    # (its mark was dropped as it was passed over; kept, weeks of matches came at once).
    assert back["data"]["baselined"] == 1 and back["notifications"] == []


async def test_monitoring_tells_and_counts_5v5_matches_only(sandbox: FaceitSandbox, progress: ProgressLog) -> None:
    """A Wingman match moves no 5v5 Elo: told and counted, it made the next 5v5 notice say "Elo
    +25 over the last 2 matches". It is passed over, and not met again."""
    player = sandbox.world()["players"][14]
    pid = player["player_id"]
    await store.subscribe(8, pid, player["nickname"])
    assert (await _monitor(None, progress))["data"]["baselined"] == 1
    sandbox.finish_match(player_id=pid, won=True, mode="Wingman", at=time.time() - 600)
    finished = sandbox.finish_match(player_id=pid, won=True)
    run = await _monitor(None, ProgressLog())
    (note,) = run["notifications"]
    assert note["match_id"] == finished["match_id"] and run["data"]["new_matches"] == 1
    text = note["texts"]["en"][0]
    assert f"Elo +{finished['elo_changes'][pid]}" in text and "over the last" not in text
    wingman = sandbox.finish_match(player_id=pid, won=False, mode="Wingman", at=time.time() + 60)  # alone
    quiet = await _monitor(None, ProgressLog())
    assert quiet["notifications"] == [] and quiet["data"]["new_matches"] == 0
    ctx = await get_faceit_context()
    state = await ctx.store.monitor_state(pid)
    assert state["match_id"] == wingman["match_id"]  # passed over: the mark moved past it
    assert state["elo"] == (await ctx.client.get_player(pid, refresh=True)).elo  # the 5v5 Elo, as it was


async def test_the_first_notification_counts_only_the_match_after_the_baseline(sandbox: FaceitSandbox,
                                                                             progress: ProgressLog) -> None:
    """The subscription's lookup cached the profile; a match finished before the first monitoring
    run. The baseline must take the Elo after that match, or the next match's notification adds
    both changes up."""
    player = sandbox.world()["players"][12]
    pid = player["player_id"]
    ctx = await get_faceit_context()
    await ctx.client.get_player(pid)  # the lookup at /subscribe: now cached
    await store.subscribe(4, pid, player["nickname"])
    sandbox.finish_match(player_id=pid, won=True, at=time.time() - 3600)  # before the baseline
    assert (await _monitor(None, progress))["data"]["baselined"] == 1
    finished = sandbox.finish_match(player_id=pid, won=False)
    (note,) = (await _monitor([4], ProgressLog()))["notifications"]
    assert f"Elo −{abs(finished['elo_changes'][pid])} " in note["texts"]["en"][0]


async def test_a_baseline_taken_at_subscribe_makes_the_first_scan_notify(sandbox: FaceitSandbox,
                                                                        progress: ProgressLog) -> None:
    """/subscribe takes the baseline (the lookup job): a match finished before the next scan is
    the first one notified, with its own Elo change, instead of becoming the scan's baseline."""
    player = sandbox.world()["players"][13]
    pid = player["player_id"]
    baseline = await services.monitoring_baseline(pid)
    await store.subscribe(6, pid, player["nickname"])
    faceit_store = (await get_faceit_context()).store  # as the delivery of /subscribe does
    await faceit_store.set_monitor_state(pid, baseline, if_absent=True)
    await faceit_store.set_monitor_state(pid, {"match_id": None, "finished_at": 0, "elo": 1}, if_absent=True)
    # After the newest match the baseline knows (finish times are whole seconds, and an earlier
    # test may have just finished one of this player's matches).
    finished = sandbox.finish_match(player_id=pid, won=True, at=max((baseline["finished_at"] or 0) + 60, time.time() + 1))
    result = await _monitor([6], progress)
    assert result["data"]["baselined"] == 0
    (note,) = result["notifications"]
    assert note["match_id"] == finished["match_id"]
    assert f"Elo +{finished['elo_changes'][pid]} " in note["texts"]["en"][0]


async def _followed_from_now(sandbox: FaceitSandbox, *, player: int, user: int) -> tuple[str, dict[str, Any], float]:
    """Player ``player`` of the sandbox followed by ``user`` with the baseline /subscribe takes;
    returns their id, the baseline and a time just after its newest match (when to finish new ones)."""
    followed = sandbox.world()["players"][player]
    pid = followed["player_id"]
    baseline = await services.monitoring_baseline(pid)
    await store.subscribe(user, pid, followed["nickname"])
    await (await get_faceit_context()).store.set_monitor_state(pid, baseline, if_absent=True)
    return pid, baseline, max((baseline["finished_at"] or 0) + 60, time.time() + 1)  # after following began


def _signed(value: int) -> str:
    """An Elo change as the texts write it: ``+25``, ``−25`` (a minus sign), ``0``."""
    return f"+{value}" if value > 0 else f"−{abs(value)}" if value < 0 else "0"


async def test_two_matches_between_scans_end_with_their_total_elo_change(sandbox: FaceitSandbox,
                                                                        progress: ProgressLog) -> None:
    """FACEIT tells the Elo now, not per match: the later notification carries the total, said so."""
    pid, _, start = await _followed_from_now(sandbox, player=14, user=7)
    # Two wins: a win and a loss may cancel out, and an Elo that did not move is shown without
    # a change (it may be FACEIT's lag), which is not what this test is about.
    won = sandbox.finish_match(player_id=pid, won=True, at=start)
    won_again = sandbox.finish_match(player_id=pid, won=True, at=start + 3600)
    first, second = (await _monitor([7], progress))["notifications"]
    assert (first["match_id"], second["match_id"]) == (won["match_id"], won_again["match_id"])
    assert "Elo" not in first["texts"]["en"][0]
    total = won["elo_changes"][pid] + won_again["elo_changes"][pid]
    assert f"Elo {_signed(total)} over the last 2 matches → " in second["texts"]["en"][0]
    assert "за последние 2 матча" in second["texts"]["ru"][0]


async def test_more_matches_than_notified_are_counted_in_the_elo_change(sandbox: FaceitSandbox,
                                                                       progress: ProgressLog) -> None:
    """Seven matches between scans: the five newest are told, and the last one's Elo change says
    it covers all seven (it is the Elo now against the Elo at the last scan)."""
    pid, _, start = await _followed_from_now(sandbox, player=15, user=8)
    played = [sandbox.finish_match(player_id=pid, won=i % 2 == 0, at=start + 3600 * i) for i in range(7)]
    result = await _monitor([8], progress)
    notes = result["notifications"]
    assert [n["match_id"] for n in notes] == [m["match_id"] for m in played[2:]]
    assert result["data"]["new_matches"] == 7
    total = sum(m["elo_changes"][pid] for m in played)
    assert f"Elo {_signed(total)} over the last 7 matches → " in notes[-1]["texts"]["en"][0]
    assert "за последние 7 матчей" in notes[-1]["texts"]["ru"][0]


async def test_an_elo_faceit_has_not_updated_yet_is_carried_to_the_next_match(sandbox: FaceitSandbox,
                                                                              progress: ProgressLog) -> None:
    """The match's stats are out but the profile's Elo has not moved (FACEIT lags): the notice
    shows the Elo without a change (not "Elo 0"), and the next one carries both matches' change."""
    pid, baseline, start = await _followed_from_now(sandbox, player=17, user=14)
    lagging = sandbox.finish_match(player_id=pid, won=True, at=start, hold_elo=True)
    (first,) = (await _monitor([14], progress))["notifications"]
    assert first["match_id"] == lagging["match_id"]
    assert f"Elo {baseline['elo']}\n" in first["texts"]["en"][0]
    nxt = sandbox.finish_match(player_id=pid, won=True, at=start + 3600)  # two wins: they cannot cancel out
    (second,) = (await _monitor([14], ProgressLog()))["notifications"]
    total = lagging["elo_changes"][pid] + nxt["elo_changes"][pid]
    assert f"Elo {_signed(total)} over the last 2 matches → {baseline['elo'] + total}" in second["texts"]["en"][0]


async def test_a_new_follower_hears_only_of_matches_finished_since_they_followed(sandbox: FaceitSandbox,
                                                                                 progress: ProgressLog) -> None:
    """The player's starting point is the first follower's: a match finished before the second
    one followed is told to the first only."""
    pid, _, start = await _followed_from_now(sandbox, player=19, user=15)
    before = sandbox.finish_match(player_id=pid, won=True, at=start)
    await store.subscribe(16, pid, sandbox.world()["players"][19]["nickname"])
    # ... who began following two minutes after that match ended
    await (await get_faceit_context()).store.redis.hset(f"fb:faceit:subs:since:{pid}", "16", repr(start + 120))
    after = sandbox.finish_match(player_id=pid, won=False, at=start + 180)
    notes = (await _monitor([15], progress))["notifications"]
    told = sorted((n["user_id"], n["match_id"]) for n in notes)
    assert told == sorted([(15, before["match_id"]), (15, after["match_id"]), (16, after["match_id"])])


async def test_monitoring_survives_one_failing_player(sandbox: FaceitSandbox, progress: ProgressLog) -> None:
    players = sandbox.world()["players"][8:10]
    for p in players:
        await store.subscribe(5, p["player_id"], p["nickname"])
    sandbox.faults(error_rate=1.0, status=500, path=players[0]["player_id"])
    result = await _monitor([5], progress)
    assert result["data"]["checked"] == 1 and result["data"]["errors"][0]["player_id"] == players[0]["player_id"]
    sandbox.faults(error_rate=1.0, status=500)
    with pytest.raises(errors.UpstreamError):  # nobody could be checked: the job is retried
        await _monitor([5], progress)


async def test_cache_update_refreshes_followed_players(sandbox: FaceitSandbox, progress: ProgressLog) -> None:
    players = sandbox.world()["players"][10:12]
    for p in players:
        await store.subscribe(9, p["player_id"], p["nickname"])
    result = await services.update_cache("players", None, progress)
    _check_result(result, "cache_update")
    assert result["data"]["refreshed"] == 2 and sandbox.calls() == 6
    result = await services.update_cache("stats", [players[0]["nickname"], "bad nick!"], progress)
    assert result["data"]["refreshed"] == 1 and result["data"]["failed"][0]["code"] == "bad_input"
    matches = await services.update_cache("matches", [sandbox.world()["matches"]["ONGOING"][0]], progress)
    assert matches["data"]["refreshed"] == 1
    with pytest.raises(errors.BadInputError):
        await services.update_cache("everything", None, progress)


async def test_a_weekly_report_counts_every_match_of_the_week(sandbox: FaceitSandbox, progress: ProgressLog) -> None:
    """One /games/cs2/stats call holds at most 100 matches and the analysis reads 30: a report pages
    back to the period's start, so 40 matches this week are 40, not 30."""
    player = sandbox.world()["players"][16]
    pid = player["player_id"]
    await store.subscribe(13, pid, player["nickname"])
    start = time.time() - 6 * 86400
    for i in range(40):
        sandbox.finish_match(player_id=pid, won=i % 3 != 0, at=start + 3600 * i)
    since = time.time() - 7 * 86400
    report = await services.build_analytics_report(13, "weekly", progress)
    (tracked,) = report["data"]["players"]
    assert tracked["matches"] == _matches_in_the_sandbox(sandbox, pid, since) >= 40
    assert f"{tracked['matches']} matches" in report["texts"]["en"][0]


async def test_a_weekly_report_shows_the_elo_after_the_newest_match_it_counts(
        sandbox: FaceitSandbox, progress: ProgressLog, redis_client: redis.Redis) -> None:
    """The report reads the week's matches fresh: a profile cached before the newest of them
    showed the Elo before it ("4 matches WWLL · Elo 941" while FACEIT said 965)."""
    player = sandbox.world()["players"][3]
    pid = player["player_id"]
    await store.subscribe(23, pid, player["nickname"])
    (before,) = (await services.build_analytics_report(23, "weekly", progress))["data"]["players"]
    key = f"fb:faceit:cache:player:{pid}"
    redis_client.expire(key, redis_client.ttl(key) - 30)  # the profile cached half a minute ago
    finished = sandbox.finish_match(player_id=pid, won=True)
    (after,) = (await services.build_analytics_report(23, "weekly", ProgressLog()))["data"]["players"]
    assert after["matches"] == before["matches"] + 1
    assert after["elo"] == before["elo"] + finished["elo_changes"][pid] != before["elo"]


async def test_a_scheduled_weekly_summary_covers_the_week_up_to_its_monday_not_up_to_its_run(
        sandbox: FaceitSandbox, progress: ProgressLog) -> None:
    """The scheduler's summary ends at the user's Monday 09:00 it is for: a run that goes hours
    late (a retry) counts the same week, not a week ending when it ran; the next summary, which
    starts there, has the match played in between."""
    player = sandbox.world()["players"][7]
    pid = player["player_id"]
    await store.subscribe(33, pid, player["nickname"])
    end = time.time() - 3 * 3600  # the Monday 09:00 it is for; the run goes three hours later
    sandbox.finish_match(player_id=pid, won=True, at=end - 1800)  # in the week
    sandbox.finish_match(player_id=pid, won=False, at=end + 1800)  # after it: the next week's
    report = await services.build_analytics_report(33, "weekly", progress, scheduled=True, period_end=end)
    (tracked,) = report["data"]["players"]
    start = services.report_period("weekly", time.time(), end).start
    assert (report["data"]["since"], report["data"]["until"]) == (start, end)
    assert tracked["matches"] == _matches_in_the_sandbox(sandbox, pid, start, end) >= 1
    assert _matches_in_the_sandbox(sandbox, pid, end) >= 1  # played after the week (ours at least): not counted


def test_a_summary_week_is_the_users_week_across_a_clock_change() -> None:
    """From Monday 09:00 to Monday 09:00 as the reader counts time: 169 hours across the autumn
    change in Berlin, 167 across the spring one (7 × 86,400 s dropped a match played in the
    hour gained, and counted one twice in spring); the week before it likewise."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    autumn = datetime(2026, 10, 26, 9, 0, tzinfo=berlin).timestamp()
    period = services.report_period("weekly", autumn + 5 * 3600, autumn, berlin)
    assert period.start == datetime(2026, 10, 19, 9, 0, tzinfo=berlin).timestamp() == autumn - 169 * 3600
    assert period.before == datetime(2026, 10, 12, 9, 0, tzinfo=berlin).timestamp()
    assert period.end == autumn
    spring = datetime(2026, 3, 30, 9, 0, tzinfo=berlin).timestamp()
    assert services.report_period("weekly", spring, spring, berlin).start == spring - 167 * 3600
    # The scheduler says both ends (a zone the job could not read moves nothing); the week before as long.
    both = services.report_period("weekly", autumn + 5 * 3600, autumn, berlin, start=autumn - 169 * 3600)
    assert (both.start, both.end, both.before) == (autumn - 169 * 3600, autumn, autumn - 338 * 3600)
    # Asked for with /report: the seven days up to now.
    assert services.report_period("weekly", autumn) == services.ReportPeriod(autumn - 7 * 86400, autumn,
                                                                             autumn - 14 * 86400)


def _matches_in_the_sandbox(sandbox: FaceitSandbox, player_id: str, since: float, until: float = float("inf")) -> int:
    """The player's 5v5 matches finished from ``since`` to before ``until``, read from the sandbox page by page."""
    import urllib.request

    count, offset = 0, 0
    while True:
        url = f"{sandbox.base_url}/data/v4/players/{player_id}/games/cs2/stats?limit=100&offset={offset}"
        request = urllib.request.Request(url, headers={"Authorization": "Bearer sandbox-key"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            items = json.loads(reply.read())["items"]
        count += sum(1 for item in items if item["stats"].get("Game Mode", "5v5") == "5v5"
                     and since <= item["stats"]["Match Finished At"] / 1000 < until)
        if len(items) < 100:
            return count
        offset += 100


async def test_analytics_reports(sandbox: FaceitSandbox, progress: ProgressLog) -> None:
    player = sandbox.world()["players"][12]
    await store.subscribe(11, player["player_id"], player["nickname"])
    await store.record_analysis(11, "match")
    await store.record_analysis(11, "match")
    await store.record_analysis(11, "player")
    await store.record_analysis(12, "bulk")
    faceit_store = (await get_faceit_context()).store
    await faceit_store.record_analysis(11, "bulk", time.time() - 8 * 86400)  # the week before
    mine = await services.build_analytics_report(11, "weekly", progress)
    _check_result(mine, "analytics_report")
    assert mine["data"]["analyses"] == {"match": 2, "player": 1}
    tracked = mine["data"]["players"][0]
    assert tracked["player_id"] == player["player_id"] and tracked["matches"] >= 1 and tracked["elo"]
    assert "Сводка за неделю" in mine["texts"]["ru"][0]
    # Compared with the week before: the analyses then, and the player's matches then.
    assert mine["data"]["previous_analyses"] == {"bulk": 1}
    since = mine["data"]["since"]
    assert tracked["previous"]["matches"] == _matches_in_the_sandbox(sandbox, player["player_id"], since - 7 * 86400, since)
    assert "· the week before: 1" in mine["texts"]["en"][0]
    plain = await services.build_analytics_report(11, "weekly", progress, include_comparisons=False)
    assert plain["data"]["previous_analyses"] is None and plain["data"]["players"][0]["previous"] is None
    assert "the week before" not in plain["texts"]["en"][0]
    everyone = await services.build_analytics_report(None, "monthly", ProgressLog())
    assert sorted(n["user_id"] for n in everyone["notifications"]) == [11, 12]
    assert everyone["data"]["analyses"] == {"match": 2, "player": 1, "bulk": 2}  # 8 days ago is in the month
    with pytest.raises(errors.BadInputError):
        await services.build_analytics_report(11, "daily", progress)


async def test_a_strict_upstream_limit_never_reaches_the_job(sandbox: FaceitSandbox, env_override: Any,
                                                             progress: ProgressLog) -> None:
    # Scaled down from the benchmark: burst 30 against an upstream that allows 20 requests/s.
    await close_faceit_context()
    env_override(FACEIT_RATE_LIMIT="16", FACEIT_RATE_BURST="30")
    sandbox.faults(rate_limit_per_s=20)
    ids = sandbox.world()["matches"]["ONGOING"][1:3]
    results = await asyncio.gather(*(services.analyze_match(mid, ProgressLog()) for mid in ids))
    assert [r["data"]["state"] for r in results] == ["pre_game", "pre_game"]
    assert sandbox.stats()["statuses"].get("429", 0) > 0  # the limit did bite, and was absorbed


async def test_context_is_per_loop_and_closable(redis_client: redis.Redis) -> None:
    here = await get_faceit_context()
    assert await get_faceit_context() is here
    other: list[Any] = []

    def run() -> None:
        async def grab() -> None:
            other.append(await get_faceit_context())
            await close_faceit_context()

        asyncio.run(grab())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert other and other[0] is not here
    await close_faceit_context()
    assert await get_faceit_context() is not here


async def test_a_run_whose_result_was_never_stored_loses_no_notice(sandbox: FaceitSandbox,
                                                                  progress: ProgressLog) -> None:
    """The player moved on when the run ended, before its result (the notices) was stored: a
    worker dying in between, and the retry found nothing new. Now the delivery moves them on."""
    pid, _, start = await _followed_from_now(sandbox, player=16, user=31)
    state = await (await get_faceit_context()).store.monitor_state(pid)
    finished = sandbox.finish_match(player_id=pid, won=True, at=start)
    lost = await services.monitor_matches([31], ProgressLog())  # its worker dies: never delivered
    assert [n["match_id"] for n in lost["notifications"]] == [finished["match_id"]]
    assert await (await get_faceit_context()).store.monitor_state(pid) == state  # not moved on yet
    retried = await _monitor([31], ProgressLog())
    assert [n["match_id"] for n in retried["notifications"]] == [finished["match_id"]]  # found again
    assert retried["marks"][pid]["match_id"] == finished["match_id"]
    assert (await _monitor([31], ProgressLog()))["notifications"] == []  # delivered: moved on
    # An older run's delivery, late, does not move the player back.
    assert await (await get_faceit_context()).store.advance_monitoring({pid: state}) == 0
    assert (await (await get_faceit_context()).store.monitor_state(pid))["match_id"] == finished["match_id"]


async def test_the_summaries_for_everyone_read_a_followed_player_once(sandbox: FaceitSandbox,
                                                                      redis_client: redis.Redis) -> None:
    """Each follower's summary read the player's matches, Elo history and profile again (pages
    after the first straight from FACEIT), over twice the period since the comparisons. One more
    follower now costs that user's own activity read, and nothing more of the player."""
    player = sandbox.world()["players"][14]

    def reads() -> int:  # ZRANGEBYSCORE: a user's activity, a player's Elo history
        return int(redis_client.info("commandstats").get("cmdstat_zrangebyscore", {}).get("calls", 0))

    async def everyone() -> int:
        before = reads()
        report = await services.build_analytics_report(None, "weekly", ProgressLog())
        assert report["notifications"]
        return reads() - before

    await store.subscribe(21, player["player_id"], player["nickname"])
    one_follower = await everyone()
    await store.subscribe(22, player["player_id"], player["nickname"])
    assert await everyone() == one_follower + 1


async def test_a_monitoring_run_out_of_time_tells_what_it_found_and_the_next_starts_with_the_rest(
        sandbox: FaceitSandbox, progress: ProgressLog) -> None:
    """More followed players than the rate limit scans within the time limit had every run killed
    at its limit, none telling anything, the next one dying at the same place. A run now stops
    starting scans at its budget, tells what it found, and the next run starts where it stopped."""
    sample = sandbox.world()["players"][8:20]
    players = sorted(p["player_id"] for p in sample)
    nicknames = {p["player_id"]: p["nickname"] for p in sample}
    for i, pid in enumerate(players):
        await store.subscribe(500 + i, pid, nicknames[pid])
    base = await _monitor(None, progress)
    assert base["data"]["baselined"] == 12, base["data"]
    # Past every baseline: other tests' matches (lobbies of ten, some stamped minutes ahead) may
    # have moved some of these players' newest match past now.
    marks = [await (await get_faceit_context()).store.monitor_state(pid) for pid in players]
    later = max([time.time(), *(float(m["finished_at"] or 0) for m in marks if m)]) + 1
    for pid in players:
        sandbox.finish_match(player_id=pid, won=True, at=later)
    sandbox.faults(latency_ms=1000)  # the 8 scans at once (MONITOR_CONCURRENCY) take longer than the budget

    def told(result: dict[str, Any]) -> list[str]:
        return sorted({n["player_id"] for n in result["notifications"]})

    first = await services.monitor_matches(None, ProgressLog(), budget=0.5)
    await (await get_faceit_context()).store.advance_monitoring(first["marks"])
    assert (first["data"]["checked"], first["data"]["left"]) == (8, 4)
    assert told(first) == players[:8], first["data"]
    assert "checked 8 of 12 players" in first["texts"]["en"][0]

    second = await services.monitor_matches(None, ProgressLog(), budget=0.5)  # starts with the 4 left
    await (await get_faceit_context()).store.advance_monitoring(second["marks"])
    assert (second["data"]["checked"], second["data"]["left"]) == (8, 4)
    assert told(second) == players[8:], second["data"]  # the first four again: nothing new to tell of them

    sandbox.faults(latency_ms=0)
    third = await _monitor(None, ProgressLog())  # no budget: everyone, from players[4] round to players[3]
    assert (third["data"]["checked"], third["data"]["left"], third["notifications"]) == (12, 0, [])
    assert await (await get_faceit_context()).store.sweep_resume("monitoring") is None


async def test_a_cache_sweep_out_of_time_starts_the_next_with_the_players_it_left(
        sandbox: FaceitSandbox, progress: ProgressLog) -> None:
    """The hourly sweep of every followed player, past what the low lane refreshes within the time
    limit, was killed at its limit having refreshed the same first players each hour."""
    sample = sandbox.world()["players"][8:20]
    players = sorted(p["player_id"] for p in sample)
    for i, player in enumerate(sample):
        await store.subscribe(700 + i, player["player_id"], player["nickname"])
    ctx = await get_faceit_context()
    sandbox.faults(latency_ms=1000)  # the 4 refreshes at once (CACHE_UPDATE_CONCURRENCY) outlast the budget

    first = await services.update_cache("player", None, ProgressLog(), budget=0.5)
    assert (first["data"]["total"], first["data"]["refreshed"], first["data"]["left"]) == (12, 4, 8)
    assert await ctx.store.sweep_resume("cache:profile+lifetime+recent") == players[4]
    second = await services.update_cache("players", None, ProgressLog(), budget=0.5)  # the same sweep, by its alias
    assert (second["data"]["refreshed"], second["data"]["left"]) == (4, 8)
    assert await ctx.store.sweep_resume("cache:profile+lifetime+recent") == players[8]

    sandbox.faults(latency_ms=0)
    sandbox.reset()
    third = await services.update_cache("player", None, ProgressLog())
    assert (third["data"]["refreshed"], "left" in third["data"]) == (12, False)
    assert await ctx.store.sweep_resume("cache:profile+lifetime+recent") is None
    named = await services.update_cache("player", players[:2], ProgressLog(), budget=0.0)  # named ones: no sweep
    assert named["data"]["left"] == 2 and await ctx.store.sweep_resume("cache:profile+lifetime+recent") is None

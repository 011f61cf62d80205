"""The sandbox Data API: shapes and traps of docs/faceit-api.md, key check, faults, determinism."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from faceit.gamedata import level_for_elo
from sandbox.faceit_world import World
from tests.support.faceit_sandbox import FaceitSandbox


def _get(sandbox: FaceitSandbox, path: str, key: str | None = "default") -> tuple[int, Any, dict[str, str]]:
    headers = {} if key is None else {"Authorization": f"Bearer {sandbox.key if key == 'default' else key}"}
    request = urllib.request.Request(f"{sandbox.api_url}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null"), dict(exc.headers)


def test_world_is_deterministic_small_and_consistent() -> None:
    """The same seed builds the same world, another seed another one. The world stays small, as
    every sandbox start (and a reset asking for a new world) builds it: a few hundred players,
    each with a history of at most 30 matches, and at most a thousand matches in all."""
    first = World(seed=7, now=1_750_000_000)
    second = World(seed=7, now=1_750_000_000)
    assert first.sample() == second.sample()
    assert World(seed=8, now=1_750_000_000).sample()["nicknames"] != first.sample()["nicknames"]
    counts = first.sample()["counts"]
    assert 200 <= counts["players"] == len(first.players) <= 500
    assert 0 < counts["matches"] == len(first.matches) <= 1000
    assert max(len(player.matches) for player in first.players.values()) <= 30
    for player in first.players.values():
        assert player.level == level_for_elo(player.elo)
        assert 1 <= player.level <= 10
        assert 2 <= len(player.nickname) <= 16
    statuses = {m.status for m in first.matches.values()}
    assert statuses >= {"CHECK_IN", "VOTING", "CONFIGURING", "READY", "ONGOING", "FINISHED", "CANCELLED", "ABORTED"}


def test_key_is_checked(sandbox: FaceitSandbox) -> None:
    pid = sandbox.world()["players"][0]["player_id"]
    assert _get(sandbox, f"/players/{pid}", key=None)[0] == 401
    status, body, _ = _get(sandbox, f"/players/{pid}", key="wrong")
    assert status == 401 and body["errors"][0]["http_status"] == 401
    assert _get(sandbox, f"/players/{pid}")[0] == 200


def test_shapes_follow_the_api_notes(sandbox: FaceitSandbox) -> None:
    world = sandbox.world()
    player = world["players"][0]
    status, profile, _ = _get(sandbox, f"/players?nickname={player['nickname']}&game=cs2")
    assert status == 200 and profile["games"]["cs2"]["faceit_elo"] == player["elo"]
    assert "{lang}" in profile["faceit_url"]
    assert _get(sandbox, f"/players?nickname={player['nickname'].swapcase()}&game=cs2")[0] == 404  # case-sensitive
    status, body, _ = _get(sandbox, "/players/nope")
    assert status == 404 and body["errors"][0]["code"] == "err_nf0"

    _, life, _ = _get(sandbox, f"/players/{player['player_id']}/stats/cs2")
    assert all(isinstance(v, str) for k, v in life["lifetime"].items() if k != "Recent Results")
    assert float(life["lifetime"]["K/D Ratio"]) > 10 * float(life["lifetime"]["Average K/D Ratio"])  # the sum trap
    assert {s["mode"] for s in life["segments"]} == {"5v5", "Wingman"}
    assert "Mirage" in {s["label"] for s in life["segments"]}

    _, games, _ = _get(sandbox, f"/players/{player['player_id']}/games/cs2/stats?limit=30&offset=0")
    items = [i["stats"] for i in games["items"]]
    assert len(items) == 30 and (games["start"], games["end"]) == (0, 30)
    assert isinstance(items[0]["Match Finished At"], int) and items[0]["Match Finished At"] > 10**12  # ms
    assert items[0]["Map"].startswith("de_") and isinstance(items[0]["Kills"], str)
    assert "ADR" in items[0] and "ADR" not in items[-1]  # extended keys only on recent matches

    _, history, _ = _get(sandbox, f"/players/{player['player_id']}/history?game=cs2&limit=5")
    item = history["items"][0]
    assert item["status"] == "finished" and "players" in item["teams"]["faction1"]
    assert "skill_level" in item["teams"]["faction1"]["players"][0]
    assert len(history["items"]) == 5
    _, everything, _ = _get(sandbox, f"/players/{player['player_id']}/history?game=cs2&limit=100&from=0")
    assert len(everything["items"]) > len(_get(sandbox, f"/players/{player['player_id']}/history?limit=100")[1]["items"])

    _, match, _ = _get(sandbox, f"/matches/{item['match_id']}")
    assert match["status"] == "FINISHED" and match["results"]["winner"] in ("faction1", "faction2")
    assert len(match["teams"]["faction1"]["roster"]) == 5 and "faceit_elo" not in match["teams"]["faction1"]["roster"][0]
    assert match["voting"]["map"]["pick"][0].startswith("de_")
    _, stats, _ = _get(sandbox, f"/matches/{item['match_id']}/stats")
    rnd = stats["rounds"][0]
    assert rnd["round_stats"]["Winner"] == match["teams"][match["results"]["winner"]]["faction_id"]
    assert " / " in rnd["round_stats"]["Score"]

    _, voting, _ = _get(sandbox, f"/matches/{world['matches']['VOTING'][0]}")
    assert "pick" not in voting["voting"]["map"] and len(voting["voting"]["map"]["entities"]) == 7
    _, check_in, _ = _get(sandbox, f"/matches/{world['matches']['CHECK_IN'][0]}")
    assert "voting" not in check_in
    assert _get(sandbox, f"/matches/{world['matches']['VOTING'][0]}/stats")[0] == 404
    legacy = world["matches"]["LEGACY"][0]
    assert _get(sandbox, f"/matches/1-{legacy}")[0] == 404 and _get(sandbox, f"/matches/{legacy}")[0] == 200


def test_faults_and_counters(sandbox: FaceitSandbox) -> None:
    pid = sandbox.world()["players"][0]["player_id"]
    sandbox.faults(error_rate=1.0, status=503, count=2, path=r"^/players/[^/]+$")
    assert _get(sandbox, f"/players/{pid}/stats/cs2")[0] == 200  # path does not match
    assert [_get(sandbox, f"/players/{pid}")[0] for _ in range(3)] == [503, 503, 200]
    sandbox.faults(error_rate=1.0, status=429, retry_after=2, count=1)
    status, _, headers = _get(sandbox, f"/players/{pid}")
    assert status == 429 and headers["Retry-After"] == "2"
    stats = sandbox.stats()
    assert stats["calls"]["player"] == 4 and stats["calls"]["player_stats"] == 1
    assert stats["statuses"] == {"200": 2, "503": 2, "429": 1}
    sandbox.reset()
    assert sandbox.calls() == 0

    sandbox.faults(latency_ms=150)
    started = time.perf_counter()
    _get(sandbox, f"/players/{pid}")
    assert time.perf_counter() - started >= 0.15

    sandbox.faults(rate_limit_per_s=3)
    codes = [_get(sandbox, f"/players/{pid}")[0] for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]


def test_finish_match_moves_elo_and_history(sandbox: FaceitSandbox) -> None:
    player = sandbox.world()["players"][15]
    before = _get(sandbox, f"/players/{player['player_id']}")[1]["games"]["cs2"]["faceit_elo"]
    result = sandbox.finish_match(nickname=player["nickname"], won=True)
    after = _get(sandbox, f"/players/{player['player_id']}")[1]["games"]["cs2"]["faceit_elo"]
    assert after - before == result["elo_changes"][player["player_id"]] > 0
    _, games, _ = _get(sandbox, f"/players/{player['player_id']}/games/cs2/stats?limit=1")
    assert games["items"][0]["stats"]["Match Id"] == result["match_id"]
    assert games["items"][0]["stats"]["Result"] == "1"
    ongoing = sandbox.world()["matches"]["ONGOING"][-1]
    assert sandbox.finish_match(match_id=ongoing)["match_id"] == ongoing
    assert _get(sandbox, f"/matches/{ongoing}")[1]["status"] == "FINISHED"
    with pytest.raises(urllib.error.HTTPError):
        sandbox.finish_match(match_id=ongoing)


def test_subprocess_mode_and_cli() -> None:
    with FaceitSandbox(subprocess=True, key="other-key") as server:
        assert server.world()["counts"]["players"] == 300
        assert _get(server, f"/players/{server.world()['players'][0]['player_id']}")[0] == 200
        assert server.env() == {"FACEIT_API_URL": server.api_url, "FACEIT_API_KEY": "other-key"}

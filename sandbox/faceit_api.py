"""A local stand-in for the FACEIT Data API v4 (aiohttp.web), over a deterministic world.

Serves the endpoints and shapes of ``docs/faceit-api.md`` under ``/data/v4`` (so
``FACEIT_API_URL=http://127.0.0.1:<port>/data/v4``), checks ``Authorization: Bearer <key>``
(401 otherwise; the key is ``--key``, default ``sandbox-key``), and answers errors in FACEIT's
``{"errors":[{"message","code","http_status","parameters"}]}`` form.

Control endpoints (no key) for tests and benchmarks:

* ``GET /_sandbox/world`` — sample match ids by status (plus ``LEGACY`` bare-UUID rooms),
  nicknames, players;
* ``GET /_sandbox/stats`` — Data API calls per endpoint and per status since the last reset;
* ``POST /_sandbox/reset`` — zero the counters and clear faults (``{"world": true}`` also rebuilds
  the world);
* ``POST /_sandbox/faults`` — JSON ``latency_ms``, ``error_rate`` with ``status`` (default 500)
  and ``retry_after``, ``timeout_rate`` (answer after ``timeout_ms``, default 30 s), ``path``
  (a regular expression the API path must match), ``count`` (stop after that many injected
  faults), ``rate_limit_per_s`` (strict: 429 with ``Retry-After: 1`` above N accepted
  requests in any one-second window), ``seed``. An empty object clears the faults;
* ``POST /_sandbox/finish_match`` — ``{"player_id"|"nickname", "won"?, "at"?, "hold_elo"?, "mode"?}``
  makes the player finish a new match now (or at the Unix time ``at``; Elo moves), or
  ``{"match_id"}`` finishes a live lobby. ``hold_elo``: the profiles' Elo lags (as FACEIT's
  sometimes does) until the next match finished without it. ``mode``: another Game Mode than
  ``5v5`` (``"Wingman"``): its lines say so, and the 5v5 Elo does not move.

Run ``python -m sandbox.faceit_api --port 8081``; it prints a few match ids and nicknames.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import random
import re
import time
from typing import Any

from aiohttp import web

from sandbox.faceit_world import World

log = logging.getLogger(__name__)

PREFIX = "/data/v4"
DEFAULT_KEY = "sandbox-key"


def _error(status: int, message: str, code: str) -> web.Response:
    body = {"errors": [{"message": message, "code": code, "http_status": status, "parameters": []}]}
    return web.json_response(body, status=status)


def _not_found() -> web.Response:
    return _error(404, "The resource was not found.", "err_nf0")


class Faults:
    """The injected misbehaviour (see the module docstring)."""

    def __init__(self, spec: dict[str, Any] | None = None) -> None:
        spec = spec or {}
        self.latency = float(spec.get("latency_ms", 0)) / 1000
        self.error_rate = float(spec.get("error_rate", 0))
        self.status = int(spec.get("status", 500))
        self.retry_after = spec.get("retry_after")
        self.timeout_rate = float(spec.get("timeout_rate", 0))
        self.timeout = float(spec.get("timeout_ms", 30_000)) / 1000
        self.path = re.compile(spec["path"]) if spec.get("path") else None
        self.count = int(spec["count"]) if spec.get("count") is not None else None
        self.rate_limit = float(spec["rate_limit_per_s"]) if spec.get("rate_limit_per_s") else None
        self.rng = random.Random(int(spec.get("seed", 0)))
        self.spec = spec

    def applies(self, path: str) -> bool:
        return self.path is None or bool(self.path.search(path))

    def take(self) -> bool:
        """Whether one more injected fault is allowed (``count``)."""
        if self.count is None:
            return True
        if self.count <= 0:
            return False
        self.count -= 1
        return True


class SandboxFaceitAPI:
    """The application and its state; ``app`` is the aiohttp application."""

    def __init__(self, key: str = DEFAULT_KEY, seed: int = 42, players: int = 300, lobbies: int = 1) -> None:
        self.key = key
        self.seed = seed
        self.player_count = players
        self.lobbies = lobbies
        self.world = World(seed=seed, players=players, lobbies=lobbies)
        self.faults = Faults()
        self.calls: collections.Counter[str] = collections.Counter()
        self.statuses: collections.Counter[str] = collections.Counter()
        self.accepted: collections.deque[float] = collections.deque()
        self.app = web.Application(middlewares=[self._middleware])
        r = self.app.router
        # Route names are the endpoint names counted in /_sandbox/stats.
        r.add_get(f"{PREFIX}/players", self.players_by_nickname, name="player_by_nickname")
        r.add_get(f"{PREFIX}/players/{{player_id}}", self.player, name="player")
        r.add_get(f"{PREFIX}/players/{{player_id}}/stats/{{game}}", self.player_stats, name="player_stats")
        r.add_get(f"{PREFIX}/players/{{player_id}}/games/{{game}}/stats", self.player_games_stats,
                  name="player_games_stats")
        r.add_get(f"{PREFIX}/players/{{player_id}}/history", self.player_history, name="player_history")
        r.add_get(f"{PREFIX}/matches/{{match_id}}", self.match, name="match")
        r.add_get(f"{PREFIX}/matches/{{match_id}}/stats", self.match_stats, name="match_stats")
        r.add_get("/_sandbox/world", self.control_world)
        r.add_get("/_sandbox/stats", self.control_stats)
        r.add_post("/_sandbox/reset", self.control_reset)
        r.add_post("/_sandbox/faults", self.control_faults)
        r.add_post("/_sandbox/finish_match", self.control_finish)

    # Middleware: key, faults, counting -------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith(PREFIX):
            return await handler(request)
        endpoint = request.match_info.route.name or "unknown"
        self.calls[endpoint] += 1
        self.calls["total"] += 1
        response = await self._answer(request, handler)
        self.statuses[str(response.status)] += 1
        return response

    async def _answer(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return _error(401, "Unauthorized", "err_unauthorized")
        faults = self.faults
        path = request.path[len(PREFIX):]
        if faults.applies(path):
            if faults.latency:
                await asyncio.sleep(faults.latency)
            if faults.rate_limit is not None:
                now = time.monotonic()
                while self.accepted and self.accepted[0] <= now - 1.0:
                    self.accepted.popleft()
                if len(self.accepted) >= faults.rate_limit:
                    response = _error(429, "Too many requests", "err_too_many_requests")
                    response.headers["Retry-After"] = "1"
                    return response
                self.accepted.append(now)
            roll = faults.rng.random()
            if roll < faults.timeout_rate and faults.take():
                await asyncio.sleep(faults.timeout)
            elif roll < faults.timeout_rate + faults.error_rate and faults.take():
                response = _error(faults.status, "Injected failure", f"err_injected_{faults.status}")
                if faults.retry_after is not None:
                    response.headers["Retry-After"] = str(faults.retry_after)
                return response
        return await handler(request)

    # Data API ------------------------------------------------------------------------------------

    def _player(self, request: web.Request) -> Any:
        return self.world.players.get(request.match_info["player_id"])

    async def players_by_nickname(self, request: web.Request) -> web.Response:
        nickname = request.query.get("nickname")
        if not nickname:
            return _error(400, "nickname or game_player_id is required", "err_br0")
        player = self.world.by_nickname.get(nickname)  # case-sensitive, like FACEIT
        game = request.query.get("game")
        if player is None or (game == "cs2" and not player.has_cs2):
            return _not_found()
        return web.json_response(self.world.player_json(player))

    async def player(self, request: web.Request) -> web.Response:
        player = self._player(request)
        return web.json_response(self.world.player_json(player)) if player else _not_found()

    async def player_stats(self, request: web.Request) -> web.Response:
        player = self._player(request)
        if player is None or request.match_info["game"] != "cs2" or not player.has_cs2:
            return _not_found()
        return web.json_response(self.world.lifetime_json(player))

    async def player_games_stats(self, request: web.Request) -> web.Response:
        player = self._player(request)
        if player is None or request.match_info["game"] != "cs2" or not player.has_cs2:
            return _not_found()
        limit, offset = _int(request, "limit", 20), _int(request, "offset", 0)
        if not 1 <= limit <= 100 or offset < 0:
            return _error(400, "limit must be between 1 and 100", "err_br1")
        return web.json_response(self.world.games_stats_json(player, limit, offset))

    async def player_history(self, request: web.Request) -> web.Response:
        player = self._player(request)
        if player is None:
            return _not_found()
        limit, offset = _int(request, "limit", 20), _int(request, "offset", 0)
        if not 1 <= limit <= 100 or not 0 <= offset <= 1000:
            return _error(400, "bad offset or limit", "err_br1")
        since = request.query.get("from")
        until = request.query.get("to")
        return web.json_response(self.world.history_json(
            player, offset, limit, int(since) if since and since.isdigit() else None,
            int(until) if until and until.isdigit() else None))

    async def match(self, request: web.Request) -> web.Response:
        match = self.world.matches.get(request.match_info["match_id"])
        return web.json_response(self.world.match_json(match)) if match else _not_found()

    async def match_stats(self, request: web.Request) -> web.Response:
        match = self.world.matches.get(request.match_info["match_id"])
        if match is None or match.status != "FINISHED":
            return _not_found()
        return web.json_response(self.world.match_stats_json(match))

    # Control -------------------------------------------------------------------------------------

    async def control_world(self, request: web.Request) -> web.Response:
        return web.json_response(self.world.sample())

    async def control_stats(self, request: web.Request) -> web.Response:
        calls = dict(self.calls)
        return web.json_response({"calls": calls, "total": calls.get("total", 0),
                                  "statuses": dict(self.statuses), "faults": self.faults.spec})

    async def control_reset(self, request: web.Request) -> web.Response:
        body = await _body(request)
        self.calls.clear()
        self.statuses.clear()
        self.accepted.clear()
        self.faults = Faults()
        self.world.settle_elo()  # a lag a test left behind does not outlive it
        if body.get("world"):
            self.world = World(seed=self.seed, players=self.player_count, lobbies=self.lobbies)
        return web.json_response({"ok": True})

    async def control_faults(self, request: web.Request) -> web.Response:
        try:
            self.faults = Faults(await _body(request))
        except (ValueError, TypeError, re.error) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self.accepted.clear()
        return web.json_response({"ok": True, "faults": self.faults.spec})

    async def control_finish(self, request: web.Request) -> web.Response:
        body = await _body(request)
        player_id = body.get("player_id")
        if body.get("nickname"):
            player = self.world.by_nickname.get(body["nickname"])
            player_id = player.player_id if player else None
        try:
            at = body.get("at")
            result = self.world.finish_match(player_id=player_id, match_id=body.get("match_id"), won=body.get("won"),
                                             now=float(at) if at is not None else None,
                                             hold_elo=bool(body.get("hold_elo")),
                                             mode=str(body.get("mode") or "5v5"))
        except (KeyError, ValueError, TypeError) as exc:
            return web.json_response({"error": f"cannot finish: {exc}"}, status=400)
        return web.json_response(result)


def _int(request: web.Request, name: str, default: int) -> int:
    try:
        return int(request.query.get(name, default))
    except ValueError:
        return -1


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = json.loads(await request.text() or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def create_app(key: str = DEFAULT_KEY, seed: int = 42, players: int = 300,
               lobbies: int = 1) -> tuple[web.Application, SandboxFaceitAPI]:
    api = SandboxFaceitAPI(key=key, seed=seed, players=players, lobbies=lobbies)
    return api.app, api


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Sandbox FACEIT Data API v4")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--key", default=DEFAULT_KEY, help="the accepted API key (Bearer)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--players", type=int, default=300)
    parser.add_argument("--lobbies", type=int, default=1, help="multiply the live lobbies (16 per unit)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    app, api = create_app(key=args.key, seed=args.seed, players=args.players, lobbies=args.lobbies)
    sample = api.world.sample()
    print(f"Sandbox FACEIT Data API on http://{args.host}:{args.port}{PREFIX}  (key: {args.key})")
    print(f"FACEIT_API_URL=http://{args.host}:{args.port}{PREFIX}")
    for status in ("VOTING", "READY", "ONGOING", "FINISHED", "CANCELLED"):
        ids = sample["matches"].get(status, [])[:2]
        for mid in ids:
            print(f"  {status:<9} https://www.faceit.com/en/cs2/room/{mid}")
    print("  nicknames: " + ", ".join(sample["nicknames"][:8]), flush=True)
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()

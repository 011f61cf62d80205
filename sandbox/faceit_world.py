"""A deterministic synthetic FACEIT CS2 world for the sandbox Data API.

From a seed: a few hundred players whose Elo agrees with the level table and whose stats follow
their skill, 30 finished 5v5 matches each (lobbies of similar Elo), a few live lobbies in every
pre-game state (CHECK_IN, VOTING, CONFIGURING, READY, ONGOING), some CANCELLED/ABORTED ones,
and two very old rooms with bare-UUID ids. Per-player match lines are generated lazily from
``(seed, match, player)``, so building the world takes a few tens of milliseconds.

The JSON produced here follows ``docs/faceit-api.md``: every stat a string,
``Match Finished At`` in epoch milliseconds, ``roster`` in ``/matches`` and ``players`` in
``/history``, map labels ``"Mirage"`` in lifetime segments and ``"de_mirage"`` elsewhere,
extended keys (ADR, entry, clutch, utility) only on matches newer than about 40 days.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from faceit.gamedata import ACTIVE_MAP_POOL, level_for_elo, map_label

EXTRA_MAPS = ("de_vertigo", "de_overpass")
WINGMAN_MAPS = ("Shortdust", "Vertigo")
COUNTRIES = ("de", "pl", "ru", "ua", "fr", "se", "dk", "fi", "gb", "es", "pt", "br", "us", "kz", "cz", "tr")
REGIONS = ("EU", "EU", "EU", "NA", "SA")
LEGACY_DAYS = 40  # matches older than this lack the extended stat keys (ADR, entry, clutch…)
_SYLLABLES = ("ka", "ro", "zed", "mi", "lo", "vex", "tor", "nia", "sh", "ak", "ra", "ez", "qu", "ly", "pe",
              "dro", "fa", "nox", "gi", "ul", "bo", "sy", "ter", "xo", "ve", "dan", "ki", "mo", "ra", "le")


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _fmt(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if digits else str(int(round(value)))


@dataclass
class Player:
    player_id: str
    nickname: str
    elo: int
    country: str
    region: str
    steam_id: str
    activated_at: str
    kpr: float
    dpr: float
    apr: float
    hs: float
    adr_per_kill: float
    lifetime_matches: int
    map_bias: dict[str, float]
    has_cs2: bool = True
    deprecated_fields: bool = False
    matches: list[str] = field(default_factory=list)  # finished match ids, oldest first

    @property
    def level(self) -> int:
        return level_for_elo(self.elo) or 1


@dataclass
class Team:
    faction_id: str
    name: str
    players: list[str]


@dataclass
class WorldMatch:
    match_id: str
    status: str
    teams: dict[str, Team]
    map: str
    pool: list[str]
    location: str
    region: str
    configured_at: int
    started_at: int | None
    finished_at: int | None
    winner: str | None = None
    score: dict[str, int] = field(default_factory=dict)  # rounds per faction
    team_stats: bool = True  # whether /matches carries teams.*.stats (rating, winProbability)
    win_probability: float = 0.5  # of faction1
    mode: str = "5v5"  # the Game Mode its lines carry ("Wingman": the 5v5 Elo does not move)


class World:
    """The synthetic world (see the module docstring). ``now`` anchors every timestamp."""

    def __init__(self, seed: int = 42, players: int = 300, rounds: int = 30, now: float | None = None,
                 lobbies: int = 1) -> None:
        self.seed = seed
        self.lobbies = max(1, lobbies)
        self.now = int(now if now is not None else time.time())
        self.rng = random.Random(seed)
        self.players: dict[str, Player] = {}
        self.by_nickname: dict[str, Player] = {}
        self.matches: dict[str, WorldMatch] = {}
        self._lines: dict[tuple[str, str], dict[str, Any]] = {}
        self._held_elo: dict[str, int] = {}  # Elo changes FACEIT has not applied yet (finish_match hold_elo)
        self._make_players(players)
        self._make_history(rounds)
        self._make_live()

    # Building ---------------------------------------------------------------------------------

    def _nickname(self) -> str:
        rng = self.rng
        while True:
            parts = [rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))]
            name = "".join(parts)
            if rng.random() < 0.5:
                name = name.capitalize()
            roll = rng.random()
            if roll < 0.2:
                name += str(rng.randint(1, 999))
            elif roll < 0.3:
                name += "_" + rng.choice(_SYLLABLES)
            elif roll < 0.35:
                name = name + "-" + rng.choice(("pro", "x", "tv", "cs"))
            name = name[:12]
            if len(name) >= 3 and name.lower() not in {n.lower() for n in self.by_nickname}:
                return name

    def _make_players(self, count: int) -> None:
        rng = self.rng
        for i in range(count):
            elo = int(min(3400, max(100, rng.gauss(1350, 430))))
            z = (elo - 1350) / 430
            kpr = min(1.2, max(0.35, 0.68 + 0.09 * z + rng.gauss(0, 0.05)))
            dpr = min(0.95, max(0.45, 0.70 - 0.05 * z + rng.gauss(0, 0.03)))
            player = Player(
                player_id=_uuid(rng),
                nickname=self._nickname(),
                elo=elo,
                country=rng.choice(COUNTRIES),
                region=rng.choice(REGIONS),
                steam_id=str(76561197960265728 + rng.randint(10_000_000, 900_000_000)),
                activated_at=datetime.fromtimestamp(self.now - rng.randint(200, 3000) * 86400, UTC)
                .strftime("%Y-%m-%dT%H:%M:%SZ"),
                kpr=kpr,
                dpr=dpr,
                apr=min(0.35, max(0.05, rng.gauss(0.15, 0.04))),
                hs=min(75.0, max(20.0, rng.gauss(46, 8))),
                adr_per_kill=rng.gauss(104, 6),
                lifetime_matches=rng.randint(60, 3000),
                map_bias={m: rng.gauss(0, 0.07) for m in (*ACTIVE_MAP_POOL, *EXTRA_MAPS)},
                has_cs2=i % 97 != 96,  # a few CS:GO-only accounts: /players?game=cs2 → 404
                deprecated_fields=i % 3 == 0,
            )
            self.players[player.player_id] = player
            self.by_nickname[player.nickname] = player

    def _split(self, ids: list[str]) -> tuple[list[str], list[str]]:
        ranked = sorted(ids, key=lambda pid: -self.players[pid].elo)
        pattern = (0, 1, 1, 0, 0, 1, 1, 0, 0, 1)  # snake draft keeps the teams close
        a = [pid for pid, side in zip(ranked, pattern, strict=True) if side == 0]
        b = [pid for pid, side in zip(ranked, pattern, strict=True) if side == 1]
        if self.rng.random() < 0.5:
            a, b = b, a
        return a, b

    def _team(self, ids: list[str]) -> Team:
        return Team(_uuid(self.rng), f"team_{self.players[ids[0]].nickname}", ids)

    def _avg(self, ids: list[str]) -> float:
        return sum(self.players[p].elo for p in ids) / len(ids)

    def _new_match(self, ids: list[str], status: str, finished_at: int | None, match_id: str | None = None,
                   pool: list[str] | None = None) -> WorldMatch:
        rng = self.rng
        a, b = self._split(ids)
        pool = pool or list(ACTIVE_MAP_POOL)
        p1 = 1 / (1 + 10 ** ((self._avg(b) - self._avg(a)) / 400))
        configured = (finished_at or self.now) - rng.randint(2400, 3300)
        match = WorldMatch(
            match_id=match_id or f"1-{_uuid(rng)}",
            status=status,
            teams={"faction1": self._team(a), "faction2": self._team(b)},
            map=rng.choice(pool),
            pool=pool,
            location=rng.choice(("Germany", "Netherlands", "France", "Sweden")),
            region="EU",
            configured_at=configured,
            started_at=configured + 120 if status in ("ONGOING", "FINISHED") else None,
            finished_at=finished_at,
            team_stats=rng.random() < 0.8,
            win_probability=round(p1, 2),
        )
        if status == "FINISHED":
            self._decide(match, p1)
        self.matches[match.match_id] = match
        return match

    def _decide(self, match: WorldMatch, p1: float, winner: str | None = None) -> None:
        rng = self.rng
        winner = winner or ("faction1" if rng.random() < p1 else "faction2")
        loser = "faction2" if winner == "faction1" else "faction1"
        if rng.random() < 0.12:
            extra = 3 * rng.randint(1, 2)
            match.score = {winner: 13 + extra, loser: 11 + extra}
        else:
            match.score = {winner: 13, loser: rng.randint(2, 11)}
        match.winner = winner

    def _make_history(self, rounds: int) -> None:
        rng = self.rng
        ids = [p.player_id for p in self.players.values() if p.has_cs2]
        ids = ids[: len(ids) - len(ids) % 10]
        for r in range(rounds):
            base = self.now - (rounds - r) * 2 * 86400
            order = sorted(ids, key=lambda pid: self.players[pid].elo + rng.gauss(0, 120))
            for start in range(0, len(order), 10):
                lobby = order[start:start + 10]
                match = self._new_match(lobby, "FINISHED", base + rng.randint(0, 86400))
                for pid in lobby:
                    self.players[pid].matches.append(match.match_id)
        for player in self.players.values():
            player.matches.sort(key=lambda mid: self.matches[mid].finished_at or 0)
        # Two very old rooms whose id is a bare UUID (no "1-").
        old = ids[:10]
        for _ in range(2):
            self._new_match(old, "FINISHED", self.now - 900 * 86400, match_id=_uuid(rng))

    def _make_live(self) -> None:
        rng = self.rng
        free = [p.player_id for p in self.players.values() if p.has_cs2]
        rng.shuffle(free)
        plan = (["CHECK_IN"] * 2 + ["VOTING"] * 3 + ["CONFIGURING"] + ["READY"] * 2 + ["ONGOING"] * 4
                + ["CANCELLED"] * 3 + ["ABORTED"]) * self.lobbies
        for i, status in enumerate(plan):
            # Lobbies take distinct players while there are enough (benchmarks ask for more lobbies).
            lobby = [free[(i * 10 + j) % len(free)] for j in range(10)]
            if len(set(lobby)) < 10:
                lobby = rng.sample(free, 10)
            self._new_match(sorted(lobby, key=lambda pid: self.players[pid].elo), status, None)

    # Mutations (control endpoints) ------------------------------------------------------------

    def settle_elo(self) -> None:
        """Apply the Elo changes held back by ``finish_match(hold_elo=True)``."""
        for pid, held in self._held_elo.items():
            self.players[pid].elo = max(100, self.players[pid].elo + held)
        self._held_elo.clear()

    def finish_match(self, player_id: str | None = None, match_id: str | None = None,
                     won: bool | None = None, now: float | None = None, hold_elo: bool = False,
                     mode: str = "5v5") -> dict[str, Any]:
        """Make a player finish a new match now (or finish a live lobby); Elo moves by K = 50.

        ``hold_elo``: the match's stats are there but the profiles' Elo is not updated yet, as
        FACEIT sometimes lags; the held changes apply at the next match finished without it.
        ``mode``: another Game Mode than "5v5" (a new match only, "Wingman"): its lines say so, and
        the 5v5 Elo does not move (``elo_changes`` is empty).
        """
        at = int(now if now is not None else time.time())
        five = mode.lower() == "5v5"
        if not five and match_id:
            raise ValueError("mode is for a new match, not a lobby")
        if not hold_elo and five:
            self.settle_elo()
        if match_id:
            match = self.matches[match_id]
            if match.status in ("FINISHED", "CANCELLED", "ABORTED"):
                raise ValueError(f"match {match_id} is already {match.status}")
            match.status = "FINISHED"
            match.finished_at = at
            match.started_at = match.started_at or at - 2400
        else:
            player = self.players[player_id or ""]
            others = sorted((p for p in self.players.values() if p.has_cs2 and p.player_id != player.player_id),
                            key=lambda p: abs(p.elo - player.elo))[:30]
            lobby = [player.player_id] + [p.player_id for p in self.rng.sample(others, 9)]
            match = self._new_match(lobby, "ONGOING", None)
            match.mode = mode
            match.status = "FINISHED"
            match.finished_at = at
            match.started_at = at - 2400
        ids = match.teams["faction1"].players + match.teams["faction2"].players
        p1 = 1 / (1 + 10 ** ((self._avg(match.teams["faction2"].players) - self._avg(match.teams["faction1"].players))
                             / 400))
        winner = None
        if won is not None and player_id:
            side = "faction1" if player_id in match.teams["faction1"].players else "faction2"
            winner = side if won else ("faction2" if side == "faction1" else "faction1")
        self._decide(match, p1, winner)
        changes = self._move_elo(match, p1, hold_elo) if five else {}  # another mode: the 5v5 Elo stays
        for pid in ids:
            self.players[pid].matches.append(match.match_id)
            self.players[pid].lifetime_matches += 1
        return {"match_id": match.match_id, "winner": match.winner, "elo_changes": changes}

    def _move_elo(self, match: WorldMatch, p1: float, hold_elo: bool) -> dict[str, int]:
        """Each player's Elo change for ``match`` (K = 50), applied now or held (``hold_elo``)."""
        changes: dict[str, int] = {}
        for key, p in (("faction1", p1), ("faction2", 1 - p1)):
            delta = round(50 * (1 - p)) if match.winner == key else -round(50 * p)
            for pid in match.teams[key].players:
                if hold_elo:
                    self._held_elo[pid] = self._held_elo.get(pid, 0) + delta
                else:
                    self.players[pid].elo = max(100, self.players[pid].elo + delta)
                changes[pid] = delta
        return changes

    # Lines ------------------------------------------------------------------------------------

    def side_of(self, match: WorldMatch, player_id: str) -> str:
        return "faction1" if player_id in match.teams["faction1"].players else "faction2"

    def line(self, match: WorldMatch, player_id: str) -> dict[str, Any]:
        """One player's stats in one finished match (generated once, then kept)."""
        key = (match.match_id, player_id)
        if key in self._lines:
            return self._lines[key]
        p = self.players[player_id]
        rng = random.Random(f"{self.seed}:{match.match_id}:{player_id}")
        side = self.side_of(match, player_id)
        won = match.winner == side
        rounds = sum(match.score.values())
        form = 1.0 + (0.12 if won else -0.10) + rng.gauss(0, 0.18)
        kills = max(0, round(p.kpr * rounds * form))
        deaths = max(1, round(p.dpr * rounds * (2.0 - form) * 0.95))
        deaths = min(deaths, rounds)
        assists = max(0, round(p.apr * rounds * (1 + rng.gauss(0, 0.3))))
        hs_pct = min(100.0, max(0.0, p.hs + rng.gauss(0, 9)))
        headshots = min(kills, round(kills * hs_pct / 100))
        damage = max(0, round(kills * p.adr_per_kill + rounds * rng.gauss(8, 3)))
        extended = (match.finished_at or self.now) > self.now - LEGACY_DAYS * 86400
        entry_count = max(0, round(rounds * rng.uniform(0.08, 0.25)))
        c11 = rng.randint(0, 3)
        c12 = rng.randint(0, 3)
        line = {
            "Kills": kills, "Deaths": deaths, "Assists": assists, "Headshots": headshots,
            "HSpct": round(100 * headshots / kills) if kills else 0,
            "KD": kills / deaths, "KR": kills / rounds, "MVPs": rng.randint(0, max(1, kills // 5)),
            "Triple Kills": rng.randint(0, 2), "Quadro Kills": 1 if rng.random() < 0.1 else 0,
            "Penta Kills": 1 if rng.random() < 0.02 else 0, "Damage": damage, "ADR": damage / rounds,
            "extended": extended, "First Kills": rng.randint(0, 5), "Entry Count": entry_count,
            "Entry Wins": rng.randint(0, entry_count), "1v1Count": c11, "1v1Wins": rng.randint(0, c11),
            "1v2Count": c12, "1v2Wins": rng.randint(0, c12) // 2, "Utility Damage": rng.randint(0, 400),
            "Flash Count": rng.randint(0, 15), "Flash Successes": rng.randint(0, 8),
        }
        self._lines[key] = line
        return line

    # JSON shapes --------------------------------------------------------------------------------

    def player_json(self, p: Player) -> dict[str, Any]:
        data: dict[str, Any] = {
            "player_id": p.player_id,
            "nickname": p.nickname,
            "avatar": f"https://assets.faceit-cdn.net/avatars/{p.player_id}.jpg",
            "country": p.country,
            "cover_image": "",
            "platforms": {"steam": p.steam_id},
            "games": {},
            "settings": {"language": "en"},
            "friends_ids": [],
            "new_steam_id": f"[U:1:{int(p.steam_id) - 76561197960265728}]",
            "steam_id_64": p.steam_id,
            "steam_nickname": p.nickname.lower(),
            "memberships": ["free"],
            "faceit_url": "https://www.faceit.com/{lang}/players/" + p.nickname,
            "cover_featured_image": "",
            "verified": False,
            "activated_at": p.activated_at,
        }
        if p.has_cs2:
            cs2: dict[str, Any] = {
                "region": p.region,
                "game_player_id": p.steam_id,
                "skill_level": p.level,
                "faceit_elo": p.elo,
                "game_player_name": p.nickname.lower(),
                "regions": {},
            }
            if p.deprecated_fields:
                cs2["skill_level_label"] = str(p.level)
                cs2["game_profile_id"] = ""
            data["games"]["cs2"] = cs2
        data["games"]["csgo"] = {"region": p.region, "game_player_id": p.steam_id, "skill_level": 3,
                                 "faceit_elo": 1000, "game_player_name": p.nickname.lower()}
        if p.deprecated_fields:
            data["membership_type"] = ""
            data["infractions"] = {}
        return data

    def lifetime_json(self, p: Player) -> dict[str, Any]:
        rng = random.Random(f"{self.seed}:life:{p.player_id}")
        z = (p.elo - 1350) / 430
        n = p.lifetime_matches
        win_rate = min(0.7, max(0.3, 0.5 + 0.03 * z + rng.gauss(0, 0.02)))
        kd = p.kpr / p.dpr
        results = [
            "1" if self.matches[m].winner == self.side_of(self.matches[m], p.player_id) else "0"
            for m in p.matches[-5:]
        ]
        segments = []
        shares = {m: rng.uniform(0.5, 1.5) for m in (*ACTIVE_MAP_POOL, *EXTRA_MAPS)}
        total_share = sum(shares.values())
        for mid, share in shares.items():
            games = max(0, round(n * share / total_share))
            wr = min(0.9, max(0.1, win_rate + p.map_bias[mid]))
            wins = round(games * wr)
            rounds = games * 21
            kills = round(rounds * p.kpr * (1 + p.map_bias[mid]))
            deaths = max(1, round(rounds * p.dpr))
            segments.append({
                "type": "Map", "mode": "5v5", "label": map_label(mid),
                "img_small": "", "img_regular": "",
                "stats": {
                    "Matches": str(games), "Wins": str(wins),
                    "Win Rate %": str(round(100 * wins / games)) if games else "0",
                    "Rounds": str(rounds), "Kills": str(kills), "Deaths": str(deaths),
                    "Assists": str(round(rounds * p.apr)), "Headshots": str(round(kills * p.hs / 100)),
                    "MVPs": str(games * 2),
                    "Average K/D Ratio": _fmt(kills / deaths), "Average K/R Ratio": _fmt(kills / rounds if rounds else 0),
                    "Average Headshots %": str(round(p.hs)), "Average Kills": _fmt(kills / games if games else 0),
                    "ADR": _fmt((p.kpr * p.adr_per_kill + 8) * (1 + p.map_bias[mid]), 1),
                    "Triple Kills": str(games // 3), "Quadro Kills": str(games // 20), "Penta Kills": str(games // 150),
                    "K/D Ratio": _fmt(games * kills / deaths),  # a running sum: a trap, never read it
                },
            })
        for label in WINGMAN_MAPS:
            segments.append({"type": "Map", "mode": "Wingman", "label": label, "img_small": "", "img_regular": "",
                             "stats": {"Matches": "12", "Wins": "9", "Win Rate %": "75", "Average K/D Ratio": "2.10"}})
        wins = round(n * win_rate)
        streak = 0
        for r in reversed(results):
            if r != "1":
                break
            streak += 1
        lifetime = {
            "Matches": str(n), "Total Matches": str(n), "Wins": str(wins), "Win Rate %": str(round(100 * win_rate)),
            "Average K/D Ratio": _fmt(kd), "K/D Ratio": _fmt(kd * n), "Average Headshots %": str(round(p.hs)),
            "Total Headshots %": str(round(p.hs * n)), "ADR": _fmt(p.kpr * p.adr_per_kill + 8, 1),
            "Current Win Streak": str(streak), "Longest Win Streak": str(max(streak, rng.randint(4, 14))),
            "Recent Results": results,
            "Entry Rate": _fmt(rng.uniform(0.08, 0.25), 2), "Entry Success Rate": _fmt(rng.uniform(0.35, 0.6), 2),
            "1v1 Win Rate": _fmt(rng.uniform(0.3, 0.7), 2), "1v2 Win Rate": _fmt(rng.uniform(0.1, 0.4), 2),
            "Flash Success Rate": _fmt(rng.uniform(0.3, 0.6), 2), "Utility Success Rate": _fmt(rng.uniform(0.2, 0.5), 2),
            "Utility Damage per Round": _fmt(rng.uniform(3, 12), 1), "Sniper Kill Rate": _fmt(rng.uniform(0, 0.3), 2),
        }
        return {"player_id": p.player_id, "game_id": "cs2", "lifetime": lifetime, "segments": segments}

    def games_stats_json(self, p: Player, limit: int, offset: int) -> dict[str, Any]:
        ids = list(reversed(p.matches))[offset:offset + limit]
        items = [{"stats": self.game_stats_item(self.matches[m], p)} for m in ids]
        return {"items": items, "start": offset, "end": offset + len(items)}

    def game_stats_item(self, match: WorldMatch, p: Player) -> dict[str, Any]:
        line = self.line(match, p.player_id)
        side = self.side_of(match, p.player_id)
        other = "faction2" if side == "faction1" else "faction1"
        finished_ms = (match.finished_at or self.now) * 1000
        score = f"{match.score[side]} / {match.score[other]}"
        iso = datetime.fromtimestamp(match.finished_at or self.now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        stats: dict[str, Any] = {
            "Match Id": match.match_id, "Match Round": "1", "Best Of": "1", "Game": "cs2", "Game Mode": match.mode,
            "Region": match.region, "Map": match.map, "Team": match.teams[side].name,
            "Player Id": p.player_id, "Nickname": p.nickname,
            "Result": "1" if match.winner == side else "0", "Winner": match.teams[match.winner or side].faction_id,
            "Score": score, "Final Score": str(match.score[side]), "First Half Score": str(min(12, match.score[side])),
            "Second Half Score": "0", "Overtime score": "0", "Rounds": str(sum(match.score.values())),
            "Kills": str(line["Kills"]), "Deaths": str(line["Deaths"]), "Assists": str(line["Assists"]),
            "K/D Ratio": _fmt(line["KD"]), "K/R Ratio": _fmt(line["KR"]),
            "Headshots": str(line["Headshots"]), "Headshots %": str(line["HSpct"]), "MVPs": str(line["MVPs"]),
            "Double Kills": "2", "Triple Kills": str(line["Triple Kills"]), "Quadro Kills": str(line["Quadro Kills"]),
            "Penta Kills": str(line["Penta Kills"]),
            "Created At": iso, "Updated At": iso, "Match Finished At": finished_ms,
        }
        if line["extended"]:
            stats.update({
                "ADR": _fmt(line["ADR"], 1), "Damage": str(line["Damage"]), "First Kills": str(line["First Kills"]),
                "Entry Count": str(line["Entry Count"]), "Entry Wins": str(line["Entry Wins"]),
                "Clutch Kills": "1", "1v1Count": str(line["1v1Count"]), "1v1Wins": str(line["1v1Wins"]),
                "1v2Count": str(line["1v2Count"]), "1v2Wins": str(line["1v2Wins"]), "Pistol Kills": "2",
                "Sniper Kills": "1", "Knife Kills": "0", "Zeus Kills": "0", "Utility Count": "8",
                "Utility Successes": "3", "Utility Enemies": "4", "Utility Damage": str(line["Utility Damage"]),
                "Flash Count": str(line["Flash Count"]), "Flash Successes": str(line["Flash Successes"]),
                "Enemies Flashed": "5",
            })
        return stats

    def match_json(self, m: WorldMatch) -> dict[str, Any]:
        teams = {}
        for key, team in m.teams.items():
            roster = []
            for pid in team.players:
                p = self.players[pid]
                roster.append({
                    "player_id": pid, "nickname": p.nickname, "avatar": "", "membership": "free",
                    "game_player_id": p.steam_id, "game_player_name": p.nickname.lower(),
                    "game_skill_level": p.level, "anticheat_required": True,
                })
            faction: dict[str, Any] = {
                "faction_id": team.faction_id, "leader": team.players[0], "avatar": "", "roster": roster,
                "substituted": False, "name": team.name, "type": "",
            }
            if m.team_stats:
                elos = [self.players[pid].elo for pid in team.players]
                levels = [self.players[pid].level for pid in team.players]
                p1 = m.win_probability if key == "faction1" else round(1 - m.win_probability, 2)
                faction["stats"] = {"winProbability": p1, "skillLevel": {
                    "average": round(sum(levels) / len(levels)), "range": {"min": min(levels), "max": max(levels)}},
                    "rating": round(sum(elos) / len(elos))}
            teams[key] = faction
        data: dict[str, Any] = {
            "match_id": m.match_id, "version": 2, "game": "cs2", "region": m.region,
            "competition_id": "f4148ddd-bce8-41b8-9131-ee83afcdd6dd", "competition_type": "matchmaking",
            "competition_name": "Europe 5v5 Queue", "organizer_id": "faceit",
            "teams": teams, "calculate_elo": True, "configured_at": m.configured_at,
            "best_of": 1, "status": m.status,
            "faceit_url": "https://www.faceit.com/{lang}/cs2/room/" + m.match_id,
            "chat_room_id": f"match-{m.match_id}",
        }
        if m.started_at:
            data["started_at"] = m.started_at
        if m.status != "CHECK_IN":
            entities = [{"name": map_label(mid), "class_name": map_label(mid), "game_map_id": mid, "guid": mid,
                         "image_lg": "", "image_sm": ""} for mid in m.pool]
            voting: dict[str, Any] = {"voted_entity_types": ["location", "map"],
                                      "map": {"entities": entities},
                                      "location": {"entities": [{"name": m.location, "class_name": m.location,
                                                                 "guid": m.location}]}}
            if m.status not in ("VOTING", "CANCELLED"):
                voting["map"]["pick"] = [m.map]
                voting["location"]["pick"] = [m.location]
            data["voting"] = voting
        if m.status == "FINISHED":
            data["finished_at"] = m.finished_at
            data["results"] = {"winner": m.winner, "score": {
                "faction1": 1 if m.winner == "faction1" else 0, "faction2": 1 if m.winner == "faction2" else 0}}
            data["detailed_results"] = [{"asc_score": True, "winner": m.winner, "factions": {
                k: {"score": 1 if m.winner == k else 0} for k in ("faction1", "faction2")}}]
        return data

    def match_stats_json(self, m: WorldMatch) -> dict[str, Any]:
        teams = []
        for key, team in m.teams.items():
            players = []
            for pid in team.players:
                line = self.line(m, pid)
                ps = {
                    "Result": "1" if m.winner == key else "0", "Kills": str(line["Kills"]),
                    "Deaths": str(line["Deaths"]), "Assists": str(line["Assists"]), "K/D Ratio": _fmt(line["KD"]),
                    "K/R Ratio": _fmt(line["KR"]), "Headshots": str(line["Headshots"]),
                    "Headshots %": str(line["HSpct"]), "MVPs": str(line["MVPs"]),
                    "Triple Kills": str(line["Triple Kills"]), "Quadro Kills": str(line["Quadro Kills"]),
                    "Penta Kills": str(line["Penta Kills"]),
                }
                if line["extended"]:
                    ps.update({"ADR": _fmt(line["ADR"], 1), "Damage": str(line["Damage"])})
                players.append({"player_id": pid, "nickname": self.players[pid].nickname, "player_stats": ps})
            teams.append({
                "team_id": team.faction_id, "premade": False,
                "team_stats": {"Team": team.name, "Team Win": "1" if m.winner == key else "0",
                               "Final Score": str(m.score[key]), "First Half Score": str(min(12, m.score[key])),
                               "Second Half Score": "0", "Overtime score": "0", "Team Headshots": "20"},
                "players": players,
            })
        a, b = m.score["faction1"], m.score["faction2"]
        return {"rounds": [{
            "best_of": "1", "competition_id": None, "game_id": "cs2", "game_mode": m.mode,
            "match_id": m.match_id, "match_round": "1", "played": "1",
            "round_stats": {"Map": m.map, "Score": f"{a} / {b}", "Rounds": str(a + b), "Region": m.region,
                            "Winner": m.teams[m.winner or "faction1"].faction_id},
            "teams": teams,
        }]}

    def history_json(self, p: Player, offset: int, limit: int, since: int | None, until: int | None) -> dict[str, Any]:
        since = since if since is not None else self.now - 30 * 86400
        until = until if until is not None else self.now + 86400 * 365
        chosen = [self.matches[mid] for mid in reversed(p.matches)
                  if since <= (self.matches[mid].finished_at or 0) <= until]
        items = []
        for m in chosen[offset:offset + limit]:
            teams = {}
            for key, team in m.teams.items():
                teams[key] = {"team_id": team.faction_id, "nickname": team.name, "avatar": "", "type": "",
                              "players": [{"player_id": pid, "nickname": self.players[pid].nickname, "avatar": "",
                                           "skill_level": self.players[pid].level,
                                           "game_player_id": self.players[pid].steam_id,
                                           "game_player_name": self.players[pid].nickname.lower(),
                                           "faceit_url": "https://www.faceit.com/{lang}/players/"
                                           + self.players[pid].nickname} for pid in team.players]}
            items.append({
                "match_id": m.match_id, "game_id": "cs2", "region": m.region, "match_type": "",
                "game_mode": m.mode, "max_players": 10, "teams_size": 5, "teams": teams,
                "playing_players": m.teams["faction1"].players + m.teams["faction2"].players,
                "competition_id": "f4148ddd-bce8-41b8-9131-ee83afcdd6dd", "competition_name": "Europe 5v5 Queue",
                "competition_type": "matchmaking", "organizer_id": "faceit", "status": "finished",
                "started_at": m.started_at, "finished_at": m.finished_at,
                "results": {"winner": m.winner, "score": {"faction1": 1 if m.winner == "faction1" else 0,
                                                          "faction2": 1 if m.winner == "faction2" else 0}},
                "faceit_url": "https://www.faceit.com/{lang}/cs2/room/" + m.match_id,
            })
        return {"items": items, "start": offset, "end": offset + len(items), "from": since, "to": until}

    # Samples -----------------------------------------------------------------------------------

    def sample(self) -> dict[str, Any]:
        by_status: dict[str, list[str]] = {}
        for m in self.matches.values():
            if m.status == "FINISHED" and not m.match_id.startswith("1-"):
                by_status.setdefault("LEGACY", []).append(m.match_id)
                continue
            by_status.setdefault(m.status, []).append(m.match_id)
        for status, ids in by_status.items():
            if status == "FINISHED":
                ids.sort(key=lambda mid: -(self.matches[mid].finished_at or 0))
                by_status[status] = ids[:20]
        players = sorted((p for p in self.players.values() if p.has_cs2), key=lambda p: p.nickname.lower())
        return {
            "seed": self.seed,
            "now": self.now,
            "counts": {"players": len(self.players), "matches": len(self.matches)},
            "matches": by_status,
            "nicknames": [p.nickname for p in players[:20]],
            "players": [{"player_id": p.player_id, "nickname": p.nickname, "elo": p.elo, "level": p.level}
                        for p in players[:20]],
            "no_cs2_nicknames": [p.nickname for p in self.players.values() if not p.has_cs2],
        }

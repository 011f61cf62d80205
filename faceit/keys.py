"""Every Redis key of the FACEIT layer, built in this one module.

All keys live under ``<REDIS_KEY_PREFIX>faceit:`` (``fb:faceit:`` by default). Caller-supplied
parts (nicknames, ids) are percent-quoted so no input can reach into another key's namespace.
The API key itself never appears in a key: the rate-limit bucket is named by a short hash.
"""

from __future__ import annotations

import hashlib
from urllib.parse import quote


def _part(value: object) -> str:
    return quote(str(value), safe="-_.")


def key_fingerprint(api_key: str) -> str:
    """A short, non-reversible name for an API key (the bucket is per key, the key stays secret)."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:16]


class FaceitKeys:
    """Builds the FACEIT layer's Redis keys under one prefix."""

    def __init__(self, prefix: str = "fb:") -> None:
        self.base = f"{prefix}faceit:"

    # Cache and single-flight ---------------------------------------------------------------
    def cache(self, kind: str, *parts: object) -> str:
        """A cached Data API response: ``cache:<kind>:<part>:…``."""
        return f"{self.base}cache:{kind}:" + ":".join(_part(p) for p in parts)

    def lock(self, cache_key: str) -> str:
        """The single-flight lock of one cache key (held by the process fetching it)."""
        return f"{self.base}lock:{cache_key.removeprefix(self.base)}"

    def failure(self, cache_key: str) -> str:
        """A short-lived record of a failed fetch, so waiters and repeats get the same error."""
        return f"{self.base}fail:{cache_key.removeprefix(self.base)}"

    # Rate limit and counters -------------------------------------------------------------
    def bucket(self, key_id: str) -> str:
        return f"{self.base}ratelimit:{key_id}"

    def bucket_block(self, key_id: str) -> str:
        return f"{self.base}ratelimit:{key_id}:block"

    def calls(self, minute: int) -> str:
        """Outcome counters of one wall-clock minute (epoch seconds // 60)."""
        return f"{self.base}calls:{minute}"

    # Players ---------------------------------------------------------------------------
    def elo_history(self, player_id: str) -> str:
        return f"{self.base}elo:{_part(player_id)}"

    def monitor_state(self, player_id: str) -> str:
        return f"{self.base}monitor:{_part(player_id)}"

    def sweep_resume(self, sweep: str) -> str:
        """The followed player a sweep of everyone (``monitoring``, ``cache:player`` …) that ran
        out of time did not reach: the next such sweep starts there."""
        return f"{self.base}sweep-resume:{sweep}"

    # Subscriptions and users ---------------------------------------------------------------
    def user_subscriptions(self, user_id: int) -> str:
        return f"{self.base}subs:user:{int(user_id)}"

    def player_subscribers(self, player_id: str) -> str:
        return f"{self.base}subs:player:{_part(player_id)}"

    def followed_since(self, player_id: str) -> str:
        """Hash user id → when they began following the player (epoch s)."""
        return f"{self.base}subs:since:{_part(player_id)}"

    def subscribed_players(self) -> str:
        return f"{self.base}subs:players"

    def inactive_users(self) -> str:
        return f"{self.base}users:inactive"

    def activity(self, user_id: int) -> str:
        """A user's analyses by time (sorted set, member ``<kind>:<random>``, score epoch s)."""
        return f"{self.base}activity:{int(user_id)}"

    def active_users(self) -> str:
        """Users by last activity (sorted set, bounded)."""
        return f"{self.base}activity:users"

"""Redis clients built from settings: the one place that knows about passwords and Sentinel.

Every process that talks to Redis (bot, workers, scheduler, dashboard, admin) gets its clients
here, so pointing them all at one Redis, or at a Sentinel group, is a matter of settings.

Sentinel: redis-py asks the sentinels for the master only when a connection breaks or a
command gets ``READONLY``. After a ``SENTINEL FAILOVER`` the old master stays up and writable
until the sentinel turns it into a replica (its next INFO poll, about 10 s later), and every
write it takes meanwhile is lost when it resyncs. So our Sentinel pools also re-ask the
sentinels, at most every ``REDIS_SENTINEL_CHECK_INTERVAL`` seconds (1 s) when a connection is
taken, and drop idle connections to a master that is no longer the master. That check runs in
line with a command, so it must be cheap even when sentinels are gone: sentinel connections use
short timeouts and no retries, and after a failed check the next one waits 10 s.
"""

from __future__ import annotations

import functools
import time
from typing import Any
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelConnectionPool as AsyncSentinelConnectionPool
from redis.backoff import NoBackoff
from redis.connection import HiredisRespSerializer
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool
from redis.utils import HIREDIS_AVAILABLE

from settings import Settings, sentinel_address

SENTINEL_CHECK_INTERVAL = 1.0  # seconds between master checks of a pool in use
SENTINEL_FAILED_CHECK_PAUSE = 10.0  # seconds before the next check when no sentinel answered
SENTINEL_TIMEOUT = 1.0  # socket timeouts towards sentinels (they answer in microseconds)


class CheckedSentinelPool(SentinelConnectionPool):
    """A Sentinel master pool that re-checks the master address every ``check_interval`` seconds.

    A failed check (no sentinel answers) keeps the current connections: losing the sentinels
    must not take down a working master connection.
    """

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        self.check_interval = float(kwargs.pop("check_interval", SENTINEL_CHECK_INTERVAL))
        self._next_check = time.monotonic() + self.check_interval
        super().__init__(service_name, sentinel_manager, **kwargs)

    def _check_due(self) -> bool:
        now = time.monotonic()
        if not self.is_master or now < self._next_check:
            return False
        self._next_check = now + self.check_interval
        return True

    def _check_failed(self) -> None:
        self._next_check = time.monotonic() + max(self.check_interval, SENTINEL_FAILED_CHECK_PAUSE)

    def get_connection(self, *args: Any, **kwargs: Any):
        if self._check_due():
            try:
                self.get_master_address()  # on a change, closes idle connections to the old one
            except (redis.ConnectionError, redis.TimeoutError):
                self._check_failed()
        return super().get_connection(*args, **kwargs)


class AsyncCheckedSentinelPool(AsyncSentinelConnectionPool):
    """The asyncio twin of :class:`CheckedSentinelPool`."""

    def __init__(self, service_name: str, sentinel_manager: AsyncSentinel, **kwargs: Any) -> None:
        self.check_interval = float(kwargs.pop("check_interval", SENTINEL_CHECK_INTERVAL))
        self._next_check = time.monotonic() + self.check_interval
        super().__init__(service_name, sentinel_manager, **kwargs)

    _check_due = CheckedSentinelPool._check_due
    _check_failed = CheckedSentinelPool._check_failed

    async def get_connection(self, *args: Any, **kwargs: Any):
        if self._check_due():
            try:
                await self.get_master_address()
            except (redis.ConnectionError, redis.TimeoutError):
                self._check_failed()
        return await super().get_connection(*args, **kwargs)


class HiredisPacking:
    """Mixed into an asyncio connection class: commands are written by hiredis's C packer.

    Why: redis-py's sync connections pack commands with hiredis when it is installed (as it is
    here), its asyncio ones always in Python, joining the growing buffer again for every
    argument. The bot's job start is one ``EVALSHA`` of about 50 arguments, a 1 KB message among
    them: 34 µs to pack in Python, 4.5 µs with hiredis (measured on this machine), for every
    request a burst of users makes. The bytes written are the same; so are the errors (an
    argument of a type Redis cannot take is redis-py's ``DataError``), because redis-py's own
    serializer of its sync connections does the packing. An encoding other than UTF-8 (hiredis
    knows no other) keeps redis-py's packer."""

    _hiredis = HiredisRespSerializer()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        encoder = self.encoder  # type: ignore[attr-defined]
        # Judged once per connection, not per command.
        self._packs_with_hiredis = (encoder.encoding.lower().replace("-", "") == "utf8"
                                    and encoder.encoding_errors == "strict")

    def pack_command(self, *args: Any) -> list[bytes]:
        if self._packs_with_hiredis:
            return self._hiredis.pack(*args)
        return super().pack_command(*args)  # type: ignore[misc]


@functools.cache
def _hiredis_packing(connection_class: type) -> type:
    """``connection_class`` with :class:`HiredisPacking` mixed in (one class per original)."""
    return type(f"Hiredis{connection_class.__name__}", (HiredisPacking, connection_class), {})


def with_hiredis_packing(client: aioredis.Redis) -> aioredis.Redis:
    """``client``, its pool's future connections packing with hiredis (when it is installed)."""
    pool = client.connection_pool
    if HIREDIS_AVAILABLE and not issubclass(pool.connection_class, HiredisPacking):
        pool.connection_class = _hiredis_packing(pool.connection_class)
    return client


def _check_interval(settings: Settings) -> float:
    return float(settings.redis_sentinel_check_interval)


def _sentinel_kwargs(options: dict[str, Any], retry: Any) -> dict[str, Any]:
    """Connection options towards the sentinels: short timeouts, no retries (see the module doc)."""
    def capped(value: float | None) -> float:
        return SENTINEL_TIMEOUT if value is None else min(float(value), SENTINEL_TIMEOUT)

    return {"socket_timeout": capped(options["socket_timeout"]),
            "socket_connect_timeout": capped(options["socket_connect_timeout"]), "retry": retry}


def _sentinel_hosts(settings: Settings) -> list[tuple[str, int]]:
    """``REDIS_SENTINELS`` as addresses (``host`` alone means Sentinel's port, 26379)."""
    return [sentinel_address(item) for item in settings.redis_sentinels]


def _password(settings: Settings) -> str | None:
    url_password = urlsplit(settings.redis_url).password
    return url_password or settings.redis_password.get_secret_value() or None


def as_text(value: bytes | str | None) -> str | None:
    """A reply of a client built with ``decode=False`` (the broker's) as text; text as it is."""
    return value.decode() if isinstance(value, bytes) else value


def redis_client(settings: Settings, *, decode: bool = True, **options: Any) -> redis.Redis:
    """A sync client; follows the Sentinel master when ``REDIS_SENTINELS`` is set."""
    options.setdefault("socket_timeout", 10)
    options.setdefault("socket_connect_timeout", 5)
    options.setdefault("health_check_interval", 30)
    if settings.redis_sentinels and settings.redis_sentinel_master:
        sentinel = Sentinel(_sentinel_hosts(settings), socket_timeout=options["socket_timeout"],
                            sentinel_kwargs=_sentinel_kwargs(options, Retry(NoBackoff(), 0)))
        return sentinel.master_for(
            settings.redis_sentinel_master, connection_pool_class=CheckedSentinelPool,
            check_interval=_check_interval(settings), password=_password(settings), decode_responses=decode,
            **options,
        )
    password = None if urlsplit(settings.redis_url).password else _password(settings)
    return redis.Redis.from_url(settings.redis_url, password=password, decode_responses=decode, **options)


def async_redis_client(settings: Settings, *, decode: bool = True, **options: Any) -> aioredis.Redis:
    """An asyncio client for code running on an event loop (bot, async actors, dashboard)."""
    options.setdefault("socket_timeout", 10)
    options.setdefault("socket_connect_timeout", 5)
    if settings.redis_sentinels and settings.redis_sentinel_master:
        sentinel = AsyncSentinel(_sentinel_hosts(settings), socket_timeout=options["socket_timeout"],
                                 sentinel_kwargs=_sentinel_kwargs(options, AsyncRetry(NoBackoff(), 0)))
        return with_hiredis_packing(sentinel.master_for(
            settings.redis_sentinel_master, connection_pool_class=AsyncCheckedSentinelPool,
            check_interval=_check_interval(settings), password=_password(settings), decode_responses=decode,
            **options,
        ))
    password = None if urlsplit(settings.redis_url).password else _password(settings)
    return with_hiredis_packing(
        aioredis.Redis.from_url(settings.redis_url, password=password, decode_responses=decode, **options))

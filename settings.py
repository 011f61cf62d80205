"""Every setting of the bot, loaded once per process.

Defaults live in ``settings.toml`` (beside this file, or the file named by ``SETTINGS_FILE``);
an environment variable with the same upper-case name overrides each value. Lists are written
as comma-separated text in the environment (``QUEUE_RETRY_DELAYS=10,30,90``).

A bad value stops start-up with one line naming the variable and what it expects
(:class:`SettingsError`, printed by :func:`load_settings_or_exit`), never with a traceback.
Secrets are :class:`pydantic.SecretStr` and URLs are shown with their credentials masked (all
that stands between ``://`` and the last ``@``, however a parser would read it), so neither
reaches a log line, a repr or an error message. (The bot token in log lines: :mod:`queues.redaction`.)
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import sys
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import SplitResult, parse_qsl, unquote, unquote_plus, urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

#: The sandbox Bot API's bot token: well-formed (aiogram checks the ``<digits>:<text>`` shape),
#: not a secret (it only opens the local sandbox).
SANDBOX_BOT_TOKEN = "1000000001:sandbox-token-not-secret"

PROJECT_ROOT = Path(__file__).resolve().parent
DEFAULT_SETTINGS_FILE = PROJECT_ROOT / "settings.toml"


class SettingsError(Exception):
    """A setting is missing, unknown or has a value of the wrong kind (one line of text)."""


def _is_password_param(name: str) -> bool:
    """A query parameter that carries a password (redis-py reads ``?password=`` and
    ``?sentinel_password=`` as well as the one before the ``@``)."""
    return "password" in name.lower()


#: Characters that end a URL's authority: written unescaped in a password, they make every URL
#: parser (urlsplit, redis-py, pika) read the rest of the password as a path, query or fragment.
_AUTHORITY_ENDS = "/?#"


def _userinfo_span(url: str) -> tuple[int, int] | None:
    """Where the credentials of ``url`` are written: from after ``://`` to its LAST ``@``.

    Deliberately not :func:`urlsplit`'s reading: a password with an unescaped ``/``, ``?`` or
    ``#`` ends urlsplit's netloc early, so it finds no password at all (and then a port that is
    not a number). Everything up to the last ``@`` is taken as credentials, whatever a parser
    makes of it; an ``@`` later in a path or query only hides more than needed."""
    start = url.find("://")
    if start < 0:
        return None
    start += 3
    at = url.rfind("@", start)
    return (start, at) if at >= 0 else None


def _query_pieces(url: str, start: int) -> list[str]:
    """The ``name=value`` pieces of the query of ``url`` (searched from ``start``), as written:
    an unescaped ``#`` in a query password stays in its piece instead of becoming a fragment."""
    question = url.find("?", start)
    return url[question + 1:].split("&") if question >= 0 else []


def url_passwords(url: str) -> list[str]:
    """Every password written in ``url``: before the ``@`` and in password query parameters.

    Each as written and as decoded (``%2F`` → ``/``), both as urlsplit reads it and as
    :func:`_userinfo_span` finds it, for scrubbing texts that quote either form."""
    found: list[str] = []
    span = _userinfo_span(url)
    if span is not None:
        _, colon, password = url[span[0]:span[1]].partition(":")
        found += [password, unquote(password)] if colon else []
    try:
        parts = urlsplit(url)
        found += [parts.password] if parts.password else []
        found += [value for name, value in parse_qsl(parts.query) if _is_password_param(name) and value]
    except ValueError:
        pass
    for piece in _query_pieces(url, span[1] if span is not None else 0):
        name, equals, value = piece.partition("=")
        if equals and value and _is_password_param(unquote_plus(name)):
            found += [value, unquote_plus(value)]
    return list(dict.fromkeys(value for value in found if value))


def redact_url(url: str) -> str:
    """Return ``url`` with its credentials and password parameters replaced by ``***`` (for logs,
    reprs and error messages).

    Works on the text as written: a URL with a bad port must still be shown (in the error that
    says so) without its password, so the port is never parsed here. Everything between ``://``
    and the last ``@`` is credentials (:func:`_userinfo_span`), so a password with an unescaped
    ``/``, ``?`` or ``#`` is hidden whole; only a plain user name before a ``:`` stays readable.
    """
    span = _userinfo_span(url)
    rest_at = 0
    query_in_span = False
    if span is not None:
        user, colon, _ = url[span[0]:span[1]].partition(":")
        shown_user = user if colon and not any(char in user for char in _AUTHORITY_ENDS + "[]") else ""
        head = f"{url[:span[0]]}{shown_user}{':' if colon else ''}***"
        # An '@' inside the query (``?client_name=a@b&password=…``) put the query's start in the
        # span: what follows the '@' is then still the query, and its passwords are masked too.
        query_in_span = "?" in url[span[0]:span[1]]
        url, rest_at = head + url[span[1]:], len(head)
    try:
        urlsplit(url)
    except ValueError:
        return "<invalid url>"
    question = rest_at - 1 if query_in_span else url.find("?", rest_at)
    if question < 0:
        return url
    pieces = []
    for piece in url[question + 1:].split("&"):
        name, equals, _ = piece.partition("=")
        pieces.append(f"{name}=***" if equals and _is_password_param(unquote_plus(name)) else piece)
    return url[:question + 1] + "&".join(pieces)


def userinfo_needs_escaping(url: str) -> bool:
    """True when the credentials of ``url`` hold an unescaped ``/``, ``?`` or ``#``: no client
    reads such a URL as written (the password must be percent-encoded, ``%2F``, ``%3F``, ``%23``)."""
    span = _userinfo_span(url)
    if span is None:
        return False
    written = url[span[0]:span[1]]
    try:
        parsed = urlsplit(url).netloc.rpartition("@")[0]
    except ValueError:  # a '[' in the password: urlsplit takes it for an IPv6 address
        parsed = ""
    return any(char in written for char in _AUTHORITY_ENDS) and written != parsed


def _check_port(parts: SplitResult) -> None:
    """Refuse a port that is not a number from 1 to 65535 (``urlsplit`` checks it only when asked,
    so a bad one otherwise surfaces as a traceback deep inside a client library)."""
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("a URL whose port is a number from 1 to 65535")


def _split(value: str, schemes: tuple[str, ...], shape: str) -> Any:
    """``value`` split (:func:`urlsplit`), or ValueError(``shape``) unless it is a URL of one of
    ``schemes``."""
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in schemes:
        raise ValueError(shape)
    return parts


def check_http_url(value: str) -> None:
    """Raise ValueError (worded for 'NAME must be …') unless ``value`` is an http(s) URL with a host
    and a valid port: aiohttp would fail on it only at the first request, deep in a traceback."""
    shape = "an http:// or https:// URL with a host"
    parts = _split(value, ("http", "https"), shape)
    if not parts.hostname:
        raise ValueError(shape)
    _check_port(parts)


#: Telegram's rule for ``secret_token`` (setWebhook): 1-256 characters of these.
WEBHOOK_SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")
#: A bot token's shape (``123456:ABC-def…``); aiogram refuses any other with a traceback.
BOT_TOKEN_PATTERN = re.compile(r"[0-9]+:[A-Za-z0-9_-]+")
#: Secrets with a shape Telegram fixes: the pattern, and the shape said when it does not hold.
SECRET_SHAPES = {
    "webhook_secret": (WEBHOOK_SECRET_PATTERN,
                       "1 to 256 characters, each A-Z, a-z, 0-9, '_' or '-' (Telegram allows no others)"),
    "telegram_bot_token": (BOT_TOKEN_PATTERN,
                           "a bot token as @BotFather gives it, <digits>:<letters, digits, '_' or '-'>"),
    "dashboard_token": (re.compile(r".{16,}", re.DOTALL), "at least 16 characters (or empty: no token)"),
}


def check_redis_url(value: str) -> None:
    """Raise ValueError (worded for 'REDIS_URL must be …', no password in it) unless redis-py
    can connect with ``value``: scheme, port, a numeric database, query options it reads."""
    import redis.connection  # here, not at the top: settings are loaded by processes without Redis too

    parts = _split(value, ("redis", "rediss", "unix"), "a redis://, rediss:// or unix:// URL")
    if parts.scheme != "unix":
        _check_port(parts)
        db = parts.path.strip("/")
        if db and not (db.isascii() and db.isdigit()):
            raise ValueError("a URL whose path is a database number, like /0")
    try:
        options = redis.connection.parse_url(value)
    except ValueError as exc:  # its messages name the option, never its value
        raise ValueError(f"a URL redis-py can read ({str(exc).rstrip('.')})") from None
    unknown = sorted(set(options) - _redis_url_options(options.get("connection_class")))
    if unknown:  # redis-py passes them on, and the first connection raised TypeError: a traceback
        raise ValueError(f"a URL redis-py can read (unknown option {', '.join(map(repr, unknown))})")


@functools.cache
def _redis_url_options(connection_class: Any) -> frozenset[str]:
    """The options a Redis URL may carry: what both redis-py's pools and its connections of the
    URL's kind take, sync and asyncio (every process here opens both)."""
    import inspect

    import redis.asyncio.connection
    import redis.connection

    def taken(cls: type) -> set[str]:
        return {name for klass in cls.__mro__ if "__init__" in klass.__dict__
                for name, param in inspect.signature(klass.__dict__["__init__"]).parameters.items()
                if name != "self" and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)}

    sync_class = connection_class or redis.connection.Connection
    async_class = getattr(redis.asyncio.connection, sync_class.__name__, redis.asyncio.connection.Connection)
    return frozenset((taken(sync_class) & taken(async_class))
                     | (taken(redis.connection.ConnectionPool) & taken(redis.asyncio.connection.ConnectionPool)))


SENTINEL_PORT = 26379  # Sentinel's own port, taken when a REDIS_SENTINELS item names none


def check_amqp_url(value: str) -> None:
    """Raise ValueError unless ``value`` is an amqp:// or amqps:// URL with a valid port."""
    _check_port(_split(value, ("amqp", "amqps"), "an amqp:// or amqps:// URL"))


def _check_optional_http_url(value: str) -> None:
    """:func:`check_http_url`, or nothing to check when empty: ``WEBHOOK_URL`` (empty: polling;
    webhook mode without it is refused by bot.config) and ``DASHBOARD_PUBLIC_URL`` (empty: the
    dashboard is reached at the address it listens on)."""
    if value:
        check_http_url(value)


#: Each URL setting and the check that reads it whole at start.
URL_CHECKS = {"redis_url": check_redis_url, "rabbitmq_url": check_amqp_url, "telegram_api_url": check_http_url,
              "faceit_api_url": check_http_url, "webhook_url": _check_optional_http_url,
              "dashboard_public_url": _check_optional_http_url}


def sentinel_address(item: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` as ``(host, port)``; the port defaults to
    26379. Raises ValueError (worded for 'must be …') for an empty host or a bad port."""
    if item.startswith("["):
        host, bracket, rest = item[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("a comma-separated list of host or host:port ([v6 address]:port for IPv6)")
        port_text = rest[1:] if rest else ""
    else:
        host, colon, port_text = item.rpartition(":")
        if not colon:
            host, port_text = item, ""
    if not host:
        raise ValueError("a comma-separated list of host or host:port")
    if not port_text:
        return host, SENTINEL_PORT
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise ValueError("a comma-separated list of host or host:port, each port from 1 to 65535")
    return host, int(port_text)


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: What ``DASHBOARD_TRUSTED_PROXIES`` must be, worded for 'must be …'.
TRUSTED_PROXIES_SHAPE = "a comma-separated list of IP addresses or CIDR networks, like 10.0.0.2 or 172.16.0.0/12"


def ip_networks(items: list[str]) -> list[IPNetwork]:
    """Each item (an address, or a network in CIDR notation) as a network; an address is a
    network of one. Host bits after the prefix are ignored (``10.0.0.5/24`` is ``10.0.0.0/24``).
    Raises ValueError (worded for 'DASHBOARD_TRUSTED_PROXIES must be …') for anything else: a
    host name, a prefix too long, an address with a port."""
    try:
        return [ipaddress.ip_network(item, strict=False) for item in items]
    except ValueError:
        raise ValueError(TRUSTED_PROXIES_SHAPE) from None


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CommaList = Annotated[list[str], NoDecode]

#: The upper bound of every duration setting (TTLs, timeouts, intervals), in seconds: ten years.
#: Anything longer is a typo, and past ~2**63 ms Redis refuses the expiry on every write
#: ("value is not an integer or out of range") while the process has started happily.
MAX_SECONDS = 10 * 365 * 86400


class TomlDefaults(PydanticBaseSettingsSource):
    """Reads ``settings.toml``; its keys are the upper-case setting names."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self.path = path

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        try:
            raw = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SettingsError(f"settings file {self.path} does not exist") from None
        except IsADirectoryError:
            raise SettingsError(f"settings file {self.path} is a directory, not a file") from None
        except UnicodeDecodeError as exc:
            raise SettingsError(f"settings file {self.path} is not UTF-8 text (byte {exc.start})") from None
        except OSError as exc:  # unreadable: permissions, a dangling mount, …
            raise SettingsError(f"settings file {self.path} cannot be read: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"settings file {self.path} is not valid TOML: {exc}") from None
        fields = self.settings_cls.model_fields
        values = {}
        for key, value in raw.items():
            field = fields.get(key.lower())
            if field is None:
                raise SettingsError(f"{key} in {self.path.name} is not a known setting")
            wanted = _toml_type_wanted(field.annotation, value)
            if wanted:
                raise SettingsError(f"{key} in {self.path.name} must be {wanted}{_shown(key, value)}")
            values[key.lower()] = value
        return values


#: What settings.toml must hold for each Python type of a setting, and how to say it.
_TOML_TYPES: dict[Any, tuple[str, str]] = {
    bool: ("true or false (no quotes)", "booleans"),
    int: ("a whole number (no quotes)", "whole numbers"),
    float: ("a number (no quotes)", "numbers"),
}


def _plain(annotation: Any) -> Any:
    """``annotation`` without its ``Annotated[…]`` wrapper."""
    return get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation


def _toml_value_fits(annotation: Any, value: Any) -> bool:
    """True when ``value`` (as TOML typed it) is of the type a setting of ``annotation`` needs."""
    annotation = _plain(annotation)
    if get_origin(annotation) is list:
        item = get_args(annotation)[0]
        return isinstance(value, list) and all(_toml_value_fits(item, v) for v in value)
    if annotation is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):  # bool is an int to Python, never a number of workers to us
        return False
    if annotation is int:
        return isinstance(value, int)
    if annotation is float:
        return isinstance(value, int | float)
    return isinstance(value, str)


def _toml_type_wanted(annotation: Any, value: Any) -> str | None:
    """None when ``value`` has the TOML type a setting of ``annotation`` needs, else that type.

    TOML has real types, so settings.toml is held to them: pydantic alone would read ``true`` as
    1 worker, ``"4"`` as 4 and ``"yes"`` as true, and a typo would pass unnoticed.
    (Environment variables are text by nature and are parsed as before.)
    """
    if _toml_value_fits(annotation, value):
        return None
    annotation = _plain(annotation)
    if get_origin(annotation) is list:
        item = _plain(get_args(annotation)[0])
        return f"a list of {_TOML_TYPES.get(item, ('', 'quoted strings'))[1]} in [ ]"
    return _TOML_TYPES.get(annotation, ("a quoted string", ""))[0]


class Settings(BaseSettings):
    """All settings; field ``queue_max_workers`` is variable ``QUEUE_MAX_WORKERS``."""

    # allow_inf_nan=False: 'inf' and 'nan' pass gt=0 and le=… checks, then fail far from here
    # (OverflowError in the scheduler's lock, a retry delay of nan seconds).
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", validate_default=True,
                                      allow_inf_nan=False)

    # Redis and the broker
    redis_url: str
    redis_password: SecretStr = SecretStr("")
    redis_sentinels: CommaList = []
    redis_sentinel_master: str = ""
    redis_sentinel_check_interval: float = Field(gt=0, le=MAX_SECONDS)
    redis_key_prefix: str
    broker: Literal["redis", "rabbitmq"]
    rabbitmq_url: str
    dramatiq_namespace: str

    # Queues and workers
    queue_name_prefix: str = Field(pattern=r"^[A-Za-z0-9_.-]*$")
    queue_max_workers: int = Field(ge=1)
    queue_worker_threads: int = Field(ge=1)
    queue_worker_ttl: int = Field(ge=1, le=MAX_SECONDS)
    queue_heartbeat_timeout: float = Field(gt=0, le=MAX_SECONDS)
    queue_maintenance_interval: float = Field(gt=0, le=MAX_SECONDS)
    worker_nice: int = Field(ge=0, le=19)
    worker_stop_repeat_window: float = Field(ge=0, le=60)
    queue_default_timeout: float = Field(gt=0, le=MAX_SECONDS)
    queue_high_priority_timeout: float = Field(gt=0, le=MAX_SECONDS)
    queue_low_priority_timeout: float = Field(gt=0, le=MAX_SECONDS)
    queue_max_retries: int = Field(ge=0)
    queue_retry_delays: Annotated[list[Annotated[float, Field(ge=0, le=MAX_SECONDS)]], NoDecode] = Field(min_length=1)
    queue_result_ttl: int = Field(ge=1, le=MAX_SECONDS)
    queue_failure_ttl: int = Field(ge=1, le=MAX_SECONDS)
    queue_burst_timeout: float = Field(gt=0, le=MAX_SECONDS)
    queue_index_limit: int = Field(ge=10)

    # Monitoring and alerts
    queue_enable_monitoring: bool
    queue_monitoring_interval: float = Field(gt=0, le=MAX_SECONDS)
    queue_metrics_retention_days: float = Field(gt=0, le=MAX_SECONDS / 86400)
    alert_failure_rate: float = Field(ge=0, le=1)
    alert_depth_high: int = Field(ge=0)
    alert_depth_default: int = Field(ge=0)
    alert_depth_low: int = Field(ge=0)
    alert_wait_high: float = Field(ge=0, le=MAX_SECONDS)
    alert_wait_default: float = Field(ge=0, le=MAX_SECONDS)
    alert_wait_low: float = Field(ge=0, le=MAX_SECONDS)
    alert_queued_max_age: float = Field(gt=0, le=MAX_SECONDS)
    alert_no_workers_after: float = Field(ge=0, le=MAX_SECONDS)
    alert_redis_memory_share: float = Field(gt=0, le=1)
    alert_rate_limit_storm: int = Field(ge=1)
    alert_dedupe_window: float = Field(gt=0, le=MAX_SECONDS)
    alert_failure_window: float = Field(gt=0, le=MAX_SECONDS)
    alert_failure_min_jobs: int = Field(ge=1)
    alert_telegram_batch_seconds: float = Field(gt=0, le=MAX_SECONDS)

    # Dashboard
    queue_dashboard_enabled: bool
    queue_dashboard_host: str
    queue_dashboard_port: int = Field(ge=1, le=65535)
    dashboard_user: str = ""
    dashboard_password: SecretStr = SecretStr("")
    dashboard_token: SecretStr = SecretStr("")
    dashboard_readonly_user: str = ""
    dashboard_readonly_password: SecretStr = SecretStr("")
    dashboard_public_url: str = ""
    dashboard_trusted_proxies: CommaList = []

    # Telegram
    telegram_bot_token: SecretStr = SecretStr("")
    telegram_api_url: str
    bot_mode: Literal["polling", "webhook"]
    webhook_url: str = ""
    webhook_secret: SecretStr = SecretStr("")
    webhook_host: str
    webhook_port: int = Field(ge=1, le=65535)
    admin_user_ids: Annotated[list[Annotated[int, Field(gt=0)]], NoDecode] = []
    user_jobs_per_minute: int = Field(ge=1)
    user_max_active_jobs: int = Field(ge=1)
    bulk_max_matches: int = Field(ge=1)
    telegram_chat_rate: float = Field(gt=0)
    telegram_group_rate: float = Field(gt=0)
    telegram_global_rate: float = Field(gt=0)
    telegram_chat_burst: int = Field(ge=1)
    telegram_group_burst: int = Field(ge=1)
    telegram_global_burst: int = Field(ge=1)
    bot_redis_wait: float = Field(ge=0, le=MAX_SECONDS)
    bot_telegram_wait: float = Field(ge=0, le=MAX_SECONDS)
    bot_update_concurrency: int = Field(ge=1)

    # FACEIT
    faceit_api_key: SecretStr = SecretStr("")
    faceit_api_url: str
    faceit_request_timeout: float = Field(gt=0, le=MAX_SECONDS)
    faceit_rate_limit: float = Field(gt=0)
    faceit_rate_burst: int = Field(ge=1)
    faceit_cache_match_ttl: int = Field(ge=1, le=MAX_SECONDS)
    faceit_cache_profile_ttl: int = Field(ge=1, le=MAX_SECONDS)
    faceit_cache_recent_ttl: int = Field(ge=1, le=MAX_SECONDS)
    faceit_cache_lifetime_ttl: int = Field(ge=1, le=MAX_SECONDS)
    faceit_cache_finished_ttl: int = Field(ge=1, le=MAX_SECONDS)
    faceit_cache_failure_ttl: float = Field(gt=0, le=MAX_SECONDS)
    match_monitoring_interval: float = Field(gt=0, le=MAX_SECONDS)
    cache_update_interval: float = Field(gt=0, le=MAX_SECONDS)
    weekly_report_check_interval: float = Field(gt=0, le=MAX_SECONDS)
    scheduler_lock_ttl: float = Field(gt=0, le=MAX_SECONDS)

    # Errors and logs
    sentry_dsn: SecretStr = SecretStr("")
    sentry_environment: str
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

    _list_fields = field_validator(
        "redis_sentinels", "queue_retry_delays", "admin_user_ids", "dashboard_trusted_proxies", mode="before"
    )(_comma_list)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinel_items(cls, value: list[str]) -> list[str]:
        for item in value:
            sentinel_address(item)
        return value

    @field_validator("dashboard_trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, value: list[str]) -> list[str]:
        """Read whole at start: a typo here would otherwise leave the login throttle keyed on the
        proxy's address, silently (the operator's intent, trusting it, would not happen)."""
        ip_networks(value)
        return value

    @field_validator(*URL_CHECKS)
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        try:
            URL_CHECKS[info.field_name](value)
        except ValueError as exc:
            if userinfo_needs_escaping(value):  # the likely cause, which the check cannot see
                raise ValueError(f"{exc}; any '/', '?' or '#' in a password must be written as %2F, %3F or "
                                 "%23") from None
            raise
        return value

    @field_validator(*SECRET_SHAPES)
    @classmethod
    def _secret_shape(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        pattern, shape = SECRET_SHAPES[info.field_name]
        if value.get_secret_value() and not pattern.fullmatch(value.get_secret_value()):
            raise ValueError(shape)
        return value

    @field_validator("sentry_dsn")
    @classmethod
    def _sentry_dsn(cls, value: SecretStr) -> SecretStr:
        """Sentry's own reading of a DSN: a bad one stopped every process at start with a
        traceback (``BadDsn``), over and over under ``make run``. Its key is not said."""
        if value.get_secret_value():
            from sentry_sdk.utils import BadDsn, Dsn  # only then: every process loads settings

            try:
                Dsn(value.get_secret_value())
            except BadDsn:
                raise ValueError("a Sentry DSN, https://<key>@<host>/<project number> (or empty: no Sentry)") from None
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = Path(os.environ.get("SETTINGS_FILE") or DEFAULT_SETTINGS_FILE)
        return (init_settings, env_settings, TomlDefaults(settings_cls, path))

    def __repr_args__(self):  # type: ignore[override]
        for name, value in super().__repr_args__():
            if name.endswith("_url") and isinstance(value, str):  # any URL may carry credentials
                value = redact_url(value)
            yield name, value

    # Derived values -------------------------------------------------------------------

    @property
    def sandbox_telegram(self) -> bool:
        """True when the bot talks to the local sandbox Bot API: no bot token is set, or the
        sandbox's own (``make run`` hands that one to every process it starts)."""
        return self.telegram_bot_token.get_secret_value() in ("", SANDBOX_BOT_TOKEN)

    @property
    def sandbox_faceit(self) -> bool:
        """True when no FACEIT key is set: the client talks to the local sandbox Data API."""
        return not self.faceit_api_key.get_secret_value()

    def secret_values(self) -> list[str]:
        """Every secret in force (tokens, keys, passwords), for scrubbing text before it leaves."""
        values = [
            getattr(self, name).get_secret_value()
            for name, field in type(self).model_fields.items()
            if field.annotation is SecretStr
        ]
        values.extend(url_passwords(self.redis_url))
        # RabbitMQ's own default account (guest:guest, the default RABBITMQ_URL, even on the Redis
        # broker) is no secret: masked, the word "guest" read "***" in every error and log line.
        values.extend(password for password in url_passwords(self.rabbitmq_url) if password != "guest")
        return [value for value in values if len(value) >= 4]


#: Error kinds that mean "not a value of this type at all" (as opposed to out of range).
_TYPE_KINDS = {"int_parsing", "int_from_float", "int_type", "float_parsing", "float_type", "finite_number",
               "bool_parsing", "bool_type", "string_type"}


def _number(value: Any) -> str:
    """A limit as written in settings.toml: 0 rather than 0.0."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _expected(error: dict[str, Any]) -> str:
    """What one pydantic error says the value must be, as a phrase ('a whole number', 'at least 1')."""
    kind = error.get("type", "")
    ctx = error.get("ctx", {})
    if kind == "less_than_equal" and ctx.get("le") == MAX_SECONDS:
        return f"at most {MAX_SECONDS} (ten years)"
    known = {
        "int_parsing": "a whole number",
        "int_from_float": "a whole number",
        "int_type": "a whole number",
        "float_parsing": "a number",
        "float_type": "a number",
        "finite_number": "a finite number",
        "bool_parsing": "true or false",
        "bool_type": "true or false",
        "string_type": "text",
        "list_type": "a comma-separated list",
        "literal_error": f"one of {ctx.get('expected', '')}",
        "string_pattern_mismatch": "letters, digits, '.', '_' or '-'",
        "too_short": "at least one value",
        "greater_than_equal": f"at least {_number(ctx.get('ge'))}",
        "greater_than": f"more than {_number(ctx.get('gt'))}",
        "less_than_equal": f"at most {_number(ctx.get('le'))}",
        "less_than": f"less than {_number(ctx.get('lt'))}",
        "missing": "a value (it is missing from settings.toml)",
        "value_error": str(ctx.get("error", "a valid value")),
    }
    if kind in known:
        return known[kind]
    message = str(error.get("msg", "")).rstrip(".")
    phrase = message.removeprefix("Input should be ")
    return phrase if phrase != message else f"a valid value ({message.lower() or kind})"


def _item_noun(name: str) -> str:
    """What a list setting holds, in the plural ('numbers' for QUEUE_RETRY_DELAYS)."""
    field = Settings.model_fields.get(name)
    args = get_args(_plain(field.annotation)) if field else ()
    return _TOML_TYPES.get(_plain(args[0]) if args else str, ("", "values"))[1]


def _without_credentials(value: Any, url_setting: bool) -> Any:
    """``value`` (text, or a list of texts) with whatever may hold a password masked: every URL
    (:func:`redact_url`, whichever setting it was written in), and in a URL setting written
    without its scheme, everything before the last ``@``."""
    if isinstance(value, list | tuple):
        return [_without_credentials(item, url_setting) for item in value]
    if not isinstance(value, str):
        return value
    if "://" in value:
        return redact_url(value)
    if url_setting and "@" in value:
        return "***" + value[value.rfind("@"):]
    return value


def _shown(name: str, value: Any) -> str:
    """' (got …)' for an error message: empty for secrets and tables, a URL with its password masked."""
    field = Settings.model_fields.get(name.lower())
    if (field is not None and field.annotation is SecretStr) or isinstance(value, dict):
        return ""
    # A password in a mistyped URL stays out of the message, however the URL is mistyped.
    return f" (got {_without_credentials(value, name.upper().endswith('_URL'))!r})"


def _describe(error: dict[str, Any]) -> str:
    """Turn one pydantic error into one sentence: 'NAME must be … (got …)'.

    A list item's error names the list: 'QUEUE_RETRY_DELAYS must be a comma-separated list of
    numbers, each at least 0 (got -5)'.
    """
    loc = error.get("loc") or ("a setting",)
    field = str(loc[0])
    expected = _expected(error)
    kind = error.get("type", "")
    if len(loc) > 1:
        noun = _item_noun(field)
        if kind == "finite_number":
            expected = f"a comma-separated list of finite {noun}"
        elif kind in _TYPE_KINDS:
            expected = f"a comma-separated list of {noun}"
        else:
            expected = f"a comma-separated list of {noun}, each {expected}"
    shown = "" if kind == "missing" else _shown(field, error.get("input"))
    return f"{field.upper()} must be {expected}{shown}"


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment and ``settings.toml``; raise :class:`SettingsError`."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc.errors()[0])) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (loaded on first use, then cached)."""
    return load_settings()


def load_settings_or_exit() -> Settings:
    """For entry points: the settings, or one line on stderr and exit status 2."""
    try:
        return get_settings()
    except SettingsError as exc:
        print(f"settings error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None

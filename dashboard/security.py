"""Who may use the dashboard, and proof that a POST came from our own pages.

Roles:

=========  ==================================================================================
role       granted to
=========  ==================================================================================
admin      ``DASHBOARD_USER``/``DASHBOARD_PASSWORD`` (basic auth or the login form),
           ``DASHBOARD_TOKEN`` (``Authorization: Bearer``), and everyone when no credential is
           configured at all (open mode, which is only allowed on a loopback address)
readonly   ``DASHBOARD_READONLY_USER``/``DASHBOARD_READONLY_PASSWORD``: sees everything, acts on
           nothing
=========  ==================================================================================

A browser that signs in through ``/login`` gets a signed session cookie (HttpOnly,
SameSite=Strict) naming a random session id; signing out revokes that id in Redis
(:class:`RevokedSessions`), so a copy of the cookie is worth nothing afterwards. API clients
send basic or bearer credentials on each request.

CSRF: every POST carries a token (``X-CSRF-Token`` header or ``csrf_token`` form field) that
is an HMAC of the caller's identity and the time it was issued. A page embeds it; API clients
read it from ``GET /api/me``. A cross-site page can neither read nor forge one. POSTs whose
``Origin`` names another host are refused as well.

The signing key is random and kept in Redis (so every dashboard instance and restart agrees),
mixed with the configured credentials: changing a password ends every session.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
import math
import re
import secrets
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from settings import IPNetwork

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
SESSION_COOKIE = "fbdash_session"
SESSION_LIFETIME = 12 * 3600
#: A session id: 16 random bytes, URL-safe base64 (22 characters, no padding).
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{22}")
CSRF_LIFETIME = 24 * 3600
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


class StartupRefused(Exception):
    """The dashboard must not start with this configuration (the message says why)."""


@dataclass(frozen=True)
class Identity:
    """An authenticated caller. ``name`` is shown in the page header and bound into tokens."""

    name: str
    role: str  # admin | readonly
    via: str  # open | session | basic | bearer

    @property
    def can_act(self) -> bool:
        return self.role == "admin"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "via": self.via, "can_act": self.can_act}


@dataclass(frozen=True)
class Credentials:
    """The configured credentials; ``repr`` never shows a secret."""

    user: str = ""
    password: str = ""
    token: str = ""
    readonly_user: str = ""
    readonly_password: str = ""

    @classmethod
    def from_settings(cls, settings: Any) -> Credentials:
        def secret(name: str) -> str:
            value = getattr(settings, name, "")
            return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value or "")

        return cls(
            user=str(getattr(settings, "dashboard_user", "") or ""),
            password=secret("dashboard_password"),
            token=secret("dashboard_token"),
            readonly_user=str(getattr(settings, "dashboard_readonly_user", "") or ""),
            readonly_password=secret("dashboard_readonly_password"),
        )

    def __repr__(self) -> str:
        return (f"Credentials(user={self.user!r}, password={'***' if self.password else ''!r}, "
                f"token={'***' if self.token else ''!r}, readonly_user={self.readonly_user!r})")

    @property
    def configured(self) -> bool:
        """True when any credential is set: the dashboard is then closed to strangers."""
        return bool(self.password or self.token or self.readonly_password)

    @property
    def has_login(self) -> bool:
        """True when a user/password pair exists (the login form is useful)."""
        return bool((self.user and self.password) or (self.readonly_user and self.readonly_password))

    def problems(self) -> list[str]:
        """Half-configured credentials, which are refused rather than guessed at."""
        found = []
        if bool(self.user) != bool(self.password):
            found.append("set both DASHBOARD_USER and DASHBOARD_PASSWORD, or neither")
        if bool(self.readonly_user) != bool(self.readonly_password):
            found.append("set both DASHBOARD_READONLY_USER and DASHBOARD_READONLY_PASSWORD, or neither")
        if self.user and self.readonly_user and self.user == self.readonly_user:
            found.append("DASHBOARD_READONLY_USER must differ from DASHBOARD_USER")
        return found

    def fingerprint(self) -> bytes:
        """A digest of every credential: part of the signing key, so a change ends sessions."""
        material = "\0".join([self.user, self.password, self.token, self.readonly_user,
                              self.readonly_password])
        return hashlib.sha256(material.encode()).digest()

    # --- checks (constant time) -----------------------------------------------------------

    def check_password(self, user: str, password: str) -> Identity | None:
        """The identity for a user/password pair, or None."""
        matched = None
        # Evaluate both pairs every time so timing says nothing about which user exists.
        admin = _same(user, self.user) & _same(password, self.password) & bool(self.user and self.password)
        readonly = (_same(user, self.readonly_user) & _same(password, self.readonly_password)
                    & bool(self.readonly_user and self.readonly_password))
        if admin:
            matched = Identity(self.user, "admin", "basic")
        elif readonly:
            matched = Identity(self.readonly_user, "readonly", "basic")
        return matched

    def check_token(self, token: str) -> Identity | None:
        if self.token and _same(token, self.token):
            return Identity("token", "admin", "bearer")
        return None

    def role_of(self, user: str) -> str | None:
        """The role a session for ``user`` has today (None if the user no longer exists)."""
        if self.user and user == self.user and self.password:
            return "admin"
        if self.readonly_user and user == self.readonly_user and self.readonly_password:
            return "readonly"
        return None


def _same(given: str, expected: str) -> bool:
    """Constant-time equality; ``given`` as sent (aiohttp gives undecodable header bytes as
    surrogates, which a plain ``encode()`` refused with an error: a 500 for a wrong credential)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape"))


def check_startup(host: str, credentials: Credentials) -> None:
    """Refuse configurations that would expose the dashboard; raises :class:`StartupRefused`."""
    problems = credentials.problems()
    if problems:
        raise StartupRefused("; ".join(problems))
    if not credentials.configured and host not in LOOPBACK_HOSTS:
        where = host or "every address (an empty host)"
        raise StartupRefused(
            f"refusing to listen on {where} without credentials: set DASHBOARD_USER and DASHBOARD_PASSWORD "
            "(or DASHBOARD_TOKEN), or bind QUEUE_DASHBOARD_HOST to 127.0.0.1"
        )


#: What session cookies are signed for: not ``session``, which cookies without an id were.
SESSION_PURPOSE = "session-id"


def _session_payload(session_id: str, user: str) -> str:
    """What a session's signature covers: its id (fixed alphabet, no ``|``) then the user."""
    return f"{session_id}|{user}"


@dataclass(frozen=True)
class Session:
    """A signed-in browser's session, as its (verified) cookie names it."""

    user: str
    id: str
    issued: int

    def remaining(self, now: float | None = None) -> int:
        """Whole seconds until the cookie expires (at least 1): how long a revocation must last."""
        now = time.time() if now is None else now
        return max(1, math.ceil(self.issued + SESSION_LIFETIME - now))


class Signer:
    """HMAC tokens, ``timestamp.signature`` over a purpose and a payload: CSRF tokens, and the
    signed part of session cookies (:meth:`issue_session`)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _sign(self, purpose: str, payload: str, issued: int) -> str:
        mac = hmac.new(self._key, f"{purpose}|{payload}|{issued}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def issue(self, purpose: str, payload: str, now: float | None = None) -> str:
        issued = int(now if now is not None else time.time())
        return f"{issued}.{self._sign(purpose, payload, issued)}"

    def verify(self, purpose: str, payload: str, token: str, max_age: float, now: float | None = None) -> bool:
        try:
            issued_text, signature = token.split(".", 1)
            issued = int(issued_text)
        except (ValueError, AttributeError):
            return False
        age = (now if now is not None else time.time()) - issued
        if age < -60 or age > max_age:
            return False
        return hmac.compare_digest(signature, self._sign(purpose, payload, issued))

    def issue_session(self, user: str, now: float | None = None) -> str:
        """A session cookie's value, ``user.id.issued.signature``: the user name in clear (it is
        not a secret) and a fresh random id, which sign-out revokes (:class:`RevokedSessions`),
        both under the signature."""
        encoded = base64.urlsafe_b64encode(user.encode()).decode().rstrip("=")
        session_id = secrets.token_urlsafe(16)
        return f"{encoded}.{session_id}.{self.issue(SESSION_PURPOSE, _session_payload(session_id, user), now)}"

    def read_session(self, cookie: str, now: float | None = None) -> Session | None:
        """The session a cookie proves, or None (forged, expired, or not of this format).

        Cookies issued before sessions had an id (``user.issued.signature``) are refused, not
        read: they could never be revoked, so their holders sign in again, once. (They are signed
        for another purpose as well, so no reading of their text could make them pass.)"""
        try:
            encoded, session_id, issued_text, signature = cookie.split(".")
            user = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            issued = int(issued_text)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        if not SESSION_ID.fullmatch(session_id):
            return None
        token = f"{issued_text}.{signature}"
        if not self.verify(SESSION_PURPOSE, _session_payload(session_id, user), token, SESSION_LIFETIME, now):
            return None
        return Session(user, session_id, issued)

    def csrf_token(self, identity: Identity | None) -> str:
        return self.issue("csrf", _csrf_subject(identity))

    def check_csrf(self, identity: Identity | None, token: str) -> bool:
        return bool(token) and self.verify("csrf", _csrf_subject(identity), token, CSRF_LIFETIME)


class RevokedSessions:
    """Session ids that signed out, in Redis (shared by every dashboard instance), each kept until
    its cookie would have expired anyway: the set never outgrows the sessions of the last 12 h.

    Redis errors are not caught here. The dashboard's ``authenticate`` lets them reach its
    ``errors`` middleware, which answers 503 as it does for every page when Redis is unreachable:
    a session that cannot be checked is not trusted (fail closed), for reading and acting alike,
    and a sign-out that cannot be recorded says so rather than pretend.
    """

    def __init__(self, redis_client: Any, prefix: str) -> None:
        self._client = redis_client
        self._prefix = prefix

    def _key(self, session: Session) -> str:
        return f"{self._prefix}{session.id}"

    def revoke(self, session: Session, now: float | None = None) -> None:
        self._client.set(self._key(session), "1", ex=session.remaining(now))

    def is_revoked(self, session: Session) -> bool:
        return bool(self._client.exists(self._key(session)))


def _csrf_subject(identity: Identity | None) -> str:
    return "anonymous" if identity is None else f"{identity.via}:{identity.name}"


def signing_key(credentials: Credentials, redis_client: Any | None, key_name: str) -> bytes:
    """A key shared by every instance (random, kept in Redis) mixed with the credentials.

    Without Redis at startup a process-local random key is used: sessions then end when the
    process restarts, which is the only cost.
    """
    stored: str | None = None
    if redis_client is not None:
        try:
            redis_client.set(key_name, secrets.token_hex(32), nx=True)
            stored = redis_client.get(key_name)
        except Exception as exc:
            logger.warning("dashboard: no shared signing key in Redis (%s); sessions end on restart",
                           type(exc).__name__)
    base = bytes.fromhex(stored) if stored else secrets.token_bytes(32)
    return hmac.new(base, credentials.fingerprint(), hashlib.sha256).digest()


MAX_THROTTLE_KEYS = 10000  # (address, account) pairs the login throttle keeps at most


class LoginThrottle:
    """At most ``attempts`` failed logins per key in ``window`` seconds.

    A key is a client address (:func:`client_address`: behind a proxy named in
    ``DASHBOARD_TRUSTED_PROXIES``, the client it forwards; an IPv6 one as its /64 network,
    :func:`throttle_address`) and the account tried there
    (:func:`throttle_account`): a user name (login form or basic auth, one count for both: they
    guess the same password) or the bearer token. Per account, not per address alone: behind a
    proxy that is not trusted every client has the proxy's address, and someone guessing the
    admin's password (or a scraper left on an old token) must not shut out the read-only user and
    every working token with it.
    """

    def __init__(self, attempts: int = 5, window: float = 60.0) -> None:
        self.attempts = attempts
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(address, deque())
        while failures and failures[0] < now - self.window:
            failures.popleft()
        return failures

    def blocked_for(self, address: str, now: float | None = None) -> float:
        """Seconds until ``address`` may try again (0 when it may now)."""
        now = time.monotonic() if now is None else now
        failures = self._recent(address, now)
        if len(failures) < self.attempts:
            return 0.0
        return max(0.0, failures[0] + self.window - now)

    def failed(self, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._recent(address, now).append(now)
        if len(self._failures) > MAX_THROTTLE_KEYS:
            self._forget(now)

    def _forget(self, now: float) -> None:
        """Bounded: a client names the account it tries, so it can make keys at will. Keys whose
        last failure left the window go; then, down to half the bound, the longest quiet of those
        not blocked now. A blocked key is never dropped: a guesser could otherwise free its own by
        failing under ten thousand made-up names. (A blocked key is not made at will: each cost
        ``attempts`` failures within the window.)"""
        for key in [k for k, f in self._failures.items() if not f or f[-1] < now - self.window]:
            del self._failures[key]
        keep = MAX_THROTTLE_KEYS // 2
        if len(self._failures) > keep:
            unblocked = [k for k in self._failures if not self.blocked_for(k, now)]
            by_last_failure = sorted(unblocked, key=lambda k: self._failures[k][-1])
            for key in by_last_failure[: len(self._failures) - keep]:
                del self._failures[key]

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``text`` as an IP address (an IPv4-mapped IPv6 one as the IPv4 it maps), or None."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: Sequence[IPNetwork]) -> bool:
    return any(address in network for network in trusted)  # another IP version: not in it


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]) -> str:
    """The address a request comes from, as the login throttle and the log name it.

    ``peer`` is the TCP peer (``?`` when unknown). When it is a trusted proxy, the client is the
    right-most address of ``X-Forwarded-For`` (``forwarded_for``: every such header, in order)
    that is not a trusted proxy itself: each proxy appends the address it was reached from, so
    what lies left of the first untrusted one was written by the client and proves nothing. A
    header that is missing, or unreadable before that address is found, leaves the peer; one
    made of trusted proxies only gives its left-most. From an untrusted peer the header is
    ignored: a client must not choose its own throttle key.
    """
    address = _address(peer or "")
    if address is None:
        return peer or "?"
    if not _is_trusted(address, trusted):
        return str(address)
    hops = [hop for header in forwarded_for for hop in header.split(",")]
    client = None
    for hop in reversed(hops):
        client = _address(hop)
        if client is None:
            return str(address)
        if not _is_trusted(client, trusted):
            break
    return str(client or address)


#: How much of an IPv6 address the login throttle counts as one client: its /64 network. One
#: subscriber gets a whole /64 (usually far more), and every address in it is theirs to use, so
#: per address a guesser had five tries a minute times 2**64.
THROTTLE_IPV6_PREFIX = 64


def throttle_address(address: str) -> str:
    """What the login throttle counts a client address (:func:`client_address`) under: an IPv6
    address as its /64 network (``2001:db8::/64``), anything else (IPv4, ``?``) as it is. The log
    keeps naming the full address."""
    parsed = _address(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, THROTTLE_IPV6_PREFIX), strict=False))
    return address


def _scheme_and_value(header: str) -> tuple[str, str]:
    scheme, _, value = header.partition(" ")
    return scheme.lower(), value.strip()


def _basic_pair(value: str) -> tuple[str, str] | None:
    """``user:password`` of a basic-auth value, or None when it is not one."""
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def throttle_account(header: str) -> str:
    """The account an ``Authorization`` header tries, as the login throttle counts it: the user
    name of basic auth (as the login form's), ``bearer`` for any token, ``?`` for anything else."""
    scheme, value = _scheme_and_value(header)
    if scheme == "bearer":
        return "bearer"
    pair = _basic_pair(value) if scheme == "basic" else None
    return pair[0] if pair else "?"


def parse_authorization(header: str, credentials: Credentials) -> Identity | None:
    """The identity an ``Authorization`` header proves, or None."""
    scheme, value = _scheme_and_value(header)
    if scheme == "bearer":
        return credentials.check_token(value)
    pair = _basic_pair(value) if scheme == "basic" else None
    return credentials.check_password(*pair) if pair else None

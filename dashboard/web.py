"""What every request goes through: who is calling, may they do this, and safe responses.

Middlewares, outermost first (as :func:`dashboard.app.create_app` lists them):

1. ``security_headers`` — CSP (no inline script or style, no third-party origin),
   ``nosniff``, no framing, no caching of data; outermost so that every response gets them,
   the error pages ``errors`` makes included (inside it, those went out bare);
2. ``errors`` — turns failures into a JSON error (``/api/``, ``/metrics``) or an error page,
   and Redis outages into 503, without leaking a traceback;
3. ``authenticate`` — sets ``request["identity"]`` or answers 401 / redirects to ``/login``;
   an ``Authorization`` header counts against the login throttle like the login form does
   (429 while its address is blocked for the account it tries); a session cookie counts only
   while its session is not revoked (signed out);
4. ``guard_posts`` — on every POST: the role may act (403 ``read_only``), the ``Origin`` is ours
   and the CSRF token is valid (403 ``csrf``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import redis
from aiohttp import web
from jinja2 import Environment, FileSystemLoader, select_autoescape

from dashboard import formatting
from dashboard.data import ActionError, BadFilter, DashboardData
from dashboard.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    LOOPBACK_HOSTS,
    SESSION_COOKIE,
    Credentials,
    Identity,
    LoginThrottle,
    RevokedSessions,
    Signer,
    client_address,
    parse_authorization,
    throttle_account,
    throttle_address,
)
from queues.errors import BrokerUnreachableError
from settings import IPNetwork, ip_networks

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"
REFRESH_SECONDS = 5
PUBLIC_PATHS = frozenset({"/healthz", "/login", "/favicon.ico"})
#: Paths that need no identity, beside ``/static/``: a session cookie sent with them is not read
#: (so not checked against Redis for a sign-out).
NO_IDENTITY_PATHS = frozenset({"/favicon.ico"})
#: The header a trusted reverse proxy names the client in (``DASHBOARD_TRUSTED_PROXIES``).
FORWARDED_FOR = "X-Forwarded-For"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Origin = tuple[str, str, int]  # scheme, host, port: what two URLs share when they are one site


@dataclass
class Dashboard:
    """The per-app state every handler reads (``request.app[DASHBOARD]``)."""

    settings: Any
    data: DashboardData
    credentials: Credentials
    signer: Signer
    revoked: RevokedSessions
    sandbox_chat_url: str | None = None
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    templates: Environment = field(init=False)
    static_version: str = field(init=False)
    #: The origin of ``DASHBOARD_PUBLIC_URL`` (:func:`_origin_of`), read once: None when unset.
    public_origin: Origin | None = field(init=False)
    #: ``DASHBOARD_TRUSTED_PROXIES``, read once: whose ``X-Forwarded-For`` names the client.
    trusted_proxies: tuple[IPNetwork, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.public_origin = _origin_of(self.settings.dashboard_public_url or "")
        self.trusted_proxies = tuple(ip_networks(self.settings.dashboard_trusted_proxies))
        self.templates = Environment(
            loader=FileSystemLoader(TEMPLATES_DIR),
            autoescape=select_autoescape(["html", "svg"], default_for_string=True, default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        formatting.install(self.templates)
        digest = hashlib.sha256()
        for path in sorted(STATIC_DIR.glob("*")):
            digest.update(path.read_bytes())
        self.static_version = digest.hexdigest()[:10]

    @property
    def open_mode(self) -> bool:
        return not self.credentials.configured


DASHBOARD = web.AppKey("dashboard", Dashboard)
IDENTITY = web.RequestKey("identity", Identity)
CSRF = web.RequestKey("csrf", str)
CLIENT = web.RequestKey("client", str)


def dashboard_of(request: web.Request) -> Dashboard:
    return request.app[DASHBOARD]


def is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/") or request.path == "/metrics"


def identity_of(request: web.Request) -> Identity:
    return request[IDENTITY]


def client_of(request: web.Request) -> str:
    """The client's address (:func:`~dashboard.security.client_address`): the peer, or behind a
    trusted proxy the address its ``X-Forwarded-For`` gives. What the login throttle counts under
    and the log names; read once per request."""
    if CLIENT not in request:
        forwarded = request.headers.getall(FORWARDED_FOR, [])
        request[CLIENT] = client_address(request.remote, forwarded, dashboard_of(request).trusted_proxies)
    return request[CLIENT]


def path_for_log(request: web.Request) -> str:
    """The request's path as it was sent (percent-encoded), for the log: the decoded path let a
    client without credentials write a line of its own into the log (``/x%0A<a forged line>``).
    Anything unprintable left is escaped too."""
    raw = request.rel_url.raw_path
    return raw if raw.isprintable() else raw.encode("unicode_escape").decode("ascii")


async def form_of(request: web.Request) -> Any:
    """The request's form (``request.post()``); one that cannot be read (not UTF-8, a charset
    Python does not know) is a 400 (:class:`BadFilter`): aiohttp's ``UnicodeDecodeError`` or
    ``LookupError`` was a 500, a traceback and a Sentry event for any client."""
    try:
        return await request.post()
    except (ValueError, LookupError):  # (UnicodeDecodeError is a ValueError)
        raise BadFilter("the form could not be read (it must be UTF-8)") from None


async def in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a sync (Redis) call off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


# --- responses ------------------------------------------------------------------------------

def json_response(payload: Any, status: int = 200) -> web.Response:
    return web.json_response(payload, status=status, dumps=lambda v: json.dumps(v, default=str))


def api_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status, headers=headers)


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    """Render a page; with ``X-Fragment: 1`` only its live part (what the page refreshes)."""
    dash = dashboard_of(request)
    identity = request.get(IDENTITY)
    context.setdefault("page", template.removesuffix(".html"))
    html = dash.templates.get_template(template).render(
        request=request,
        identity=identity,
        csrf_token=csrf_token(request),
        fragment=request.headers.get("X-Fragment") == "1",
        refresh_seconds=REFRESH_SECONDS,
        static_version=dash.static_version,
        sandbox_chat=dash.sandbox_chat_url is not None,
        open_mode=dash.open_mode,
        has_login=dash.credentials.has_login,
        failure_threshold=float(getattr(dash.settings, "alert_failure_rate", 0.2)),
        **context,
    )
    return web.Response(text=html, content_type="text/html", status=status)


def csrf_token(request: web.Request) -> str:
    if CSRF not in request:
        request[CSRF] = dashboard_of(request).signer.csrf_token(request.get(IDENTITY))
    return request[CSRF]


def page_url(path: str, **query: Any) -> str:
    clean = {k: v for k, v in query.items() if v not in (None, "")}
    return f"{path}?{urlencode(clean)}" if clean else path


# --- login throttle (shared by the login form and Authorization headers) ---------------------

TOO_MANY_ATTEMPTS = "Too many failed attempts; try again in {seconds} s."


def throttle_key(request: web.Request, account: str) -> str:
    """The key the login throttle counts failures under: the client's address (:func:`client_of`:
    behind a trusted proxy, the one it names; an IPv6 address as its /64 network,
    :func:`~dashboard.security.throttle_address`, since whoever has one address of a /64 can use
    them all) and the account tried (:func:`~dashboard.security.throttle_account`), as the first
    16 hex digits of its SHA-256: the name typed may be a whole form field (up to 1 MiB) the
    throttle would keep."""
    digest = hashlib.sha256(account.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{throttle_address(client_of(request))}|{digest}"


def retry_after(wait: float) -> int:
    """Whole seconds a blocked client is told to wait: rounded up, so never 0."""
    return int(wait) + 1


def blocked_notice(wait: float) -> tuple[str, dict[str, str]]:
    """What a blocked client is told, whichever door it knocked at (the login form, an
    ``Authorization`` header): the message and the ``Retry-After`` header of its 429."""
    seconds = retry_after(wait)
    return TOO_MANY_ATTEMPTS.format(seconds=seconds), {"Retry-After": str(seconds)}


def too_many_attempts(request: web.Request, wait: float) -> web.Response:
    """The 429 for credentials sent by a blocked address (the login form's answer, without the form)."""
    message, headers = blocked_notice(wait)
    if is_api(request):
        return api_error(429, "too_many_attempts", message, headers)
    return web.Response(status=429, text=message, headers=headers)


def identity_from_header(request: web.Request, header: str, key: str) -> Identity | None:
    """The identity an ``Authorization`` header proves, counted by the login throttle.

    Basic and bearer credentials are password checks just as the login form is, so a failure
    counts against the address and the account tried, and a success clears that count, as a form
    login does; otherwise ``curl -u user:guess`` could guess without limit. ``key``: the
    throttle's key for it (:func:`throttle_key`), as the caller checked it.
    """
    dash = dashboard_of(request)
    identity = parse_authorization(header, dash.credentials)
    if identity is None:
        dash.throttle.failed(key)
    else:
        dash.throttle.succeeded(key)
    return identity


def safe_next(target: str | None) -> str:
    """A local path to go back to after login (never another site).

    Judged on the text as the browser will get it: control characters and spaces are refused
    outright, since the URL library drops tabs and newlines when it writes ``Location``
    (``/\t/evil.example`` went out as ``//evil.example``), and the path must be one of ours.
    """
    if not target or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
        return "/"
    try:
        parts = urlsplit(target)
    except ValueError:  # "//[x": a bracket the URL library cannot read as an address
        return "/"
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//") \
            or "\\" in target:
        return "/"
    return parts.path + (f"?{parts.query}" if parts.query else "")


# --- middlewares ----------------------------------------------------------------------------

def error_page(request: web.Request, status: int, code: str, message: str) -> web.Response:
    if is_api(request):
        return api_error(status, code, message)
    try:
        return render(request, "error.html", status=status, status_code=status, code=code, message=message)
    except Exception:  # the error page itself must not fail
        return web.Response(text=f"{status} {message}", status=status, content_type="text/plain")


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.status not in (401,) and exc.content_type != "application/json":
            return error_page(request, exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        raise
    except ActionError as exc:
        return error_page(request, exc.status, exc.code, exc.message)
    except BadFilter as exc:
        return error_page(request, 400, "bad_request", str(exc))
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        logger.warning("dashboard: Redis unreachable on %s %s (%s)", request.method, path_for_log(request),
                       type(exc).__name__)
        return error_page(request, 503, "redis_unavailable", "Redis is unreachable; figures cannot be read")
    except BrokerUnreachableError as exc:  # an action that needs the broker (empty a queue …)
        logger.warning("dashboard: %s on %s %s", exc, request.method, path_for_log(request))
        return error_page(request, 503, "broker_unavailable", str(exc))
    except Exception:
        logger.exception("dashboard: error on %s %s", request.method, path_for_log(request))
        return error_page(request, 500, "internal_error", "Something went wrong; the log has the details")


CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-src 'self'; frame-ancestors 'none'; form-action 'self'; "
       "base-uri 'none'; object-src 'none'")


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
        _set_headers(request, response)
        raise
    _set_headers(request, response)
    return response


def _set_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if not request.path.startswith("/static/"):
        headers.setdefault("Cache-Control", "no-store")


def _same_site(request: web.Request, origin: str) -> bool:
    """Whether a browser's ``Origin`` is this dashboard: the address it was asked at (scheme and
    Host), or its public address behind a TLS proxy (``DASHBOARD_PUBLIC_URL``; a proxy may pass
    on a Host of its own, such as 127.0.0.1:9181, which the browser's origin never is).

    Every side is read by :func:`_origin_of`, so case and a default port make no difference and
    the scheme does; an ``Origin`` it cannot read (``null``, ``http://[x``) is not ours."""
    seen = _origin_of(origin)
    if seen is None:
        return False
    return seen in (_origin_of(f"{request.scheme}://{request.host}"), dashboard_of(request).public_origin)


def _origin_of(url: str) -> Origin | None:
    """A URL's origin as a browser writes it (scheme and host in lower case, the port given or the
    scheme's own), so ``https://Dash.example.com:443/`` is ``https://dash.example.com``; None for
    an empty or unreadable one (never an exception: a request's Origin header is anyone's text)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not parts.hostname or scheme not in ("http", "https"):
        return None
    return scheme, parts.hostname.lower(), port or (443 if scheme == "https" else 80)


def secure_cookies(request: web.Request) -> bool:
    """Whether cookies go out marked Secure: the request came over TLS, or a TLS proxy serves the
    dashboard (``DASHBOARD_PUBLIC_URL`` is https://): aiohttp then sees plain HTTP from the proxy."""
    public = dashboard_of(request).public_origin
    return request.secure or (public is not None and public[0] == "https")


def _hostname(host_header: str) -> str:
    try:
        return urlsplit(f"//{host_header}").hostname or ""
    except ValueError:
        return ""


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    dash = dashboard_of(request)
    if dash.open_mode:
        # Open mode is for local use only: a page reached through another host name is a
        # DNS-rebinding attempt (a web site pointing its name at 127.0.0.1).
        if _hostname(request.host) not in LOOPBACK_HOSTS:
            return api_error(421, "wrong_host", "this dashboard answers on a loopback address only")
        request[IDENTITY] = Identity("local", "admin", "open")
        return await handler(request)
    identity = None
    header = request.headers.get("Authorization", "")
    if header:
        # Checked before the credentials, so a blocked address learns nothing from a guess.
        key = throttle_key(request, throttle_account(header))
        wait = dash.throttle.blocked_for(key)
        if wait:
            return too_many_attempts(request, wait)
        identity = identity_from_header(request, header, key)
    elif SESSION_COOKIE in request.cookies and not (
            request.path in NO_IDENTITY_PATHS or request.path.startswith("/static/")):
        identity = await session_identity(request, request.cookies[SESSION_COOKIE])
    if identity is not None:
        request[IDENTITY] = identity
    if identity is not None or request.path in PUBLIC_PATHS or request.path.startswith("/static/"):
        return await handler(request)
    if header:
        logger.info("dashboard: refused credentials from %s for %s", client_of(request), path_for_log(request))
    if is_api(request) or request.method != "GET" or not dash.credentials.has_login:
        challenge = 'Basic realm="faceit-bot dashboard", charset="UTF-8"'
        if dash.credentials.token:
            challenge += ', Bearer realm="faceit-bot dashboard"'
        if is_api(request):
            return api_error(401, "unauthorized", "credentials required", {"WWW-Authenticate": challenge})
        return web.Response(status=401, text="credentials required", headers={"WWW-Authenticate": challenge})
    raise web.HTTPSeeOther(page_url("/login", next=request.path_qs))


async def session_identity(request: web.Request, cookie: str) -> Identity | None:
    """Who a session cookie signs in, or None: forged, expired, of a user who no longer exists, or
    signed out (revoked in Redis by ``POST /logout``, on any instance).

    Every request with a session cookie asks Redis, except for static files and the other paths
    that need no identity (``NO_IDENTITY_PATHS``; so the error page keeps its style while Redis
    is down). When Redis cannot answer the error propagates: the ``errors`` middleware answers
    503, as for any page that reads Redis, so a session that cannot be checked neither reads nor
    acts (fail closed).
    """
    dash = dashboard_of(request)
    session = dash.signer.read_session(cookie)
    role = dash.credentials.role_of(session.user) if session else None
    if session is None or role is None:
        return None
    if await in_thread(dash.revoked.is_revoked, session):
        return None
    return Identity(session.user, role, "session")


@web.middleware
async def guard_posts(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return await handler(request)
    dash = dashboard_of(request)
    identity: Identity | None = request.get(IDENTITY)
    origin = request.headers.get("Origin")
    if origin and not _same_site(request, origin):
        return _refuse(request, "cross_origin", "this request came from another site")
    if request.path not in ("/login", "/logout") and (identity is None or not identity.can_act):
        return _refuse(request, "read_only", "this account can look but not act")
    if request.path.startswith("/_sandbox/"):
        # The sandbox chat's own script cannot carry our token: require a same-origin fetch.
        if not origin and request.headers.get("Sec-Fetch-Site") != "same-origin":
            return _refuse(request, "csrf", "missing Origin on a sandbox chat request")
        return await handler(request)
    token = request.headers.get(CSRF_HEADER, "")
    if not token and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await form_of(request)
        token = str(form.get(CSRF_FIELD, ""))
    if not dash.signer.check_csrf(identity, token):
        return _refuse(request, "csrf", "missing or invalid CSRF token; reload the page and try again")
    return await handler(request)


def _refuse(request: web.Request, code: str, message: str) -> web.Response:
    logger.info("dashboard: refused %s %s from %s: %s", request.method, path_for_log(request), client_of(request),
                code)
    return error_page(request, 403, code, message)

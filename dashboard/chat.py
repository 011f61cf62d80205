"""The Chat page (sandbox mode only): the sandbox Bot API's web chat beside the jobs it caused.

The chat is served through the dashboard (``/chat/frame`` and ``/_sandbox/*`` are passed to
``TELEGRAM_API_URL``) so it is same-origin: it can sit in a frame here, it works when the
sandbox port is not reachable from the operator's browser, and it sits behind the dashboard's
login. The chat's own script cannot carry our CSRF token, so its POSTs are accepted only as
same-origin fetches from an admin (see ``guard_posts``).
"""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web

from dashboard.data import JobFilters
from dashboard.web import dashboard_of, in_thread, render

logger = logging.getLogger(__name__)

CLIENT = web.AppKey("sandbox_client", aiohttp.ClientSession)
DEFAULT_USER = 1001
_PASSED_HEADERS = ("Content-Type", "Content-Security-Policy", "Cache-Control")

routes = web.RouteTableDef()


@routes.get("/chat")
async def chat_page(request: web.Request) -> web.Response:
    try:
        user = int(request.query.get("user") or DEFAULT_USER)
    except ValueError:
        user = DEFAULT_USER
    data = dashboard_of(request).data
    view = await in_thread(data.jobs, JobFilters(user=user, per_page=15))
    return render(request, "chat.html", user=user, view=view, chat_url=dashboard_of(request).sandbox_chat_url)


@routes.get("/chat/frame")
async def chat_frame(request: web.Request) -> web.StreamResponse:
    return await _forward(request, "/chat")


@routes.route("*", "/_sandbox/{tail:.*}")
async def sandbox_control(request: web.Request) -> web.StreamResponse:
    if request.method not in ("GET", "POST"):
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST"])
    return await _forward(request, request.path)


async def _forward(request: web.Request, path: str) -> web.StreamResponse:
    base = (dashboard_of(request).sandbox_chat_url or "").removesuffix("/chat")
    client = request.app[CLIENT]
    body = await request.read() if request.method == "POST" else None
    headers = {"Content-Type": request.headers["Content-Type"]} if "Content-Type" in request.headers else {}
    try:
        async with client.request(request.method, base + path, params=request.query, data=body,
                                  headers=headers, allow_redirects=False) as upstream:
            payload = await upstream.read()
            response = web.Response(body=payload, status=upstream.status)
            for name in _PASSED_HEADERS:
                if name in upstream.headers:
                    response.headers[name] = upstream.headers[name]
    except (aiohttp.ClientError, TimeoutError) as exc:
        logger.warning("dashboard: sandbox Bot API unreachable at %s (%s)", base, type(exc).__name__)
        return web.json_response({"ok": False, "description": f"the sandbox Bot API at {base} is unreachable"},
                                 status=502)
    if path == "/chat":
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


def setup_chat(app: web.Application) -> None:
    """Add the Chat page and the proxy, with a client session that lives as long as the app."""
    app.add_routes(routes)

    async def client_context(app: web.Application):
        timeout = aiohttp.ClientTimeout(total=40, connect=5)
        app[CLIENT] = aiohttp.ClientSession(timeout=timeout)
        yield
        await app[CLIENT].close()

    app.cleanup_ctx.append(client_context)

"""A local stand-in for the Telegram Bot API, with control endpoints and a web chat.

The real aiogram bot talks to it through ``TelegramAPIServer.from_base(url)`` exactly as it
talks to api.telegram.org: ``POST {base}/bot{token}/{method}`` (JSON, urlencoded or multipart
bodies) answered with ``{"ok": true, "result": ...}`` or Telegram's error replies with the same
HTTP status (400, 401, 403, 404, 409, 429 with ``retry_after``). Files are served at
``{base}/file/bot{token}/{path}``.

Tests and people drive the other side: ``/_sandbox/*`` injects what users type and click and
shows what the bot did (see :mod:`sandbox.telegram_control`), and ``/chat`` is a web page to
talk to the bot as a user.

Run it with ``python -m sandbox.telegram_api --port 8082``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import time
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from multidict import MultiDictProxy

from sandbox.telegram_control import setup_control_routes
from sandbox.telegram_methods import METHODS_BY_LOWER, Call, Params, UploadedFile
from sandbox.telegram_state import ApiError, SandboxRegistry
from sandbox.telegram_webhook import WebhookDelivery
from settings import SANDBOX_BOT_TOKEN  # re-exported: the token the bot uses against this sandbox

log = logging.getLogger(__name__)

REGISTRY_KEY = web.AppKey("telegram_sandbox_registry", SandboxRegistry)
WEBHOOK_KEY = web.AppKey("telegram_sandbox_webhook", WebhookDelivery)
MAX_REQUEST_BYTES = 52 * 1024 * 1024  # Telegram accepts uploads up to 50 MB
_TOKEN_IN_PATH = re.compile(r"/bot[^/]+")


def json_reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(body, ensure_ascii=False),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_reply(error: ApiError) -> web.Response:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    return json_reply(error.to_json(), status=error.code, headers=headers)


class RedactingAccessLogger(AbstractAccessLogger):
    """Access log lines without the bot token (it is part of every Bot API path).

    Lines go out at DEBUG; below that level aiohttp skips the logger (and its clock reads)
    altogether, so a busy sandbox pays nothing per request for a log nobody reads.
    """

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.DEBUG)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = _TOKEN_IN_PATH.sub("/bot<token>", request.path)
        self.logger.debug("%s %s -> %s in %.3fs", request.method, path, response.status, time)


async def read_params(request: web.Request) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
    """Parameters from the query string and a JSON, urlencoded or multipart body; plus files."""
    values: dict[str, Any] = dict(request.query)
    files: dict[str, UploadedFile] = {}
    if request.method != "POST" or not request.body_exists:
        return values, files
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "Bad Request: can't parse JSON request body") from None
        if not isinstance(body, dict):
            raise ApiError(400, "Bad Request: request body must be a JSON object")
        values.update(body)
        return values, files
    form: MultiDictProxy[Any] = await request.post()
    for name, value in form.items():
        if isinstance(value, web.FileField):
            files[name] = UploadedFile(
                filename=value.filename or name,
                data=value.file.read(),
                content_type=value.content_type,
            )
        else:
            values[name] = value
    return values, files


async def handle_bot_api(request: web.Request) -> web.Response:
    """``/bot{token}/{method}``: check the token, the flood switch, then run the method."""
    registry = request.app[REGISTRY_KEY]
    bot = registry.for_token(request.match_info["token"])
    if bot is None:
        return error_reply(ApiError(401, "Unauthorized"))
    found = METHODS_BY_LOWER.get(request.match_info["method"].lower())
    if found is None:
        return error_reply(ApiError(404, "Not Found"))
    name, handler = found
    bot.method_counts[name] += 1
    bot.last_seen = time.time()
    try:
        retry_after = bot.flood.take(name.lower())
        if retry_after is not None:
            raise ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)
        values, files = await read_params(request)
        result = await handler(Call(bot=bot, registry=registry, params=Params(values), files=files))
    except ApiError as error:
        bot.error_counts[f"{name}:{error.code}"] += 1
        return error_reply(error)
    except Exception:
        log.exception("sandbox Bot API method %s failed", name)
        bot.error_counts[f"{name}:500"] += 1
        return error_reply(ApiError(500, "Internal Server Error"))
    return json_reply({"ok": True, "result": result})


async def handle_file(request: web.Request) -> web.StreamResponse:
    """``/file/bot{token}/{path}``: download an uploaded file, as Telegram's file server does."""
    registry = request.app[REGISTRY_KEY]
    if registry.for_token(request.match_info["token"]) is None:
        return error_reply(ApiError(401, "Unauthorized"))
    stored = registry.file_by_path(request.match_info["path"])
    if stored is None:
        return error_reply(ApiError(404, "Not Found"))
    return web.Response(body=stored.data, content_type=stored.content_type)


def create_app(
    token: str | None = None, registry: SandboxRegistry | None = None, webhook_retry_pause: float = 1.0
) -> web.Application:
    """The sandbox as an aiohttp application.

    ``token`` fixes the one accepted bot token (others get 401); without it any token works.
    """
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app[REGISTRY_KEY] = registry or SandboxRegistry(token)
    app[WEBHOOK_KEY] = WebhookDelivery(app[REGISTRY_KEY], retry_pause=webhook_retry_pause)
    app.router.add_route("*", "/bot{token}/{method}", handle_bot_api)
    app.router.add_get("/file/bot{token}/{path:.+}", handle_file)
    setup_control_routes(app, REGISTRY_KEY)

    async def start_webhooks(app: web.Application) -> None:
        await app[WEBHOOK_KEY].start()

    async def stop(app: web.Application) -> None:
        app[REGISTRY_KEY].close()  # long polls return at once instead of holding the shutdown
        await app[WEBHOOK_KEY].stop()

    app.on_startup.append(start_webhooks)
    app.on_shutdown.append(stop)
    return app


def make_runner(app: web.Application) -> web.AppRunner:
    """A runner that cancels handlers of vanished clients and logs without tokens."""
    return web.AppRunner(
        app,
        handler_cancellation=True,
        access_log_class=RedactingAccessLogger,
        shutdown_timeout=1.0,
    )


async def serve(host: str, port: int, token: str | None) -> None:
    runner = make_runner(create_app(token))
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    base = f"http://{host}:{port}"
    print(f"Telegram sandbox Bot API: {base}  (aiogram: TelegramAPIServer.from_base({base!r}))", flush=True)
    print(f"Chat with the bot: {base}/chat", flush=True)
    if not token:
        print(f"Run the bot with TELEGRAM_API_URL={base} TELEGRAM_BOT_TOKEN={SANDBOX_BOT_TOKEN}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local stand-in for the Telegram Bot API, with a web chat.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--token", default=None, help="accept only this bot token (default: any token)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(serve(args.host, args.port, args.token))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

"""The bot process: ``python -m bot``.

Builds the Bot (``TELEGRAM_API_URL``, HTML), the services on one async Redis client, and a
Dispatcher with five outer update middlewares, outermost first (updates in flight, anonymous
senders, flood guard, errors, language), and one router per feature; registers
the command menu in both languages; then serves updates by long polling (``BOT_MODE=polling``,
the default) or as a webhook (``BOT_MODE=webhook``: aiohttp on ``WEBHOOK_HOST:WEBHOOK_PORT``,
path taken from ``WEBHOOK_URL``, every request must carry ``WEBHOOK_SECRET`` in
``X-Telegram-Bot-Api-Secret-Token`` or it gets 401).

Redis briefly down at start is waited for (a warning line per try, up to ``BOT_REDIS_WAIT``
seconds, 60 by default); after that the bot starts anyway and answers "try again shortly"
until Redis is back — it recovers by itself, no restart needed. The Bot API is waited for up to
``BOT_TELEGRAM_WAIT`` seconds, then the bot stops with one line and exit status 1, which a
supervisor restarts; a refused setting or token stops it with status 2 (``bot.startup``).

On SIGTERM or SIGINT the bot first stops taking updates (polling ends; the webhook's port closes,
and its open connections once their current request is answered),
then waits up to :data:`UPDATES_WAIT` seconds for the updates it is still serving (aiogram serves
each in a task of its own and does not wait for them), then runs the background work they queued
(which message shows each job, :mod:`bot.background`, up to 5 s, retries included), and only then
closes Redis and the Bot API session. Stopped earlier, an answer sent in the last moment would
never be recorded, and stay "queued" with a Cancel button while the result came beside it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiohttp import web

from bot.background import BackgroundWork
from bot.commands import register_commands
from bot.config import BotConfigError, check_config
from bot.middlewares.anonymous import AnonymousSenderMiddleware
from bot.middlewares.errors import ErrorsMiddleware
from bot.middlewares.i18n import LanguageMiddleware
from bot.middlewares.inflight import InFlightMiddleware
from bot.middlewares.ordering import LanguageOrderMiddleware
from bot.middlewares.throttle import ThrottleMiddleware
from bot.redisclient import bot_redis_client
from bot.routers import all_routers, command_names
from bot.services import BotServices
from bot.startup import TelegramUnavailable, check_telegram, set_webhook, wait_for_redis
from bot.telegram import build_bot
from queues.redaction import error_text
from queues.sentry import init_sentry
from queues.waitfor import keep_cancellations

logger = logging.getLogger("bot")

# BOT_UPDATE_CONCURRENCY bounds the updates served at once. Unbounded, a burst of 100
# interleaves so every user waits for the last; bounded, the first ones are answered first
# (same total, far better median).

#: Seconds a stopping bot waits for the updates it is still serving, before it runs their
#: background work (up to 5 s more: ``BotServices.drain``): both within the 10 s a supervisor
#: gives it before SIGKILL.
UPDATES_WAIT = 3.0
#: Where the webhook application keeps aiogram's request handler (its update tasks, at shutdown).
UPDATE_HANDLER = web.AppKey("update_handler", object)


def build_dispatcher(services: BotServices) -> Dispatcher:
    """A Dispatcher with our middlewares (updates in flight, messages sent in a chat's name, flood
    guard, errors, language) and routers; handlers get ``services`` and ``lang``."""
    dp = Dispatcher(disable_fsm=True)  # no handler keeps conversation state: no FSM lookup per update
    dp["services"] = services
    dp.update.outer_middleware(InFlightMiddleware(services.background))
    routers = all_routers()
    dp.update.outer_middleware(AnonymousSenderMiddleware(command_names(routers)))
    dp.update.outer_middleware(ThrottleMiddleware(chosen_lang=services.seen_user, exempt=services.admin_ids))
    dp.update.outer_middleware(LanguageOrderMiddleware())  # /lang ru, then /help: the help in Russian
    dp.update.outer_middleware(ErrorsMiddleware())
    dp.update.outer_middleware(LanguageMiddleware(services))
    dp.include_routers(*routers)
    return dp


async def _prepare(bot: Bot, dp: Dispatcher, services: BotServices) -> None:
    try:
        await asyncio.to_thread(lambda: services.manager.broker)  # declare the actors now, not on the first request
    except Exception as exc:
        logger.warning("broker not ready yet: %s", exc)
    try:
        await register_commands(bot, services.admin_ids)
    except Exception as exc:  # the menu is a convenience; the commands work without it
        logger.warning("command menu not registered: %s: %s", type(exc).__name__, error_text(exc, 160, bot.token))


def freeze_startup_heap() -> None:
    """Move everything built at start-up (aiogram's ~450 pydantic models, the actors, settings)
    into the collector's permanent generation.

    Those ~200,000 objects live as long as the process, yet every full collection walked them
    all: 75-180 ms with the event loop stopped, measured as the worst first replies of a burst
    of 100 users. Frozen, a full collection only walks what was made since.
    """
    gc.collect()
    gc.freeze()


async def finish_updates(background: BackgroundWork, tasks: Iterable[asyncio.Task[Any]] = (),
                         timeout: float = UPDATES_WAIT) -> None:
    """Once no more updates are taken: wait (up to ``timeout`` s) for ``tasks`` (those serving
    updates) and until no update is counted in flight (``InFlightMiddleware``), so the background
    work their handlers queue is queued before it is drained."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pending = {task for task in tasks if not task.done()}
    if pending:
        _, pending = await asyncio.wait(pending, timeout=timeout)
    quiet = await background.wait_quiet(max(0.0, deadline - loop.time()))
    if pending or not quiet:
        logger.warning("%d update(s) still being served after %.0f s; stopping anyway",
                       max(len(pending), background.in_flight), timeout)


async def run_polling(bot: Bot, dp: Dispatcher, settings: Any, background: BackgroundWork | None = None) -> None:
    try:
        await bot.delete_webhook(drop_pending_updates=False)
    except Exception as exc:  # Telegram not reachable yet: polling retries with backoff by itself
        logger.warning("could not clear a webhook (%s); polling anyway", type(exc).__name__)
    logger.info("bot started: long polling")
    limit = settings.bot_update_concurrency
    try:
        # The session stays open for the updates still being served: run() closes it.
        await dp.start_polling(bot, allowed_updates=dp.resolve_used_update_types(), handle_signals=True,
                               tasks_concurrency_limit=limit, close_bot_session=False)
    finally:
        # Polling stopped; aiogram does not wait for the updates it handed to tasks.
        logger.info("bot stopping")
        if background is not None:
            await finish_updates(background, getattr(dp, "_handle_update_tasks", ()))


def build_webhook_app(bot: Bot, dp: Dispatcher, settings: Any) -> tuple[Any, str]:
    """The webhook's aiohttp application and the path it serves updates on (``WEBHOOK_URL``'s),
    refusing any request without ``WEBHOOK_SECRET``."""
    from aiogram.webhook.aiohttp_server import setup_application

    from bot.webhook import CheckedRequestHandler

    secret = settings.webhook_secret.get_secret_value()
    path = urlsplit(settings.webhook_url).path or "/webhook"
    app = web.Application()
    handler = CheckedRequestHandler(dispatcher=dp, bot=bot, secret_token=secret)
    handler.register(app, path=path)
    app[UPDATE_HANDLER] = handler
    setup_application(app, dp, bot=bot)
    return app, path


async def stop_webhook(site: Any, runner: Any, background: BackgroundWork | None = None) -> None:
    """Stop serving the webhook without losing an update Telegram was told we have: close the
    port, then the open connections (Telegram keeps its connections alive, and a request on one
    was still served after the port closed), let the updates already answered finish (aiogram
    serves each in a task of its own after the 200), run the background work they queued, and
    only then shut the application down (its cleanup closes the Bot's session)."""
    await site.stop()
    runner.server.pre_shutdown()  # each open connection closes once its current request is answered
    await asyncio.sleep(0)  # a request read before that starts its update
    if background is not None:
        handler = runner.app.get(UPDATE_HANDLER)
        tasks = getattr(handler, "_background_feed_update_tasks", ())  # aiogram's; the in-flight count covers it
        await finish_updates(background, list(tasks))
        # Their background work (recording answers, deleting a stale one) before the application's
        # cleanup closes the Bot's session, which a late call would quietly open again.
        await background.drain(stop=True)
    await runner.cleanup()


async def run_webhook(bot: Bot, dp: Dispatcher, settings: Any, background: BackgroundWork | None = None) -> None:

    app, path = build_webhook_app(bot, dp, settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.webhook_host, settings.webhook_port)
    await site.start()
    await set_webhook(bot, settings, dp.resolve_used_update_types())
    logger.info("bot started: webhook on %s:%s%s", settings.webhook_host, settings.webhook_port, path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        logger.info("bot stopping")
        await stop_webhook(site, runner, background)


async def run(settings: Any) -> None:
    check_config(settings)
    bot = build_bot(settings)
    client = bot_redis_client(settings)
    services = BotServices(settings, client)
    try:
        await check_telegram(bot, settings)  # first: what it finds stops the bot, Redis is waited for
        await wait_for_redis(client, settings)
        dp = build_dispatcher(services)
        await _prepare(bot, dp, services)
        freeze_startup_heap()
        if settings.bot_mode == "webhook":
            await run_webhook(bot, dp, settings, services.background)
        else:
            await run_polling(bot, dp, settings, services.background)
    finally:
        # After the updates being served finished (run_polling, run_webhook): their background
        # work, retries included, up to drain's 5 s.
        await services.drain(stop=True)
        await client.aclose()
        await bot.session.close()


def init_process(settings: Any) -> None:
    """Logging, and Sentry tagged ``role=bot``: before anything imports the actors, whose broker
    initialises Sentry too (the first role wins, so the bot's errors are not filed as a worker's).
    And ``asyncio.wait_for`` that never loses a cancellation (:mod:`queues.waitfor`)."""
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    init_sentry(settings, "bot")
    keep_cancellations()  # a cancel landing while a Redis command is sent is not lost (queues.waitfor)


def main(settings: Any = None) -> None:
    if settings is None:
        from settings import load_settings_or_exit

        settings = load_settings_or_exit()
    init_process(settings)
    try:
        asyncio.run(run(settings))
    except (BotConfigError, TelegramUnavailable) as exc:
        print(f"bot: {exc}", file=sys.stderr)
        # A refusal would come again: a supervisor does not restart exit 2. An unanswered Bot API
        # may answer next time: exit 1, restarted.
        raise SystemExit(2 if isinstance(exc, BotConfigError) else 1) from None
    except KeyboardInterrupt:
        pass

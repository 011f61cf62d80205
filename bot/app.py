"""The bot process: ``python -m bot``.

Builds the Bot (``TELEGRAM_API_URL``, HTML), the services on one async Redis client, and a
Dispatcher with the errors and language middlewares and one router per feature; registers
the command menu in both languages; then serves updates by long polling (``BOT_MODE=polling``,
the default) or as a webhook (``BOT_MODE=webhook``: aiohttp on ``WEBHOOK_HOST:WEBHOOK_PORT``,
path taken from ``WEBHOOK_URL``, every request must carry ``WEBHOOK_SECRET`` in
``X-Telegram-Bot-Api-Secret-Token`` or it gets 401).

Redis briefly down at start is waited for (a warning line per try, up to ``BOT_REDIS_WAIT``
seconds, 60 by default); after that the bot starts anyway and answers "try again shortly"
until Redis is back — it recovers by itself, no restart needed.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import redis
from aiogram import Bot, Dispatcher

from bot.commands import register_commands
from bot.config import BotConfigError, check_config
from bot.middlewares.errors import ErrorsMiddleware
from bot.middlewares.i18n import LanguageMiddleware
from bot.middlewares.inflight import InFlightMiddleware
from bot.middlewares.throttle import ThrottleMiddleware
from bot.redisclient import bot_redis_client
from bot.routers import all_routers
from bot.services import BotServices
from bot.telegram import build_bot
from queues.sentry import init_sentry
from settings import redact_url

logger = logging.getLogger("bot")

# BOT_UPDATE_CONCURRENCY bounds the updates served at once. Unbounded, a burst of 100
# interleaves so every user waits for the last; bounded, the first ones are answered first
# (same total, far better median).


def build_dispatcher(services: BotServices) -> Dispatcher:
    """A Dispatcher with our middlewares (updates in flight, flood guard, errors, language) and
    routers; handlers get ``services`` and ``lang``."""
    dp = Dispatcher(disable_fsm=True)  # no handler keeps conversation state: no FSM lookup per update
    dp["services"] = services
    dp.update.outer_middleware(InFlightMiddleware(services.background))
    dp.update.outer_middleware(ThrottleMiddleware(chosen_lang=services.seen_user, exempt=services.admin_ids))
    dp.update.outer_middleware(ErrorsMiddleware())
    dp.update.outer_middleware(LanguageMiddleware(services))
    dp.include_routers(*all_routers())
    return dp


async def wait_for_redis(client: Any, settings: Any, max_wait: float | None = None) -> bool:
    """Ping Redis until it answers or ``max_wait`` passes; True when it answered."""
    max_wait = float(settings.bot_redis_wait if max_wait is None else max_wait)
    deadline = time.monotonic() + max_wait
    delay = 0.5
    url = redact_url(settings.redis_url)
    while True:
        try:
            await client.ping()
            return True
        except (redis.RedisError, OSError) as exc:
            if time.monotonic() + delay > deadline:
                logger.error("Redis at %s is still unreachable after %.0f s (%s); starting anyway: commands "
                             "answer 'try again shortly' until it is back", url, max_wait, type(exc).__name__)
                return False
            logger.warning("Redis at %s is unreachable (%s); retrying in %.1f s", url, type(exc).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def _prepare(bot: Bot, dp: Dispatcher, services: BotServices) -> None:
    try:
        await asyncio.to_thread(lambda: services.manager.broker)  # declare the actors now, not on the first request
    except Exception as exc:
        logger.warning("broker not ready yet: %s", exc)
    try:
        await register_commands(bot, services.admin_ids)
    except Exception as exc:  # the menu is a convenience; the commands work without it
        logger.warning("command menu not registered: %s: %s", type(exc).__name__, str(exc)[:160])


def freeze_startup_heap() -> None:
    """Move everything built at start-up (aiogram's ~450 pydantic models, the actors, settings)
    into the collector's permanent generation.

    Those ~200,000 objects live as long as the process, yet every full collection walked them
    all: 75-180 ms with the event loop stopped, measured as the worst first replies of a burst
    of 100 users. Frozen, a full collection only walks what was made since.
    """
    gc.collect()
    gc.freeze()


async def check_telegram(bot: Bot, settings: Any) -> None:
    """Ask the Bot API who the bot is, as polling does first; raise :class:`BotConfigError` (one
    line, token scrubbed) when it refuses the token (at once: a configuration error), or when
    network or server trouble lasts ``BOT_TELEGRAM_WAIT`` seconds (retried meanwhile: a blip at
    start is not a configuration error). Unchecked, the same failure surfaced inside
    ``start_polling`` as chained tracebacks ending in TelegramNetworkError.
    """
    from aiogram.exceptions import (
        TelegramAPIError,
        TelegramNetworkError,
        TelegramServerError,
        TelegramUnauthorizedError,
    )

    url = redact_url(settings.telegram_api_url)
    deadline = time.monotonic() + float(settings.bot_telegram_wait)
    delay = 0.5
    while True:
        try:
            await bot.me()
            return
        except (TelegramNetworkError, TelegramServerError) as exc:
            reason = exc.message.removeprefix("HTTP Client says - ").replace(bot.token, "<token>")
            if time.monotonic() + delay > deadline:
                raise BotConfigError(f"the Telegram Bot API at {url} does not answer ({reason}); "
                                     f"check TELEGRAM_API_URL and the network") from None
            logger.warning("the Telegram Bot API at %s does not answer (%s); retrying in %.1f s", url, reason, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        except TelegramUnauthorizedError:
            raise BotConfigError(f"the Telegram Bot API at {url} refused TELEGRAM_BOT_TOKEN (Unauthorized)") from None
        except TelegramAPIError as exc:  # Not Found (a wrong URL) and the like: say it now
            reason = f"{type(exc).__name__}: {exc.message}".replace(bot.token, "<token>")
            raise BotConfigError(f"the Telegram Bot API at {url} refused getMe ({reason})") from None


async def run_polling(bot: Bot, dp: Dispatcher, settings: Any) -> None:
    try:
        await bot.delete_webhook(drop_pending_updates=False)
    except Exception as exc:  # Telegram not reachable yet: polling retries with backoff by itself
        logger.warning("could not clear a webhook (%s); polling anyway", type(exc).__name__)
    logger.info("bot started: long polling")
    limit = settings.bot_update_concurrency
    await dp.start_polling(bot, allowed_updates=dp.resolve_used_update_types(), handle_signals=True,
                           tasks_concurrency_limit=limit)


async def _set_webhook(bot: Bot, url: str, secret: str, updates: list[str]) -> None:
    """Register the webhook, retrying (with a log line each time) until Telegram takes it."""
    delay = 1.0
    while True:
        try:
            await bot.set_webhook(url, secret_token=secret, allowed_updates=updates)
            return
        except Exception as exc:
            logger.warning("could not set the webhook (%s: %s); retrying in %.0f s", type(exc).__name__,
                           str(exc)[:120], delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


async def run_webhook(bot: Bot, dp: Dispatcher, settings: Any) -> None:
    from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
    from aiohttp import web

    secret = settings.webhook_secret.get_secret_value()
    path = urlsplit(settings.webhook_url).path or "/webhook"
    app = web.Application()
    SimpleRequestHandler(dispatcher=dp, bot=bot, secret_token=secret).register(app, path=path)
    setup_application(app, dp, bot=bot)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.webhook_host, settings.webhook_port)
    await site.start()
    await _set_webhook(bot, settings.webhook_url, secret, dp.resolve_used_update_types())
    logger.info("bot started: webhook on %s:%s%s", settings.webhook_host, settings.webhook_port, path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        logger.info("bot stopping")
        await runner.cleanup()


async def run(settings: Any) -> None:
    check_config(settings)
    bot = build_bot(settings)
    client = bot_redis_client(settings)
    services = BotServices(settings, client)
    try:
        await wait_for_redis(client, settings)
        if settings.bot_mode != "webhook":  # a webhook is registered with retries (_set_webhook)
            await check_telegram(bot, settings)
        dp = build_dispatcher(services)
        await _prepare(bot, dp, services)
        freeze_startup_heap()
        if settings.bot_mode == "webhook":
            await run_webhook(bot, dp, settings)
        else:
            await run_polling(bot, dp, settings)
    finally:
        await services.drain(stop=True)
        await client.aclose()
        await bot.session.close()


def init_process(settings: Any) -> None:
    """Logging, and Sentry tagged ``role=bot``: before anything imports the actors, whose broker
    initialises Sentry too (the first role wins, so the bot's errors are not filed as a worker's)."""
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    init_sentry(settings, "bot")


def main(settings: Any = None) -> None:
    if settings is None:
        from settings import load_settings_or_exit

        settings = load_settings_or_exit()
    init_process(settings)
    try:
        asyncio.run(run(settings))
    except BotConfigError as exc:
        print(f"bot: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        pass

"""What the bot process waits for before it serves anyone: Redis, and the Telegram Bot API.

Both are retried the same way (:func:`retry_until`: 0.5 s doubling to 5 s, a warning line per
try) so that a service still starting next to the bot, or a passing network blip, is not taken
for a configuration error. What ends the wait differs: without Redis the bot starts anyway and
answers "try again shortly" until it is back (``BOT_REDIS_WAIT``); without the Bot API it cannot
do anything, so it stops with one line (``BOT_TELEGRAM_WAIT``), at once when Telegram refuses
the token or the request itself. The two stops differ for a supervisor: a refusal
(:class:`BotConfigError`, exit 2) would come again, a Bot API that did not answer
(:class:`TelegramUnavailable`, exit 1) may answer the next time, so it is restarted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis
from aiogram import Bot
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)

from bot.config import BotConfigError
from settings import redact_url

logger = logging.getLogger("bot")

T = TypeVar("T")

#: What passes: the network, Telegram's servers, and its flood control (a quick restart's setWebhook).
_TRANSIENT = (TelegramNetworkError, TelegramServerError, TelegramRetryAfter)
FIRST_DELAY = 0.5  # seconds before the second try
MAX_DELAY = 5.0  # the delay doubles up to this


class TelegramUnavailable(Exception):
    """The Bot API did not answer within ``BOT_TELEGRAM_WAIT`` (the network, its servers, flood
    control): one line, as a refused setting is, but it may pass, so not a configuration error."""


async def retry_until(call: Callable[[], Awaitable[T]], seconds: float, transient: tuple[type[Exception], ...],
                      what: Callable[[Exception], str]) -> T:
    """``await call()`` until it returns. A ``transient`` error is logged (``what(error)``, then
    when the next try comes) and tried again, until the next try would come after ``seconds``
    have passed: then that error is raised. Any other error is raised at once. An error that
    says when to come back (``retry_after``: Telegram's flood control) is tried again then."""
    deadline = time.monotonic() + seconds
    delay = FIRST_DELAY
    while True:
        try:
            return await call()
        except transient as exc:
            told = getattr(exc, "retry_after", None)
            pause = float(told) if isinstance(told, int | float) and told >= 0 else delay
            if time.monotonic() + pause > deadline:
                raise
            logger.warning("%s; retrying in %.1f s", what(exc), pause)
            await asyncio.sleep(pause)
            delay = min(delay * 2, MAX_DELAY)


async def wait_for_redis(client: Any, settings: Any) -> bool:
    """Ping Redis until it answers or ``BOT_REDIS_WAIT`` passes; True when it answered."""
    max_wait = float(settings.bot_redis_wait)
    url = redact_url(settings.redis_url)
    try:
        await retry_until(client.ping, max_wait, (redis.RedisError, OSError),
                          lambda exc: f"Redis at {url} is unreachable ({type(exc).__name__})")
        return True
    except (redis.RedisError, OSError) as exc:
        logger.error("Redis at %s is still unreachable after %.0f s (%s); starting anyway: commands "
                     "answer 'try again shortly' until it is back", url, max_wait, type(exc).__name__)
        return False


async def ask_telegram(bot: Bot, settings: Any, call: Callable[[], Awaitable[T]], method: str) -> T:
    """``call`` (a Bot API request named ``method``) as a start-up step: network and server
    trouble is retried for ``BOT_TELEGRAM_WAIT`` seconds; then :class:`TelegramUnavailable`, or
    at once when the Bot API refuses the token or the request, :class:`BotConfigError` (one
    line, token scrubbed)."""
    url = redact_url(settings.telegram_api_url)

    def unsaid(text: str) -> str:  # aiogram refuses an empty token: there is always one to hide
        return text.replace(bot.token, "<token>")

    def reason(exc: Exception) -> str:
        return unsaid(getattr(exc, "message", str(exc)).removeprefix("HTTP Client says - "))

    try:
        return await retry_until(call, float(settings.bot_telegram_wait), _TRANSIENT,
                                 lambda exc: f"the Telegram Bot API at {url} does not answer ({reason(exc)})")
    except TelegramRetryAfter as exc:
        raise TelegramUnavailable(f"the Telegram Bot API at {url} holds {method} back for {exc.retry_after} s (flood "
                                  f"control), longer than BOT_TELEGRAM_WAIT; try again later") from None
    except (TelegramNetworkError, TelegramServerError) as exc:
        raise TelegramUnavailable(f"the Telegram Bot API at {url} does not answer ({reason(exc)}); "
                                  f"check TELEGRAM_API_URL and the network") from None
    except ClientDecodeError as exc:  # a web server, but not a Bot API: a wrong URL (a 5xx page is a server error)
        said = unsaid(str(exc.data))[:80]
        raise BotConfigError(f"the server at {url} does not answer as a Telegram Bot API (its reply to {method}: "
                             f"{said!r}); check TELEGRAM_API_URL") from None
    except TelegramUnauthorizedError:
        raise BotConfigError(f"the Telegram Bot API at {url} refused TELEGRAM_BOT_TOKEN (Unauthorized)") from None
    except TelegramAPIError as exc:  # Not Found (a wrong URL), a refused webhook URL and the like: say it now
        raise BotConfigError(f"the Telegram Bot API at {url} refused {method} "
                             f"({type(exc).__name__}: {reason(exc)})") from None


async def check_telegram(bot: Bot, settings: Any) -> None:
    """Ask the Bot API who the bot is, as polling does first. Unchecked, a refused token or an
    unreachable Bot API surfaced inside ``start_polling`` as chained tracebacks."""
    await ask_telegram(bot, settings, bot.me, "getMe")


async def set_webhook(bot: Bot, settings: Any, updates: list[str]) -> None:
    """Register ``WEBHOOK_URL`` (with ``WEBHOOK_SECRET``) for the updates the routers use."""
    await ask_telegram(bot, settings, lambda: bot.set_webhook(
        settings.webhook_url, secret_token=settings.webhook_secret.get_secret_value(), allowed_updates=updates),
        "setWebhook")

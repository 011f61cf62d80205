"""What the bot needs from settings before it can start, checked without importing aiogram.

:func:`check_config` refuses at once, with one line, what cannot work (an empty token against
the real Telegram, webhook mode without its URL or secret, or with an http URL Telegram would
refuse); :func:`bot_token` picks the token.
"""

from __future__ import annotations

from typing import Any

from faceit.errors import PermanentError

REAL_API_HOST = "api.telegram.org"


class BotConfigError(PermanentError):
    """The bot cannot run with these settings (one line for the operator). A worker that meets
    it when delivering fires an error alert with this line (:func:`bot.delivery.deliver_job`)."""

    code = "config"


def bot_token(settings: Any) -> str:
    """``TELEGRAM_BOT_TOKEN``, or the sandbox's token when it is empty and the API is not Telegram's."""
    token = settings.telegram_bot_token.get_secret_value()
    if token:
        return token
    if REAL_API_HOST in settings.telegram_api_url:
        raise BotConfigError("TELEGRAM_BOT_TOKEN is empty: set it, or point TELEGRAM_API_URL at the sandbox "
                             "(python -m sandbox.telegram_api)")
    from sandbox.telegram_api import SANDBOX_BOT_TOKEN

    return SANDBOX_BOT_TOKEN


def check_config(settings: Any) -> None:
    """Raise :class:`BotConfigError` for settings the bot process cannot run with."""
    bot_token(settings)
    if settings.bot_mode == "webhook":
        if not settings.webhook_url:
            raise BotConfigError("BOT_MODE=webhook needs WEBHOOK_URL (the public https URL Telegram posts to)")
        if not settings.webhook_secret.get_secret_value():
            raise BotConfigError("BOT_MODE=webhook needs WEBHOOK_SECRET (Telegram sends it with every update)")
        if REAL_API_HOST in settings.telegram_api_url and not settings.webhook_url.startswith("https://"):
            # Telegram refuses http webhooks; the sandbox (local runs, tests) posts to http too.
            raise BotConfigError("WEBHOOK_URL must be an https:// URL: Telegram posts updates only over https")

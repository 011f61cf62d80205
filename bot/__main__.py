"""``python -m bot``: run the Telegram bot (see :mod:`bot.app`)."""

from bot.app import main

main()

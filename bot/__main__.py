"""``python -m bot``: run the Telegram bot (see :mod:`bot.app`).

Settings are checked before anything heavy is imported, so a configuration mistake costs one
line and exit status 2, at once.
"""

import sys

from bot.config import BotConfigError, check_config
from settings import load_settings_or_exit

_settings = load_settings_or_exit()
try:
    check_config(_settings)
except BotConfigError as exc:
    print(f"bot: {exc}", file=sys.stderr)
    raise SystemExit(2) from None

from bot.app import main  # noqa: E402

main(_settings)

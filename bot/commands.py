"""The command menu (``setMyCommands``) in English (the default) and Russian, plus the admins' extras."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.types import BotCommand, BotCommandScopeChat

from queues.redaction import error_text

logger = logging.getLogger(__name__)

USER_COMMANDS: list[tuple[str, str, str]] = [
    ("analyze", "Pre-game analysis of a match room", "Разбор матча перед игрой"),
    ("player", "Player report with a chart", "Отчёт по игроку с графиком"),
    ("bulk", "Analyse several matches at once", "Анализ нескольких матчей сразу"),
    ("subscribe", "Follow a player's matches", "Следить за матчами игрока"),
    ("unsubscribe", "Stop following a player", "Перестать следить за игроком"),
    ("subscriptions", "Players you follow", "За кем вы следите"),
    ("report", "Weekly or monthly summary", "Сводка за неделю или месяц"),
    ("status", "Where is my job?", "Где моя задача?"),
    ("cancel", "Cancel a job", "Отменить задачу"),
    ("lang", "Language: ru or en", "Язык: ru или en"),
    ("tz", "Your time zone, for the weekly summary", "Ваш часовой пояс для еженедельной сводки"),
    ("help", "What the bot can do", "Что умеет бот"),
]
ADMIN_COMMANDS: list[tuple[str, str, str]] = [
    ("queues", "Queues and health", "Очереди и здоровье"),
    ("alerts", "Recent alerts", "Последние оповещения"),
    ("requeue", "Requeue failed jobs", "Перезапустить упавшие задачи"),
]


def commands_for(lang: str, *, admin: bool = False) -> list[BotCommand]:
    index = 2 if lang == "ru" else 1
    rows = USER_COMMANDS + (ADMIN_COMMANDS if admin else [])
    return [BotCommand(command=row[0], description=row[index]) for row in rows]


async def register_commands(bot: Bot, admin_ids: list[int] | set[int]) -> None:
    """Set the menu for everyone (English default, Russian for ``ru`` users) and for each admin."""
    await bot.set_my_commands(commands_for("en"))
    await bot.set_my_commands(commands_for("ru"), language_code="ru")
    for admin_id in admin_ids:
        try:
            scope = BotCommandScopeChat(chat_id=admin_id)
            await bot.set_my_commands(commands_for("en", admin=True), scope=scope)
            await bot.set_my_commands(commands_for("ru", admin=True), scope=scope, language_code="ru")
        except Exception as exc:  # an admin who never opened the chat: the public menu still works
            logger.warning("admin command menu for %s not set: %s", admin_id, error_text(exc, 120, bot.token))

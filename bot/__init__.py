"""The Telegram bot (aiogram 3): routers per feature, middlewares, and delivery for workers.

``python -m bot`` runs it (:mod:`bot.app`); workers reach users only through
:mod:`bot.delivery`.
"""

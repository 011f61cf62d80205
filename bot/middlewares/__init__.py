"""Cross-cutting concerns of the bot process, as outer update middlewares registered in this order
(outermost first, :func:`bot.app.build_dispatcher`): the count of updates in flight, messages
sent in a chat's name, a flood guard, errors, and the user's language."""

"""Cross-cutting concerns of the bot process: a flood guard, errors, and the user's language."""

"""Cross-cutting concerns of the bot process: errors (outermost) and the user's language."""

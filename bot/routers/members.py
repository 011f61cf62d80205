"""``my_chat_member`` updates: a user blocked (or unblocked) the bot in their private chat.

Only private chats say anything about the user: the same update from a group means someone
removed the bot from that group (or added it), and they still want their own notifications.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import KICKED, MEMBER, ChatMemberUpdatedFilter
from aiogram.types import ChatMemberUpdated

from bot.services import BotServices


async def blocked(event: ChatMemberUpdated, services: BotServices) -> None:
    await services.set_blocked(event.from_user.id, True)


async def unblocked(event: ChatMemberUpdated, services: BotServices) -> None:
    await services.set_blocked(event.from_user.id, False)


def build() -> Router:
    """A fresh router (one per dispatcher: aiogram attaches a router to one parent only)."""
    router = Router(name="members")
    private = F.chat.type == "private"
    router.my_chat_member.register(blocked, private, ChatMemberUpdatedFilter(member_status_changed=KICKED))
    router.my_chat_member.register(unblocked, private, ChatMemberUpdatedFilter(member_status_changed=MEMBER))
    return router

"""``my_chat_member`` updates: a user blocked (or unblocked) the bot in their private chat."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import KICKED, MEMBER, ChatMemberUpdatedFilter
from aiogram.types import ChatMemberUpdated

from bot.services import BotServices

router = Router(name="members")


@router.my_chat_member(ChatMemberUpdatedFilter(member_status_changed=KICKED))
async def blocked(event: ChatMemberUpdated, services: BotServices) -> None:
    await services.set_blocked(event.from_user.id, True)


@router.my_chat_member(ChatMemberUpdatedFilter(member_status_changed=MEMBER))
async def unblocked(event: ChatMemberUpdated, services: BotServices) -> None:
    await services.set_blocked(event.from_user.id, False)

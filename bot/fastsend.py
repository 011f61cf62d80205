"""The bot process's hot-path reply: ``sendMessage`` as one JSON body on the Bot's own session.

Why: the queued line that answers every job request is the bot's most frequent call, and the
one a burst of users waits for. Through aiogram a call cost about 1.1 ms of CPU (the
``SendMessage`` model, a recursive ``prepare_value`` over the markup, a urlencoded form, then
the whole reply validated into a ``Message`` model); the same request as a JSON body whose
``result`` is read as a plain dict costs about 0.3 ms (both measured with the sandbox Bot API
in the same process, so its ~0.2 ms is in both). Handlers only need the new message's id.

Same semantics as ``message.answer``: the Bot's aiohttp session, server and timeout; the Bot's
default parse mode (HTML); the topic thread and business connection of the message answered.
Failures are aiogram's own exceptions (the error reply goes through ``check_response``, built
only then), so the errors middleware treats them as before; flood control is waited out like
every other call of the bot process (:func:`bot.telegram.wait_out_flood`).
"""

from __future__ import annotations

import json
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError
from aiogram.methods import SendMessage
from aiogram.types import Message
from aiohttp import ClientError

from bot.botapi import NO_PREVIEW
from bot.replies import reply_parameters_json, reply_to_json
from bot.telegram import wait_out_flood

_JSON = {"Content-Type": "application/json"}


def reply_params(message: Message, text: str, reply_markup: dict[str, Any] | None,
                 parse_mode: Any = "HTML", reply_to: int | None = None) -> dict[str, Any]:
    """What ``message.answer(text, reply_markup=...)`` sends, as Bot API JSON (``parse_mode``: a
    string or aiogram's ``ParseMode``; None sends none). ``reply_to``: the id of another message
    of the chat to reply to, instead of the group's usual reply to ``message``."""
    params: dict[str, Any] = {"chat_id": message.chat.id, "text": text, "link_preview_options": NO_PREVIEW}
    if parse_mode:
        params["parse_mode"] = str(getattr(parse_mode, "value", parse_mode))
    if message.is_topic_message and message.message_thread_id:
        params["message_thread_id"] = message.message_thread_id
    if message.business_connection_id:
        params["business_connection_id"] = message.business_connection_id
    # In a group a reply, so it shows whom it answers (or ``reply_to``: the message it points at).
    reply = reply_to_json(reply_to) if reply_to is not None else reply_parameters_json(message)
    if reply is not None:
        params["reply_parameters"] = reply
    if reply_markup is not None:
        params["reply_markup"] = reply_markup
    return params


async def _post(bot: Bot, params: dict[str, Any]) -> dict[str, Any]:
    session = bot.session
    client = await session.create_session()  # type: ignore[attr-defined]
    url = session.api.api_url(token=bot.token, method="sendMessage")
    body = json.dumps(params, ensure_ascii=False).encode()

    def method() -> SendMessage:  # aiogram's errors name the call; built only on a failure
        return SendMessage(**params)

    try:
        async with client.post(url, data=body, headers=_JSON, timeout=session.timeout) as resp:
            raw = await resp.text()
            status = resp.status
    except TimeoutError as exc:
        raise TelegramNetworkError(method=method(), message="Request timeout error") from exc
    except ClientError as exc:
        raise TelegramNetworkError(method=method(), message=f"{type(exc).__name__}: {exc}") from exc
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if status == 200 and isinstance(answer, dict) and answer.get("ok") and isinstance(answer.get("result"), dict):
        return answer["result"]
    # Anything else: aiogram reads the error reply and raises what ``message.answer`` would.
    session.check_response(bot=bot, method=method(), status_code=status, content=raw)
    raise TelegramAPIError(method=method(), message=f"unexpected reply (HTTP {status})")


async def send_reply(bot: Bot, message: Message, text: str, reply_markup: dict[str, Any] | None = None,
                     reply_to: int | None = None) -> int:
    """Answer ``message`` with ``text`` (in the Bot's default parse mode) and an optional inline
    keyboard (Bot API JSON), as a reply to ``reply_to`` when given; returns the id of the message sent."""
    params = reply_params(message, text, reply_markup, bot.default["parse_mode"], reply_to)
    result = await wait_out_flood(lambda: _post(bot, params), "SendMessage", chat_id=params["chat_id"])
    return int(result["message_id"])

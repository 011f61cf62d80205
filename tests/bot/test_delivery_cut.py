"""A delivery cut (its time limit, a cancel) while a part was on its way to Telegram.

Telegram may have taken that part when the cut comes: its answer is only late. The part used to
be marked sent only after that answer, so the cut left it sent but unmarked, and the retried
delivery sent it again (a second chart, a later text part twice). Here the real sandbox Bot API
stands behind a small proxy that passes ``sendPhoto`` on at once and holds Telegram's answer back
for a second; the delivery (real Redis, run in this process) is cancelled while it waits for that
answer, then run again.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from sandbox.telegram_api import SANDBOX_BOT_TOKEN
from tests.bot.conftest import new_user
from tests.support.png import make_png
from tests.support.redis_server import free_port

HOLD = 1.0  # seconds Telegram's answer to sendPhoto is held back


class SlowAnswerProxy:
    """Passes every Bot API call on to ``target``; a ``sendPhoto`` is passed on at once and its
    answer held back ``hold`` seconds (``taken`` is set when Telegram has taken it)."""

    def __init__(self, target: str, hold: float) -> None:
        self.target = target.rstrip("/")
        self.hold = hold
        self.port = free_port()
        self.taken = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> SlowAnswerProxy:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() == "content-type"}
        async with self._session.request(request.method, self.target + request.path_qs, data=body,
                                         headers=headers) as answer:
            payload, status = await answer.read(), answer.status
        if request.path.lower().endswith("/sendphoto") and self.hold:
            self.taken.set()  # Telegram has it; its answer is late
            await asyncio.sleep(self.hold)
        return web.Response(body=payload, status=status, content_type="application/json")


@pytest.fixture
async def proxy(telegram_sandbox, monkeypatch):
    from bot import delivery
    from settings import get_settings

    running = await SlowAnswerProxy(telegram_sandbox.base_url, HOLD).start()
    monkeypatch.setenv("TELEGRAM_API_URL", running.url)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", SANDBOX_BOT_TOKEN)
    monkeypatch.setenv("TELEGRAM_CHAT_RATE", "20")
    monkeypatch.setenv("TELEGRAM_GLOBAL_RATE", "200")
    get_settings.cache_clear()
    yield running
    await delivery.close_resources()
    await running.close()
    monkeypatch.undo()
    get_settings.cache_clear()


async def _succeeded_job(res: Any, user: int, message_id: int) -> str:
    job_id = f"cut-{user}"
    result = {"kind": "match_analysis",
              "texts": {"en": ["<b>Match analysis</b>: first part", "second part of the analysis"]},
              "photos": [{"png_b64": base64.b64encode(make_png(1, 1)).decode(), "caption": {"en": "the chart"}}]}
    now = time.time()
    await res.redis.hset(res.job_key(job_id), mapping={
        "status": "succeeded", "actor": "match_analysis", "queue": "default",
        "requesters": json.dumps([{"user_id": user, "chat_id": user, "message_id": message_id, "lang": "en"}]),
        "result": json.dumps(result), "enqueued_at": str(now - 30), "finished_at": str(now)})
    return job_id


async def test_a_delivery_cut_while_telegram_takes_the_chart_does_not_send_it_again(proxy, telegram_sandbox):
    from bot.delivery import deliver_job, get_resources

    res = await get_resources()
    assert res.api.base_url == proxy.url
    user = new_user()
    asked = await res.api.send_message(user, "⏳ queued")  # the job message the result replaces
    job_id = await _succeeded_job(res, user, asked["message_id"])

    cut = asyncio.create_task(deliver_job(job_id))
    await asyncio.wait_for(proxy.taken.wait(), 10)  # the chart is Telegram's, its answer on its way
    cut.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(cut, HOLD + 10)

    proxy.hold = 0.0
    again = await asyncio.wait_for(deliver_job(job_id), 20)  # the retried delivery

    events = await telegram_sandbox.messages_async(user)
    photos = [e for e in events if e["kind"] == "photo"]
    seconds = [e for e in events if e["kind"] == "sent" and "second part" in (e.get("text") or "")]
    assert len(photos) == 1, f"the chart went out {len(photos)} times: {again}"
    assert len(seconds) == 1
    assert again["sent"] == 0 and again["already_sent"] == 3  # all three parts were marked by the cut one
    final = [e for e in events if e["kind"] == "edited" and e["message_id"] == asked["message_id"]]
    assert final and "first part" in final[-1]["text"]

"""The Chat page: the sandbox Bot API's web chat, served same-origin beside the user's jobs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from queues.jobstore import JobStore
from tests.dashboard.conftest import AUTH_SETTINGS, READONLY, TOKEN, dashboard_settings
from tests.dashboard.helpers import DashboardServer, make_job
from tests.support.telegram_sandbox import TelegramSandbox


@pytest.fixture
def chat_dashboard(redis_url: str, telegram_sandbox: TelegramSandbox) -> Iterator[DashboardServer]:
    server = DashboardServer(dashboard_settings(**AUTH_SETTINGS, telegram_api_url=telegram_sandbox.base_url)).start()
    yield server
    server.stop()


def test_chat_page_shows_the_chat_and_the_users_jobs(chat_dashboard: DashboardServer, store: JobStore) -> None:
    mine = make_job(store, actor="match_analysis", queue="high", user_id=1001)
    other = make_job(store, actor="player_report", user_id=2002)
    admin = chat_dashboard.client(token=TOKEN)
    page = admin.get("/chat").text
    assert 'src="/chat/frame?user=1001"' in page
    assert f'data-job-id="{mine}"' in page and other not in page
    assert f'data-job-id="{other}"' in admin.get("/chat", query={"user": 2002}).text
    frame = admin.get("/chat/frame", query={"user": 1001})
    assert frame.status == 200 and "<html" in frame.text.lower()
    assert "frame-ancestors 'self'" in frame.headers["content-security-policy"]
    assert frame.headers["x-frame-options"] == "SAMEORIGIN"
    assert chat_dashboard.client().get("/chat/frame").status in (303, 401)  # behind the login too


def test_chat_messages_pass_through_for_admins_only(chat_dashboard: DashboardServer,
                                                    telegram_sandbox: TelegramSandbox) -> None:
    body = {"user_id": 1001, "text": "/start", "language_code": "en"}
    same_origin = {"Origin": chat_dashboard.url}
    admin = chat_dashboard.client(token=TOKEN)
    sent = admin.post("/_sandbox/updates", json_body=body, headers=same_origin)
    assert sent.status == 200, sent.text
    assert [u["message"]["text"] for u in telegram_sandbox.pending_updates()] == ["/start"]
    # Without proof of a same-origin fetch, or from a read-only account: refused, nothing sent.
    assert admin.post("/_sandbox/updates", json_body=body).status == 403
    assert admin.post("/_sandbox/updates", json_body=body, headers={"Origin": "http://evil.example"}).status == 403
    viewer = chat_dashboard.client(**READONLY)
    assert viewer.post("/_sandbox/updates", json_body=body, headers=same_origin).status == 403
    assert len(telegram_sandbox.pending_updates()) == 1
    feed = viewer.get("/_sandbox/feed", query={"chat_id": 1001, "after": 0, "timeout": 0})
    assert feed.status == 200 and "/start" in feed.text


def test_no_chat_outside_sandbox_mode(redis_url: str) -> None:
    server = DashboardServer(dashboard_settings(telegram_bot_token="123456:real-looking-token-xyz")).start()
    try:
        client = server.client()
        assert client.get("/chat").status == 404
        assert client.get("/_sandbox/feed").status == 404
        assert 'href="/chat"' not in client.get("/").text
    finally:
        server.stop()

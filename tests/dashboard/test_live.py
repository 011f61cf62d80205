"""With real ``dramatiq`` workers: actions through the API, and a real headless Chromium that
logs in, sees the failed job, filters, opens it, clicks Retry and sees it succeed.

The browser is Debian's ``chromium`` (``make browser`` installs it) driven by Python Playwright
with ``executable_path``; no browser is downloaded. Screenshots go to ``test-artifacts/dashboard/``.
One worker pool and one dashboard serve the whole module (starting workers takes seconds).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from queues.manager import QueueManager
from tests.dashboard.conftest import ADMIN, AUTH_SETTINGS, TOKEN, dashboard_settings, load_test_actors
from tests.dashboard.helpers import Client, DashboardServer, wait_until
from tests.support.telegram_sandbox import TelegramSandbox
from tests.support.workers import WorkerPool

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"

# Skipped only outside CI: in CI (``CI`` set, as ``.ci/run`` runs) a missing browser fails the test,
# so the one check that drives the dashboard as an operator does is never passed over unnoticed.
needs_chromium = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK) and not os.environ.get("CI"),
    reason=f"no browser at {CHROMIUM}: install Debian's chromium (make browser) to run the browser test",
)


@pytest.fixture(scope="module")
def site(default_workers: WorkerPool, redis_server, telegram_sandbox_server: TelegramSandbox
         ) -> Iterator[tuple[DashboardServer, QueueManager]]:
    settings = dashboard_settings(**AUTH_SETTINGS, telegram_api_url=telegram_sandbox_server.base_url)
    load_test_actors(redis_server)
    server = DashboardServer(settings).start()
    yield server, QueueManager(settings)
    server.stop()


def post(client: Client, path: str) -> dict:
    reply = client.post(path, headers={"X-CSRF-Token": client.csrf()})
    assert reply.status == 200, reply.text
    return reply.json()


def test_retry_a_failed_job_and_see_it_succeed(site) -> None:
    server, manager = site
    client = server.client(token=TOKEN)
    handle = manager.enqueue_job("t_fail_times", retry=0, failures=1)
    assert manager.wait_for(handle.id, timeout=20).status == "failed"
    detail = client.get(f"/api/jobs/{handle.id}").json()
    assert detail["actions"] == ["retry"] and detail["error"]["type"] == "UpstreamError"
    assert post(client, f"/api/jobs/{handle.id}/retry")["outcome"] == "retried"
    done = manager.wait_for(handle.id, timeout=20)
    assert done.status == "succeeded" and done.result == {"runs": 2}
    after = client.get(f"/api/jobs/{handle.id}").json()
    assert after["status"] == "succeeded" and after["actions"] == []
    assert [a["outcome"] for a in after["timeline"]] == ["failed", "succeeded"]  # both attempts on record


def test_cancel_a_running_job(site) -> None:
    server, manager = site
    client = server.client(token=TOKEN)
    handle = manager.enqueue_job("t_slow", seconds=20, steps=40)
    wait_until(lambda: client.get(f"/api/jobs/{handle.id}").json()["status"] == "started", timeout=15)
    assert post(client, f"/api/jobs/{handle.id}/cancel")["outcome"] == "canceling"
    record = manager.wait_for(handle.id, timeout=15)
    assert record.status == "canceled"
    assert client.get(f"/api/jobs/{handle.id}").json()["actions"] == ["requeue"]


def test_workers_and_queue_cards_show_the_live_pool(site) -> None:
    server, _ = site
    client = server.client(token=TOKEN)
    workers = client.get("/api/workers").json()["workers"]
    assert workers and all("default" in w["queues"] for w in workers)
    default = client.get("/api/queues/default").json()
    assert default["workers"] == len(workers)
    assert client.get("/api/queues/high").json()["workers"] == 0


async def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@needs_chromium
async def test_operator_retries_a_failed_job_in_the_browser(site, telegram_sandbox_server: TelegramSandbox) -> None:
    from playwright.async_api import async_playwright, expect

    server, manager = site
    for value in range(4):  # some successful work, so the cards and charts have something to show
        manager.enqueue_job("t_noop", value=value)
    manager.enqueue_job("t_low")  # waits on a queue nobody consumes: the health score says so
    failed = manager.enqueue_job("t_fail_times", retry=0, failures=1)
    record = await asyncio.to_thread(manager.wait_for, failed.id, 20)
    assert record.status == "failed"

    problems: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 1000})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)

            # Log in: the dashboard sends a stranger to its login form.
            await page.goto(server.url + "/")
            await expect(page).to_have_url(f"{server.url}/login?next=/")
            await shot(page, "01-login")
            await page.fill("input[name=user]", ADMIN["user"])
            await page.fill("input[name=password]", ADMIN["password"])
            await page.click("button[type=submit]")
            await expect(page).to_have_url(server.url + "/")

            # The overview shows the failed job among the recent failures, and why health < 100.
            failure_row = page.locator(f'#recent-failures tr[data-job-id="{failed.id}"]')
            await expect(failure_row).to_be_visible()
            await expect(failure_row).to_contain_text("UpstreamError: upstream 503")
            await expect(page.locator("#health .reasons")).to_contain_text(
                "queue low has 1 waiting and 0 delayed job(s) and no live worker consumes it")
            await expect(page.locator('.count[data-status="failed"] .n')).to_have_text("1")
            await shot(page, "02-overview")

            # Filter the jobs list down to failed t_fail_times jobs.
            await page.click("header nav >> text=Jobs")
            await page.select_option("#job-filters select[name=status]", "failed")
            await page.fill("#job-filters input[name=actor]", "t_fail_times")
            await page.click("#job-filters button[type=submit]")
            await expect(page).to_have_url(f"{server.url}/jobs?status=failed&actor=t_fail_times&per_page=25")
            rows = page.locator("#live tbody tr[data-job-id]")
            await expect(rows).to_have_count(1)
            await expect(rows.first).to_have_attribute("data-job-id", failed.id)
            await shot(page, "03-jobs-filtered")

            # Open the job: failed, with its error and a Retry button.
            await rows.first.locator("a").first.click()
            await expect(page).to_have_url(f"{server.url}/jobs/{failed.id}")
            await expect(page.locator(".job-status")).to_have_attribute("data-status", "failed")
            await expect(page.locator("#job-error")).to_contain_text("upstream 503")
            await shot(page, "04-job-failed")

            # Retry, then watch the page update itself (no reload) until the job succeeded.
            await page.click("button[data-action=retry]")
            await expect(page).to_have_url(f"{server.url}/jobs/{failed.id}?done=retried")
            await expect(page.locator(".notice.ok")).to_contain_text("Job sent again")
            await page.evaluate("window.__sameDocument = true")
            await expect(page.locator(".job-status")).to_have_attribute("data-status", "succeeded", timeout=20000)
            assert await page.evaluate("window.__sameDocument === true"), "the page reloaded instead of refreshing"
            await expect(page.locator("#job-result")).to_contain_text('"runs": 2')
            await expect(page.locator("#timeline tbody tr")).to_have_count(2)
            await shot(page, "05-job-succeeded")

            for path, name in (("/queues", "06-queues"), ("/workers", "07-workers"), ("/alerts", "08-alerts")):
                await page.goto(server.url + path)
                await expect(page.locator("#live")).to_be_visible()
                await shot(page, name)

            # Chat (sandbox mode): the web chat in a same-origin frame, the user's jobs beside it.
            await asyncio.to_thread(telegram_sandbox_server.reset)
            await asyncio.to_thread(telegram_sandbox_server.inject, 1001,
                                    "/analyze https://www.faceit.com/en/cs2/room/1-abc")
            await page.goto(server.url + "/chat?user=1001")
            chat = page.frame_locator("#sandbox-chat")
            await expect(chat.locator("body")).to_contain_text("/analyze https://www.faceit.com/en/cs2/room/1-abc")
            await shot(page, "09-chat")
        finally:
            await browser.close()
    assert problems == []  # no script errors, CSP violations or failed requests on any page

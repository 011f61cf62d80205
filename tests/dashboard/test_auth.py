"""Auth, roles and CSRF: every action refused without credentials, for read-only, without a token."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlencode

import pytest

from dashboard.security import StartupRefused
from queues.jobstore import JobStore
from tests.dashboard.conftest import ADMIN, AUTH_SETTINGS, READONLY, TOKEN, dashboard_settings
from tests.dashboard.helpers import Client, DashboardServer, Reply, make_job, page_csrf
from tests.support.redis_server import free_port
from tests.support.waiting import wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def actions(failed: str, queued: str, canceled: str) -> list[tuple[str, dict | None]]:
    """Every state-changing request the dashboard accepts (API and page forms)."""
    return [
        (f"/api/jobs/{failed}/retry", None),
        (f"/api/jobs/{canceled}/requeue", None),
        (f"/api/jobs/{queued}/cancel", None),
        ("/api/queues/default/empty", {"confirm": "default"}),
        (f"/jobs/{failed}/retry", None),
        (f"/jobs/{canceled}/requeue", None),
        (f"/jobs/{queued}/cancel", None),
        ("/queues/default/empty", {"confirm": "default"}),
    ]


@pytest.fixture
def jobs(store: JobStore) -> dict[str, str]:
    return {
        "failed": make_job(store, status="failed"),
        "queued": make_job(store, status="queued"),
        "canceled": make_job(store, status="canceled"),
    }


def states(store: JobStore, jobs: dict[str, str]) -> dict[str, str | None]:
    return {name: store.status(job_id) for name, job_id in jobs.items()}


def test_every_action_refused_without_credentials(auth_dashboard: DashboardServer, store: JobStore, jobs,
                                                   redis_client) -> None:
    redis_client.rpush("dramatiq:default", "sentinel")  # something that emptying would remove
    anonymous = auth_dashboard.client()
    token = anonymous.get("/login").text  # a login page's token is for nobody: it must not help
    for path, form in actions(jobs["failed"], jobs["queued"], jobs["canceled"]):
        reply = anonymous.post(path, form={**(form or {}), "csrf_token": page_csrf(token)})
        assert reply.status == 401, (path, reply.status)
        reply = anonymous.post(path, json_body=form or {})
        assert reply.status == 401, (path, reply.status)
        if path.startswith("/api/"):
            assert reply.json()["error"] == "unauthorized"
            assert "Basic" in reply.headers["www-authenticate"]
    assert states(store, jobs) == {"failed": "failed", "queued": "queued", "canceled": "canceled"}
    assert redis_client.llen("dramatiq:default") == 1


def test_wrong_credentials_are_refused(auth_dashboard: DashboardServer) -> None:
    # Two wrong tries per account: under the login throttle, which counts per account.
    for client in (auth_dashboard.client(token="tok-0123456789abcdef-WRONG"),
                   auth_dashboard.client(user=ADMIN["user"], password="guess"),
                   auth_dashboard.client(user=READONLY["user"], password=ADMIN["password"])):
        assert client.get("/api/overview").status == 401
        assert client.get("/metrics").status == 401


def test_read_only_sees_everything_and_can_do_nothing(auth_dashboard: DashboardServer, store: JobStore, jobs,
                                                      redis_client) -> None:
    redis_client.rpush("dramatiq:default", "sentinel")
    viewer = auth_dashboard.client(**READONLY)
    for path in ("/", "/queues", "/jobs", f"/jobs/{jobs['failed']}", "/workers", "/alerts", "/api/overview",
                 "/api/queues", "/api/jobs", f"/api/jobs/{jobs['failed']}", "/api/workers", "/api/alerts",
                 "/api/health", "/metrics", "/queues/default/empty"):
        assert viewer.get(path).status == 200, path
    me = viewer.get("/api/me").json()
    assert me["role"] == "readonly" and me["can_act"] is False
    token = me["csrf_token"]  # a valid token: the refusal must come from the role
    for path, form in actions(jobs["failed"], jobs["queued"], jobs["canceled"]):
        reply = viewer.post(path, json_body=form or {}, headers={"X-CSRF-Token": token})
        assert reply.status == 403, (path, reply.status)
        reply = viewer.post(path, form={**(form or {}), "csrf_token": token})
        assert reply.status == 403 and "read_only" in reply.text, path
    assert states(store, jobs) == {"failed": "failed", "queued": "queued", "canceled": "canceled"}
    assert redis_client.llen("dramatiq:default") == 1
    # The job page shows its Retry button disabled for a read-only account.
    page = viewer.get(f"/jobs/{jobs['failed']}").text
    assert 'data-action="retry"' in page and "disabled" in page.split('data-action="retry"')[1][:60]


@pytest.mark.parametrize("who", ["basic", "bearer", "session"])
def test_actions_refused_without_a_valid_csrf_token(auth_dashboard: DashboardServer, store: JobStore, jobs,
                                                    who: str) -> None:
    if who == "basic":
        admin = auth_dashboard.client(**ADMIN)
    elif who == "bearer":
        admin = auth_dashboard.client(token=TOKEN)
    else:
        admin = auth_dashboard.client()
        login = admin.get("/login")
        reply = admin.post("/login", form={**ADMIN, "csrf_token": page_csrf(login.text), "next": "/"})
        assert reply.status == 303 and admin.cookies
    other = auth_dashboard.client(**READONLY).csrf()  # valid, but issued to someone else
    for path, form in actions(jobs["failed"], jobs["queued"], jobs["canceled"]):
        for headers in ({}, {"X-CSRF-Token": "123.forged"}, {"X-CSRF-Token": other}):
            reply = admin.post(path, json_body=form or {}, headers=headers)
            assert reply.status == 403 and "csrf" in reply.text, (path, headers, reply.status)
    assert states(store, jobs) == {"failed": "failed", "queued": "queued", "canceled": "canceled"}
    # With its own token the same request goes through.
    reply = admin.post(f"/api/jobs/{jobs['queued']}/cancel", headers={"X-CSRF-Token": admin.csrf()})
    assert reply.status == 200 and reply.json()["outcome"] == "canceled"
    assert store.status(jobs["queued"]) == "canceled"


def test_cross_site_post_is_refused_even_with_a_token(auth_dashboard: DashboardServer, store: JobStore,
                                                      jobs) -> None:
    admin = auth_dashboard.client(**ADMIN)
    token = admin.csrf()
    reply = admin.post(f"/api/jobs/{jobs['queued']}/cancel",
                       headers={"X-CSRF-Token": token, "Origin": "http://evil.example"})
    assert reply.status == 403 and "cross_origin" in reply.text
    assert store.status(jobs["queued"]) == "queued"


def test_an_origin_is_compared_as_an_origin_and_an_unreadable_one_is_refused(auth_dashboard: DashboardServer,
                                                                             store: JobStore, jobs) -> None:
    """``Origin: http://[x`` answered 500 (the URL library raises on it, as on ``next=//[x``); and
    the Origin's host and port were compared with the Host header as raw text, so another scheme
    passed and the same host in capitals did not."""
    admin = auth_dashboard.client(**ADMIN)
    token = admin.csrf()
    cancel = f"/api/jobs/{jobs['queued']}/cancel"
    for foreign in ("http://[x", "http://127.0.0.1:99999", "null", f"https://127.0.0.1:{auth_dashboard.port}"):
        reply = admin.post(cancel, headers={"X-CSRF-Token": token, "Origin": foreign})
        assert reply.status == 403 and reply.json()["error"] == "cross_origin", (foreign, reply.status, reply.text)
    assert store.status(jobs["queued"]) == "queued"
    # The dashboard asked for at localhost: the browser's Origin may spell it in capitals.
    local = Client(auth_dashboard.port, host=f"localhost:{auth_dashboard.port}", **ADMIN)
    reply = local.post(cancel, headers={"X-CSRF-Token": token, "Origin": f"HTTP://LocalHost:{auth_dashboard.port}"})
    assert reply.status == 200 and reply.json()["outcome"] == "canceled", reply.text


def test_bearer_and_basic_credentials_read_the_api(auth_dashboard: DashboardServer) -> None:
    assert auth_dashboard.client(token=TOKEN).get("/api/me").json()["via"] == "bearer"
    me = auth_dashboard.client(**ADMIN).get("/api/me").json()
    assert me == {**me, "name": "operator", "role": "admin", "via": "basic", "can_act": True}
    assert auth_dashboard.client().get("/healthz").status == 200  # load balancers need no credentials


def test_pages_send_strangers_to_the_login_form(auth_dashboard: DashboardServer) -> None:
    stranger = auth_dashboard.client()
    reply = stranger.get("/jobs?status=failed")
    assert reply.status == 303
    assert reply.location.startswith("/login?next=")
    login = stranger.get(reply.location)
    assert login.status == 200 and 'name="password"' in login.text


def test_login_session_logout_and_tampering(auth_dashboard: DashboardServer) -> None:
    browser = auth_dashboard.client()
    token = page_csrf(browser.get("/login").text)
    assert browser.post("/login", form={**ADMIN}).status == 403  # the login form needs its token too
    bad = browser.post("/login", form={"user": ADMIN["user"], "password": "nope", "csrf_token": token})
    assert bad.status == 401 and "Wrong user name or password" in bad.text
    good = browser.post("/login", form={**ADMIN, "csrf_token": token, "next": "/jobs"})
    assert good.status == 303 and good.location == "/jobs"
    cookie = browser.cookies["fbdash_session"]
    assert "HttpOnly" in good.headers["set-cookie"] and "SameSite=Strict" in good.headers["set-cookie"]
    assert ADMIN["password"] not in good.headers["set-cookie"]
    assert browser.get("/api/me").json()["via"] == "session"
    # A cookie for another name, or with its signature changed, is worth nothing.
    user_part, _, signed = cookie.partition(".")
    for forged in ("dmlld2Vy." + signed, user_part + "." + signed[:-2] + "xx"):
        assert auth_dashboard.client(cookies={"fbdash_session": forged}).get("/api/me").status == 401
    # Logging out needs the token and ends the session on this client.
    assert browser.post("/logout").status == 403
    out = browser.post("/logout", form={"csrf_token": browser.csrf()})
    assert out.status == 303 and "fbdash_session" not in browser.cookies
    assert browser.get("/api/me").status == 401
    # Login redirects never leave the site, however the way out is spelled: the URL library drops
    # tabs and newlines as it writes Location, so "/\t/evil.example" went out as "//evil.example".
    for way_out in ("//evil.example/x", "/\t/evil.example", "/\n/evil.example", "/\r/evil.example",
                    "/\\evil.example", "https://evil.example/", " //evil.example", "//[x"):
        again = auth_dashboard.client()
        reply = again.post("/login", form={**ADMIN, "csrf_token": page_csrf(again.get("/login").text),
                                           "next": way_out})
        assert reply.status == 303 and reply.location == "/", (way_out, reply.location)
        signed_in = again.get("/login?" + urlencode({"next": way_out}))  # already signed in: redirected at once
        assert signed_in.status == 303 and signed_in.location == "/", (way_out, signed_in.location)
    kept = auth_dashboard.client()
    reply = kept.post("/login", form={**ADMIN, "csrf_token": page_csrf(kept.get("/login").text),
                                      "next": "/jobs?status=failed&page=2"})
    assert reply.location == "/jobs?status=failed&page=2"


def test_failed_logins_are_throttled(auth_dashboard: DashboardServer) -> None:
    browser = auth_dashboard.client()
    token = page_csrf(browser.get("/login").text)
    codes = [browser.post("/login", form={"user": ADMIN["user"], "password": "y", "csrf_token": token}).status
             for _ in range(6)]
    assert codes == [401] * 5 + [429]
    # Even the right password waits out the block, and is told for how long.
    blocked = browser.post("/login", form={**ADMIN, "csrf_token": token})
    assert blocked.status == 429 and 0 < int(blocked.headers["retry-after"]) <= 60
    assert "Too many failed attempts" in blocked.text
    # Another account from the same address signs in (behind a proxy, every user shares one).
    assert browser.post("/login", form={**READONLY, "csrf_token": token}).status == 303


def assert_throttled(reply: Reply) -> None:
    """The login throttle's answer to an API request: 429, ``too_many_attempts``, Retry-After."""
    assert reply.status == 429, (reply.status, reply.text)
    assert reply.json()["error"] == "too_many_attempts"
    assert 0 < int(reply.headers["retry-after"]) <= 60


def test_failed_basic_auth_is_throttled_like_the_login_form(auth_dashboard: DashboardServer,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    guesser = auth_dashboard.client(user=ADMIN["user"], password="guess-1234")
    # Every URL checks the header, public ones too (``GET /login`` redirects a valid one).
    assert [guesser.get(path).status for path in ("/api/me", "/metrics", "/jobs", "/login", "/healthz")] \
        == [401, 401, 303, 200, 200]
    # The sixth attempt is refused before its credentials are looked at, right or wrong.
    assert_throttled(guesser.get("/api/me"))
    assert_throttled(auth_dashboard.client(**ADMIN).get("/api/me"))
    page = auth_dashboard.client(**ADMIN).get("/jobs")
    assert page.status == 429 and "Too many failed attempts" in page.text and page.headers["retry-after"]
    # The login form of the same address is blocked as well for that account: one count.
    browser = auth_dashboard.client()
    token = page_csrf(browser.get("/login").text)
    assert browser.post("/login", form={**ADMIN, "csrf_token": token}).status == 429
    # Other accounts of the same address (behind a reverse proxy: everyone) are not shut out.
    assert auth_dashboard.client(**READONLY).get("/api/overview").status == 200
    assert auth_dashboard.client(token=TOKEN).get("/metrics").status == 200
    for secret in ("guess-1234", ADMIN["password"], READONLY["password"]):
        assert secret not in caplog.text


def test_failed_bearer_tokens_are_throttled(auth_dashboard: DashboardServer) -> None:
    guesser = auth_dashboard.client(token="tok-0123456789abcdef-WRONG")
    assert [guesser.get("/api/me").status for _ in range(5)] == [401] * 5
    assert_throttled(auth_dashboard.client(token=TOKEN).get("/api/me"))
    assert auth_dashboard.client(token=TOKEN).get("/metrics").status == 429
    # A scraper left on an old token blocks tokens only, not the users who sign in.
    assert auth_dashboard.client(**ADMIN).get("/api/me").status == 200


def test_a_stranger_can_neither_forge_a_log_line_nor_get_a_500_from_bytes_that_are_not_utf8(
        auth_dashboard: DashboardServer, caplog: pytest.LogCaptureFixture) -> None:
    """Found by a security review, each without credentials: a path with ``%0A`` wrote a log line
    of the client's own (the decoded path was logged); a bearer token or a login form that is not
    UTF-8 answered 500 with a traceback (and a Sentry event), and the token was never counted
    by the login throttle."""
    from http.client import HTTPConnection

    caplog.set_level(logging.INFO, logger="dashboard")
    forged = "2026-12-07 23:59:59,000 INFO dashboard: opadmin signed in (admin) from 10.6.6.6"
    stranger = auth_dashboard.client(user="nobody", password="wrong")
    assert stranger.get("/api/x%0A" + forged.replace(" ", "%20")).status == 401
    assert stranger.get("/api/y%0D%0A%1B[2Kforged").status == 401
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("dashboard")]
    assert any("/api/x%0A2026-12-07" in line for line in lines), lines
    assert not any(set(line) & {"\n", "\r", "\x1b"} for line in lines), lines

    def raw(method: str, path: str, headers: dict[str, str], body: bytes | None = None) -> int:
        conn = HTTPConnection("127.0.0.1", auth_dashboard.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)  # (str headers go as Latin-1 bytes)
            return conn.getresponse().status
        finally:
            conn.close()

    assert [raw("GET", "/api/me", {"Authorization": "Bearer \xff\xfe"}) for _ in range(5)] == [401] * 5
    assert_throttled(auth_dashboard.client(token=TOKEN).get("/api/me"))  # the five were counted
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert raw("POST", "/login", form, b"user=\xff&password=x") == 400
    assert raw("POST", "/login", {"Content-Type": "application/x-www-form-urlencoded; charset=no-such-charset"},
               b"user=a&password=b") == 400
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_failed_form_logins_and_basic_auth_add_up(auth_dashboard: DashboardServer) -> None:
    browser = auth_dashboard.client()
    token = page_csrf(browser.get("/login").text)
    wrong_form = {"user": ADMIN["user"], "password": "nope", "csrf_token": token}
    assert [browser.post("/login", form=wrong_form).status for _ in range(3)] == [401] * 3
    guesser = auth_dashboard.client(user=ADMIN["user"], password="guess")
    assert [guesser.get("/api/me").status for _ in range(2)] == [401] * 2
    # Three plus two is five: both doors are now shut, even to the right password.
    assert_throttled(auth_dashboard.client(**ADMIN).get("/api/me"))
    assert browser.post("/login", form={**ADMIN, "csrf_token": token}).status == 429


def test_basic_auth_success_clears_the_count_as_a_form_login_does(auth_dashboard: DashboardServer) -> None:
    guesser = auth_dashboard.client(user=ADMIN["user"], password="guess")
    admin = auth_dashboard.client(**ADMIN)
    assert [guesser.get("/api/me").status for _ in range(4)] == [401] * 4
    assert admin.get("/api/me").status == 200  # under the limit: accepted, and the count starts over
    assert [guesser.get("/api/me").status for _ in range(4)] == [401] * 4
    # Another account's success (the read-only user, a token) leaves the admin's count alone.
    assert auth_dashboard.client(**READONLY).get("/api/overview").status == 200
    assert auth_dashboard.client(token=TOKEN).get("/metrics").status == 200
    assert guesser.get("/api/me").status == 401
    assert_throttled(admin.get("/api/me"))


def test_open_mode_still_needs_csrf_and_a_loopback_host(open_dashboard: DashboardServer, store: JobStore) -> None:
    job_id = make_job(store, status="queued")
    local = open_dashboard.client()
    assert local.get("/api/me").json()["role"] == "admin"
    assert local.post(f"/api/jobs/{job_id}/cancel").status == 403
    assert store.status(job_id) == "queued"
    # A site that points its own name at 127.0.0.1 (DNS rebinding) gets nothing.
    rebound = open_dashboard.client(host=f"evil.example:{open_dashboard.port}")
    assert rebound.get("/api/overview").status == 421
    assert local.post(f"/api/jobs/{job_id}/cancel", headers={"X-CSRF-Token": local.csrf()}).status == 200
    assert store.status(job_id) == "canceled"


def test_refuses_to_start_without_credentials_off_loopback(redis_url: str) -> None:
    from dashboard.app import create_app

    with pytest.raises(StartupRefused, match="without credentials"):
        create_app(dashboard_settings(), host="0.0.0.0")
    # An empty --host (a variable left unset) binds every address; it was judged as the setting.
    with pytest.raises(StartupRefused, match=r"on every address \(an empty host\) without credentials"):
        create_app(dashboard_settings(), host="")
    with pytest.raises(StartupRefused, match="DASHBOARD_PASSWORD"):
        create_app(dashboard_settings(dashboard_user="operator"), host="127.0.0.1")
    # With credentials it may listen anywhere.
    assert create_app(dashboard_settings(**AUTH_SETTINGS), host="0.0.0.0") is not None


def _run_dashboard(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "dashboard", *args], cwd=ROOT, env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _once_up(port: int, **auth: str) -> Client:
    """A client (``auth``) of the dashboard process started on ``port``, once it answers."""
    client = Client(port, **auth)

    def up() -> bool:
        try:
            return client.get("/healthz").status == 200
        except OSError:
            return False

    wait_until(up, timeout=20, interval=0.1, what="the dashboard up")
    return client


def test_the_command_refuses_an_exposed_bind_and_logs_no_secret(redis_url: str) -> None:
    refused = _run_dashboard({}, "--host", "0.0.0.0", "--port", str(free_port()))
    out, _ = refused.communicate(timeout=30)
    assert refused.returncode == 2
    assert "refusing to listen on 0.0.0.0 without credentials" in out

    port = free_port()
    env = {k.upper(): str(v) for k, v in AUTH_SETTINGS.items()}
    proc = _run_dashboard(env, "--host", "127.0.0.1", "--port", str(port))
    try:
        client = _once_up(port, **ADMIN)
        assert client.get("/api/overview").status == 200
        assert Client(port, user=ADMIN["user"], password="wrong").get("/api/jobs").status == 401
        assert Client(port, token=TOKEN).get("/metrics").status == 200
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert "dashboard on http://127.0.0.1" in out
    assert '"GET /api/overview HTTP/1.1" 200' in out  # the access log is on...
    for secret in (ADMIN["password"], READONLY["password"], TOKEN, "b3BlcmF0b3I6"):
        assert secret not in out  # ...and shows no credential, not even base64 basic auth


def test_a_taken_port_is_one_line_not_a_traceback(redis_url: str) -> None:
    import socket

    with socket.socket() as taken:  # another dashboard (or anything) already listens there
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _run_dashboard({}, "--host", "127.0.0.1", "--port", str(port))
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert f"dashboard: cannot listen on 127.0.0.1:{port}: " in out and "Traceback" not in out


def test_the_dashboard_says_the_broker_is_unreachable_rather_than_show_empty_queues(redis_url: str) -> None:
    """``BROKER=rabbitmq`` pointed at a port nobody listens on (no RabbitMQ server needed)."""
    port, amqp_port = free_port(), free_port()
    env = {"BROKER": "rabbitmq", "RABBITMQ_URL": f"amqp://u:s3cretpw@127.0.0.1:{amqp_port}/"}
    proc = _run_dashboard(env, "--host", "127.0.0.1", "--port", str(port))
    try:
        client = _once_up(port)
        unreachable = f"RabbitMQ at amqp://u:***@127.0.0.1:{amqp_port}/ is unreachable"
        queues = client.get("/api/queues").json()["queues"]
        assert [q["waiting"] for q in queues] == [None, None, None]
        assert all(q["broker_error"].startswith(unreachable) for q in queues)
        health = client.get("/api/health").json()
        assert health["health_score"] <= 50, health
        assert any(c["name"] == "broker" and unreachable in c["reason"] for c in health["components"]), health
        page = client.get("/queues")
        assert page.status == 200 and "unknown: broker unreachable" in page.text
        assert "s3cretpw" not in page.text
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert "s3cretpw" not in out


def test_the_empty_confirmation_says_the_depth_is_unknown_when_the_broker_is_unreachable(redis_url: str) -> None:
    """RabbitMQ unreachable: how many messages emptying a queue drops is unknown; the confirmation
    said "n/a (RabbitMQ)", RabbitMQ's word for what it never counts."""
    port, amqp_port = free_port(), free_port()
    env = {"BROKER": "rabbitmq", "RABBITMQ_URL": f"amqp://u:s3cretpw@127.0.0.1:{amqp_port}/"}
    proc = _run_dashboard(env, "--host", "127.0.0.1", "--port", str(port))
    try:
        page = _once_up(port).get("/queues/default/empty")
        assert page.status == 200 and "unknown (broker unreachable)" in page.text
        depths = page.text.split("Jobs already in progress")[0]
        assert "n/a (RabbitMQ)" not in depths
    finally:
        proc.terminate()
        proc.communicate(timeout=15)


@pytest.mark.parametrize("port", ["70000", "-1", "0"])
def test_a_port_out_of_range_is_one_line_not_a_traceback(redis_url: str, port: str) -> None:
    proc = _run_dashboard({}, "--host", "127.0.0.1", "--port", port)
    try:
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()  # port 0 once meant "any free port": a dashboard that ran on and on
    assert proc.returncode == 2
    assert out.strip() == f"dashboard: --port must be a number from 1 to 65535 (got {port})"


def test_the_login_throttle_stays_bounded_when_clients_name_accounts_at_will() -> None:
    """The throttle's key holds the account a client names, so one address can make keys at will:
    past the bound, keys quiet for the window go, then the longest quiet, down to half."""
    from dashboard.security import MAX_THROTTLE_KEYS, LoginThrottle

    throttle = LoginThrottle(attempts=5, window=60)
    for i in range(MAX_THROTTLE_KEYS + 1):
        throttle.failed(f"10.0.0.1|user{i}", now=float(i) / 1000)
    assert len(throttle._failures) <= MAX_THROTTLE_KEYS // 2 + 1
    for _ in range(5):
        throttle.failed("10.0.0.2|admin", now=20.0)
    assert throttle.blocked_for("10.0.0.2|admin", now=20.0) > 0  # a real guesser is still held
    for i in range(MAX_THROTTLE_KEYS):
        throttle.failed(f"10.0.0.1|later{i}", now=100.0)  # the window has passed for the first keys
    assert len(throttle._failures) <= MAX_THROTTLE_KEYS


def test_a_blocked_guesser_cannot_free_itself_with_made_up_account_names(auth_dashboard: DashboardServer) -> None:
    """Past the throttle's bound the longest quiet keys went, blocked or not: failing under ten
    thousand junk names from the same address dropped the guesser's own blocked key, and it
    could guess the admin's password again at once. A blocked key now stays."""
    from http.client import HTTPConnection

    from dashboard.security import MAX_THROTTLE_KEYS

    guesser = auth_dashboard.client(user=ADMIN["user"], password="guess")
    assert [guesser.get("/api/me").status for _ in range(5)] == [401] * 5
    assert_throttled(auth_dashboard.client(**ADMIN).get("/api/me"))
    conn = HTTPConnection("127.0.0.1", auth_dashboard.port, timeout=10)  # one kept-alive connection: fast
    try:
        for i in range(MAX_THROTTLE_KEYS + 10):
            junk = Client(auth_dashboard.port, user=f"junk{i}", password="x").headers()
            conn.request("GET", "/api/me", headers=junk)
            response = conn.getresponse()
            response.read()
            assert response.status == 401, (i, response.status)
    finally:
        conn.close()
    assert_throttled(auth_dashboard.client(**ADMIN).get("/api/me"))
    # Junk names did not shut out the other accounts of that address either.
    assert auth_dashboard.client(**READONLY).get("/api/overview").status == 200


def test_the_login_throttle_keeps_a_short_key_whatever_account_name_is_typed(auth_dashboard: DashboardServer) -> None:
    """The key held the account name as typed: a login form's user field may be up to 1 MiB, kept
    for a minute per try. It holds a short digest of it now, and still counts per account."""
    from dashboard.web import DASHBOARD

    browser = auth_dashboard.client()
    token = page_csrf(browser.get("/login").text)
    long_name = "x" * 500_000
    form = {"user": long_name, "password": "y", "csrf_token": token}
    assert [browser.post("/login", form=form).status for _ in range(6)] == [401] * 5 + [429]
    assert browser.post("/login", form={**ADMIN, "csrf_token": token}).status == 303  # another account
    assert auth_dashboard.app is not None
    keys = list(auth_dashboard.app[DASHBOARD].throttle._failures)
    assert keys and all(len(key) < 64 for key in keys), [len(key) for key in keys]


def test_behind_a_tls_proxy_forms_from_its_address_pass_and_the_session_cookie_is_secure(redis_url: str) -> None:
    """nginx passes Host 127.0.0.1:9181 by default, so the browser's Origin (the public address)
    never matched and every form, the login included, was refused as cross-site; and aiohttp,
    spoken to in plain HTTP by the proxy, sent the 12-hour session cookie without Secure."""
    public = "https://Dash.example.com:443/"  # as an operator may write it; the browser sends the next
    behind = {"Origin": "https://dash.example.com"}
    plain = DashboardServer(dashboard_settings(**AUTH_SETTINGS)).start()
    try:
        browser = plain.client()
        token = page_csrf(browser.get("/login").text)
        assert browser.post("/login", form={**ADMIN, "csrf_token": token}, headers=behind).status == 403
    finally:
        plain.stop()
    proxied = DashboardServer(dashboard_settings(**AUTH_SETTINGS, dashboard_public_url=public)).start()
    try:
        browser = proxied.client()
        token = page_csrf(browser.get("/login").text)
        signed_in = browser.post("/login", form={**ADMIN, "csrf_token": token}, headers=behind)
        assert signed_in.status == 303, signed_in.text
        assert "; secure" in signed_in.headers["set-cookie"].lower(), signed_in.headers["set-cookie"]
        assert browser.post("/logout", form={"csrf_token": browser.csrf()}, headers=behind).status == 303
        # Another site is still another site, and so is the public host over plain HTTP.
        for other in ("https://evil.example", "http://dash.example.com"):
            again = proxied.client()
            token = page_csrf(again.get("/login").text)
            assert again.post("/login", form={**ADMIN, "csrf_token": token}, headers={"Origin": other}).status == 403
    finally:
        proxied.stop()


# --- behind a reverse proxy: the client X-Forwarded-For names, only when the proxy is trusted ---

CLIENT_A, CLIENT_B = "203.0.113.7", "198.51.100.9"  # documentation addresses: two browsers out there


@contextmanager
def serving(**overrides: object) -> Iterator[DashboardServer]:
    """A credentialed dashboard with ``overrides`` on top of :data:`AUTH_SETTINGS`, until the block ends."""
    server = DashboardServer(dashboard_settings(**AUTH_SETTINGS, **overrides)).start()
    try:
        yield server
    finally:
        server.stop()


def from_address(address: str) -> dict[str, str]:
    """What a reverse proxy adds to a request it passes on from ``address``."""
    return {"X-Forwarded-For": address}


def failed_logins(proxied: DashboardServer, address: str, times: int,
                  password: str) -> tuple[Client, dict[str, str], list[int]]:
    """``times`` logins as the admin with the wrong ``password`` from ``address`` (through the
    proxy): the browser that sent them, the right form to try after (with its CSRF token), and
    the statuses they got."""
    browser = proxied.client()
    token = page_csrf(browser.get("/login").text)
    wrong = {"user": ADMIN["user"], "password": password, "csrf_token": token}
    codes = [browser.post("/login", form=wrong, headers=from_address(address)).status for _ in range(times)]
    return browser, {**ADMIN, "csrf_token": token}, codes


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_login_throttle(
        redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Every request came from the proxy's address, so five wrong passwords a minute from anyone
    blocked the admin everywhere. With the proxy trusted, the client it names is counted."""
    caplog.set_level(logging.INFO, logger="dashboard")
    with serving(dashboard_trusted_proxies="10.9.8.0/24, 127.0.0.1") as proxied:
        browser, right, codes = failed_logins(proxied, CLIENT_A, 6, "guess-4321")
        assert codes == [401] * 5 + [429]
        assert browser.post("/login", form=right, headers=from_address(CLIENT_A)).status == 429
        # Another client of the same proxy, and the proxy itself, sign in.
        assert proxied.client().post("/login", form=right, headers=from_address(CLIENT_B)).status == 303
        assert proxied.client().post("/login", form=right).status == 303
        # Basic auth through the proxy counts the same way.
        assert_throttled(proxied.client(**ADMIN).get("/api/me", headers=from_address(CLIENT_A)))
        assert proxied.client(**ADMIN).get("/api/me", headers=from_address(CLIENT_B)).status == 200
        # A second trusted hop is skipped; what A writes left of its own address proves nothing.
        for chain in (f"{CLIENT_A}, 10.9.8.7", f"{CLIENT_B}, {CLIENT_A}", f"{CLIENT_B},{CLIENT_A}, 10.9.8.7"):
            reply = proxied.client().post("/login", form=right, headers=from_address(chain))
            assert reply.status == 429, (chain, reply.status)
    assert f"failed login from {CLIENT_A}" in caplog.text
    assert "failed login from 127.0.0.1" not in caplog.text
    assert f"operator signed in (admin) from {CLIENT_B}" in caplog.text
    assert "guess-4321" not in caplog.text and ADMIN["password"] not in caplog.text


def test_behind_a_trusted_proxy_an_ipv6_client_is_throttled_by_its_64_network(
        redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Whoever has one address of an IPv6 /64 can use all 2**64 of them: counted per address, a
    guesser got five tries a minute per address, without limit. The /64 is one key; the log still
    names the address."""
    caplog.set_level(logging.INFO, logger="dashboard")
    with serving(dashboard_trusted_proxies="127.0.0.1") as proxied:
        _, right, codes = failed_logins(proxied, "2001:db8::1", 5, "guess-6464")
        assert codes == [401] * 5
        # Another address of the same /64 (spelled out in full, too) is the same guesser.
        for same_network in ("2001:db8::2", "2001:db8:0:0:ffff:ffff:ffff:ffff"):
            reply = proxied.client().post("/login", form=right, headers=from_address(same_network))
            assert reply.status == 429, (same_network, reply.status)
        assert_throttled(proxied.client(**ADMIN).get("/api/me", headers=from_address("2001:db8::3")))
        # The next /64 is another subscriber, and so is an IPv4 client.
        assert proxied.client().post("/login", form=right, headers=from_address("2001:db8:0:1::1")).status == 303
        assert proxied.client(**ADMIN).get("/api/me", headers=from_address("2001:db8:0:1::1")).status == 200
        assert proxied.client().post("/login", form=right, headers=from_address(CLIENT_B)).status == 303
    assert "failed login from 2001:db8::1" in caplog.text
    assert "failed login from 2001:db8::/64" not in caplog.text
    assert "operator signed in (admin) from 2001:db8:0:1::1" in caplog.text


@pytest.mark.parametrize(("address", "key"), [
    ("2001:db8::1", "2001:db8::/64"),
    ("2001:DB8:0:0:1234:5678:9abc:def0", "2001:db8::/64"),
    ("2001:db8:0:1::1", "2001:db8:0:1::/64"),
    (CLIENT_A, CLIENT_A),                                              # IPv4: the address itself
    ("?", "?"),                                                        # no peer address
])
def test_the_login_throttle_counts_an_ipv6_client_by_its_64_network(address: str, key: str) -> None:
    from dashboard.security import throttle_address

    assert throttle_address(address) == key


@pytest.mark.parametrize("trusted", ["", "10.0.0.0/8"], ids=["none", "another-network"])
def test_from_an_untrusted_peer_a_forged_forwarded_for_escapes_no_block(
        redis_url: str, caplog: pytest.LogCaptureFixture, trusted: str) -> None:
    """The header is anyone's text: unless the peer is a trusted proxy, a guesser who names a new
    address with each try must still be counted, and blocked, under its own."""
    caplog.set_level(logging.INFO, logger="dashboard")
    with serving(dashboard_trusted_proxies=trusted) as direct:
        browser = direct.client()
        token = page_csrf(browser.get("/login").text)
        wrong = {"user": ADMIN["user"], "password": "guess", "csrf_token": token}
        codes = [browser.post("/login", form=wrong, headers=from_address(f"192.0.2.{i}")).status
                 for i in range(1, 7)]
        assert codes == [401] * 5 + [429]
        for forged in (CLIENT_B, f"{CLIENT_B}, 10.1.2.3"):
            reply = browser.post("/login", form={**ADMIN, "csrf_token": token}, headers=from_address(forged))
            assert reply.status == 429, (forged, reply.status)
        assert_throttled(direct.client(**ADMIN).get("/api/me", headers=from_address(CLIENT_B)))
    assert "failed login from 127.0.0.1" in caplog.text and "failed login from 192.0.2." not in caplog.text


@pytest.mark.parametrize(("peer", "forwarded", "expected"), [
    ("127.0.0.1", [], "127.0.0.1"),                                    # no header: the proxy itself
    ("127.0.0.1", [CLIENT_A], CLIENT_A),
    ("::ffff:127.0.0.1", [CLIENT_A], CLIENT_A),                        # a dual-stack socket's peer
    ("127.0.0.1", [f"{CLIENT_B}, {CLIENT_A}, 10.9.8.7"], CLIENT_A),    # right-most not trusted
    ("127.0.0.1", [CLIENT_B, f"{CLIENT_A}, 10.9.8.7"], CLIENT_A),      # two headers are one list
    ("127.0.0.1", ["10.9.8.6, 10.9.8.7"], "10.9.8.6"),                 # only proxies: the farthest
    ("127.0.0.1", [f"{CLIENT_B}, not-an-address"], "127.0.0.1"),       # unreadable: the peer
    ("127.0.0.1", [f"{CLIENT_A}:4711"], "127.0.0.1"),
    ("127.0.0.1", [f"{CLIENT_A},"], "127.0.0.1"),
    ("127.0.0.1", ["nonsense, " + CLIENT_A], CLIENT_A),                # left of the client: unread
    ("127.0.0.1", ["2001:DB8::1"], "2001:db8::1"),                     # one spelling, one key
    ("192.0.2.1", [CLIENT_A], "192.0.2.1"),                            # an untrusted peer
    ("fd00::5", [CLIENT_A], CLIENT_A),                                 # a trusted IPv6 network
    (None, [CLIENT_A], "?"),                                           # no peer address at all
])
def test_the_client_address_is_the_right_most_untrusted_hop(peer: str | None, forwarded: list[str],
                                                            expected: str) -> None:
    from dashboard.security import client_address
    from settings import ip_networks

    trusted = ip_networks(["127.0.0.1", "10.9.8.0/24", "fd00::/8"])
    assert client_address(peer, forwarded, trusted) == expected


def test_the_command_refuses_bad_trusted_proxies_in_one_line(redis_url: str) -> None:
    proc = _run_dashboard({"DASHBOARD_TRUSTED_PROXIES": "127.0.0.1, proxy.internal"},
                          "--host", "127.0.0.1", "--port", str(free_port()))
    try:
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 2
    assert out.strip() == ("settings error: DASHBOARD_TRUSTED_PROXIES must be a comma-separated list of IP "
                           "addresses or CIDR networks, like 10.0.0.2 or 172.16.0.0/12 "
                           "(got '127.0.0.1, proxy.internal')")


# --- signing out ends the session, not only the cookie ------------------------------------------

def signed_in(server: DashboardServer) -> Client:
    """A browser of ``server`` signed in as the admin through the login form."""
    browser = server.client()
    reply = browser.post("/login", form={**ADMIN, "csrf_token": page_csrf(browser.get("/login").text)})
    assert reply.status == 303 and "fbdash_session" in browser.cookies, reply.text
    return browser


def assert_signed_out(server: DashboardServer, cookie: str) -> None:
    """``cookie`` signs nobody in: the API says 401, a page sends to the login form, which shows."""
    holder = server.client(cookies={"fbdash_session": cookie})
    assert holder.get("/api/me").status == 401
    page = holder.get("/jobs")
    assert page.status == 303 and page.location.startswith("/login?next=")
    assert holder.get("/login").status == 200


def test_signing_out_revokes_the_session_so_a_copied_cookie_is_worthless(
        auth_dashboard: DashboardServer, redis_client, caplog: pytest.LogCaptureFixture) -> None:
    """Sign-out only deleted the cookie: a copy of it stayed valid for its whole 12 hours."""
    from dashboard.security import SESSION_LIFETIME

    caplog.set_level(logging.INFO, logger="dashboard")
    browser, elsewhere = signed_in(auth_dashboard), signed_in(auth_dashboard)
    copied = browser.cookies["fbdash_session"]
    with serving() as twin:  # another instance on the same Redis takes the same cookies
        assert twin.client(cookies={"fbdash_session": copied}).get("/api/me").json()["via"] == "session"
        out = browser.post("/logout", form={"csrf_token": browser.csrf()})
        assert out.status == 303 and "fbdash_session" not in browser.cookies
        assert_signed_out(auth_dashboard, copied)
        assert_signed_out(twin, copied)
    # Only that session ended: the admin's other browser is still signed in.
    assert elsewhere.get("/api/me").json()["via"] == "session"
    # The revocation lasts as long as the cookie would have, no longer.
    [key] = redis_client.keys("*dashboard:revoked_session:*")
    assert 0 <= SESSION_LIFETIME - redis_client.ttl(key) < 60
    assert "operator signed out from 127.0.0.1" in caplog.text and copied not in caplog.text


def test_a_session_cookie_issued_without_an_id_is_refused(auth_dashboard: DashboardServer) -> None:
    """Cookies from before sessions had an id could never be revoked: refused, so their holders
    sign in again once."""
    import base64

    from dashboard.security import SESSION_PURPOSE
    from dashboard.web import DASHBOARD

    assert auth_dashboard.app is not None
    signer = auth_dashboard.app[DASHBOARD].signer
    user = base64.urlsafe_b64encode(ADMIN["user"].encode()).decode().rstrip("=")
    assert_signed_out(auth_dashboard, f"{user}.{signer.issue('session', ADMIN['user'])}")
    # Nor is one of the current shape (user.id.issued.signature) signed for the old purpose: the
    # same cookie signed for SESSION_PURPOSE reads, so only the purpose refuses it.
    sid, payload = "A" * 22, f"{'A' * 22}|{ADMIN['user']}"
    assert signer.read_session(f"{user}.{sid}.{signer.issue(SESSION_PURPOSE, payload)}") is not None
    assert_signed_out(auth_dashboard, f"{user}.{sid}.{signer.issue('session', payload)}")


def test_a_session_that_redis_cannot_vouch_for_neither_reads_nor_acts(auth_dashboard: DashboardServer,
                                                                      store: JobStore, redis_server) -> None:
    """Whether a session was revoked is in Redis: while it cannot be asked, the session's requests
    get the 503 every page gets without Redis, and a sign-out that cannot be recorded is not
    pretended (the cookie stays, to be signed out for real once Redis is back)."""
    job_id = make_job(store, status="queued")
    browser = signed_in(auth_dashboard)
    copied, csrf = browser.cookies["fbdash_session"], browser.csrf()
    redis_server.stop()
    try:
        me = browser.get("/api/me")  # needs nothing else from Redis: it answered 200
        assert me.status == 503 and me.json()["error"] == "redis_unavailable"
        assert browser.post(f"/api/jobs/{job_id}/cancel", headers={"X-CSRF-Token": csrf}).status == 503
        assert browser.post("/logout", form={"csrf_token": csrf}).status == 503
        assert browser.cookies["fbdash_session"] == copied
        # A path that needs no identity does not ask Redis about the session.
        assert browser.get("/favicon.ico").status == 301
    finally:
        redis_server.start()
    assert store.status(job_id) == "queued"
    assert browser.post("/logout", form={"csrf_token": csrf}).status == 303
    assert_signed_out(auth_dashboard, copied)

"""The HTML pages and their form actions (POST, then a redirect back: no resubmits on reload)."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from dashboard.data import ActionError, BadFilter, JobFilters
from dashboard.monitor import RANGES
from dashboard.security import SESSION_COOKIE, SESSION_LIFETIME
from dashboard.web import (
    IDENTITY,
    blocked_notice,
    client_of,
    dashboard_of,
    form_of,
    in_thread,
    page_url,
    render,
    safe_next,
    secure_cookies,
    throttle_key,
)
from queues.alerts import LEVELS
from queues.jobstore import ALL_STATUSES

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()

# Fixed texts for the outcome of an action (the query only names one: nothing is echoed).
NOTICES = {
    "retried": "Job sent again: it is queued for a fresh run.",
    "requeued": "Job requeued: it is queued for a fresh run.",
    "canceled": "Job canceled: it will not run.",
    "canceling": "Cancel requested: the job stops at its next await.",
    "emptied": "Queue emptied.",
    "unknown_job": "That job no longer exists (its record may have expired).",
    "not_failed": "Only a failed job can be retried.",
    "not_dead": "Only a canceled or failed job can be requeued.",
    "not_active": "The job already finished; there is nothing to cancel.",
    "changed": "The job changed meanwhile; nothing was sent. Look again and retry if still needed.",
    "not_confirmed": "Type the queue name to confirm.",
}


def notice(request: web.Request) -> dict[str, str] | None:
    for kind in ("done", "error"):
        code = request.query.get(kind)
        if code in NOTICES:
            return {"kind": "ok" if kind == "done" else "bad", "text": NOTICES[code]}
    return None


@routes.get("/")
async def overview(request: web.Request) -> web.Response:
    chart_range = request.query.get("range", "hour")
    if chart_range not in RANGES:
        raise BadFilter(f"range is one of {', '.join(RANGES)}")
    view = await in_thread(dashboard_of(request).data.overview, chart_range)
    return render(request, "overview.html", view=view, ranges=list(RANGES), notice=notice(request))


def counted(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def emptied_notice(request: web.Request, queue_names: list[str]) -> dict[str, str] | None:
    """What emptying a queue did, from its redirect's query: the queue (named only if it is one
    of ours) and the counts (whole numbers, else the fixed text), so the operator sees whether
    anything was dropped. Escaped in the page like every notice."""
    if request.query.get("done") != "emptied":
        return None
    try:
        cleared, canceled = int(request.query["cleared"]), int(request.query["canceled"])
    except (KeyError, ValueError):
        cleared = canceled = -1
    if cleared < 0 or canceled < 0:  # not counts this page wrote: the fixed text
        return {"kind": "ok", "text": NOTICES["emptied"]}
    name = request.query.get("queue")
    queue = f"Queue {name}" if name in queue_names else "The queue"
    if cleared == 0 and canceled == 0:
        return {"kind": "ok", "text": f"{queue} was already empty: no message dropped, no job canceled."}
    dropped = counted(cleared, "waiting or delayed message", "waiting or delayed messages")
    return {"kind": "ok", "text": f"{queue} emptied: {dropped} dropped, {counted(canceled, 'job', 'jobs')} canceled."}


@routes.get("/queues")
async def queues(request: web.Request) -> web.Response:
    data = dashboard_of(request).data
    rows = await in_thread(data.queues)
    return render(request, "queues.html", queues=rows,
                  notice=emptied_notice(request, data.queue_names) or notice(request))


@routes.get("/queues/{name}/empty")
async def confirm_empty(request: web.Request) -> web.Response:
    row = await in_thread(dashboard_of(request).data.queue, request.match_info["name"])
    return render(request, "queue_empty.html", queue=row, notice=notice(request))


@routes.post("/queues/{name}/empty")
async def empty_queue(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    form = await form_of(request)
    if form.get("confirm") != name:
        raise web.HTTPSeeOther(page_url(f"/queues/{name}/empty", error="not_confirmed"))
    result = await in_thread(dashboard_of(request).data.empty_queue, name)
    raise web.HTTPSeeOther(page_url("/queues", done="emptied", queue=name,
                                    cleared=int(result["cleared"]), canceled=int(result["jobs_canceled"])))


@routes.get("/jobs")
async def jobs(request: web.Request) -> web.Response:
    data = dashboard_of(request).data
    search = (request.query.get("q") or "").strip()
    if search:
        found = await in_thread(data.job, search)
        if found is not None:
            raise web.HTTPSeeOther(f"/jobs/{found['id']}")
    try:
        filters = JobFilters.parse(request.query, data.queue_names)
        if filters.actor is not None:
            await in_thread(data.check_actor, filters.actor)
        error = None
    except BadFilter as exc:
        filters, error = JobFilters(), str(exc)
    view = await in_thread(data.jobs, filters)
    actors = await in_thread(data.known_actors)
    return render(request, "jobs.html", view=view, filters=filters, search=search, actors=actors,
                  statuses=ALL_STATUSES, queue_names=data.queue_names, filter_error=error,
                  not_found=bool(search), base_query=filters.query())


@routes.get("/jobs/{job_id}")
async def job(request: web.Request) -> web.Response:
    detail = await in_thread(dashboard_of(request).data.job, request.match_info["job_id"])
    if detail is None:
        raise ActionError(404, "unknown_job", "No such job: it never existed or its record expired.")
    return render(request, "job.html", job=detail, notice=notice(request))


HOUR_CHOICES = [(1, "last hour"), (6, "last 6 hours"), (24, "last day"), (72, "last 3 days"), (168, "last 7 days")]
ACTIONS = {"retry": "retry_job", "requeue": "requeue_job", "cancel": "cancel_job"}


@routes.post("/jobs/{job_id}/{action}")
async def job_action(request: web.Request) -> web.Response:
    job_id, action = request.match_info["job_id"], request.match_info["action"]
    if action not in ACTIONS:
        raise web.HTTPNotFound()
    data = dashboard_of(request).data
    try:
        result: dict[str, Any] = await in_thread(getattr(data, ACTIONS[action]), job_id)
    except ActionError as exc:
        if exc.status == 404:
            raise
        raise web.HTTPSeeOther(page_url(f"/jobs/{job_id}", error=exc.code)) from None
    raise web.HTTPSeeOther(page_url(f"/jobs/{job_id}", done=result["outcome"]))


@routes.get("/workers")
async def workers(request: web.Request) -> web.Response:
    rows = await in_thread(dashboard_of(request).data.workers)
    return render(request, "workers.html", workers=rows)


@routes.get("/alerts")
async def alerts(request: web.Request) -> web.Response:
    level = request.query.get("level") or None
    state = request.query.get("state") or None
    try:
        hours = float(request.query.get("hours") or 24)
    except ValueError:
        raise BadFilter("hours is a number") from None
    view = await in_thread(dashboard_of(request).data.alert_list, level, state, hours)
    return render(request, "alerts.html", view=view, levels=LEVELS,
                  hour_choices=HOUR_CHOICES, base_query={"level": level, "state": state, "hours": hours})


# --- login ----------------------------------------------------------------------------------

@routes.get("/login")
async def login_form(request: web.Request) -> web.Response:
    dash = dashboard_of(request)
    if dash.open_mode or request.get(IDENTITY) is not None:
        raise web.HTTPSeeOther(safe_next(request.query.get("next")))
    return render(request, "login.html", next=safe_next(request.query.get("next")), error=None)


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    dash = dashboard_of(request)
    form = await form_of(request)
    target = safe_next(str(form.get("next", "/")))
    key = throttle_key(request, str(form.get("user", "")))
    wait = dash.throttle.blocked_for(key)
    if wait:
        message, headers = blocked_notice(wait)
        blocked = render(request, "login.html", status=429, next=target, error=message)
        blocked.headers.update(headers)
        return blocked
    identity = dash.credentials.check_password(str(form.get("user", "")), str(form.get("password", "")))
    if identity is None:
        dash.throttle.failed(key)
        logger.info("dashboard: failed login from %s", client_of(request))  # never the name typed
        return render(request, "login.html", status=401, next=target, error="Wrong user name or password.")
    dash.throttle.succeeded(key)
    logger.info("dashboard: %s signed in (%s) from %s", identity.name, identity.role, client_of(request))
    response = web.HTTPSeeOther(target)
    response.set_cookie(SESSION_COOKIE, dash.signer.issue_session(identity.name), max_age=SESSION_LIFETIME,
                        httponly=True, samesite="Strict", secure=secure_cookies(request), path="/")
    raise response


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    """Sign out: revoke the session the cookie names (so a copy of the cookie, wherever it went,
    signs in nobody), then delete the cookie. The session is read from the cookie itself, whatever
    else the request carried. Redis unreachable: the 503 of the ``errors`` middleware, and the
    cookie is kept, since nothing was revoked."""
    dash = dashboard_of(request)
    session = dash.signer.read_session(request.cookies.get(SESSION_COOKIE, ""))
    if session is not None:
        await in_thread(dash.revoked.revoke, session)
        logger.info("dashboard: %s signed out from %s", session.user, client_of(request))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response

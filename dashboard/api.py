"""The JSON API (``/api/``): everything the pages show and every action, plus ``/metrics`` and
``/healthz``.

=======  ===============================  ==================================================
method   path                             what
=======  ===============================  ==================================================
GET      /api/me                          who you are, your role, a CSRF token for POSTs
GET      /api/overview?range=             health, queue cards, counts, failures, charts
GET      /api/health                      the health score and why it is not 100
GET      /api/queues, /api/queues/{name}  per-queue figures
POST     /api/queues/{name}/empty         drop waiting and delayed messages; body
                                          ``{"confirm": "<name>"}``
GET      /api/jobs?status&queue&actor&    a page of jobs, newest first
         user&page&per_page
GET      /api/jobs/{id}                   one job, with the actions it allows
POST     /api/jobs/{id}/retry|requeue|    act on a job
         cancel
GET      /api/workers                     live workers
GET      /api/alerts?level&state&hours    alert history and open alerts
GET      /api/series?metric&queue&range   one chart series
GET      /metrics                         Prometheus text
GET      /healthz                         200 when Redis answers, else 503 (no auth)
=======  ===============================  ==================================================

POSTs need an admin identity and the ``X-CSRF-Token`` header (from ``/api/me``).
"""

from __future__ import annotations

import time

from aiohttp import web

from dashboard import metrics
from dashboard.data import ActionError, BadFilter, JobFilters
from dashboard.monitor import RANGES
from dashboard.web import csrf_token, dashboard_of, form_of, identity_of, in_thread, json_response

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    ok = await in_thread(dashboard_of(request).data.redis_ok)
    return json_response({"status": "ok" if ok else "degraded", "redis": ok, "time": time.time()},
                         status=200 if ok else 503)


@routes.get("/favicon.ico")
async def favicon(request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently("/static/favicon.svg")


@routes.get("/metrics")
async def prometheus(request: web.Request) -> web.Response:
    text = await in_thread(metrics.collect, dashboard_of(request).data)
    return web.Response(text=text, headers={"Content-Type": metrics.CONTENT_TYPE})


@routes.get("/api/me")
async def me(request: web.Request) -> web.Response:
    return json_response({**identity_of(request).to_dict(), "csrf_token": csrf_token(request),
                          "sandbox_chat": dashboard_of(request).sandbox_chat_url is not None})


@routes.get("/api/overview")
async def overview(request: web.Request) -> web.Response:
    view = await in_thread(dashboard_of(request).data.overview, request.query.get("range", "hour"))
    return json_response(view)


@routes.get("/api/health")
async def health(request: web.Request) -> web.Response:
    return json_response(await in_thread(dashboard_of(request).data.health))


@routes.get("/api/queues")
async def queues(request: web.Request) -> web.Response:
    return json_response({"queues": await in_thread(dashboard_of(request).data.queues)})


@routes.get("/api/queues/{name}")
async def queue(request: web.Request) -> web.Response:
    return json_response(await in_thread(dashboard_of(request).data.queue, request.match_info["name"]))


@routes.post("/api/queues/{name}/empty")
async def empty_queue(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    dashboard_of(request).data.check_queue(name)  # a queue that is not there: 404 before any confirm
    body = await _body(request)
    if body.get("confirm") != name:
        raise ActionError(400, "not_confirmed", f'send {{"confirm": "{name}"}} to empty this queue')
    return json_response(await in_thread(dashboard_of(request).data.empty_queue, name))


@routes.get("/api/jobs")
async def jobs(request: web.Request) -> web.Response:
    data = dashboard_of(request).data
    filters = JobFilters.parse(request.query, data.queue_names)
    if filters.actor is not None:
        await in_thread(data.check_actor, filters.actor)
    return json_response(await in_thread(data.jobs, filters))


@routes.get("/api/jobs/{job_id}")
async def job(request: web.Request) -> web.Response:
    detail = await in_thread(dashboard_of(request).data.job, request.match_info["job_id"])
    if detail is None:
        raise ActionError(404, "unknown_job", "no such job")
    return json_response(detail)


ACTIONS = {"retry": "retry_job", "requeue": "requeue_job", "cancel": "cancel_job"}


@routes.post("/api/jobs/{job_id}/{action}")
async def job_action(request: web.Request) -> web.Response:
    action = request.match_info["action"]
    if action not in ACTIONS:
        raise ActionError(404, "unknown_action", f"actions are {', '.join(ACTIONS)}")
    data = dashboard_of(request).data
    return json_response(await in_thread(getattr(data, ACTIONS[action]), request.match_info["job_id"]))


@routes.get("/api/workers")
async def workers(request: web.Request) -> web.Response:
    return json_response({"workers": await in_thread(dashboard_of(request).data.workers)})


@routes.get("/api/alerts")
async def alerts(request: web.Request) -> web.Response:
    try:
        hours = float(request.query.get("hours") or 24)
    except ValueError:
        raise BadFilter("hours is a number") from None
    view = await in_thread(dashboard_of(request).data.alert_list, request.query.get("level") or None,
                           request.query.get("state") or None, hours)
    return json_response(view)


@routes.get("/api/series")
async def series(request: web.Request) -> web.Response:
    metric = request.query.get("metric", "throughput")
    queue_name = request.query.get("queue", "")
    chart_range = request.query.get("range", "hour")
    if chart_range not in RANGES:
        raise BadFilter(f"range is one of {', '.join(RANGES)}")
    points = await in_thread(dashboard_of(request).data.series, metric, queue_name, chart_range)
    return json_response({"metric": metric, "queue": queue_name, "range": chart_range,
                          "points": [{"t": t, "value": v} for t, v in points]})


async def _body(request: web.Request) -> dict:
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except (ValueError, LookupError):  # (bad JSON, bytes or charset)
            raise BadFilter("the body is not valid JSON") from None
        return body if isinstance(body, dict) else {}
    if request.can_read_body:
        return dict(await form_of(request))
    return {}

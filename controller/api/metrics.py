"""The API's own metrics, on a port of their own (`--metrics-port`): requests by route and
status, and their durations. The route is aiohttp's pattern (`/v1/segments/{segment_id}`),
never the path itself, so ids and names never become labels and the series stay bounded.

A registry apart from the operator's (controller.metrics): the API is its own process, and
exporting the operator's series at 0 here would read as a second, idle operator."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

requests = Counter(
    "masakari_api_requests_total",
    "Requests answered by the Masakari-compatible API, by method, route pattern and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
request_duration = Histogram(
    "masakari_api_request_duration_seconds",
    "Time to answer a request of the Masakari-compatible API, by method and route pattern.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def measured(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The outermost middleware: it sees the status the client gets, errors included."""
    started = time.monotonic()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as error:
        status = error.status
        raise
    finally:
        route = _route(request)
        requests.labels(request.method, route, str(status)).inc()
        request_duration.labels(request.method, route).observe(time.monotonic() - started)

"""The HTTP side: routes, the request pipeline (microversion, token, fault bodies), and the
public documents (versions, health, readiness); each resource's handlers in its own module.

Routes exist twice, `/v1/<resource>` and `/v1/{project_id}/<resource>`, as in Masakari, whose
project id in the path scopes nothing: every resource is admin-only and global to the cloud
(here: to the namespace).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from controller.api import hosts, notifications, openapi, report, segments, versions
from controller.api.context import CALLER, CONTEXT, VERSION, Context, store_of
from controller.api.faults import INTERNAL_ERROR, ApiFault
from controller.drivers.keystone import Caller, KeystoneUnavailable
from controller.microversions import HEADER

__all__ = ["Context", "build_app"]  # what main.py and the tests build the application with

log = logging.getLogger("masakari.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NO_AUTH = Caller("insecure-no-auth", None, frozenset({"admin"}))


def _fault(error: ApiFault, version: versions.Version) -> web.Response:
    response = web.json_response(error.body(), status=error.code)
    if error.code == 401:
        response.headers["WWW-Authenticate"] = "Keystone uri=''"
    return response


@web.middleware
async def pipeline(request: web.Request, handler: Handler) -> web.StreamResponse:
    version = versions.MIN_VERSION
    try:
        version = versions.requested(request.headers.getall(HEADER, []))
        request[VERSION] = version
        match = request.match_info
        if match.http_exception is None and match.handler not in PUBLIC:
            request[CALLER] = await _authenticate(request)
        response = await handler(request)
    except ApiFault as error:
        response = _fault(error, version)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        messages = {404: "The resource could not be found.", 405: "Method not allowed."}
        text = messages.get(error.status, error.reason)
        response = _fault(ApiFault(error.status, text), version)
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        response = _fault(ApiFault(500, INTERNAL_ERROR), version)
    response.headers[HEADER] = f"{versions.SERVICE_TYPE} {versions.text(version)}"
    response.headers["Vary"] = HEADER
    return response


async def _authenticate(request: web.Request) -> Caller:
    tokens = request.app[CONTEXT].tokens
    if tokens is None:
        return NO_AUTH
    token = request.headers.get("X-Auth-Token")
    if not token:
        raise ApiFault(401, "The request you have made requires authentication.")
    try:
        caller = await tokens.caller(token)
    except KeystoneUnavailable as error:
        log.warning("token validation failed: %s", error)
        raise ApiFault(503, "Keystone is not reachable at the moment; try again.") from None
    if caller is None:
        raise ApiFault(401, "The request you have made requires authentication.")
    return caller


def _base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


# --- versions ---------------------------------------------------------------------------------


async def get_versions(request: web.Request) -> web.Response:
    return web.json_response(versions.versions(_base_url(request)))


async def get_version_v1(request: web.Request) -> web.Response:
    return web.json_response(versions.version_v1(_base_url(request)))


async def healthcheck(request: web.Request) -> web.Response:
    return web.Response(text="OK")


async def readiness(request: web.Request) -> web.Response:
    """200 once every kind is read into memory; 503 before (reads still answered, slowly)."""
    state = store_of(request).readiness()
    return web.json_response(state, status=200 if state["ready"] else 503)


async def get_openapi(request: web.Request) -> web.Response:
    # Built from the router on each request (a few ms): what it describes is what is routed.
    return web.json_response(openapi.document(request.app.router, PUBLIC, _base_url(request)))


# Version documents are public (keystoneauth discovers versions before it has a token); so
# is the health check, as oslo.middleware's is, and the OpenAPI document (it is the docs).
PUBLIC: set[Handler] = {get_versions, get_version_v1, healthcheck, readiness, get_openapi}


# --- the application --------------------------------------------------------------------------


SEGMENT = "/segments/{segment_id}"
HOST = SEGMENT + "/hosts/{host_id}"
NOTIFICATION = "/notifications/{notification_id}"
ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/segments", segments.list_segments),
    ("POST", "/segments", segments.create_segment),
    ("GET", SEGMENT, segments.show_segment),
    ("PUT", SEGMENT, segments.update_segment),
    ("DELETE", SEGMENT, segments.delete_segment),
    ("GET", SEGMENT + "/hosts", hosts.list_hosts),
    ("POST", SEGMENT + "/hosts", hosts.create_host),
    ("GET", HOST, hosts.show_host),
    ("PUT", HOST, hosts.update_host),
    ("DELETE", HOST, hosts.delete_host),
    ("GET", "/notifications", notifications.list_notifications),
    ("POST", "/notifications", notifications.create_notification),
    ("GET", NOTIFICATION, notifications.show_notification),
    ("GET", NOTIFICATION + "/vmoves", notifications.list_vmoves),
    ("GET", NOTIFICATION + "/vmoves/{vmove_id}", notifications.show_vmove),
]


def build_app(context: Context) -> web.Application:
    app = web.Application(middlewares=[pipeline], client_max_size=112 * 1024)
    app[CONTEXT] = context
    app.router.add_get("/", get_versions)
    app.router.add_get("/v1", get_version_v1)
    app.router.add_get("/v1/", get_version_v1)
    app.router.add_get("/healthcheck", healthcheck)
    app.router.add_get("/readyz", readiness)
    app.router.add_get("/openapi.json", get_openapi)  # ours: the API as OpenAPI 3.1
    app.router.add_get("/report", report.get_report)  # ours, not Masakari's: outside /v1
    for prefix in ("/v1", r"/v1/{project_id:[0-9a-f\-]+}"):
        for method, path, handler in ROUTES:
            app.router.add_route(method, prefix + path, handler)
    return app

"""The simulator's HTTP server: Keystone under /identity, Nova under /compute, Placement under
/placement, Glance under /image, control under /_sim. One middleware does what Nova's and
Keystone's pipelines do before a handler runs: injected faults, token check, microversion
negotiation, and error bodies in Nova's format (Placement's in controller.sim.placement).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from controller.microversions import HEADER, asked_for
from controller.sim import cloud as sim_cloud
from controller.sim import compute, control, glance, keystone, placement
from controller.sim import topology as topo
from controller.sim.state import (
    MAX_MICROVERSION,
    MIN_MICROVERSION,
    SIM,
    Faults,
    RouteFault,
    Sim,
    requested_version,
)

ROUTE_CLASS = web.AppKey("route_class", dict[web.AbstractResource, str])
_NOVA_ERROR_KINDS = {
    400: "badRequest",
    403: "forbidden",
    404: "itemNotFound",
    406: "notAcceptable",
    409: "conflictingRequest",
    500: "computeFault",
    503: "serviceUnavailable",
}


@dataclass
class Options:
    seed: int | None = None
    timing: sim_cloud.Timing = field(default_factory=sim_cloud.Timing)
    faults: dict[str, RouteFault] = field(default_factory=dict)
    admin_token: str | None = None


def _version_string(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def _nova_error(status: int, message: str) -> web.Response:
    kind = _NOVA_ERROR_KINDS.get(status, "computeFault")
    return web.json_response({kind: {"code": status, "message": message}}, status=status)


def _requested_microversion(request: web.Request) -> tuple[int, int]:
    """The compute microversion a request asks for (2.1 when it names none)."""
    value = asked_for(request.headers.getall(HEADER, []), "compute")
    if value is None:
        value = request.headers.get("X-OpenStack-Nova-API-Version")
    return requested_version(
        value,
        MIN_MICROVERSION,
        MAX_MICROVERSION,
        "API Version String {value} is of invalid format.",
    )


async def _compute(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    sim = request.app[SIM]
    ctx = sim.keystone.context(request.headers.get("X-Auth-Token"))
    if ctx is None:
        return keystone.unauthorized()
    ctx.microversion = _requested_microversion(request)
    if not MIN_MICROVERSION <= ctx.microversion <= MAX_MICROVERSION:
        return _nova_error(
            406,
            f"Version {_version_string(ctx.microversion)} is not supported by the API. Minimum "
            f"is {_version_string(MIN_MICROVERSION)} and maximum is "
            f"{_version_string(MAX_MICROVERSION)}.",
        )
    request[compute.CONTEXT] = ctx
    response = await handler(request)
    version = _version_string(ctx.microversion)
    response.headers["OpenStack-API-Version"] = f"compute {version}"
    response.headers["X-OpenStack-Nova-API-Version"] = version
    response.headers["Vary"] = "OpenStack-API-Version, X-OpenStack-Nova-API-Version"
    return response


@web.middleware
async def pipeline(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    sim = request.app[SIM]
    route_class = request.app[ROUTE_CLASS].get(request.match_info.route.resource)  # type: ignore[arg-type]
    if route_class is None:  # the control API, or no route at all
        try:
            return await handler(request)
        except sim_cloud.ApiError as error:
            return web.json_response({"error": error.message}, status=error.status)
    sim.requests[route_class] += 1
    if await sim.network.lost(request):
        return web.Response(status=503)  # never written: the connection is gone
    fault = sim.faults.for_class(route_class)
    if fault is not None:
        if fault.latency > 0:
            await asyncio.sleep(fault.latency)
        if fault.error_rate > 0 and sim.rng.random() < fault.error_rate:
            return _nova_error(fault.status, "Injected by the simulator.")
    try:
        # Version documents are public, as in Nova's paste pipeline.
        if request.path.startswith(compute.PREFIX) and route_class != "versions":
            return await _compute(request, handler)
        if route_class == "placement":
            return await placement.pipeline(request, handler)
        return await handler(request)
    except sim_cloud.ApiError as error:
        return _nova_error(error.status, error.message)


# --- version discovery and Keystone ---------------------------------------------------------


def _compute_version(base_url: str) -> dict[str, Any]:
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "version": _version_string(MAX_MICROVERSION),
        "min_version": _version_string(MIN_MICROVERSION),
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": f"{base_url}/compute/v2.1/"}],
        "media-types": [
            {
                "base": "application/json",
                "type": "application/vnd.openstack.compute+json;version=2.1",
            }
        ],
    }


async def compute_versions(request: web.Request) -> web.Response:
    return web.json_response({"versions": [_compute_version(request.app[SIM].base_url)]})


async def compute_version(request: web.Request) -> web.Response:
    return web.json_response({"version": _compute_version(request.app[SIM].base_url)})


async def identity_versions(request: web.Request) -> web.Response:
    document = keystone.version_document(request.app[SIM].base_url)
    return web.json_response({"versions": {"values": [document]}}, status=300)


async def identity_version(request: web.Request) -> web.Response:
    return web.json_response({"version": keystone.version_document(request.app[SIM].base_url)})


async def issue_token(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    try:
        body = await request.json()
    except ValueError:
        return keystone.unauthorized()
    issued = sim.keystone.issue(body) if isinstance(body, dict) else None
    if issued is None:
        return keystone.unauthorized()
    token_id, token = issued
    return web.json_response(
        keystone.Keystone.render(token, sim.base_url, extra=sim.spec.catalog),
        status=201,
        headers={"X-Subject-Token": token_id},
    )


async def validate_token(request: web.Request) -> web.Response:
    """GET/HEAD /v3/auth/tokens: the caller's token (X-Auth-Token) checks X-Subject-Token."""
    sim = request.app[SIM]
    caller = request.headers.get("X-Auth-Token")
    context = sim.keystone.context(caller)
    if caller is None or context is None:
        return keystone.unauthorized()
    subject_id = request.headers.get("X-Subject-Token", "")
    # Keystone's identity:validate_token: an admin or a service, or a token checking itself.
    if not (context.is_admin or context.is_service or caller == subject_id):
        return web.json_response(
            {"error": {"code": 403, "title": "Forbidden", "message": "You are not authorized."}},
            status=403,
        )
    subject = sim.keystone.valid(subject_id)
    if subject is None:
        return web.json_response(
            {"error": {"code": 404, "title": "Not Found", "message": "Could not find token."}},
            status=404,
        )
    catalog = "nocatalog" not in request.query
    return web.json_response(
        keystone.Keystone.render(subject, sim.base_url, catalog=catalog, extra=sim.spec.catalog),
        headers={"X-Subject-Token": subject_id},
    )


def build_app(spec: topo.Topology, options: Options) -> web.Application:
    app = web.Application(middlewares=[pipeline])
    classes: dict[web.AbstractResource, str] = {}
    app[ROUTE_CLASS] = classes

    def classify(route_class: str, route: web.AbstractRoute) -> None:
        classes[route.resource] = route_class  # type: ignore[index]

    for path in ("/compute", "/compute/"):
        classify("versions", app.router.add_get(path, compute_versions))
    for path in ("/compute/v2.1", "/compute/v2.1/"):
        classify("versions", app.router.add_get(path, compute_version))
    for path in ("/identity", "/identity/"):
        classify("versions", app.router.add_get(path, identity_versions))
    for path in ("/identity/v3", "/identity/v3/"):
        classify("versions", app.router.add_get(path, identity_version))
    classify("identity", app.router.add_post("/identity/v3/auth/tokens", issue_token))
    classify("identity", app.router.add_get("/identity/v3/auth/tokens", validate_token))
    compute.add_routes(app, classify)
    placement.add_routes(app, classify)
    glance.add_routes(app, classify)
    control.add_routes(app)

    # Built inside the running loop: the cloud schedules its timers on it.
    app[SIM] = Sim(
        spec=spec,
        seed=options.seed,
        timing=options.timing,
        cloud=sim_cloud.Cloud(spec, seed=options.seed, timing=options.timing),
        keystone=keystone.Keystone(spec.users, options.admin_token),
        faults=Faults(dict(options.faults)),
    )
    if options.seed is not None:
        app[SIM].rng.seed(options.seed)
    return app


async def serve(
    spec: topo.Topology, options: Options, host: str, port: int
) -> tuple[web.AppRunner, str]:
    """Start serving; returns the runner (to clean up) and the base URL actually bound."""
    app = build_app(spec, options)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = runner.addresses[0][1]  # the real one when `port` is 0
    netloc = f"[{host}]" if ":" in host else host
    base_url = f"http://{netloc}:{bound_port}"
    app[SIM].base_url = base_url
    app[SIM].network.attach(runner, site, host, bound_port)
    return runner, base_url

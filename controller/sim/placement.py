"""The Placement API subset recovery reads, served from the simulated cloud.

Each compute host is a root resource provider whose uuid is its compute node's (the hypervisor
id from compute 2.53) and whose name is its hypervisor host name, as nova-compute registers it;
its inventories are VCPU, MEMORY_MB and DISK_GB with the host's allocation ratios and reserved
amounts, and its usages are what its servers' flavors take. Bodies, errors and the
`OpenStack-API-Version: placement 1.x` negotiation follow Placement's API reference. One
difference: an evacuated server's allocation moves to its destination at once, where Placement
keeps it on the source too until the source's nova-compute starts again; recovery never plans
onto a failed host, so nothing it reads changes.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from controller.microversions import HEADER, asked_for
from controller.sim import cloud as sim_cloud
from controller.sim import keystone
from controller.sim.state import SIM, requested_version

PREFIX = "/placement"
MIN_MICROVERSION = (1, 0)
#: Placement 13 (2025.1) and later.
MAX_MICROVERSION = (1, 39)
_TITLES = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 406: "Not Acceptable"}
MICROVERSION = web.RequestKey("placement_microversion", tuple)


def _string(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def error(status: int, detail: str, version: tuple[int, int] = MIN_MICROVERSION) -> web.Response:
    """Placement's error body; `code` from 1.23 on."""
    item: dict[str, Any] = {
        "status": status,
        "title": _TITLES.get(status, "Error"),
        "detail": detail,
        "request_id": f"req-{uuid.uuid4()}",
    }
    if version >= (1, 23):
        item["code"] = "placement.undefined_code"
    return web.json_response({"errors": [item]}, status=status)


def _asked(request: web.Request) -> tuple[int, int]:
    value = asked_for(request.headers.getall(HEADER, []), "placement")
    return requested_version(
        value, MIN_MICROVERSION, MAX_MICROVERSION, "invalid version string: {value}"
    )


async def pipeline(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """What Placement's WSGI stack does before a handler: keystonemiddleware's token check,
    the admin-only policy of provider reads, microversion negotiation, headers and errors."""
    context = request.app[SIM].keystone.context(request.headers.get("X-Auth-Token"))
    if context is None:
        return keystone.unauthorized()
    try:
        version = _asked(request)
    except sim_cloud.ApiError as failure:
        return error(failure.status, failure.message)
    if not MIN_MICROVERSION <= version <= MAX_MICROVERSION:
        return error(
            406,
            f"Unacceptable version header: {_string(version)}. Minimum is "
            f"{_string(MIN_MICROVERSION)}, maximum is {_string(MAX_MICROVERSION)}.",
        )
    if not context.is_admin:
        return error(403, "Policy does not allow placement:resource_providers:list.", version)
    request[MICROVERSION] = version
    try:
        response = await handler(request)
    except sim_cloud.ApiError as failure:
        return error(failure.status, failure.message, version)
    response.headers[HEADER] = f"placement {_string(version)}"
    response.headers["Vary"] = HEADER
    return response


def _provider(request: web.Request, host: sim_cloud.Host) -> dict[str, Any]:
    url = f"{PREFIX}/resource_providers/{host.hypervisor_id}"
    view: dict[str, Any] = {
        "uuid": host.hypervisor_id,
        "name": host.name,
        "generation": host.generation,
        "links": [
            {"rel": "self", "href": url},
            {"rel": "inventories", "href": f"{url}/inventories"},
            {"rel": "usages", "href": f"{url}/usages"},
        ],
    }
    if request[MICROVERSION] >= (1, 14):
        view["parent_provider_uuid"] = None
        view["root_provider_uuid"] = host.hypervisor_id
    return view


def _host(request: web.Request) -> sim_cloud.Host:
    provider = request.match_info["uuid"]
    for host in request.app[SIM].cloud.hosts.values():
        if host.hypervisor_id == provider:
            return host
    raise sim_cloud.ApiError(404, f"No resource provider with uuid {provider} found")


async def versions(request: web.Request) -> web.Response:
    """The root document, unauthenticated as in Placement."""
    return web.json_response(
        {
            "versions": [
                {
                    "id": "v1.0",
                    "max_version": _string(MAX_MICROVERSION),
                    "min_version": _string(MIN_MICROVERSION),
                    "status": "CURRENT",
                    "links": [{"rel": "self", "href": ""}],
                }
            ]
        }
    )


async def list_providers(request: web.Request) -> web.Response:
    hosts = list(request.app[SIM].cloud.hosts.values())
    name = request.query.get("name")
    if name is not None:
        hosts = [h for h in hosts if h.name == name]
    wanted = request.query.get("uuid")
    if wanted is not None:
        hosts = [h for h in hosts if h.hypervisor_id == wanted]
    return web.json_response({"resource_providers": [_provider(request, h) for h in hosts]})


async def get_provider(request: web.Request) -> web.Response:
    return web.json_response(_provider(request, _host(request)))


async def inventories(request: web.Request) -> web.Response:
    host = _host(request)
    return web.json_response(
        {
            "resource_provider_generation": host.generation,
            "inventories": {
                rc: {
                    "total": total,
                    "reserved": reserved,
                    "min_unit": 1,
                    "max_unit": total,
                    "step_size": 1,
                    "allocation_ratio": ratio,
                }
                for rc, (total, reserved, ratio) in host.inventory().items()
            },
        }
    )


async def usages(request: web.Request) -> web.Response:
    host = _host(request)
    return web.json_response(
        {"resource_provider_generation": host.generation, "usages": host.usages()}
    )


def add_routes(app: web.Application, classify: Callable[[str, web.AbstractRoute], None]) -> None:
    """Register the Placement routes: the root as "versions", the rest as "placement"."""
    for path in (PREFIX, PREFIX + "/"):
        classify("versions", app.router.add_get(path, versions))
    table: list[tuple[str, Any]] = [
        ("/resource_providers", list_providers),
        ("/resource_providers/{uuid}", get_provider),
        ("/resource_providers/{uuid}/inventories", inventories),
        ("/resource_providers/{uuid}/usages", usages),
    ]
    for path, handler in table:
        classify("placement", app.router.add_get(PREFIX + path, handler))

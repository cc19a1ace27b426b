"""The Glance API subset recovery reads: GET /v2/images/{id}, under /image.

An image's own properties are flattened beside Glance's base attributes, as Glance answers;
the images are the topology's and those added through the control API (POST /_sim/images). A
token is checked as keystonemiddleware does; every image is visible to every token (Glance's
visibility rules are not modelled: the operator reads as an admin).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from controller.sim import keystone
from controller.sim import topology as topo
from controller.sim.state import SIM

PREFIX = "/image"
_VERSION = "v2.16"  # Glance 33 (2025.2)
_CREATED = "2025-01-01T00:00:00Z"


def render(image: topo.ImageSpec) -> dict[str, Any]:
    path = f"/v2/images/{image.id}"
    return {
        **image.properties,
        "id": image.id,
        "name": image.name,
        "status": "active",
        "visibility": "public",
        "protected": False,
        "os_hidden": False,
        "owner": "admin",
        "checksum": None,
        "size": None,
        "virtual_size": None,
        "min_ram": 0,
        "min_disk": 0,
        "disk_format": "raw",
        "container_format": "bare",
        "tags": list(image.tags),
        "created_at": _CREATED,
        "updated_at": _CREATED,
        "self": path,
        "file": f"{path}/file",
        "schema": "/v2/schemas/image",
    }


async def versions(request: web.Request) -> web.Response:
    base = request.app[SIM].base_url
    version = {
        "id": _VERSION,
        "status": "CURRENT",
        "links": [{"rel": "self", "href": f"{base}{PREFIX}/v2/"}],
    }
    return web.json_response({"versions": [version]}, status=300)


async def get_image(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    if sim.keystone.context(request.headers.get("X-Auth-Token")) is None:
        return keystone.unauthorized()
    image = sim.images.get(request.match_info["id"])
    if image is None:
        # Glance's answer to an unknown or deleted image.
        return web.Response(
            status=404,
            text=f"404 Not Found\n\nNo image found with ID {request.match_info['id']}\n\n   ",
            content_type="text/plain",
        )
    return web.json_response(render(image))


def add_routes(app: web.Application, classify: Callable[[str, web.AbstractRoute], None]) -> None:
    for path in (PREFIX, f"{PREFIX}/"):
        classify("versions", app.router.add_get(path, versions))
    classify("images", app.router.add_get(f"{PREFIX}/v2/images/{{id}}", get_image))

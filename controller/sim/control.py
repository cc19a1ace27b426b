"""The simulator's control API under /_sim/, for tests and the demo (no authentication: the
simulator listens on loopback).

  GET    /_sim/health                     counts of hosts and servers
  POST   /_sim/topology                   load a topology (YAML or JSON body) and start over
  POST   /_sim/reset                      start over from the loaded topology
  POST   /_sim/hosts/{host}/kill          the host dies: its nova-compute stops reporting
  POST   /_sim/hosts/{host}/revive        it reports again and cleans up evacuations from it
  POST   /_sim/servers                    boot servers: {"host", "count", "metadata",
                                          "stopped", "flavor", "project_id", "image"}
                                          -> {"ids": [...]}
  POST   /_sim/images                     add a Glance image: {"id", "name", "properties",
                                          "tags"} -> {"id"}
  GET    /_sim/evacuations                {"evacuations": {server id: times evacuated},
                                          "unfenced": {server id: times evacuated while
                                          nova-compute still ran on its source}}
  GET    /_sim/servers/{id}/evacuations   {"evacuations": n}
  GET    /_sim/moves                      {"moves": {server id: evacuations + completed
                                          live migrations + landed cold migrations}}
  GET    /_sim/faults, PUT /_sim/faults   {"routes": {class: {"error_rate", "latency",
                                          "status"}}, "fail_evacuation": [server ids],
                                          "fail_live_migration": {server id: how many of its
                                          next live migrations fail, < 0: all},
                                          "fail_cold_migration": {likewise, for cold
                                          migrations},
                                          "stall_evacuation": [server ids whose next rebuild
                                          never ends], "outage": {"mode": "refuse" | "hang",
                                          "seconds"} (controller/sim/network.py)}
  PUT    /_sim/timing                     {"live_migration_seconds", "evacuation_seconds", ...}
  GET    /_sim/stats, DELETE /_sim/stats  requests served per route class
  GET    /_sim/tokens                     {"tokens": [Keystone token ids held]}: what a test
                                          looks for where no credential may show
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import yaml
from aiohttp import web
from pydantic import ValidationError

from controller.sim import cloud as sim_cloud
from controller.sim import topology as topo
from controller.sim.state import SIM, RouteFault

ROUTE_CLASSES = frozenset(
    {"*", "identity", "versions", "services", "servers", "actions", "flavors", "aggregates",
     "migrations", "hypervisors", "images"}
)  # fmt: skip


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def health(request: web.Request) -> web.Response:
    cloud = request.app[SIM].cloud
    return web.json_response({"hosts": len(cloud.hosts), "servers": len(cloud.servers)})


async def load_topology(request: web.Request) -> web.Response:
    try:
        spec = topo.parse(await request.text())
        request.app[SIM].load(spec)
    except (yaml.YAMLError, ValidationError, ValueError, sim_cloud.ApiError) as exc:
        return _error(400, f"bad topology: {exc}")
    return await health(request)


async def reset(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    sim.load(sim.spec)
    return await health(request)


async def kill_host(request: web.Request) -> web.Response:
    request.app[SIM].cloud.kill_host(request.match_info["host"])
    return web.json_response({"host": request.match_info["host"], "alive": False})


async def revive_host(request: web.Request) -> web.Response:
    request.app[SIM].cloud.revive_host(request.match_info["host"])
    return web.json_response({"host": request.match_info["host"], "alive": True})


async def boot_servers(request: web.Request) -> web.Response:
    cloud = request.app[SIM].cloud
    spec: dict[str, Any] = await request.json()
    flavor = cloud.flavor(str(spec.get("flavor", "m1.tiny")))
    ids = []
    for _ in range(int(spec.get("count", 1))):
        name = f"{spec.get('name', 'vm')}-{len(cloud.servers) + 1}"
        server = cloud.boot(
            str(spec["host"]), name, flavor, dict(spec.get("metadata") or {}),
            str(spec.get("project_id", "demo")),
        )  # fmt: skip
        if spec.get("stopped"):
            server.vm_state, server.power_state = "stopped", sim_cloud.POWER_SHUTDOWN
        server.image_id = str(spec["image"]) if spec.get("image") else None
        ids.append(server.id)
    return web.json_response({"ids": ids})


async def add_image(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    body: dict[str, Any] = await request.json()
    try:
        image = topo.ImageSpec.model_validate(
            {"id": body.get("id") or sim.cloud.new_uuid()}
            | {k: v for k, v in body.items() if k != "id"}
        )
    except ValidationError as exc:
        return _error(400, f"bad image: {exc}")
    sim.images[image.id] = image
    return web.json_response({"id": image.id})


async def evacuations(request: web.Request) -> web.Response:
    servers = request.app[SIM].cloud.servers.values()
    counts = {s.id: s.evacuations for s in servers if s.evacuations}
    unfenced = {s.id: s.unfenced_evacuations for s in servers if s.unfenced_evacuations}
    return web.json_response({"evacuations": counts, "unfenced": unfenced})


async def server_evacuations(request: web.Request) -> web.Response:
    server = request.app[SIM].cloud.servers.get(request.match_info["id"])
    if server is None:
        return _error(404, f"no server {request.match_info['id']}")
    return web.json_response({"evacuations": server.evacuations})


async def moves(request: web.Request) -> web.Response:
    servers = request.app[SIM].cloud.servers.values()
    counts = {s.id: s.evacuations + s.live_migrations + s.cold_migrations for s in servers}
    return web.json_response({"moves": {k: v for k, v in counts.items() if v}})


async def set_timing(request: web.Request) -> web.Response:
    timing = request.app[SIM].cloud.timing
    body: dict[str, Any] = await request.json()
    unknown = set(body) - set(asdict(timing))
    if unknown:
        return _error(400, f"unknown timings {sorted(unknown)}")
    for name, value in body.items():
        setattr(timing, name, float(value))
    return web.json_response(asdict(timing))


def _faults_view(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    return web.json_response(
        {
            "routes": {name: asdict(fault) for name, fault in sim.faults.routes.items()},
            "fail_evacuation": sorted(sim.cloud.failing_evacuations),
            "fail_live_migration": sim.cloud.failing_live_migrations,
            "fail_cold_migration": sim.cloud.failing_cold_migrations,
            "stall_evacuation": sorted(sim.cloud.stalled_evacuations),
            "outage": sim.network.view(),
        }
    )


async def get_faults(request: web.Request) -> web.Response:
    return _faults_view(request)


async def set_faults(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    body: dict[str, Any] = await request.json()
    routes = body.get("routes", {})
    unknown = set(routes) - ROUTE_CLASSES
    if unknown:
        return _error(400, f"unknown route classes {sorted(unknown)}; use {sorted(ROUTE_CLASSES)}")
    sim.faults.routes = {name: RouteFault(**fault) for name, fault in routes.items()}
    sim.cloud.failing_evacuations = set(body.get("fail_evacuation", []))
    failing = body.get("fail_live_migration", {})
    sim.cloud.failing_live_migrations = {str(k): int(v) for k, v in failing.items()}
    failing = body.get("fail_cold_migration", {})
    sim.cloud.failing_cold_migrations = {str(k): int(v) for k, v in failing.items()}
    sim.cloud.stalled_evacuations = set(body.get("stall_evacuation", []))
    if outage := body.get("outage"):
        try:
            sim.network.cut(str(outage["mode"]), float(outage["seconds"]), request.transport)
        except (KeyError, TypeError, ValueError) as exc:
            return _error(400, f"bad outage {outage!r}: {exc}")
    return _faults_view(request)


async def stats(request: web.Request) -> web.Response:
    return web.json_response({"requests": dict(request.app[SIM].requests)})


async def clear_stats(request: web.Request) -> web.Response:
    request.app[SIM].requests.clear()
    return await stats(request)


async def tokens(request: web.Request) -> web.Response:
    return web.json_response({"tokens": sorted(request.app[SIM].keystone.tokens)})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/_sim/health", health)
    app.router.add_post("/_sim/topology", load_topology)
    app.router.add_post("/_sim/reset", reset)
    app.router.add_post("/_sim/hosts/{host}/kill", kill_host)
    app.router.add_post("/_sim/hosts/{host}/revive", revive_host)
    app.router.add_post("/_sim/servers", boot_servers)
    app.router.add_post("/_sim/images", add_image)
    app.router.add_get("/_sim/evacuations", evacuations)
    app.router.add_get("/_sim/servers/{id}/evacuations", server_evacuations)
    app.router.add_get("/_sim/moves", moves)
    app.router.add_put("/_sim/timing", set_timing)
    app.router.add_get("/_sim/faults", get_faults)
    app.router.add_put("/_sim/faults", set_faults)
    app.router.add_get("/_sim/stats", stats)
    app.router.add_delete("/_sim/stats", clear_stats)
    app.router.add_get("/_sim/tokens", tokens)

"""The Nova compute API subset the operator uses, served from the simulated cloud.

Bodies follow Nova's API reference for the request's microversion where the driver reads them
(2.47 embeds the flavor in servers, 2.53 uses UUIDs for services and hypervisors, 2.88 drops
the capacity fields of os-hypervisors, 2.95 lands evacuated servers stopped).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web

from controller.sim import cloud as sim_cloud
from controller.sim import cold_migration
from controller.sim.state import SIM

PREFIX = "/compute/v2.1"
MAX_LIMIT = 1000  # Nova's [api] max_limit
CONTEXT = web.RequestKey("context", sim_cloud.Context)

T = TypeVar("T")


def _ctx(request: web.Request) -> sim_cloud.Context:
    return request[CONTEXT]


def _cloud(request: web.Request) -> sim_cloud.Cloud:
    return request.app[SIM].cloud


def _truthy(value: str) -> bool:
    return value.lower() in ("1", "true", "yes", "on", "")


def _moment(value: str, name: str) -> float:
    """An ISO 8601 query parameter, as Nova's schema checks it (a 400 when it is not one)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise sim_cloud.ApiError(
            400, f"Invalid input for query parameters {name}. Value: {value}."
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise sim_cloud.ApiError(400, "Malformed request body") from None
    if not isinstance(body, dict):
        raise sim_cloud.ApiError(400, "Malformed request body")
    return body


def _page(
    request: web.Request, items: Sequence[T], key: Callable[[T], str]
) -> tuple[list[T], list[dict[str, str]]]:
    """Nova's limit/marker paging, with a `next` link when the page is full."""
    try:
        limit = min(int(request.query.get("limit", MAX_LIMIT)), MAX_LIMIT)
    except ValueError:
        raise sim_cloud.ApiError(400, "limit must be an integer") from None
    start = 0
    marker = request.query.get("marker")
    if marker is not None:
        for index, item in enumerate(items):
            if key(item) == marker:
                start = index + 1
                break
        else:
            raise sim_cloud.ApiError(400, f"marker [{marker}] not found")
    page = list(items[start : start + limit])
    links = []
    if len(page) == limit and start + limit < len(items):
        url = request.url.update_query(limit=str(limit), marker=key(page[-1]))
        links.append({"rel": "next", "href": str(url)})
    return page, links


# --- services ----------------------------------------------------------------------------


def _service_view(cloud: sim_cloud.Cloud, host: sim_cloud.Host, now: float) -> dict[str, Any]:
    return {
        "id": host.service_id,
        "binary": "nova-compute",
        "host": host.name,
        "zone": host.zone,
        "status": host.status,
        "state": cloud.service_state(host, now),
        "updated_at": sim_cloud.iso(cloud.service_updated_at(host, now), micro=True),
        "disabled_reason": host.disabled_reason,
        "forced_down": host.forced_down,
    }


async def list_services(request: web.Request) -> web.Response:
    cloud = _cloud(request)
    host_name = request.query.get("host")
    binary = request.query.get("binary")
    if binary not in (None, "nova-compute"):
        return web.json_response({"services": []})
    if host_name is not None:
        found = cloud.hosts.get(host_name)
        hosts: Iterable[sim_cloud.Host] = [found] if found else []
    else:
        hosts = cloud.hosts.values()
    now = cloud.clock()
    return web.json_response({"services": [_service_view(cloud, h, now) for h in hosts]})


async def update_service(request: web.Request) -> web.Response:
    if _ctx(request).microversion < (2, 53):
        raise sim_cloud.ApiError(404, "The simulator serves PUT /os-services/{id} from 2.53 on.")
    if not _ctx(request).is_admin:
        raise sim_cloud.ApiError(403, "Policy doesn't allow os_compute_api:os-services:update.")
    cloud = _cloud(request)
    host = cloud.update_service(request.match_info["id"], await _body(request))
    return web.json_response({"service": _service_view(cloud, host, cloud.clock())})


# --- servers -----------------------------------------------------------------------------


def _server_view(server: sim_cloud.Server, ctx: sim_cloud.Context) -> dict[str, Any]:
    flavor: dict[str, Any]
    if ctx.microversion >= (2, 47):
        flavor = {
            "original_name": server.flavor.name,
            "vcpus": server.flavor.vcpus,
            "ram": server.flavor.ram,
            "disk": server.flavor.disk,
            "ephemeral": 0,
            "swap": 0,
            "extra_specs": {},
        }
    else:
        flavor = {"id": server.flavor.id, "links": []}
    view: dict[str, Any] = {
        "id": server.id,
        "name": server.name,
        "status": server.status,
        "tenant_id": server.project_id,
        "user_id": server.project_id,
        "metadata": server.metadata,
        "flavor": flavor,
        # Nova's view: "" for a server booted from a volume.
        "image": {"id": server.image_id, "links": []} if server.image_id else "",
        "addresses": {},
        "created": sim_cloud.iso(server.created),
        "updated": sim_cloud.iso(server.updated),
        "OS-EXT-STS:vm_state": server.vm_state,
        "OS-EXT-STS:task_state": server.task_state,
        "OS-EXT-STS:power_state": server.power_state,
        "OS-EXT-AZ:availability_zone": "nova",
        "locked": server.locked,
        "links": [],
    }
    if ctx.microversion >= (2, 73):
        view["locked_reason"] = server.locked_reason
    if ctx.is_admin:
        view["OS-EXT-SRV-ATTR:host"] = server.host
        view["OS-EXT-SRV-ATTR:hypervisor_hostname"] = server.host
    if server.fault is not None and server.vm_state == "error":
        view["fault"] = {"code": 500, "message": server.fault, "created": view["updated"]}
    return view


async def list_servers(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    cloud = _cloud(request)
    all_tenants = "all_tenants" in request.query and _truthy(request.query["all_tenants"])
    if all_tenants and not ctx.is_admin:
        raise sim_cloud.ApiError(
            403, "Policy doesn't allow os_compute_api:servers:index:get_all_tenants."
        )
    host_name = request.query.get("host") if ctx.is_admin else None
    servers: Iterable[sim_cloud.Server]
    if host_name is not None:
        host = cloud.hosts.get(host_name)
        servers = sorted(
            host.servers.values() if host else (),
            key=lambda s: (s.created, s.id),
            reverse=True,
        )
    else:
        servers = cloud.newest_first()  # Nova's default order: newest first
    if not all_tenants:
        servers = (s for s in servers if s.project_id == ctx.project_id)
    if "changes-since" in request.query:
        since = _moment(request.query["changes-since"], "changes-since")
        servers = (s for s in servers if s.updated >= since)
    ordered = servers if isinstance(servers, list) else list(servers)
    page, links = _page(request, ordered, lambda s: s.id)
    if request.path.endswith("/detail"):
        body: dict[str, Any] = {"servers": [_server_view(s, ctx) for s in page]}
    else:
        body = {"servers": [{"id": s.id, "name": s.name, "links": []} for s in page]}
    if links:
        body["servers_links"] = links
    return web.json_response(body)


async def get_server(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    server = _cloud(request).server(request.match_info["id"], ctx)
    return web.json_response({"server": _server_view(server, ctx)})


async def create_server(request: web.Request) -> web.Response:
    """A boot forced to a host ("availability_zone": "nova:<host>"), for tests and demos."""
    ctx = _ctx(request)
    cloud = _cloud(request)
    spec = (await _body(request)).get("server") or {}
    zone = str(spec.get("availability_zone") or "")
    if ":" not in zone:
        raise sim_cloud.ApiError(400, "The simulator boots only onto a host: use 'nova:<host>'.")
    flavor = cloud.flavor(str(spec.get("flavorRef", "")).rsplit("/", 1)[-1])
    hints = (await _body(request)).get("os:scheduler_hints") or {}
    group = cloud.server_group(str(hints["group"]), ctx) if "group" in hints else None
    server = cloud.boot(
        zone.split(":", 1)[1], str(spec.get("name", "server")), flavor,
        dict(spec.get("metadata") or {}), ctx.project_id,
    )  # fmt: skip
    server.image_id = str(spec["imageRef"]).rsplit("/", 1)[-1] if spec.get("imageRef") else None
    if group is not None:  # a forced host skips the filters; the membership is recorded
        group.members.append(server.id)
    return web.json_response({"server": {"id": server.id, "links": []}}, status=202)


async def delete_server(request: web.Request) -> web.Response:
    _cloud(request).delete_server(request.match_info["id"], _ctx(request))
    return web.Response(status=204)


async def server_action(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    cloud = _cloud(request)
    server_id = request.match_info["id"]
    body = await _body(request)
    if len(body) != 1:
        raise sim_cloud.ApiError(400, "There is not exactly one action in the request body.")
    action, args = next(iter(body.items()))
    args = args if isinstance(args, dict) else {}
    if action == "evacuate":
        cloud.evacuate(server_id, ctx, args.get("host"), bool(args.get("force", False)))
        return web.Response(status=200)
    if action == "os-migrateLive":
        if ctx.microversion < (2, 30) or args.get("force"):
            raise sim_cloud.ApiError(400, "The simulator live-migrates from 2.30 on, unforced.")
        cloud.live_migrate(server_id, ctx, args.get("host"))
        return web.Response(status=202)
    if action == "migrate":
        cold_migration.migrate(cloud, server_id, ctx, args.get("host"))
        return web.Response(status=202)
    if action == "confirmResize":
        cold_migration.confirm_resize(cloud, server_id, ctx)
        return web.Response(status=204)
    if action == "os-stop":
        cloud.stop(server_id, ctx)
    elif action == "os-start":
        cloud.start(server_id, ctx)
    elif action == "lock":
        reason = args.get("locked_reason") if ctx.microversion >= (2, 73) else None
        cloud.lock(server_id, ctx, reason)
    elif action == "unlock":
        cloud.unlock(server_id, ctx)
    elif action == "os-resetState":
        cloud.reset_state(server_id, ctx, str(args.get("state", "")))
    else:
        raise sim_cloud.ApiError(400, f"The simulator does not implement the {action} action.")
    return web.Response(status=202)


# --- flavors -----------------------------------------------------------------------------


def _flavor_view(flavor: sim_cloud.Flavor) -> dict[str, Any]:
    return {
        "id": flavor.id,
        "name": flavor.name,
        "vcpus": flavor.vcpus,
        "ram": flavor.ram,
        "disk": flavor.disk,
        "OS-FLV-EXT-DATA:ephemeral": 0,
        "swap": 0,
        "os-flavor-access:is_public": True,
        "links": [],
    }


async def list_flavors(request: web.Request) -> web.Response:
    return web.json_response(
        {"flavors": [_flavor_view(f) for f in _cloud(request).flavors.values()]}
    )


async def get_flavor(request: web.Request) -> web.Response:
    flavor = _cloud(request).flavors.get(request.match_info["id"])
    if flavor is None:
        raise sim_cloud.ApiError(404, f"Flavor {request.match_info['id']} could not be found.")
    return web.json_response({"flavor": _flavor_view(flavor)})


# --- aggregates ----------------------------------------------------------------------------


def _aggregate_view(aggregate: sim_cloud.Aggregate) -> dict[str, Any]:
    return {
        "id": aggregate.id,
        "uuid": aggregate.uuid,
        "name": aggregate.name,
        "availability_zone": aggregate.availability_zone,
        "hosts": list(aggregate.hosts),
        "metadata": dict(aggregate.metadata),
        "created_at": sim_cloud.iso(aggregate.created, micro=True),
        "updated_at": None,
        "deleted_at": None,
        "deleted": False,
    }


async def list_aggregates(request: web.Request) -> web.Response:
    aggregates = _cloud(request).aggregates.values()
    return web.json_response({"aggregates": [_aggregate_view(a) for a in aggregates]})


async def get_aggregate(request: web.Request) -> web.Response:
    aggregate = _cloud(request).aggregate(request.match_info["id"])
    return web.json_response({"aggregate": _aggregate_view(aggregate)})


async def create_aggregate(request: web.Request) -> web.Response:
    spec = (await _body(request)).get("aggregate") or {}
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise sim_cloud.ApiError(400, "Invalid input for field/attribute name.")
    aggregate = _cloud(request).create_aggregate(name, spec.get("availability_zone"))
    return web.json_response({"aggregate": _aggregate_view(aggregate)})


async def delete_aggregate(request: web.Request) -> web.Response:
    _cloud(request).delete_aggregate(request.match_info["id"])
    return web.Response(status=200)


async def aggregate_action(request: web.Request) -> web.Response:
    cloud = _cloud(request)
    aggregate_id = request.match_info["id"]
    body = await _body(request)
    if "add_host" in body:
        aggregate = cloud.add_host_to_aggregate(aggregate_id, str(body["add_host"].get("host")))
    elif "remove_host" in body:
        host = str(body["remove_host"].get("host"))
        aggregate = cloud.remove_host_from_aggregate(aggregate_id, host)
    else:
        raise sim_cloud.ApiError(400, "The simulator implements add_host and remove_host only.")
    return web.json_response({"aggregate": _aggregate_view(aggregate)})


# --- migrations ----------------------------------------------------------------------------


def _migration_view(migration: sim_cloud.Migration, ctx: sim_cloud.Context) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": migration.id,
        "instance_uuid": migration.instance_uuid,
        "source_compute": migration.source_compute,
        "source_node": migration.source_compute,
        "source_region": "RegionOne",
        "dest_compute": migration.dest_compute,
        "dest_node": migration.dest_compute,
        "dest_host": None,
        "dest_region": "RegionOne",
        "status": migration.status,
        "migration_type": migration.migration_type,
        "old_instance_type_id": None,
        "new_instance_type_id": None,
        "created_at": sim_cloud.iso(migration.created, micro=True),
        "updated_at": sim_cloud.iso(migration.updated, micro=True),
    }
    if ctx.microversion >= (2, 59):
        view["uuid"] = migration.uuid
    if ctx.microversion >= (2, 80):
        view["project_id"] = migration.project_id
        view["user_id"] = migration.project_id
    return view


async def list_migrations(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    cloud = _cloud(request)
    query = request.query
    instance = query.get("instance_uuid")
    migrations: Iterable[sim_cloud.Migration]
    if instance is not None:
        migrations = cloud.migrations_by_instance.get(instance, [])
    else:
        migrations = cloud.migrations
    for name in ("status", "migration_type", "source_compute"):
        if name in query:
            migrations = [m for m in migrations if getattr(m, name) == query[name]]
    if "host" in query:
        host = query["host"]
        migrations = [m for m in migrations if host in (m.source_compute, m.dest_compute)]
    ordered = sorted(migrations, key=lambda m: m.id, reverse=True)
    body: dict[str, Any]
    if ctx.microversion >= (2, 59):
        page, links = _page(request, ordered, lambda m: m.uuid)
        body = {"migrations": [_migration_view(m, ctx) for m in page]}
        if links:
            body["migrations_links"] = links
    else:
        body = {"migrations": [_migration_view(m, ctx) for m in ordered]}
    return web.json_response(body)


# --- hypervisors ---------------------------------------------------------------------------


def _hypervisor_view(
    cloud: sim_cloud.Cloud, host: sim_cloud.Host, ctx: sim_cloud.Context, now: float
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": host.hypervisor_id,
        "hypervisor_hostname": host.name,
        "state": cloud.service_state(host, now),
        "status": host.status,
        "hypervisor_type": "fake",
        "hypervisor_version": 1000,
        "host_ip": "127.0.0.1",
        "service": {
            "host": host.name,
            "id": host.service_id,
            "disabled_reason": host.disabled_reason,
        },
    }
    if ctx.microversion < (2, 88):
        view.update(
            vcpus=host.vcpus,
            vcpus_used=host.vcpus_used,
            memory_mb=host.memory_mb,
            memory_mb_used=host.memory_mb_used,
            free_ram_mb=host.memory_mb - host.memory_mb_used,
            local_gb=host.disk_gb,
            local_gb_used=host.disk_gb_used,
            free_disk_gb=host.disk_gb - host.disk_gb_used,
            current_workload=0,
            running_vms=len(host.servers),
            disk_available_least=host.disk_gb - host.disk_gb_used,
            cpu_info="{}",
        )
    return view


async def list_hypervisors(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    cloud = _cloud(request)
    pattern = request.query.get("hypervisor_hostname_pattern")
    hosts: Iterable[sim_cloud.Host] = cloud.hosts.values()
    if pattern is not None:  # Nova matches a substring (SQL LIKE %pattern%)
        hosts = [h for h in hosts if pattern in h.name]
    now = cloud.clock()
    if request.path.endswith("/detail"):
        views = [_hypervisor_view(cloud, h, ctx, now) for h in hosts]
    else:
        views = [
            {"id": h.hypervisor_id, "hypervisor_hostname": h.name, "status": h.status}
            for h in hosts
        ]
    if pattern is not None and not views:
        raise sim_cloud.ApiError(404, f"Hypervisor matching {pattern} could not be found.")
    return web.json_response({"hypervisors": views})


# --- server groups ---------------------------------------------------------------------------


def _group_view(group: sim_cloud.ServerGroup, ctx: sim_cloud.Context) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": group.id,
        "name": group.name,
        "members": list(group.members),
        "project_id": group.project_id,
        "user_id": group.project_id,
    }
    if ctx.microversion >= (2, 64):
        view.update(policy=group.policy, rules={})
    else:
        view.update(policies=[group.policy], metadata={})
    return view


async def list_server_groups(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    every = ctx.is_admin and _truthy(request.query.get("all_projects", "false"))
    groups = [
        g for g in _cloud(request).server_groups.values() if every or g.project_id == ctx.project_id
    ]
    return web.json_response({"server_groups": [_group_view(g, ctx) for g in groups]})


async def create_server_group(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    spec = (await _body(request)).get("server_group") or {}
    policy = (
        spec.get("policy")
        if ctx.microversion >= (2, 64)
        else next(iter(spec.get("policies") or []), None)
    )
    group = _cloud(request).create_server_group(
        str(spec.get("name", "")), str(policy), ctx.project_id
    )
    return web.json_response({"server_group": _group_view(group, ctx)})


async def get_server_group(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    group = _cloud(request).server_group(request.match_info["id"], ctx)
    return web.json_response({"server_group": _group_view(group, ctx)})


async def delete_server_group(request: web.Request) -> web.Response:
    cloud = _cloud(request)
    group = cloud.server_group(request.match_info["id"], _ctx(request))
    del cloud.server_groups[group.id]
    return web.Response(status=204)


def add_routes(app: web.Application, classify: Callable[[str, web.AbstractRoute], None]) -> None:
    """Register the Nova routes; `classify` tags each with its fault-injection class."""
    table: list[tuple[str, str, Any, str]] = [
        ("GET", "/os-services", list_services, "services"),
        ("PUT", "/os-services/{id}", update_service, "services"),
        ("GET", "/servers/detail", list_servers, "servers"),
        ("GET", "/servers", list_servers, "servers"),
        ("POST", "/servers", create_server, "servers"),
        ("GET", "/servers/{id}", get_server, "servers"),
        ("DELETE", "/servers/{id}", delete_server, "servers"),
        ("POST", "/servers/{id}/action", server_action, "actions"),
        ("GET", "/flavors/detail", list_flavors, "flavors"),
        ("GET", "/flavors", list_flavors, "flavors"),
        ("GET", "/flavors/{id}", get_flavor, "flavors"),
        ("GET", "/os-aggregates", list_aggregates, "aggregates"),
        ("POST", "/os-aggregates", create_aggregate, "aggregates"),
        ("GET", "/os-aggregates/{id}", get_aggregate, "aggregates"),
        ("DELETE", "/os-aggregates/{id}", delete_aggregate, "aggregates"),
        ("POST", "/os-aggregates/{id}/action", aggregate_action, "aggregates"),
        ("GET", "/os-migrations", list_migrations, "migrations"),
        ("GET", "/os-hypervisors/detail", list_hypervisors, "hypervisors"),
        ("GET", "/os-hypervisors", list_hypervisors, "hypervisors"),
        ("GET", "/os-server-groups", list_server_groups, "server-groups"),
        ("POST", "/os-server-groups", create_server_group, "server-groups"),
        ("GET", "/os-server-groups/{id}", get_server_group, "server-groups"),
        ("DELETE", "/os-server-groups/{id}", delete_server_group, "server-groups"),
    ]
    for method, path, handler, route_class in table:
        classify(route_class, app.router.add_route(method, PREFIX + path, handler))

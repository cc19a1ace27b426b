"""Hosts: Masakari's /segments/{uuid}/hosts routes."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from aiohttp import web

from controller.api import listing, validation, views
from controller.api.contents import Contents
from controller.api.context import (
    CONTEXT,
    answer,
    authorize,
    read_body,
    segment_id,
    spec_fields,
    store_of,
)
from controller.api.faults import ApiFault, bad_request, conflict, not_found
from controller.api.ids import object_id, object_uuid
from controller.drivers.kube import PLURAL
from controller.recovery.nova import NovaError
from controller.resources.common import API_VERSION, HOSTNAME_PATTERN

log = logging.getLogger("masakari.api")


HOST_SORT_KEYS = (
    "created_at", "type", "name", "updated_at", "uuid", "reserved", "on_maintenance",
)  # fmt: skip


class _Rendered(Mapping[int, dict[str, Any]]):
    """Objects by Masakari id, rendered only when looked up (a list's marker)."""

    def __init__(self, bodies: list[dict[str, Any]], render: Callable[[Any], Any]) -> None:
        self.bodies, self.render = bodies, render

    def __getitem__(self, wanted: int) -> dict[str, Any]:
        for body in self.bodies:
            if object_id(body) == wanted:
                rendered: dict[str, Any] = self.render(body)
                return rendered
        raise KeyError(wanted)

    def __iter__(self) -> Iterator[int]:
        return (number for body in self.bodies if (number := object_id(body)) is not None)

    def __len__(self) -> int:
        return len(self.bodies)


def _host_in(view: Contents, segment: dict[str, Any], host_uuid: str) -> dict[str, Any]:
    host = view.host_by_uuid(host_uuid)
    if host is not None and host["spec"]["segment"] == segment["metadata"]["name"]:
        return host
    raise not_found(
        f"Host {host_uuid[:64]} could not be found under failover segment {object_uuid(segment)}."
    )


async def list_hosts(request: web.Request) -> web.Response:
    authorize(request, "os_masakari_api:os-hosts:index")
    query = request.query
    wanted = {
        "type": query.get("type"),
        "reserved": listing.filter_bool(query, "reserved"),
        "on_maintenance": listing.filter_bool(query, "on_maintenance"),
    }
    view = await store_of(request).view()
    segment = view.segment_by_uuid(segment_id(request))
    in_segment = [views.host(h, segment, view.events_of_record(h)) for h in view.hosts_of(segment)]
    # Masakari's marker may be any host, of this segment or not.
    every_host = _Rendered(
        view.hosts(), lambda h: views.host(h, view.segment_of(h), view.events_of_record(h))
    )
    limit, marker = listing.limit_and_marker(query)
    sort = listing.sort_params(query, HOST_SORT_KEYS)
    kept = [h for h in in_segment if all(h[k] == v for k, v in wanted.items() if v is not None)]
    return answer("hosts", listing.page(kept, every_host, sort, limit, marker))


async def show_host(request: web.Request) -> web.Response:
    authorize(request, "os_masakari_api:os-hosts:detail")
    view = await store_of(request).view()
    segment = view.segment_by_uuid(segment_id(request))
    host = _host_in(view, segment, request.match_info["host_id"])
    return answer("host", views.host(host, segment, view.events_of_record(host)))


def node_names(object_name: str, name: str) -> dict[str, Any]:
    """spec.novaHost/pacemakerNode when the Masakari name is not the object's name."""
    if name == object_name or not re.match(HOSTNAME_PATTERN, name):
        return {"novaHost": None, "pacemakerNode": None}
    return {"novaHost": name, "pacemakerNode": name}


async def _check_compute(request: web.Request, name: str) -> None:
    try:
        found = await request.app[CONTEXT].compute.exists(name)
    except NovaError as error:
        log.warning("checking the compute service of a new host failed: %s", error)
        raise ApiFault(503, "Nova is not reachable at the moment; try again.") from None
    if not found:
        raise bad_request(f"Compute service of host {name} could not be found.")


async def create_host(request: web.Request) -> web.Response:
    authorize(request, "os_masakari_api:os-hosts:create")
    fields = validation.HOST_CREATE(await read_body(request))
    store = store_of(request)
    view = await store.view()
    segment = view.segment_by_uuid(segment_id(request))
    name = fields["name"]
    # Host names are unique across segments in Masakari.
    if view.host_by_name(name) is not None:
        raise conflict(f"Host with name {name} already exists.")
    await _check_compute(request, name)
    object_name = views.object_name(name)
    spec = {
        "segment": segment["metadata"]["name"],
        **spec_fields(fields),
        **{k: v for k, v in node_names(object_name, name).items() if v is not None},
    }
    body = {"apiVersion": API_VERSION, "kind": "Host", "spec": spec}
    created = await store.create(PLURAL.hosts, object_name, name, body)
    return answer("host", views.host(created, segment), 201)


async def update_host(request: web.Request) -> web.Response:
    authorize(request, "os_masakari_api:os-hosts:update")
    fields = validation.HOST_UPDATE(await read_body(request))
    store = store_of(request)
    view = await store.view()
    segment = view.segment_by_uuid(segment_id(request))
    host = _host_in(view, segment, request.match_info["host_id"])
    patch: dict[str, Any] = {"spec": spec_fields(fields)}
    name = fields.get("name")
    if name is not None and name != views.display_name(host):
        if view.host_by_name(name) is not None:
            raise conflict(f"Host with name {name} already exists.")
        await _check_compute(request, name)
        patch["spec"].update(node_names(host["metadata"]["name"], name))
        patch["metadata"] = {"annotations": {views.NAME: name}}
    if view.under_recovery(segment):
        raise conflict(
            f"Host {object_uuid(host)} can't be updated as it is in-use to process notifications."
        )
    updated = await store.patch(PLURAL.hosts, host, patch)
    return answer("host", views.host(updated, segment, view.events_of_record(updated)))


async def delete_host(request: web.Request) -> web.Response:
    authorize(request, "os_masakari_api:os-hosts:delete")
    store = store_of(request)
    view = await store.view()
    segment = view.segment_by_uuid(segment_id(request))
    host = _host_in(view, segment, request.match_info["host_id"])
    if view.under_recovery(segment):
        raise conflict(
            f"Host {object_uuid(host)} can't be deleted as it is in-use to process notifications."
        )
    await store.delete(PLURAL.hosts, host)
    return web.Response(status=204)

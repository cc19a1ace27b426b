"""Failover segments: Masakari's /segments routes."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from controller.api import listing, validation, views
from controller.api.contents import Contents
from controller.api.context import (
    ENABLED_VERSION,
    VERSION,
    answer,
    authorize,
    read_body,
    segment_id,
    spec_fields,
    store_of,
)
from controller.api.faults import conflict
from controller.api.ids import object_uuid
from controller.drivers.kube import PLURAL
from controller.resources.common import API_VERSION

log = logging.getLogger("masakari.api")


SEGMENT_SORT_KEYS = (
    "created_at", "description", "name", "updated_at", "uuid", "recovery_method", "service_type",
)  # fmt: skip


async def list_segments(request: web.Request) -> web.Response:
    authorize(request, "os_masakari_api:segments:index")
    query = request.query
    wanted = {
        "recovery_method": query.get("recovery_method"),
        "service_type": query.get("service_type"),
        "enabled": listing.filter_bool(query, "enabled"),
    }
    view = await store_of(request).view()
    everything = [views.segment(b) for b in view.segments()]
    return answer("segments", listing.answer(everything, query, SEGMENT_SORT_KEYS, wanted))


async def show_segment(request: web.Request) -> web.Response:
    authorize(request, "os_masakari_api:segments:detail")
    view = await store_of(request).view()
    return answer("segment", views.segment(view.segment_by_uuid(segment_id(request))))


async def _segment_fields(
    request: web.Request, before: validation.Schema, since: validation.Schema
) -> dict[str, Any]:
    """The checked segment body; `enabled` is part of it from microversion 1.2 on."""
    schema = since if request[VERSION] >= ENABLED_VERSION else before
    return schema(await read_body(request))


def _refuse_taken_name(view: Contents, name: str, keep: Any = None) -> None:
    if any(views.display_name(s) == name and s is not keep for s in view.segments()):
        raise conflict(f"Failover segment with name {name} already exists.")


async def create_segment(request: web.Request) -> web.Response:
    authorize(request, "os_masakari_api:segments:create")
    fields = await _segment_fields(request, validation.SEGMENT_CREATE, validation.SEGMENT_CREATE_12)
    store = store_of(request)
    view = await store.view()
    _refuse_taken_name(view, fields["name"])
    spec = {key: value for key, value in spec_fields(fields).items() if value is not None}
    body = {"apiVersion": API_VERSION, "kind": "FailoverSegment", "spec": spec}
    created = await store.create(
        PLURAL.segments, views.object_name(fields["name"]), fields["name"], body
    )
    return answer("segment", views.segment(created), 201)


async def update_segment(request: web.Request) -> web.Response:
    authorize(request, "os_masakari_api:segments:update")
    fields = await _segment_fields(request, validation.SEGMENT_UPDATE, validation.SEGMENT_UPDATE_12)
    store = store_of(request)
    view = await store.view()
    segment = view.segment_by_uuid(segment_id(request))
    name = fields.get("name")
    if name is not None:
        _refuse_taken_name(view, name, segment)
    if view.under_recovery(segment):
        raise conflict(
            f"Failover segment {object_uuid(segment)} can't be updated as it is in-use to "
            "process notifications."
        )
    patch: dict[str, Any] = {"spec": spec_fields(fields)}
    if name is not None:
        patch["metadata"] = {"annotations": {views.NAME: name}}
    updated = await store.patch(PLURAL.segments, segment, patch)
    return answer("segment", views.segment(updated))


async def delete_segment(request: web.Request) -> web.Response:
    authorize(request, "os_masakari_api:segments:delete")
    store = store_of(request)
    view = await store.view()
    segment = view.segment_by_uuid(segment_id(request))
    if view.under_recovery(segment):
        raise conflict(
            f"Failover segment {object_uuid(segment)} can't be deleted as it is in-use to "
            "process notifications."
        )
    # Masakari deletes the segment's hosts with it.
    for host in view.hosts_of(segment):
        await store.delete(PLURAL.hosts, host)
    await store.delete(PLURAL.segments, segment)
    return web.Response(status=204)

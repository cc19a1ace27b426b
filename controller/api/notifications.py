"""Notifications (FailureEvents) and their vmoves: Masakari's /notifications routes."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from controller.api import listing, validation, views
from controller.api.contents import Contents, Row
from controller.api.context import (
    CALLER,
    DETAILS_VERSION,
    VERSION,
    answer,
    authorize,
    read_body,
    store_of,
)
from controller.api.faults import bad_request, conflict, not_found
from controller.api.ids import object_uuid
from controller.drivers.kube import PLURAL
from controller.monitors.reporting import LABEL_VALUE
from controller.recovery.gates import Report, duplicate_of
from controller.resources.common import API_VERSION
from controller.resources.failure_event import FailureEventSpec

log = logging.getLogger("masakari.api")


NOTIFICATION_SORT_KEYS = (
    "created_at", "type", "generated_time", "updated_at", "payload", "status",
    "source_host_uuid",
)  # fmt: skip
VMOVE_SORT_KEYS = ("created_at", "updated_at", "uuid", "start_time", "type", "status")


def _event_name(host_object: str, kind: str, event_uuid: str) -> str:
    suffix = f"-{kind.lower().replace('_', '-')}-{event_uuid[:8]}"
    return host_object[: 253 - len(suffix)].rstrip("-.") + suffix


def _report(request: web.Request, fields: dict[str, Any], host_object: str) -> FailureEventSpec:
    payload = validation.payload(fields["type"], fields["payload"])
    try:
        return FailureEventSpec(
            type=fields["type"],
            host=host_object,
            generated_time=fields["generated_time"],
            payload=payload,
            source=f"masakari-api/{request[CALLER].user}"[:253],
        )
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise bad_request(f"Invalid input for field/attribute {where}: {first['msg']}") from None


def _is_duplicate(view: Contents, spec: FailureEventSpec, host: dict[str, Any]) -> bool:
    """Masakari's duplicate rule over the events of this host record (an index, not the
    namespace). A courtesy to the reporter: the operator's gates decide again on what is
    stored."""
    others = [
        Report(
            e["metadata"]["name"],
            FailureEventSpec.model_validate(e["spec"]),
            datetime.fromisoformat(e["metadata"]["creationTimestamp"]),
            (e.get("status") or {}).get("phase"),
        )
        for e in view.events_of_record(host)
    ]
    return duplicate_of(Report("", spec, datetime.now(UTC)), others) is not None


async def create_notification(request: web.Request) -> web.Response:
    authorize(request, "os_masakari_api:notifications:create")
    fields = validation.NOTIFICATION_CREATE(await read_body(request))
    validation.payload(fields["type"], fields["payload"])
    store = store_of(request)
    view = await store.view()
    host = view.host_by_name(fields["hostname"])
    if host is None:
        raise bad_request(f"Host with name {fields['hostname']} could not be found.")
    if host["spec"].get("onMaintenance"):
        raise conflict(
            f"Notification received from host {fields['hostname']} of type "
            f"'{fields['type']}' is ignored as the host is already under maintenance."
        )
    host_object = host["metadata"]["name"]
    spec = _report(request, fields, host_object)
    async with store.reporting(host_object):
        if _is_duplicate(view, spec, host):
            raise conflict(
                f"Notification received from host {fields['hostname']} of type "
                f"{fields['type']} is a duplicate of one received within the last 180 seconds."
            )
        labels = {
            "masakari.dev/host": host_object,
            "masakari.dev/type": spec.type,
            "masakari.dev/segment": host["spec"]["segment"],
        }
        body = {
            "apiVersion": API_VERSION,
            "kind": "FailureEvent",
            "metadata": {"labels": {k: v for k, v in labels.items() if LABEL_VALUE.match(v)}},
            "spec": spec.to_wire(),
        }
        created = await store.create(
            PLURAL.failure_events,
            _event_name(host_object, spec.type, str(uuid.uuid4())),
            fields["hostname"],
            body,
            **{views.SOURCE_HOST_UUID: object_uuid(host)},
        )
    return answer("notification", views.notification(created, host, view.segment_of(host)), 202)


def _notification_view(view: Contents, body: dict[str, Any], *, details: bool = False) -> Any:
    host = view.host(body["spec"]["host"])
    return views.notification(body, host, view.segment_of(host), details=details)


async def list_notifications(request: web.Request) -> web.Response:
    authorize(request, "os_masakari_api:notifications:index")
    query = request.query
    since = None
    if "generated-since" in query:
        try:
            since = validation.date_time(query["generated-since"])
        except validation.Refused:
            raise bad_request(
                f"Invalid filter generated-since: {query['generated-since'][:40]!r} is not "
                "an ISO 8601 time."
            ) from None
    limit, marker = listing.limit_and_marker(query)
    sort = listing.sort_params(query, NOTIFICATION_SORT_KEYS)
    wanted = {key: query[key] for key in ("status", "type", "source_host_uuid") if key in query}

    def keep(row: Row) -> bool:
        if since is not None and row.generated < since:
            return False
        return all(row.values[key] == value for key, value in wanted.items())

    view = await store_of(request).view()
    page = view.notifications(sort, limit, marker, keep)
    return answer("notifications", [_notification_view(view, body) for body in page])


async def _event(view: Contents, notification_uuid: str) -> dict[str, Any]:
    body = view.event_by_uuid(notification_uuid)
    if body is None:
        raise not_found(f"No notification with id {notification_uuid[:64]}.")
    return body


async def show_notification(request: web.Request) -> web.Response:
    authorize(request, "os_masakari_api:notifications:detail")
    view = await store_of(request).view()
    body = await _event(view, request.match_info["notification_id"])
    details = request[VERSION] >= DETAILS_VERSION
    return answer("notification", _notification_view(view, body, details=details))


async def _vmoves_of(request: web.Request) -> list[dict[str, Any]]:
    body = await _event(await store_of(request).view(), request.match_info["notification_id"])
    if body["spec"]["type"] != "COMPUTE_HOST":
        raise bad_request(
            f"Notification {object_uuid(body)} has no vmoves: it is of type "
            f"{body['spec']['type']}, and only COMPUTE_HOST notifications move instances."
        )
    return views.vmoves(body)


async def list_vmoves(request: web.Request) -> web.Response:
    authorize(request, "os_masakari_api:vmoves:index")
    query = request.query
    wanted = {"status": query.get("status"), "type": query.get("type")}
    everything = await _vmoves_of(request)
    return answer("vmoves", listing.answer(everything, query, VMOVE_SORT_KEYS, wanted))


async def show_vmove(request: web.Request) -> web.Response:
    authorize(request, "os_masakari_api:vmoves:detail")
    wanted = request.match_info["vmove_id"]
    for move in await _vmoves_of(request):
        if move["uuid"] == wanted:
            return answer("vmove", move)
    raise not_found(f"No vmove with id {wanted[:64]}.")

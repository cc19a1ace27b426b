"""The HTTP side: routes, the request pipeline (microversion, token, fault bodies), handlers.

Routes exist twice, `/v1/<resource>` and `/v1/{project_id}/<resource>`, as in Masakari, whose
project id in the path scopes nothing: every resource is admin-only and global to the cloud
(here: to the namespace).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from aiohttp import web
from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from controller.api import listing, validation, versions, views
from controller.api.contents import Contents, Row
from controller.api.faults import INTERNAL_ERROR, ApiFault, bad_request, conflict, not_found
from controller.api.ids import object_id, object_uuid
from controller.api.store import Store
from controller.drivers.keystone import Caller, KeystoneUnavailable
from controller.drivers.kube import PLURAL
from controller.microversions import HEADER
from controller.monitors.reporting import LABEL_VALUE
from controller.recovery.gates import Report, duplicate_of
from controller.recovery.nova import NovaError
from controller.resources.common import API_VERSION, HOSTNAME_PATTERN
from controller.resources.failure_event import FailureEventSpec

log = logging.getLogger("masakari.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NO_AUTH = Caller("insecure-no-auth", None, frozenset({"admin"}))
_DETAILS_VERSION = (1, 1)
_ENABLED_VERSION = (1, 2)


class Tokens(Protocol):
    async def caller(self, token: str) -> Caller | None: ...


class ComputeHosts(Protocol):
    async def exists(self, name: str) -> bool: ...


@dataclass
class Context:
    store: Store
    tokens: Tokens | None  # None: --insecure-no-auth
    compute: ComputeHosts


CONTEXT = web.AppKey("context", Context)
VERSION: web.RequestKey[versions.Version] = web.RequestKey("version")
CALLER = web.RequestKey("caller", Caller)


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


def authorize(request: web.Request, rule: str) -> None:
    caller: Caller = request[CALLER]
    if not caller.is_admin:
        raise ApiFault(403, f"Policy doesn't allow {rule} to be performed.")


async def _body(request: web.Request) -> Any:
    try:
        return await request.json()
    except (ValueError, UnicodeDecodeError):
        raise bad_request("Malformed request body: it is not JSON.") from None


def _answer(key: str, value: Any, status: int = 200) -> web.Response:
    return web.json_response({key: value}, status=status, dumps=json.dumps)


def _base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _store(request: web.Request) -> Store:
    return request.app[CONTEXT].store


# --- versions ---------------------------------------------------------------------------------


async def get_versions(request: web.Request) -> web.Response:
    return web.json_response(versions.versions(_base_url(request)))


async def get_version_v1(request: web.Request) -> web.Response:
    return web.json_response(versions.version_v1(_base_url(request)))


async def healthcheck(request: web.Request) -> web.Response:
    return web.Response(text="OK")


async def readiness(request: web.Request) -> web.Response:
    """200 once every kind is read into memory; 503 before (reads still answered, slowly)."""
    state = _store(request).readiness()
    return web.json_response(state, status=200 if state["ready"] else 503)


# --- segments ---------------------------------------------------------------------------------

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
    view = await _store(request).view()
    everything = [views.segment(b) for b in view.segments()]
    return _answer("segments", listing.answer(everything, query, SEGMENT_SORT_KEYS, wanted))


async def show_segment(request: web.Request) -> web.Response:
    authorize(request, "os_masakari_api:segments:detail")
    view = await _store(request).view()
    return _answer("segment", views.segment(view.segment_by_uuid(_segment_id(request))))


async def _segment_fields(
    request: web.Request, before: validation.Schema, since: validation.Schema
) -> dict[str, Any]:
    """The checked segment body; `enabled` is part of it from microversion 1.2 on."""
    schema = since if request[VERSION] >= _ENABLED_VERSION else before
    return schema(await _body(request))


def _refuse_taken_name(view: Contents, name: str, keep: Any = None) -> None:
    if any(views.display_name(s) == name and s is not keep for s in view.segments()):
        raise conflict(f"Failover segment with name {name} already exists.")


def _segment_id(request: web.Request) -> str:
    return request.match_info["segment_id"]


def _spec(fields: dict[str, Any]) -> dict[str, Any]:
    """Masakari's body fields as the resource's spec fields (the name is the object's)."""
    return {to_camel(key): value for key, value in fields.items() if key != "name"}


async def create_segment(request: web.Request) -> web.Response:
    authorize(request, "os_masakari_api:segments:create")
    fields = await _segment_fields(request, validation.SEGMENT_CREATE, validation.SEGMENT_CREATE_12)
    store = _store(request)
    view = await store.view()
    _refuse_taken_name(view, fields["name"])
    spec = {key: value for key, value in _spec(fields).items() if value is not None}
    body = {"apiVersion": API_VERSION, "kind": "FailoverSegment", "spec": spec}
    created = await store.create(
        PLURAL.segments, views.object_name(fields["name"]), fields["name"], body
    )
    return _answer("segment", views.segment(created), 201)


async def update_segment(request: web.Request) -> web.Response:
    authorize(request, "os_masakari_api:segments:update")
    fields = await _segment_fields(request, validation.SEGMENT_UPDATE, validation.SEGMENT_UPDATE_12)
    store = _store(request)
    view = await store.view()
    segment = view.segment_by_uuid(_segment_id(request))
    name = fields.get("name")
    if name is not None:
        _refuse_taken_name(view, name, segment)
    if view.under_recovery(segment):
        raise conflict(
            f"Failover segment {object_uuid(segment)} can't be updated as it is in-use to "
            "process notifications."
        )
    patch: dict[str, Any] = {"spec": _spec(fields)}
    if name is not None:
        patch["metadata"] = {"annotations": {views.NAME: name}}
    updated = await store.patch(PLURAL.segments, segment, patch)
    return _answer("segment", views.segment(updated))


async def delete_segment(request: web.Request) -> web.Response:
    authorize(request, "os_masakari_api:segments:delete")
    store = _store(request)
    view = await store.view()
    segment = view.segment_by_uuid(_segment_id(request))
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


# --- hosts ------------------------------------------------------------------------------------

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
    view = await _store(request).view()
    segment = view.segment_by_uuid(_segment_id(request))
    in_segment = [views.host(h, segment) for h in view.hosts_of(segment)]
    # Masakari's marker may be any host, of this segment or not.
    every_host = _Rendered(view.hosts(), lambda h: views.host(h, view.segment_of(h)))
    limit, marker = listing.limit_and_marker(query)
    sort = listing.sort_params(query, HOST_SORT_KEYS)
    kept = [h for h in in_segment if all(h[k] == v for k, v in wanted.items() if v is not None)]
    return _answer("hosts", listing.page(kept, every_host, sort, limit, marker))


async def show_host(request: web.Request) -> web.Response:
    authorize(request, "os_masakari_api:os-hosts:detail")
    view = await _store(request).view()
    segment = view.segment_by_uuid(_segment_id(request))
    host = _host_in(view, segment, request.match_info["host_id"])
    return _answer("host", views.host(host, segment))


def _node_names(object_name: str, name: str) -> dict[str, Any]:
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
    fields = validation.HOST_CREATE(await _body(request))
    store = _store(request)
    view = await store.view()
    segment = view.segment_by_uuid(_segment_id(request))
    name = fields["name"]
    # Host names are unique across segments in Masakari.
    if view.host_by_name(name) is not None:
        raise conflict(f"Host with name {name} already exists.")
    await _check_compute(request, name)
    object_name = views.object_name(name)
    spec = {
        "segment": segment["metadata"]["name"],
        **_spec(fields),
        **{k: v for k, v in _node_names(object_name, name).items() if v is not None},
    }
    body = {"apiVersion": API_VERSION, "kind": "Host", "spec": spec}
    created = await store.create(PLURAL.hosts, object_name, name, body)
    return _answer("host", views.host(created, segment), 201)


async def update_host(request: web.Request) -> web.Response:
    authorize(request, "os_masakari_api:os-hosts:update")
    fields = validation.HOST_UPDATE(await _body(request))
    store = _store(request)
    view = await store.view()
    segment = view.segment_by_uuid(_segment_id(request))
    host = _host_in(view, segment, request.match_info["host_id"])
    patch: dict[str, Any] = {"spec": _spec(fields)}
    name = fields.get("name")
    if name is not None and name != views.display_name(host):
        if view.host_by_name(name) is not None:
            raise conflict(f"Host with name {name} already exists.")
        await _check_compute(request, name)
        patch["spec"].update(_node_names(host["metadata"]["name"], name))
        patch["metadata"] = {"annotations": {views.NAME: name}}
    if view.under_recovery(segment):
        raise conflict(
            f"Host {object_uuid(host)} can't be updated as it is in-use to process notifications."
        )
    updated = await store.patch(PLURAL.hosts, host, patch)
    return _answer("host", views.host(updated, segment))


async def delete_host(request: web.Request) -> web.Response:
    authorize(request, "os_masakari_api:os-hosts:delete")
    store = _store(request)
    view = await store.view()
    segment = view.segment_by_uuid(_segment_id(request))
    host = _host_in(view, segment, request.match_info["host_id"])
    if view.under_recovery(segment):
        raise conflict(
            f"Host {object_uuid(host)} can't be deleted as it is in-use to process notifications."
        )
    await store.delete(PLURAL.hosts, host)
    return web.Response(status=204)


# --- notifications ----------------------------------------------------------------------------

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


def _is_duplicate(view: Contents, spec: FailureEventSpec) -> bool:
    """Masakari's duplicate rule over the host's own events (an index, not the namespace).
    A courtesy to the reporter: the operator's gates decide again on what is stored."""
    others = [
        Report(
            e["metadata"]["name"],
            FailureEventSpec.model_validate(e["spec"]),
            datetime.fromisoformat(e["metadata"]["creationTimestamp"]),
            (e.get("status") or {}).get("phase"),
        )
        for e in view.events_of(spec.host)
    ]
    return duplicate_of(Report("", spec, datetime.now(UTC)), others) is not None


async def create_notification(request: web.Request) -> web.Response:
    authorize(request, "os_masakari_api:notifications:create")
    fields = validation.NOTIFICATION_CREATE(await _body(request))
    validation.payload(fields["type"], fields["payload"])
    store = _store(request)
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
        if _is_duplicate(view, spec):
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
    return _answer("notification", views.notification(created, host, view.segment_of(host)), 202)


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

    view = await _store(request).view()
    page = view.notifications(sort, limit, marker, keep)
    return _answer("notifications", [_notification_view(view, body) for body in page])


async def _event(view: Contents, notification_uuid: str) -> dict[str, Any]:
    body = view.event_by_uuid(notification_uuid)
    if body is None:
        raise not_found(f"No notification with id {notification_uuid[:64]}.")
    return body


async def show_notification(request: web.Request) -> web.Response:
    authorize(request, "os_masakari_api:notifications:detail")
    view = await _store(request).view()
    body = await _event(view, request.match_info["notification_id"])
    details = request[VERSION] >= _DETAILS_VERSION
    return _answer("notification", _notification_view(view, body, details=details))


async def _vmoves_of(request: web.Request) -> list[dict[str, Any]]:
    body = await _event(await _store(request).view(), request.match_info["notification_id"])
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
    return _answer("vmoves", listing.answer(everything, query, VMOVE_SORT_KEYS, wanted))


async def show_vmove(request: web.Request) -> web.Response:
    authorize(request, "os_masakari_api:vmoves:detail")
    wanted = request.match_info["vmove_id"]
    for move in await _vmoves_of(request):
        if move["uuid"] == wanted:
            return _answer("vmove", move)
    raise not_found(f"No vmove with id {wanted[:64]}.")


# Version documents are public (keystoneauth discovers versions before it has a token); so
# is the health check, as oslo.middleware's is.
PUBLIC: set[Handler] = {get_versions, get_version_v1, healthcheck, readiness}


# --- the application --------------------------------------------------------------------------


SEGMENT = "/segments/{segment_id}"
HOST = SEGMENT + "/hosts/{host_id}"
NOTIFICATION = "/notifications/{notification_id}"
ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/segments", list_segments),
    ("POST", "/segments", create_segment),
    ("GET", SEGMENT, show_segment),
    ("PUT", SEGMENT, update_segment),
    ("DELETE", SEGMENT, delete_segment),
    ("GET", SEGMENT + "/hosts", list_hosts),
    ("POST", SEGMENT + "/hosts", create_host),
    ("GET", HOST, show_host),
    ("PUT", HOST, update_host),
    ("DELETE", HOST, delete_host),
    ("GET", "/notifications", list_notifications),
    ("POST", "/notifications", create_notification),
    ("GET", NOTIFICATION, show_notification),
    ("GET", NOTIFICATION + "/vmoves", list_vmoves),
    ("GET", NOTIFICATION + "/vmoves/{vmove_id}", show_vmove),
]


def build_app(context: Context) -> web.Application:
    app = web.Application(middlewares=[pipeline], client_max_size=112 * 1024)
    app[CONTEXT] = context
    app.router.add_get("/", get_versions)
    app.router.add_get("/v1", get_version_v1)
    app.router.add_get("/v1/", get_version_v1)
    app.router.add_get("/healthcheck", healthcheck)
    app.router.add_get("/readyz", readiness)
    for prefix in ("/v1", r"/v1/{project_id:[0-9a-f\-]+}"):
        for method, path, handler in ROUTES:
            app.router.add_route(method, prefix + path, handler)
    return app

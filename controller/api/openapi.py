"""The OpenAPI 3.1 document of the API, served at `GET /openapi.json` (public, beside `/`).

Derived, not written twice: the paths and methods are read from the application's router (so
both `/v1/<resource>` and `/v1/{project_id}/<resource>` appear, as they are routed), the
request bodies from the checks that enforce them (validation.py), the sort keys from the
handlers' own lists, the microversion range from versions.py and the fault body from
faults.py. What is written here is what has no other source: each operation's words, success
code, refusals and response shape (views.py builds dicts, not schemas), and the links a client
follows (a segment, then a host in it, then a notification from that host), which the fuzz
tests walk too. A routed handler missing from OPERATIONS fails the document's build, so a new
route cannot go undocumented.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from controller.api import hosts, notifications, report, segments, validation, versions
from controller.api.faults import FAULT_NAMES
from controller.api.listing import MAX_LIMIT
from controller.microversions import HEADER

PROJECT_PREFIX = "/v1/{project_id}"


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": sorted(required),
    }


def _wrapped(key: str, schema: dict[str, Any]) -> dict[str, Any]:
    return _object({key: schema})


_STR, _INT, _BOOL = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
_ID = {"type": ["integer", "null"], "description": "Masakari's integer id: the list marker"}
_TIME = {"type": ["string", "null"], "description": "naive UTC, YYYY-MM-DDTHH:MM:SS.000000"}
_NULLABLE = {"type": ["string", "null"]}
_TIMES = {"created_at": _TIME, "updated_at": _TIME, "deleted_at": _TIME, "deleted": _BOOL}
SEGMENT = _object(
    {
        "id": _ID, "uuid": _STR, "name": _STR, "service_type": _STR, "enabled": _BOOL,
        "description": _NULLABLE, "recovery_method": _STR, **_TIMES,
    }
)  # fmt: skip
HOST = _object(
    {
        "id": _ID, "uuid": _STR, "name": _STR, "failover_segment_id": _NULLABLE,
        "failover_segment": {"anyOf": [SEGMENT, {"type": "null"}]}, "type": _STR,
        "reserved": _BOOL, "control_attributes": _STR, "on_maintenance": _BOOL, **_TIMES,
    }
)  # fmt: skip
NOTIFICATION = _object(
    {
        "id": _ID, "notification_uuid": _STR, "generated_time": _TIME,
        "source_host_uuid": _NULLABLE, "type": _STR, "payload": {"type": "object"},
        "status": _STR, "failover_segment_uuid": _NULLABLE, "message": {}, **_TIMES,
    },
    # A show at microversion 1.1 or later only.
    {"recovery_workflow_details": {"type": "array", "items": {"type": "object"}}},
)  # fmt: skip
VMOVE = _object(
    {
        "id": _INT, "uuid": _STR, "notification_uuid": _STR, "instance_uuid": _STR,
        "instance_name": _STR, "source_host": _NULLABLE, "dest_host": _NULLABLE,
        "start_time": _TIME, "end_time": _TIME, "type": _STR, "status": _STR,
        "message": _NULLABLE, **_TIMES,
    }
)  # fmt: skip
FAULT = {
    "description": "Masakari's fault body: one key, the fault's name.",
    "type": "object",
    "minProperties": 1,
    "maxProperties": 1,
    "propertyNames": {"enum": sorted({*FAULT_NAMES.values(), "masakariFault"})},
    "additionalProperties": _object({"code": _INT, "message": _STR}),
}


def _notification_body() -> dict[str, Any]:
    """One alternative per notification type, its payload checked by that type's rules."""
    schema = validation.NOTIFICATION_CREATE.body_schema()
    inner = schema["properties"]["notification"]
    inner["oneOf"] = [
        {"properties": {"type": {"const": kind}, "payload": rules.json_schema()}}
        for kind, rules in validation.PAYLOADS.items()
    ]
    return schema


# --- query parameters -------------------------------------------------------------------------


def _query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    parameter = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        parameter["description"] = description
    return parameter


_BOOLEAN_FILTER = {"enum": sorted(validation.TRUE_STRINGS | validation.FALSE_STRINGS)}


def _paging(sort_keys: Sequence[str]) -> list[dict[str, Any]]:
    return [
        _query("limit", {"type": "integer", "minimum": 0}, f"at most {MAX_LIMIT} (0: {MAX_LIMIT})"),
        _query("marker", _INT, "the integer id of the last item of the previous page"),
        {
            **_query("sort_key", {"type": "array", "items": {"enum": list(sort_keys)}}),
            "style": "form",
            "explode": True,
        },
        {
            **_query("sort_dir", {"type": "array", "items": {"enum": ["asc", "desc"]}}),
            "style": "form",
            "explode": True,
            "description": "one per sort_key at most; default desc",
        },
    ]


# --- operations -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """What the document says of one handler beyond its path and method."""

    id: str
    summary: str
    status: int
    response: dict[str, Any] | None  # None: no body (204), or not JSON
    refusals: tuple[int, ...] = ()
    body: dict[str, Any] | None = None
    query: list[dict[str, Any]] = field(default_factory=list)
    links: dict[str, dict[str, Any]] = field(default_factory=dict)


def _segment_body(since_12: validation.Schema) -> dict[str, Any]:
    """The body at microversion 1.2, which adds `enabled` (one document for every version)."""
    schema = since_12.body_schema()
    schema["properties"]["segment"]["properties"]["enabled"]["description"] = (
        "microversion 1.2 or later; refused as unexpected before"
    )
    return schema


_SEGMENT_ID = {"segment_id": "$response.body#/segment/uuid"}
_HOST_IDS = {
    "segment_id": "$response.body#/host/failover_segment_id",
    "host_id": "$response.body#/host/uuid",
}
_NOTIFICATION_ID = {"notification_id": "$response.body#/notification/notification_uuid"}


def _links(parameters: dict[str, str], *targets: str) -> dict[str, dict[str, Any]]:
    return {target: {"operationId": target, "parameters": parameters} for target in targets}


# Common to every authenticated operation: a malformed or unknown microversion (400, 406), no
# or a bad token (401), not admin (403), Keystone or Kubernetes unreachable (503).
_COMMON_REFUSALS = (400, 401, 403, 406, 503)
_VERSIONS = {"versions": {"type": "array", "items": {"type": "object"}}}

OPERATIONS: dict[Callable[..., Any], Operation] = {
    segments.list_segments: Operation(
        "listSegments", "List failover segments", 200,
        _wrapped("segments", {"type": "array", "items": SEGMENT}),
        query=[
            _query("recovery_method", _STR), _query("service_type", _STR),
            _query("enabled", _BOOLEAN_FILTER), *_paging(segments.SEGMENT_SORT_KEYS),
        ],
    ),
    segments.create_segment: Operation(
        "createSegment", "Create a failover segment", 201, _wrapped("segment", SEGMENT), (409,),
        body=_segment_body(validation.SEGMENT_CREATE_12),
        links={
            **_links(_SEGMENT_ID, "showSegment", "updateSegment", "deleteSegment", "listHosts"),
            "createHost": {"operationId": "createHost", "parameters": _SEGMENT_ID},
        },
    ),
    segments.show_segment: Operation(
        "showSegment", "Show a failover segment", 200, _wrapped("segment", SEGMENT), (404,)
    ),
    segments.update_segment: Operation(
        "updateSegment", "Update a failover segment", 200, _wrapped("segment", SEGMENT),
        (404, 409), body=_segment_body(validation.SEGMENT_UPDATE_12),
    ),
    segments.delete_segment: Operation(
        "deleteSegment", "Delete a failover segment and its hosts", 204, None, (404, 409)
    ),
    hosts.list_hosts: Operation(
        "listHosts", "List the hosts of a segment", 200,
        _wrapped("hosts", {"type": "array", "items": HOST}), (404,),
        query=[
            _query("type", _STR), _query("reserved", _BOOLEAN_FILTER),
            _query("on_maintenance", _BOOLEAN_FILTER), *_paging(hosts.HOST_SORT_KEYS),
        ],
    ),
    hosts.create_host: Operation(
        "createHost", "Add a host (a Nova compute service host) to a segment", 201,
        _wrapped("host", HOST), (404, 409), body=validation.HOST_CREATE.body_schema(),
        links={
            **_links(_HOST_IDS, "showHost", "updateHost", "deleteHost"),
            "createNotification": {
                "operationId": "createNotification",
                "requestBody": {"notification": {"hostname": "$response.body#/host/name"}},
            },
        },
    ),
    hosts.show_host: Operation("showHost", "Show a host", 200, _wrapped("host", HOST), (404,)),
    hosts.update_host: Operation(
        "updateHost", "Update a host", 200, _wrapped("host", HOST), (404, 409),
        body=validation.HOST_UPDATE.body_schema(),
    ),
    hosts.delete_host: Operation("deleteHost", "Delete a host", 204, None, (404, 409)),
    notifications.list_notifications: Operation(
        "listNotifications", "List notifications", 200,
        _wrapped("notifications", {"type": "array", "items": NOTIFICATION}),
        query=[
            _query("status", _STR), _query("type", _STR), _query("source_host_uuid", _STR),
            _query("generated-since", {"type": "string", "format": "date-time"}),
            *_paging(notifications.NOTIFICATION_SORT_KEYS),
        ],
    ),
    notifications.create_notification: Operation(
        "createNotification", "Report a failure of a host, an instance or a process", 202,
        _wrapped("notification", NOTIFICATION), (409,), body=_notification_body(),
        links=_links(_NOTIFICATION_ID, "showNotification", "listVmoves"),
    ),
    notifications.show_notification: Operation(
        "showNotification", "Show a notification (with its workflow from 1.1)", 200,
        _wrapped("notification", NOTIFICATION), (404,),
    ),
    notifications.list_vmoves: Operation(
        "listVmoves", "List the instance moves of a COMPUTE_HOST notification", 200,
        _wrapped("vmoves", {"type": "array", "items": VMOVE}), (404,),
        query=[
            _query("status", _STR), _query("type", _STR),
            *_paging(notifications.VMOVE_SORT_KEYS),
        ],
    ),
    notifications.show_vmove: Operation(
        "showVmove", "Show one instance move", 200, _wrapped("vmove", VMOVE), (404,)
    ),
    report.get_report: Operation(
        "availabilityReport", "Availability report (ours, not Masakari's): an HTML page or JSON",
        200, None,
        query=[
            _query("window", {"type": "string", "pattern": report.WINDOW.pattern}, "e.g. 30d"),
            _query("since", {"type": "string", "format": "date-time"}),
            _query("until", {"type": "string", "format": "date-time"}),
            _query("format", {"enum": ["html", "json"]}),
        ],
    ),
}  # fmt: skip


# The public documents, by path: their handlers live in app.py, which imports this module.
PUBLIC_OPERATIONS = {
    "/": Operation("listVersions", "The API versions", 200, _object(_VERSIONS)),
    "/v1": Operation(
        "showVersionV1", "Version 1 and its microversion range", 200,
        _wrapped("version", {"type": "object"}),
    ),
    "/v1/": Operation(
        "showVersionV1Slash", "Version 1 (the same document)", 200,
        _wrapped("version", {"type": "object"}),
    ),
    "/healthcheck": Operation("healthcheck", "Alive", 200, None),
    "/readyz": Operation(
        "readiness", "200 once every kind is read into memory, 503 before", 200,
        {"type": "object"}, (503,),
    ),
    "/openapi.json": Operation("openapi", "This document", 200, {"type": "object"}),
}  # fmt: skip


# --- the document -----------------------------------------------------------------------------

_FAULT_REF = {"$ref": "#/components/schemas/fault"}


def _responses(operation: Operation, refusals: set[int]) -> dict[str, Any]:
    success: dict[str, Any] = {"description": operation.summary}
    if operation.response is not None:
        success["content"] = {"application/json": {"schema": operation.response}}
    if operation.links:
        success["links"] = operation.links
    answers = {str(operation.status): success}
    for code in sorted(refusals):
        answers[str(code)] = {"$ref": f"#/components/responses/fault{code}"}
    return answers


def _path_parameters(path: str) -> list[dict[str, Any]]:
    parameters = []
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            project = {"type": "string", "pattern": r"^[0-9a-f\-]+$"}
            schema = project if name == "project_id" else _STR
            parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    return parameters


def _operation(path: str, operation: Operation, public: bool) -> dict[str, Any]:
    in_project = path.startswith(PROJECT_PREFIX)
    in_path = _path_parameters(path)
    refusals = {*operation.refusals, *(() if public else _COMMON_REFUSALS)}
    if in_path:
        refusals.add(404)  # a value the route's pattern refuses is no route at all
    if operation.body is not None:
        refusals.add(413)  # the application's client_max_size
    described: dict[str, Any] = {
        # Each resource is routed twice; the project id in the path scopes nothing.
        "operationId": operation.id + ("InProject" if in_project else ""),
        "summary": operation.summary,
        "parameters": [*in_path, *operation.query],
        "responses": _responses(operation, refusals),
    }
    if not public:
        described["parameters"].append({"$ref": "#/components/parameters/microversion"})
    else:
        described["security"] = []
    if operation.body is not None:
        described["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": operation.body}},
        }
    if in_project:
        # The links name the /v1 operations; a client follows them under either prefix.
        for answer in described["responses"].values():
            answer.pop("links", None)
    return described


def document(
    router: web.UrlDispatcher, public: Collection[Callable[..., Any]], base_url: str
) -> dict[str, Any]:
    """The OpenAPI document of every route `router` serves (HEAD, aiohttp's own, left out);
    the handlers in `public` need no token."""
    paths: dict[str, dict[str, Any]] = {}
    for route in router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        path = route.resource.canonical
        operation = OPERATIONS.get(route.handler) or PUBLIC_OPERATIONS[path]
        described = _operation(path, operation, route.handler in public)
        paths.setdefault(path, {})[route.method.lower()] = described
    low, high = versions.text(versions.MIN_VERSION), versions.text(versions.MAX_VERSION)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "masakari-operator: the Masakari-compatible API",
            "version": high,
            "description": (
                "OpenStack Masakari's v1 API (instance-ha) served from Kubernetes resources. "
                f"Microversions {low} to {high}: send `{HEADER}: {versions.SERVICE_TYPE} X.Y`; "
                f"none means {low}. Every refusal is a Masakari fault body."
            ),
        },
        "servers": [{"url": base_url}],
        "security": [{"token": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"}
            },
            "parameters": {
                "microversion": {
                    "name": HEADER,
                    "in": "header",
                    "required": False,
                    "schema": _STR,
                    "description": f"`{versions.SERVICE_TYPE} X.Y` ({low} to {high}) or "
                    f"`{versions.SERVICE_TYPE} latest`; other services' entries are ignored",
                }
            },
            "schemas": {"fault": FAULT},
            "responses": {
                f"fault{code}": {
                    "description": FAULT_NAMES.get(code, "masakariFault"),
                    "content": {"application/json": {"schema": _FAULT_REF}},
                }
                for code in sorted({*_COMMON_REFUSALS, *FAULT_NAMES})
            },
        },
    }

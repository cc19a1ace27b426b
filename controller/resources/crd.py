"""CustomResourceDefinitions generated from the resource models: the models are the one source."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from .cloud_binding import CloudBinding
from .common import API_VERSION, CATEGORY, GROUP, VERSION
from .failure_event import FailureEvent
from .host import Host
from .segment import FailoverSegment


@dataclass(frozen=True)
class Kind:
    """How one resource is presented by the API server."""

    kind: str
    plural: str
    singular: str
    short_names: list[str]
    model: type[BaseModel]
    description: str
    printer_columns: list[dict[str, Any]]
    selectable_fields: list[str] = field(default_factory=list)


_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

SEGMENT = Kind(
    kind="FailoverSegment",
    plural="failoversegments",
    singular="failoversegment",
    short_names=["fseg"],
    model=FailoverSegment,
    description="A failover boundary (shared storage, rack, power) whose hosts recover each "
    "other's instances, with its recovery policy.",
    printer_columns=[
        {"name": "Method", "type": "string", "jsonPath": ".spec.recoveryMethod"},
        {"name": "Enabled", "type": "boolean", "jsonPath": ".spec.enabled"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Hosts", "type": "integer", "jsonPath": ".status.hosts"},
        {"name": "Failed", "type": "integer", "jsonPath": ".status.failedHosts"},
        {
            "name": "Reserved",
            "type": "integer",
            "jsonPath": ".status.reservedHostsAvailable",
            "description": "Reserved hosts available to recoveries",
        },
        {"name": "Recovering", "type": "integer", "jsonPath": ".status.recoveriesInFlight"},
        {
            "name": "CanFailOver",
            "type": "boolean",
            "jsonPath": ".status.capacity.ready",
            "description": "Whether the last HA readiness check found room for the worst loss",
        },
        _AGE,
    ],
)

HOST = Kind(
    kind="Host",
    plural="hosts",
    singular="host",
    short_names=["mhost"],
    model=Host,
    description="One hypervisor: a nova-compute service host and a Pacemaker node.",
    printer_columns=[
        {"name": "Segment", "type": "string", "jsonPath": ".spec.segment"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Reserved", "type": "boolean", "jsonPath": ".spec.reserved"},
        {"name": "Maintenance", "type": "boolean", "jsonPath": ".spec.onMaintenance"},
        {"name": "Nova", "type": "string", "jsonPath": ".status.nova.state"},
        {"name": "Pacemaker", "type": "string", "jsonPath": ".status.pacemaker.state"},
        _AGE,
    ],
    selectable_fields=[".spec.segment"],
)

FAILURE_EVENT = Kind(
    kind="FailureEvent",
    plural="failureevents",
    singular="failureevent",
    short_names=["fev"],
    model=FailureEvent,
    description="One reported failure of a host, an instance or a process, and the recovery "
    "it caused (Masakari's notification).",
    printer_columns=[
        {"name": "Type", "type": "string", "jsonPath": ".spec.type"},
        {"name": "Host", "type": "string", "jsonPath": ".spec.host"},
        {"name": "Event", "type": "string", "jsonPath": ".spec.payload.event"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Reason", "type": "string", "jsonPath": ".status.reason"},
        {"name": "Generated", "type": "date", "jsonPath": ".spec.generatedTime", "priority": 1},
        _AGE,
    ],
    # .status.phase: a recovery's admission lists the open events, fresh from the API
    # server, without reading (and parsing) every ended one of the namespace; the instance:
    # an instance failure counts its instance's recent restarts the same way.
    selectable_fields=[".spec.host", ".spec.type", ".status.phase", ".spec.payload.instance_uuid"],
)


def _ready(field: str) -> str:
    return f'.status.conditions[?(@.type=="Ready")].{field}'


CLOUD_BINDING = Kind(
    kind="CloudBinding",
    plural="cloudbindings",
    singular="cloudbinding",
    short_names=["mcloud"],
    model=CloudBinding,
    description="Binds its namespace to one OpenStack cloud: the Secret holding the cloud's "
    "clouds.yaml and how its Pacemaker cluster is reached. A namespace without exactly one "
    "binding is never acted on.",
    printer_columns=[
        {"name": "Secret", "type": "string", "jsonPath": ".spec.secretName"},
        {"name": "Cloud", "type": "string", "jsonPath": ".spec.cloud"},
        {"name": "Ready", "type": "string", "jsonPath": _ready("status")},
        {"name": "Reason", "type": "string", "jsonPath": _ready("reason")},
        _AGE,
    ],
)

KINDS = (SEGMENT, HOST, FAILURE_EVENT, CLOUD_BINDING)

# Schema keywords the API server does not accept in a structural schema, or that say nothing.
# additionalProperties stays where it types a map's values (dict fields), not as a bool.
_DROPPED = {"title", "$defs"}


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """Turn a pydantic JSON schema into a structural OpenAPI v3 schema.

    Resolves $ref, folds Optional (anyOf with null) into the plain type, and drops
    keywords Kubernetes refuses, keeping descriptions, bounds, enums and CEL rules.
    """
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = copy.deepcopy(defs[node.pop("$ref").rsplit("/", 1)[-1]])
        target.update(node)  # the field's own description and defaults win over the type's
        node = target
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"union types cannot be expressed in a CRD schema: {options}")
        merged = dict(options[0])
        merged.update(node)
        node = _inline(merged, defs)
    if node.get("default", 0) is None:
        del node["default"]
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED or (key == "additionalProperties" and isinstance(value, bool)):
            continue
        if key == "properties":
            out[key] = {name: _inline(prop, defs) for name, prop in value.items()}
        else:
            out[key] = _inline(value, defs)
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    body: dict[str, Any] = _inline(raw, raw.get("$defs", {}))
    body["properties"] = {
        "apiVersion": {
            "type": "string",
            "description": f"Always {API_VERSION}.",
        },
        "kind": {"type": "string", "description": "The kind of the object."},
        # The API server owns metadata's schema and refuses anything but its type here.
        "metadata": {"type": "object"},
        **body["properties"],
    }
    return body


def definition(kind: Kind) -> dict[str, Any]:
    """The CustomResourceDefinition object of one kind."""
    schema = openapi_schema(kind.model)
    schema["description"] = kind.description
    version: dict[str, Any] = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": schema},
        "subresources": {"status": {}},
        "additionalPrinterColumns": kind.printer_columns,
    }
    if kind.selectable_fields:
        version["selectableFields"] = [{"jsonPath": path} for path in kind.selectable_fields]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{kind.plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "masakari-operator"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": kind.short_names,
                "categories": [CATEGORY],
            },
            "versions": [version],
        },
    }


def all_definitions() -> dict[str, dict[str, Any]]:
    """File name in crds/ → CRD object, for every kind."""
    return {f"{GROUP}_{kind.plural}.yaml": definition(kind) for kind in KINDS}

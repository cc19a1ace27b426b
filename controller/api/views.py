"""Custom resources rendered as Masakari's response objects."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from controller.api.ids import object_id, object_uuid
from controller.recovery.gates import ADMITTED
from controller.resources.common import OBJECT_NAME_PATTERN

NAME = "masakari.dev/name"
SOURCE_HOST_UUID = "masakari.dev/source-host-uuid"
_OBJECT_NAME = re.compile(OBJECT_NAME_PATTERN)
_NOT_NAME = re.compile(r"[^a-z0-9.-]+")
_VMOVE_NAMESPACE = uuid.UUID("3f1c2a55-8d0e-4c4b-9a8e-6b7f0c1d2e3f")
#: A vmove's integer id is its notification's id times this plus its position: room for
#: INSTANCES_LIMIT moves per notification.
VMOVES_PER_NOTIFICATION = 10000


def object_name(display: str) -> str:
    """The Kubernetes name of an object Masakari calls `display`: the same when Kubernetes
    accepts it, else a lowercase slug plus a digest of the exact name (stable, distinct)."""
    if len(display) <= 253 and _OBJECT_NAME.match(display):
        return display
    slug = _NOT_NAME.sub("-", display.lower()).strip("-.")[:40].strip("-.")
    digest = hashlib.sha256(display.encode()).hexdigest()[:10]
    return f"{slug}-{digest}" if slug else f"x-{digest}"


def timestamp(value: str | datetime | None) -> str | None:
    """Masakari's datetimes: naive UTC with the microseconds zeroed, as its DB stores them."""
    if value is None:
        return None
    moment = (
        datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    )
    if moment.tzinfo:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000000")


def _times(body: dict[str, Any]) -> dict[str, Any]:
    meta = body["metadata"]
    created = meta["creationTimestamp"]
    # Kubernetes keeps no "updated at"; the newest write of any field manager is the closest.
    writes = [entry["time"] for entry in meta.get("managedFields") or [] if entry.get("time")]
    updated = max(writes) if writes else None
    return {
        "created_at": timestamp(created),
        "updated_at": timestamp(updated) if updated and updated > created else None,
        "deleted_at": None,
        "deleted": False,
    }


def display_name(body: dict[str, Any]) -> str:
    annotations = body["metadata"].get("annotations") or {}
    if NAME in annotations:
        return str(annotations[NAME])
    nova_host = (body.get("spec") or {}).get("novaHost")
    return str(nova_host or body["metadata"]["name"])


def segment(body: dict[str, Any]) -> dict[str, Any]:
    spec = body["spec"]
    return {
        "id": object_id(body),
        "uuid": object_uuid(body),
        "name": display_name(body),
        "service_type": spec["serviceType"],
        "enabled": spec.get("enabled", True),
        "description": spec.get("description"),
        "recovery_method": spec["recoveryMethod"],
        **_times(body),
    }


# Masakari sets on_maintenance on a host whose failure it recovers, and clears reserved on the
# reserved host its recovery takes; the operator records both in status instead (it never
# writes spec), and Masakari's clients read them here as they would from Masakari.
FAILED_PHASES = ("Recovering", "Failed")


def _nova_compute_stopped(events: list[dict[str, Any]]) -> bool:
    """Masakari also puts a host on maintenance when told its nova-compute stopped; the
    operator only takes the compute service out. Shown as Masakari shows it while the latest
    nova-compute report of the host record that was acted on is STOPPED: a STARTED one acted on
    (the operator enables the service again) ends it."""
    acted = [
        event
        for event in events
        if event["spec"]["type"] == "PROCESS"
        and event["spec"]["payload"].get("process_name") == "nova-compute"
        and (event.get("status") or {}).get("phase") in ADMITTED
    ]
    if not acted:
        return False
    latest = max(
        acted,
        key=lambda e: (
            datetime.fromisoformat(e["spec"]["generatedTime"]),
            datetime.fromisoformat(e["metadata"]["creationTimestamp"]),
        ),
    )
    return bool(latest["spec"]["payload"]["event"] == "STOPPED")


def host(
    body: dict[str, Any],
    segment_body: dict[str, Any] | None,
    events: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Masakari's host; `events`: the host record's (Contents.events_of_record)."""
    spec, state = body["spec"], body.get("status") or {}
    return {
        "id": object_id(body),
        "uuid": object_uuid(body),
        "name": display_name(body),
        "failover_segment_id": object_uuid(segment_body) if segment_body else None,
        "failover_segment": segment(segment_body) if segment_body else None,
        "type": spec.get("type", "COMPUTE"),
        "reserved": spec.get("reserved", False) and state.get("reservation") != "InUse",
        "control_attributes": spec.get("controlAttributes", ""),
        "on_maintenance": spec.get("onMaintenance", False)
        or state.get("phase") in FAILED_PHASES
        or _nova_compute_stopped(events or []),
        **_times(body),
    }


def status(body: dict[str, Any]) -> str:
    phase = (body.get("status") or {}).get("phase")
    return str(phase).lower() if phase else "new"


def notification(
    body: dict[str, Any],
    host_body: dict[str, Any] | None,
    segment_body: dict[str, Any] | None,
    *,
    details: bool = False,
) -> dict[str, Any]:
    spec, state = body["spec"], body.get("status") or {}
    annotations = body["metadata"].get("annotations") or {}
    source_host = annotations.get(SOURCE_HOST_UUID) or (
        object_uuid(host_body) if host_body else None
    )
    times = _times(body)
    if state.get("endTime"):
        times["updated_at"] = timestamp(state["endTime"])
    view = {
        "id": object_id(body),
        "notification_uuid": object_uuid(body),
        "generated_time": timestamp(spec["generatedTime"]),
        "source_host_uuid": source_host,
        "type": spec["type"],
        "payload": spec["payload"],
        "status": status(body),
        "failover_segment_uuid": object_uuid(segment_body) if segment_body else None,
        "message": state.get("message"),
        **times,
    }
    if details:
        view["recovery_workflow_details"] = [
            {
                "name": step["name"],
                "state": step["state"],
                "progress": step.get("progress", 0),
                "progress_details": [
                    {
                        "timestamp": timestamp(detail["timestamp"]),
                        "message": detail["message"],
                        "progress": detail["progress"],
                    }
                    for detail in step.get("progressDetails") or []
                ],
            }
            for step in state.get("steps") or []
        ]
    return view


def vmoves(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The FailureEvent's per-instance moves; ids and uuids derived from the event's."""
    event_uuid = object_uuid(body)
    event_id = object_id(body) or 0
    created = timestamp(body["metadata"]["creationTimestamp"])
    moves = []
    for position, move in enumerate((body.get("status") or {}).get("instances") or []):
        moves.append(
            {
                "id": event_id * VMOVES_PER_NOTIFICATION + position,
                "uuid": str(uuid.uuid5(_VMOVE_NAMESPACE, f"{event_uuid}/{move['instanceUuid']}")),
                "notification_uuid": event_uuid,
                "instance_uuid": move["instanceUuid"],
                "instance_name": move.get("instanceName", ""),
                "source_host": move.get("sourceHost"),
                "dest_host": move.get("destinationHost"),
                "start_time": timestamp(move.get("startTime")),
                "end_time": timestamp(move.get("endTime")),
                "type": move.get("type", "evacuation"),
                "status": move["status"],
                "message": move.get("message"),
                "created_at": timestamp(move.get("startTime")) or created,
                "updated_at": timestamp(move.get("endTime")),
                "deleted_at": None,
                "deleted": False,
            }
        )
    return moves

"""Nova's server as recovery reads it (GET /servers/detail and /servers/{id} at 2.87).

The driver reads servers as raw JSON, not as openstacksdk's Resource objects: building a
Resource costs about 5.5 ms of CPU per server (0.55 s for a listing of 100 on the simulator,
on a 2-core machine), several times the request itself, and recovery lists every server of a
failed host before its first evacuation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.recovery.nova import Flavor, Server


def server_from_body(raw: Mapping[str, Any]) -> Server:
    """A server from one item of Nova's JSON. From 2.47 the flavor is embedded (its name as
    `original_name`); the admin-only `OS-EXT-SRV-ATTR:host` is the compute service host."""
    flavor = raw.get("flavor") or {}
    fault = raw.get("fault")
    image = raw.get("image")
    return Server(
        id=raw["id"],
        name=raw.get("name", ""),
        status=raw.get("status", ""),
        vm_state=raw.get("OS-EXT-STS:vm_state", ""),
        task_state=raw.get("OS-EXT-STS:task_state"),
        power_state=raw.get("OS-EXT-STS:power_state"),
        host=raw.get("OS-EXT-SRV-ATTR:host"),
        locked=bool(raw.get("locked")),
        flavor=Flavor(
            name=flavor.get("original_name") or flavor.get("name") or "",
            vcpus=int(flavor.get("vcpus") or 0),
            ram_mb=int(flavor.get("ram") or 0),
            disk_gb=int(flavor.get("disk") or 0),
        ),
        metadata=dict(raw.get("metadata") or {}),
        project_id=raw.get("tenant_id"),
        # Only a server in ERROR (or DELETED) shows a fault.
        fault=str(fault.get("message")) if isinstance(fault, Mapping) and fault else None,
        # Nova shows "" (no image) for a server booted from a volume.
        image_id=(image.get("id") or None) if isinstance(image, Mapping) else None,
    )

"""Nova's server as recovery reads it (GET /servers/detail and /servers/{id} at 2.87).

The driver reads servers as raw JSON, not as openstacksdk's Resource objects: building a
Resource costs about 5.5 ms of CPU per server (0.55 s for a listing of 100 on the simulator,
on a 2-core machine), several times the request itself, and recovery lists every server of a
failed host before its first evacuation.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, TypeVar

from controller.recovery.nova import Flavor, Server


def server_from_body(raw: Mapping[str, Any]) -> Server:
    """A server from one item of Nova's JSON. From 2.47 the flavor is embedded (its name as
    `original_name`); the admin-only `OS-EXT-SRV-ATTR:host` is the compute service host.

    Held small: the capacity checks keep a listing of every server of the cloud, 50,000 at the
    scale benchmark's size (docs/scale.md), where one Flavor per server, the states' and hosts'
    strings repeated and an empty dict each were about 1 KB a server. The repeated values are
    shared (flavors, states, hosts, projects, images); ids and names are the server's own."""
    flavor = raw.get("flavor") or {}
    fault = raw.get("fault")
    image = raw.get("image")
    image_id = (image.get("id") or None) if isinstance(image, Mapping) else None
    metadata = raw.get("metadata")
    return Server(
        id=raw["id"],
        name=raw.get("name", ""),
        status=_shared(raw.get("status", "")),
        vm_state=_shared(raw.get("OS-EXT-STS:vm_state", "")),
        task_state=_shared(raw.get("OS-EXT-STS:task_state")),
        power_state=raw.get("OS-EXT-STS:power_state"),
        host=_shared(raw.get("OS-EXT-SRV-ATTR:host")),
        locked=bool(raw.get("locked")),
        flavor=_flavor(
            flavor.get("original_name") or flavor.get("name") or "",
            int(flavor.get("vcpus") or 0),
            int(flavor.get("ram") or 0),
            int(flavor.get("disk") or 0),
        ),
        metadata=dict(metadata) if metadata else _NO_METADATA,
        project_id=_shared(raw.get("tenant_id")),
        # Only a server in ERROR (or DELETED) shows a fault.
        fault=str(fault.get("message")) if isinstance(fault, Mapping) and fault else None,
        # Nova shows "" (no image) for a server booted from a volume.
        image_id=_shared(image_id),
    )


_NO_METADATA: Mapping[str, str] = MappingProxyType({})


S = TypeVar("S", str, str | None)


def _shared(value: S) -> S:
    return sys.intern(value) if type(value) is str else value


@functools.lru_cache(maxsize=1024)  # a cloud's flavors: a few dozen, a bound all the same
def _flavor(name: str, vcpus: int, ram_mb: int, disk_gb: int) -> Flavor:
    return Flavor(name, vcpus, ram_mb, disk_gb)

"""Nova's vocabulary as the recovery sees it: services, servers, migrations, aggregates,
capacity, and the errors of its calls. No OpenStack library in sight; the port itself, `Nova`,
is in controller.recovery.ports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


class NovaError(Exception):
    """A Nova call failed. The message never carries credentials or tokens."""


class NotFound(NovaError):
    """The service, server or aggregate does not exist."""


class Conflict(NovaError):
    """Nova refused the action in the object's current state (HTTP 409), e.g. evacuating a
    server whose host is still up, or acting on a locked server."""


class NoValidHost(NovaError):
    """The scheduler found no host for the server."""


class Unavailable(NovaError):
    """Nova could not be reached or kept failing (5xx, timeouts) after the retries."""


@dataclass(frozen=True)
class ComputeService:
    """A nova-compute service, as GET /os-services reports it."""

    id: str
    host: str
    state: str  # "up" or "down"
    status: str  # "enabled" or "disabled"
    forced_down: bool
    disabled_reason: str | None = None
    updated_at: datetime | None = None
    zone: str | None = None

    @property
    def is_up(self) -> bool:
        return self.state == "up"

    @property
    def is_enabled(self) -> bool:
        return self.status == "enabled"


@dataclass(frozen=True, slots=True)
class Flavor:
    name: str
    vcpus: int
    ram_mb: int
    disk_gb: int


@dataclass(frozen=True, slots=True)
class Server:
    """A server with the attributes evacuation decisions depend on. Slotted: the capacity
    checks hold every server of the cloud (50,000 at the scale benchmark's size), each one an
    object for the collector's full passes to walk, and without slots its dict another."""

    id: str
    name: str
    status: str  # ACTIVE, SHUTOFF, ERROR, REBUILD, ...
    vm_state: str  # active, stopped, error, resized, paused, rescued, ...
    task_state: str | None
    power_state: int | None
    host: str | None  # the compute service host (OS-EXT-SRV-ATTR:host)
    locked: bool
    flavor: Flavor
    metadata: Mapping[str, str] = field(default_factory=dict)
    project_id: str | None = None
    # Nova's fault message of a server in ERROR, e.g. "No valid host was found..." after an
    # evacuation the scheduler could not place (Nova accepts it, then fails it).
    fault: str | None = None
    # The Glance image it was booted from; None when booted from a volume (Nova shows none).
    image_id: str | None = None


@dataclass(frozen=True)
class Image:
    """A Glance image as selection and priority rules read it: its own properties (Glance's
    base attributes, such as name and status, left out) and its tags."""

    id: str
    properties: Mapping[str, str] = field(default_factory=dict)
    tags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Migration:
    """A migration record (GET /os-migrations), e.g. an evacuation and its status."""

    id: str
    server_id: str
    source_host: str | None
    dest_host: str | None
    status: str  # accepted, pre-migrating, done, completed, failed, error, ...
    migration_type: str  # evacuation, migration, live-migration, resize
    created_at: datetime | None = None


@dataclass(frozen=True)
class Aggregate:
    id: str
    name: str
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class HostCapacity:
    """Total and used resources of one hypervisor."""

    host: str
    vcpus: int
    vcpus_used: int
    memory_mb: int
    memory_mb_used: int

    @property
    def vcpus_free(self) -> int:
        return self.vcpus - self.vcpus_used

    @property
    def memory_mb_free(self) -> int:
        return self.memory_mb - self.memory_mb_used


@dataclass(frozen=True)
class ServerGroup:
    """A server group (GET /os-server-groups): with policy "anti-affinity", Nova's scheduler
    never puts two of its members on one host, evacuations included."""

    id: str
    name: str
    policy: str  # anti-affinity, affinity, soft-anti-affinity, soft-affinity
    members: tuple[str, ...]  # server ids


# --- Placement ------------------------------------------------------------------------------

VCPU = "VCPU"
MEMORY_MB = "MEMORY_MB"
DISK_GB = "DISK_GB"
#: The resource classes a flavor asks Placement for, in the order messages name them.
RESOURCE_CLASSES = (VCPU, MEMORY_MB, DISK_GB)


def flavor_resources(flavor: Flavor) -> dict[str, int]:
    """What Nova's scheduler asks Placement for on the flavor's behalf. A volume-backed
    instance asks for no DISK_GB in Nova; the server's view does not say it is one, so its
    flavor's disk is counted (a plan may then find a host too small that is not)."""
    return {VCPU: flavor.vcpus, MEMORY_MB: flavor.ram_mb, DISK_GB: flavor.disk_gb}


@dataclass(frozen=True)
class Inventory:
    """One resource class of a resource provider, as Placement holds it."""

    total: int
    reserved: int = 0
    allocation_ratio: float = 1.0
    max_unit: int | None = None  # the most one allocation may take (a flavor larger never fits)

    @property
    def capacity(self) -> int:
        """What may be allocated in all: Placement's own formula, (total - reserved) * ratio."""
        return int((self.total - self.reserved) * self.allocation_ratio)


@dataclass(frozen=True)
class HostResources:
    """A compute host's resource provider in Placement: its inventories and what is allocated
    against them (every consumer: instances, and evacuations still holding their source)."""

    host: str  # the nova-compute service host
    provider: str  # the resource provider's uuid, which is the compute node's
    inventories: Mapping[str, Inventory]
    usages: Mapping[str, int]

    def free(self, resource_class: str) -> int:
        inventory = self.inventories.get(resource_class)
        if inventory is None:
            return 0
        return inventory.capacity - self.usages.get(resource_class, 0)

"""What the recovery domain needs from the world, in one place: the ports its drivers implement.

- `Nova`: the compute API, with Placement's and Glance's reads
  (controller.drivers.nova.openstack over openstacksdk);
- `PacemakerCluster` and `ClusterFencing`: the cluster that fences a host and records it
  (controller.drivers.pacemaker.cluster over crm_mon/crm_attribute/stonith_admin);
- `PowerControl`: the hosts' BMCs, for the redfish and ipmi fencing methods
  (controller.drivers.bmc over sushy and pyghmi);
- `Store`: the Kubernetes objects (controller.drivers.kube_store), with `EventRecord` and
  `HostRecord`, the shared records of FailureEvents and Hosts;
- `HostStore` and `HostSignals`: the same for the host sync (recovery.host_sync), whose
  events are `EventView`s: an `EventRecord`, or an `EndedEvent` where memory holds them;
- `Signals`: Kubernetes Events, metrics and log lines (controller.handlers.signals);
- `Clouds`: which cloud a namespace is bound to (controller.drivers.clouds).

Their vocabularies are controller.recovery.nova, controller.recovery.pacemaker and
controller.recovery.power. The unit
tests' in-memory fakes implement the same ports.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from controller.recovery.gates import Report
from controller.recovery.nova import (
    Aggregate,
    ComputeService,
    HostCapacity,
    HostResources,
    Image,
    Migration,
    Server,
    ServerGroup,
)
from controller.recovery.pacemaker import ClusterState
from controller.recovery.power import PowerState
from controller.resources.failure_event import (
    EventPhase,
    FailureEventSpec,
    FailureEventStatus,
    FailureType,
)
from controller.resources.host import BMC, DrainStatus, HostSpec, HostStatus
from controller.resources.segment import FailoverSegmentSpec, FencingMethod


class Nova(Protocol):
    """The Nova operations recovery uses. Hosts are nova-compute service host names.

    Every method is a coroutine; implementations run blocking clients off the event loop.
    """

    async def compute_services(self, host: str | None = None) -> list[ComputeService]: ...

    async def compute_service(self, host: str) -> ComputeService:
        """The nova-compute service of `host`; NotFound if there is none."""
        ...

    async def disable_service(self, host: str, reason: str) -> ComputeService: ...

    async def enable_service(self, host: str) -> ComputeService: ...

    async def force_down(self, host: str, forced: bool) -> ComputeService: ...

    async def take_out(self, host: str, reason: str) -> ComputeService:
        """Forced down and disabled with `reason`, in one update: Nova stores both, then finds
        the service down and makes no call to its compute (which a disable alone would, and
        wait on a dead one)."""
        ...

    async def servers_on_host(self, host: str) -> list[Server]:
        """Every server on `host`, across all projects, with metadata and flavor."""
        ...

    async def all_servers(self) -> list[Server]:
        """Every server of every project, each with its host: one listing where a call per
        host would cost a round trip each (the readiness check of a whole segment)."""
        ...

    async def servers_changed_since(self, since: datetime) -> list[Server]:
        """Every server of every project Nova changed at or after `since` (its
        `changes-since`, to the second), deleted ones left out: one listing for the many
        instances a recovery waits on at once, where a GET each would cost a round trip each."""
        ...

    async def server(self, server_id: str) -> Server: ...

    async def live_migrate(
        self, server_id: str, target_host: str | None = None, block_migration: bool | None = None
    ) -> None:
        """Start a live migration, never forced past the scheduler; it picks the host when
        target_host is None. block_migration None is Nova's "auto" (from the storage). Nova
        checks the rest later: follow it in `migrations` (type "live-migration")."""
        ...

    async def cold_migrate(self, server_id: str) -> None:
        """Start a cold migration (Nova's "migrate"); the scheduler picks the host. Nova lands
        it in VERIFY_RESIZE on its destination (record type "migration", status "finished"),
        where it stays until `confirm_resize`."""
        ...

    async def confirm_resize(self, server_id: str) -> None:
        """Confirm a server in VERIFY_RESIZE: Nova frees what its source still holds."""
        ...

    async def stop_server(self, server_id: str) -> None: ...

    async def start_server(self, server_id: str) -> None: ...

    async def reset_and_evacuate(
        self, server_id: str, target_host: str | None, *, reset: bool
    ) -> None:
        """Reset the server to "error" when `reset`, then start its evacuation (to
        `target_host`; the scheduler picks when None): one unit of work, the evacuate sent only
        once the reset succeeded, neither queued behind other callers' calls in between. A
        failure says which call failed; a reset before it stays done."""
        ...

    async def lock_server(self, server_id: str, reason: str) -> None:
        """Lock the server with `reason`, after the other calls waiting: a recovery locks an
        instance once its evacuation has begun, which does not wait on the lock."""
        ...

    async def unlock_server(self, server_id: str) -> None: ...

    async def reset_state(self, server_id: str, state: str) -> None:
        """Reset a server's vm_state to "error" or "active"."""
        ...

    async def aggregates(self) -> list[Aggregate]: ...

    async def add_host_to_aggregate(self, aggregate_id: str, host: str) -> None:
        """Idempotent: a host already in the aggregate is not an error."""
        ...

    async def migrations(self, server_id: str) -> list[Migration]: ...

    async def host_capacity(self, host: str) -> HostCapacity: ...

    async def server_groups(self) -> list[ServerGroup]:
        """Every server group of every project, with its policy and members."""
        ...

    async def host_resources(self, hosts: Collection[str]) -> list[HostResources]:
        """Placement's inventories and usages of each of `hosts` (service host names) that has
        a resource provider; a host without one is left out."""
        ...

    async def image(self, image_id: str) -> Image:
        """The Glance image (GET /v2/images/{id}) with its properties and tags; NotFound when
        Glance has none (deleted), other NovaErrors as for Nova's own calls."""
        ...


class PacemakerCluster(Protocol):
    """What the operator does to a Pacemaker cluster: read it, and take nodes out of service
    (standby: no resources may run there) or out of Pacemaker's control (maintenance)."""

    def state(self) -> ClusterState: ...

    def put_in_standby(self, node: str) -> None: ...

    def bring_online(self, node: str) -> None: ...

    def start_maintenance(self, node: str) -> None: ...

    def end_maintenance(self, node: str) -> None: ...

    def fence(self, node: str, timeout: float) -> None:
        """Ask the cluster to fence `node` and return once its fencing device has answered;
        PacemakerError (FencingFailed, CommandTimeout, ...) when it did not succeed. The
        proof is the fencing record in `state()`, which the caller reads."""
        ...


@dataclass(frozen=True)
class EventRecord:
    name: str
    namespace: str
    spec: FailureEventSpec
    status: FailureEventStatus
    created: datetime
    generation: int = 1
    uid: str | None = None

    def report(self) -> Report:
        return Report(self.name, self.spec, self.created, self.status.phase)


class PayloadView(Protocol):
    @property
    def event(self) -> str: ...

    @property
    def instance_uuid(self) -> str | None: ...


class EventSpecView(Protocol):
    @property
    def type(self) -> FailureType: ...

    @property
    def host(self) -> str: ...

    @property
    def generated_time(self) -> datetime: ...

    @property
    def payload(self) -> PayloadView: ...


class EventStatusView(Protocol):
    @property
    def phase(self) -> EventPhase | None: ...

    @property
    def reason(self) -> str | None: ...

    @property
    def segment(self) -> str | None: ...

    @property
    def reserved_hosts(self) -> Sequence[str]: ...

    @property
    def start_time(self) -> datetime | None: ...

    @property
    def end_time(self) -> datetime | None: ...


class EventView(Protocol):
    """What the passes over a namespace's history read of an event: an `EventRecord`, or an
    `EndedEvent` where a whole record would be kept for nothing."""

    @property
    def name(self) -> str: ...

    @property
    def namespace(self) -> str: ...

    @property
    def created(self) -> datetime: ...

    @property
    def spec(self) -> EventSpecView: ...

    @property
    def status(self) -> EventStatusView: ...


@dataclass(frozen=True, slots=True)
class EndedEvent:
    """An ended event as the operator keeps it in memory: only what `EventView` reads, in one
    small object. Held as whole records, the 50,000 ended events of the benchmark's namespace
    were 190 MB of the operator's memory (3.8 KB each: pydantic models, their field sets and
    the strings of the decoded JSON); this is about 600 bytes. One object answers for the
    record, its spec, its status and its payload, whose fields do not share a name."""

    name: str
    namespace: str
    created: datetime
    type: FailureType
    host: str
    generated_time: datetime
    event: str
    instance_uuid: str | None
    phase: EventPhase | None
    reason: str | None
    segment: str | None
    reserved_hosts: tuple[str, ...]
    start_time: datetime | None
    end_time: datetime | None

    @classmethod
    def of(cls, record: EventRecord) -> EndedEvent:
        spec, status = record.spec, record.status
        # Interned: the same few hosts, segments and reasons recur in every event. In UTC's
        # one time zone: pydantic gives each time it parses a time zone object of its own.
        return cls(
            record.name,
            sys.intern(record.namespace),
            _utc(record.created),
            spec.type,
            sys.intern(spec.host),
            _utc(spec.generated_time),
            sys.intern(spec.payload.event),
            spec.payload.instance_uuid,
            status.phase,
            status.reason and sys.intern(status.reason),
            status.segment and sys.intern(status.segment),
            tuple(map(sys.intern, status.reserved_hosts)),
            status.start_time and _utc(status.start_time),
            status.end_time and _utc(status.end_time),
        )

    @property
    def spec(self) -> EndedEvent:
        return self

    @property
    def status(self) -> EndedEvent:
        return self

    @property
    def payload(self) -> EndedEvent:
        return self


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.tzinfo is UTC:
        return moment  # a naive time is left as the models gave it, not taken for local
    return moment.astimezone(UTC)


E = TypeVar("E", bound=EventView)


def by_host(events: Iterable[E]) -> dict[str, list[E]]:
    """Grouped once: looking through every event for each host made a pass over 5,000 hosts
    and 50,000 events cost 250 million checks."""
    grouped: dict[str, list[E]] = {}
    for event in events:
        grouped.setdefault(event.spec.host, []).append(event)
    return grouped


@dataclass(frozen=True)
class HostRecord:
    name: str
    spec: HostSpec
    status: HostStatus
    created: datetime
    generation: int = 1
    uid: str | None = None

    @property
    def nova_host(self) -> str:
        return self.spec.nova_host or self.name

    @property
    def pacemaker_node(self) -> str:
        return self.spec.pacemaker_node or self.name


class Store(Protocol):
    """The cluster's objects as the recovery needs them."""

    async def failure_event(self, namespace: str, name: str) -> EventRecord | None: ...

    async def failure_events(
        self,
        namespace: str,
        host: str | None = None,
        open_only: bool = False,
        instance: str | None = None,
    ) -> list[EventRecord]:
        """The namespace's events, or its host's, or its instance's (their payload's
        instance_uuid); `open_only`: those not ended."""
        ...

    async def host(self, namespace: str, name: str) -> HostRecord | None: ...

    async def hosts(self, namespace: str, segment: str | None = None) -> list[HostRecord]: ...

    async def segment(self, namespace: str, name: str) -> FailoverSegmentSpec | None: ...

    async def write_event_status(
        self, namespace: str, name: str, status: FailureEventStatus
    ) -> None: ...

    async def hold_host_service(self, namespace: str, host: str, event: str) -> None:
        """Record on the Host, before Nova is touched, that `event` takes its compute service
        out (status.serviceHolds), so the host is released even if the event is deleted."""
        ...


class HostStore(Protocol):
    """The Hosts and FailureEvents as the host sync (recovery.host_sync) reads and writes them."""

    async def host(self, namespace: str, name: str) -> HostRecord | None: ...

    async def hosts(self, namespace: str, segment: str | None = None) -> list[HostRecord]: ...

    async def segment(self, namespace: str, name: str) -> FailoverSegmentSpec | None:
        """For the BMC check: whether the segment fences by BMC, and how often to check."""
        ...

    async def failure_events(
        self, namespace: str, host: str | None = None
    ) -> Sequence[EventView]: ...

    async def write_host_status(
        self, namespace: str, name: str, status: HostStatus, released_holds: list[str]
    ) -> None:
        """Every field of status but the service holds, which recoveries write: a hold recorded
        since `status` was read survives. Each of `released_holds` is removed. Nor the drain,
        which only the drain writes."""
        ...

    async def write_host_drain(self, namespace: str, name: str, drain: DrainStatus) -> None:
        """status.drain, whole, and nothing else."""
        ...


class HostSignals(Protocol):
    """What the outside world hears of the host sync."""

    def transition(self, namespace: str, host: HostRecord, reason: str, message: str) -> None:
        """The host's phase changed (an Event and a log line)."""
        ...

    def unreachable(self, system: str, error: Exception) -> None:
        """Reading or changing `system` (nova, pacemaker, kubernetes) failed."""
        ...


class DrainSignals(Protocol):
    """What the outside world hears of maintenance drains (recovery.host_drain)."""

    def drain(self, namespace: str, host: str, reason: str, message: str, warning: bool) -> None:
        """A drain started, ended, or gave up on an instance (an Event and a log line)."""
        ...

    def drain_move(self, result: str, seconds: float | None) -> None:
        """An instance's move ended (or an attempt failed); `seconds` of a live migration."""
        ...

    def running(self, delta: int) -> None:
        """A drain started (1) or ended (-1) in this process."""
        ...

    def unreachable(self, system: str, error: Exception) -> None: ...


class Signals(Protocol):
    """What the outside world hears: Kubernetes Events, metrics, log lines."""

    def transition(self, record: EventRecord, status: FailureEventStatus) -> None: ...

    def blocked(self, record: EventRecord, reason: str | None) -> None: ...

    def not_recorded(self, record: EventRecord, reason: str, message: str) -> None:
        """A status write of the recovery was refused (progress.NotRecorded): said loudly, as
        the recovery waits for writes to go through again."""
        ...

    def running(self, record: EventRecord, running: bool) -> None: ...


class ClusterFencing(Protocol):
    """The cloud's Pacemaker cluster as the fencing step uses it, off the event loop."""

    async def state(self) -> ClusterState: ...

    async def fence(self, node: str, timeout: float) -> None:
        """As PacemakerCluster.fence."""
        ...


class PowerControl(Protocol):
    """The BMCs of a namespace's hosts. Implementations read the credentials from the Secret
    that `bmc` names, in `namespace`; they never reach the domain. Errors are
    controller.recovery.power's BMCError kinds."""

    async def power_state(self, namespace: str, method: FencingMethod, bmc: BMC) -> PowerState: ...

    async def power_off(self, namespace: str, method: FencingMethod, bmc: BMC) -> None:
        """A hard power off (no graceful shutdown): the host must stop writing now."""
        ...


@dataclass(frozen=True)
class Cloud:
    """The OpenStack cloud a namespace is bound to, as the recovery reaches it."""

    nova: Nova
    cluster: ClusterFencing | None = None  # the cloud's Pacemaker cluster; None: no access
    power: PowerControl | None = None  # the hosts' BMCs; None: not available


class CloudNotBound(Exception):
    """The namespace has no usable binding to a cloud: nothing in it is acted on."""


class Clouds(Protocol):
    """Which cloud each namespace is bound to."""

    async def cloud(self, namespace: str) -> Cloud:
        """The namespace's cloud; CloudNotBound (saying why) when there is none."""
        ...

"""In-memory Kubernetes objects and a fake Pacemaker for the lifecycle's unit tests: what the
API server would hold (the `Store`), the signals sent, and the cloud a namespace is bound to."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.recovery.gates import TERMINAL
from controller.recovery.pacemaker import (
    ClusterState,
    FenceEvent,
    FenceStatus,
    Node,
    NodeType,
    PacemakerError,
)
from controller.recovery.ports import Cloud, CloudNotBound, EventRecord, HostRecord
from controller.recovery.progress import NotRecorded
from controller.resources.failure_event import FailureEventSpec, FailureEventStatus
from controller.resources.host import HostSpec, HostStatus, ServiceHold
from controller.resources.segment import FailoverSegmentSpec

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


class Clock:
    """The operator's wall clock, moved by the test."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def monotonic(self) -> float:
        """A recovery's Timing clock on this time: seconds since T0."""
        return (self.now - T0).total_seconds()

    async def sleep(self, seconds: float) -> None:
        """A recovery's Timing sleep: the time passes at once."""
        self.advance(seconds)
        await asyncio.sleep(0)


@dataclass
class MemoryStore:
    clock: Clock
    namespace: str = "cloud"
    events: dict[str, EventRecord] = field(default_factory=dict)
    hosts_: dict[str, HostRecord] = field(default_factory=dict)
    segments: dict[str, FailoverSegmentSpec] = field(default_factory=dict)
    event_writes: int = 0
    holds_recorded: list[tuple[str, str]] = field(default_factory=list)  # (host, event)
    # Status writes past this many are refused with `refusal` (etcd full, the object too
    # large), until the test sets it back to None.
    refusal: NotRecorded | None = None
    refuse_after: int = 0

    # -- set-up ---------------------------------------------------------------------------

    def add_segment(self, name: str = "seg", **spec: Any) -> None:
        self.segments[name] = FailoverSegmentSpec.model_validate(
            {"recoveryMethod": "auto", "serviceType": "COMPUTE", **spec}
        )

    def add_host(self, name: str, segment: str = "seg", **spec: Any) -> None:
        self.hosts_[name] = HostRecord(
            name=name,
            spec=HostSpec.model_validate({"segment": segment, **spec}),
            status=HostStatus(),
            created=self.clock().replace(microsecond=0),  # whole seconds, as creationTimestamp
        )

    def report(
        self,
        name: str,
        host: str,
        event: str = "STOPPED",
        host_status: str | None = "NORMAL",
        kind: str = "COMPUTE_HOST",
        **payload: Any,
    ) -> EventRecord:
        body: dict[str, Any] = {"event": event, **payload}
        if host_status is not None and kind == "COMPUTE_HOST" and event == "STOPPED":
            body["host_status"] = host_status
        record = EventRecord(
            name=name,
            namespace=self.namespace,
            spec=FailureEventSpec.model_validate(
                {
                    "type": kind,
                    "host": host,
                    "generatedTime": self.clock().isoformat(),
                    "payload": body,
                }
            ),
            status=FailureEventStatus(),
            created=self.clock().replace(microsecond=0),  # whole seconds, as creationTimestamp
        )
        self.events[name] = record
        return record

    def phase(self, name: str) -> str | None:
        return self.events[name].status.phase

    # -- the Store protocol ---------------------------------------------------------------

    async def failure_event(self, namespace: str, name: str) -> EventRecord | None:
        return self.events.get(name)

    async def failure_events(
        self,
        namespace: str,
        host: str | None = None,
        open_only: bool = False,
        instance: str | None = None,
    ) -> list[EventRecord]:
        return [
            e
            for e in self.events.values()
            if host in (None, e.spec.host)
            and not (open_only and e.status.phase in TERMINAL)
            and instance in (None, e.spec.payload.instance_uuid)
        ]

    async def host(self, namespace: str, name: str) -> HostRecord | None:
        return self.hosts_.get(name)

    async def hosts(self, namespace: str, segment: str | None = None) -> list[HostRecord]:
        return [h for h in self.hosts_.values() if segment in (None, h.spec.segment)]

    async def segment(self, namespace: str, name: str) -> FailoverSegmentSpec | None:
        return self.segments.get(name)

    async def write_event_status(
        self, namespace: str, name: str, status: FailureEventStatus
    ) -> None:
        if self.refusal is not None and self.event_writes >= self.refuse_after:
            raise self.refusal
        self.event_writes += 1
        if name in self.events:  # a deleted event's status write fails in Kubernetes too
            self.events[name] = replace(self.events[name], status=status.model_copy(deep=True))

    async def hold_host_service(self, namespace: str, host: str, event: str) -> None:
        if self.refusal is not None and self.event_writes >= self.refuse_after:
            raise self.refusal
        self.holds_recorded.append((host, event))
        record = self.hosts_[host]
        status = record.status.model_copy(deep=True)
        status.service_holds[event] = ServiceHold(since=self.clock())
        self.hosts_[host] = replace(record, status=status)


@dataclass
class RecordedSignals:
    transitions: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    blocked_now: dict[str, str] = field(default_factory=dict)
    not_recorded_reasons: list[str] = field(default_factory=list)

    def transition(self, record: EventRecord, status: FailureEventStatus) -> None:
        self.transitions.append((record.name, status.phase, status.reason))

    def blocked(self, record: EventRecord, reason: str | None) -> None:
        if reason is None:
            self.blocked_now.pop(record.name, None)
        else:
            self.blocked_now[record.name] = reason

    def not_recorded(self, record: EventRecord, reason: str, message: str) -> None:
        self.not_recorded_reasons.append(reason)
        self.blocked(record, reason)

    def running(self, record: EventRecord, running: bool) -> None:
        pass


class FakePacemaker:
    """A quorate cluster whose nodes are online until the test fences or stops them."""

    def __init__(self, nodes: list[str], clock: Clock) -> None:
        self.clock = clock
        self.online = dict.fromkeys(nodes, True)
        self.fencings: list[FenceEvent] = []
        self.reads = 0
        self.requests: list[str] = []  # the operator's fencing requests, in order
        self.unfenceable: set[str] = set()  # nodes no fencing device can fence

    async def fence(self, node: str, timeout: float) -> None:
        """The operator asks the cluster to fence `node`."""
        self.requests.append(node)
        if node in self.unfenceable:
            raise PacemakerError(f"no fencing device succeeded for {node}")
        self.cluster_fences(node)

    def cluster_fences(self, node: str) -> None:
        """Pacemaker fences a node it lost, by itself."""
        self.online[node] = False
        self.fencings.append(
            FenceEvent(node, "reboot", FenceStatus.SUCCESS, completed=self.clock())
        )

    def stop_cleanly(self, node: str) -> None:
        self.online[node] = False

    def fenced(self, node: str) -> bool:
        return any(f.target == node for f in self.fencings)

    async def state(self) -> ClusterState:
        self.reads += 1
        return self.snapshot()

    def snapshot(self) -> ClusterState:
        """What crm_mon would say now, without counting a read."""
        nodes = tuple(
            Node(
                name=name,
                id=name,
                type=NodeType.MEMBER,
                online=up,
                standby=False,
                maintenance=False,
                pending=False,
                unclean=False,
                shutdown=False,
                expected_up=up,
            )
            for name, up in self.online.items()
        )
        return ClusterState(
            dc=None,
            has_quorum=True,
            stonith_enabled=True,
            maintenance_mode=False,
            nodes=nodes,
            fence_history=tuple(self.fencings),
        )


class BoundClouds:
    """Namespaces bound to clouds; any other namespace is not bound."""

    def __init__(self, **clouds: Cloud) -> None:
        self.clouds = clouds

    async def cloud(self, namespace: str) -> Cloud:
        if namespace not in self.clouds:
            raise CloudNotBound(f"namespace {namespace} has no CloudBinding")
        return self.clouds[namespace]

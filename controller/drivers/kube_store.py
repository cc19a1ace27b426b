"""The recovery domain's view of the cluster (recovery.ports.Store): read from memory, kept from
watches, and written to the API server.

Reads come from kopf's indexes (controller.handlers.indexes), which kopf fills from its watches
before any handler runs; at 5,000 hosts and 50,000 events, listing them for every decision
would make a recovery wait behind the API server. Two reads stay direct: the event being
recovered (its own status is what the next step acts on) and, for the handlers, nothing else.

The indexes see this process's own writes only once the watch delivers them. The decisions
that count what this process did (the storm gate counts admitted recoveries and service
holds) must see them at once, so every status this store writes is kept, with its
resourceVersion, and read in place of an older indexed copy until the watch catches up.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from controller.drivers.kube import PLURAL, Gone, Kube
from controller.recovery.gates import TERMINAL
from controller.recovery.ports import EventRecord, HostRecord
from controller.recovery.progress import utcnow
from controller.resources.failure_event import FailureEventSpec, FailureEventStatus
from controller.resources.host import HOLDS, HostSpec, HostStatus, ServiceHold
from controller.resources.segment import FailoverSegmentSpec


def _created(body: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(body["metadata"]["creationTimestamp"].replace("Z", "+00:00"))


def event_record(body: Mapping[str, Any]) -> EventRecord:
    return EventRecord(
        name=body["metadata"]["name"],
        namespace=body["metadata"]["namespace"],
        spec=FailureEventSpec.model_validate(body["spec"]),
        status=FailureEventStatus.model_validate(body.get("status") or {}),
        created=_created(body),
        generation=body["metadata"].get("generation", 1),
        uid=body["metadata"].get("uid"),
    )


def host_record(body: Mapping[str, Any]) -> HostRecord:
    return HostRecord(
        name=body["metadata"]["name"],
        spec=HostSpec.model_validate(body["spec"]),
        status=HostStatus.model_validate(body.get("status") or {}),
        created=_created(body),
        generation=body["metadata"].get("generation", 1),
        uid=body["metadata"].get("uid"),
    )


def version(body: Mapping[str, Any]) -> int:
    """The object's resourceVersion, as etcd's revision it is (0 if it is not a number)."""
    try:
        return int(body["metadata"].get("resourceVersion") or 0)
    except ValueError:
        return 0


class Named(Protocol):
    @property
    def name(self) -> str: ...


R = TypeVar("R", bound=Named)
Versioned = tuple[int, R]  # (resourceVersion, record): what the indexes hold
# kopf.Index: a key, to the values of every object that gave that key.
Indexed = Mapping[tuple[str, ...], Iterable[Versioned[R]]]
WRITES_KEPT_SECONDS = 60.0  # far longer than a watch takes to deliver a write


@dataclass
class Watched:
    """kopf's indexes of the objects (controller.handlers.indexes), keyed by (namespace,),
    (namespace, "host", host), and (namespace, "open") and (namespace, host, "open") for the
    events not ended, (namespace, "segment", segment) and (namespace,
    "name", name) for hosts, and (namespace, name) for segments."""

    events: Indexed[EventRecord]
    hosts: Indexed[HostRecord]
    segments: Mapping[tuple[str, str], Iterable[tuple[int, FailoverSegmentSpec]]]


@dataclass
class Written:
    """The records this process wrote, newer than the indexes until the watch catches up."""

    records: dict[tuple[str, str], tuple[int, Any, float]] = field(default_factory=dict)

    def keep(self, namespace: str, version: int, record: Named) -> None:
        now = time.monotonic()
        self.records = {k: v for k, v in self.records.items() if now - v[2] < WRITES_KEPT_SECONDS}
        self.records[(namespace, record.name)] = (version, record, now)

    def newest(self, namespace: str, indexed: Iterable[Versioned[R]]) -> Iterator[R]:
        for indexed_version, record in indexed:
            kept = self.records.get((namespace, record.name))
            yield kept[1] if kept is not None and kept[0] > indexed_version else record


class KubeStore:
    def __init__(self, kube: Kube, watched: Watched) -> None:
        self.kube = kube
        self.watched = watched
        self._events = Written()
        self._hosts = Written()

    async def failure_event(self, namespace: str, name: str) -> EventRecord | None:
        # Direct: the event being recovered acts on its own latest status.
        try:
            return event_record(await self.kube.get(PLURAL.failure_events, namespace, name))
        except Gone:
            return None

    async def failure_events(
        self, namespace: str, host: str | None = None, open_only: bool = False
    ) -> list[EventRecord]:
        if open_only:
            key: tuple[str, ...] = (
                (namespace, "open") if host is None else (namespace, host, "open")
            )
        else:
            key = (namespace,) if host is None else (namespace, "host", host)
        found = self._events.newest(namespace, self.watched.events.get(key, ()))
        # A write of this process may have ended an event the index still files as open.
        return [e for e in found if not open_only or e.status.phase not in TERMINAL]

    async def host(self, namespace: str, name: str) -> HostRecord | None:
        found = self.watched.hosts.get((namespace, "name", name), ())
        return next(self._hosts.newest(namespace, found), None)

    async def hosts(self, namespace: str, segment: str | None = None) -> list[HostRecord]:
        key = (namespace,) if segment is None else (namespace, "segment", segment)
        return list(self._hosts.newest(namespace, self.watched.hosts.get(key, ())))

    async def segment(self, namespace: str, name: str) -> FailoverSegmentSpec | None:
        found = list(self.watched.segments.get((namespace, name), ()))
        return found[0][1] if found else None

    async def write_event_status(
        self, namespace: str, name: str, status: FailureEventStatus
    ) -> None:
        written = await self.kube.write_status(
            PLURAL.failure_events, namespace, name, status.to_wire()
        )
        self._events.keep(namespace, version(written), event_record(written))

    async def hold_host_service(self, namespace: str, host: str, event: str) -> None:
        hold = ServiceHold(since=utcnow()).to_wire()
        written = await self.kube.merge_status(
            PLURAL.hosts, namespace, host, {HOLDS: {event: hold}}
        )
        self._hosts.keep(namespace, version(written), host_record(written))

    async def write_host_status(
        self, namespace: str, name: str, status: HostStatus, released_holds: list[str]
    ) -> None:
        # A merge patch that names every field but the holds (None clears one): a hold a
        # recovery recorded after `status` was read survives the write.
        patch = status.to_merge_patch(exclude={"service_holds"})
        if released_holds:
            patch[HOLDS] = dict.fromkeys(released_holds)  # None removes each
        written = await self.kube.merge_status(PLURAL.hosts, namespace, name, patch)
        self._hosts.keep(namespace, version(written), host_record(written))

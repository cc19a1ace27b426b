"""The recovery domain's view of the cluster (recovery.ports.Store), read from and written to
the API server.

Reads are direct (LIST and GET): a read right after this process's own write sees it, which the
storm gate's counts need. GETs and the event lists are quorum reads. Hosts are listed as a
snapshot no older than this process's newest Host write in the namespace: every Host status
(the phases and service holds the storm gate counts) is written by the operator that owns the
namespace, through this store, so that snapshot holds all of them and everything written
before them; a quorum list of Hosts waited 60-100 ms for the API server's watch cache on every
admission (issue 12). Until this process has written a Host there, the list is a quorum read.

kopf's indexes were tried as the source of reads and measured: kopf runs no handler before every
indexed object is indexed, and that wait grows with the square of the objects (5 minutes for 5,500
on 2 cores, docs/scale.md), during which nothing is recovered: an operator restart or a leader
change would leave a cloud without recovery for minutes. The recoveries read here; the passes that
list whole namespaces on timers read the watches of kube_cache, which hold nothing back.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controller.drivers.kube import (
    PLURAL,
    Conflict,
    Gone,
    Invalid,
    Kube,
    KubeError,
    StorageFull,
    TooLarge,
)
from controller.recovery.gates import TERMINAL
from controller.recovery.ports import EventRecord, HostRecord
from controller.recovery.progress import NotRecorded, utcnow
from controller.resources.failure_event import FailureEventSpec, FailureEventStatus
from controller.resources.host import DRAIN, HOLDS, DrainStatus, HostSpec, HostStatus, ServiceHold
from controller.resources.segment import FailoverSegmentSpec

# The open FailureEvents, as a field selector's terms: an event without a phase selects as ""
# and is open.
OPEN_EVENTS = tuple(f"status.phase!={phase}" for phase in sorted(TERMINAL))


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


def _not_recorded(error: KubeError) -> NotRecorded:
    if isinstance(error, StorageFull):
        return NotRecorded("EtcdSpaceExceeded", str(error))
    if isinstance(error, TooLarge):
        return NotRecorded("StatusTooLarge", str(error))
    return NotRecorded("StatusRefused", f"the API server refused the status: {error}")


class KubeStore:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        # The resourceVersion of this process's newest Host write, per namespace: etcd's
        # revision, an integer: comparable between objects of one resource, as Kubernetes
        # documents since 1.35 (KEP-5504).
        self._hosts_written: dict[str, int] = {}

    async def failure_event(self, namespace: str, name: str) -> EventRecord | None:
        try:
            return event_record(await self.kube.get(PLURAL.failure_events, namespace, name))
        except Gone:
            return None

    async def failure_events(
        self,
        namespace: str,
        host: str | None = None,
        open_only: bool = False,
        instance: str | None = None,
    ) -> list[EventRecord]:
        terms = [f"spec.host={host}"] if host else []
        if instance:
            terms.append(f"spec.payload.instance_uuid={instance}")
        if open_only:
            terms += OPEN_EVENTS
        bodies = await self.kube.list(PLURAL.failure_events, namespace, ",".join(terms) or None)
        return [event_record(b) for b in bodies]

    async def release_ended_event(self, namespace: str, name: str, finalizer: str) -> bool:
        """Take `finalizer` off the event if it has ended; whether it was taken off. Only
        that entry: a merge patch of the list at the version read, read again on Conflict."""
        for _ in range(3):
            try:
                body = await self.kube.get(PLURAL.failure_events, namespace, name)
            except Gone:
                return False
            metadata = body["metadata"]
            held = metadata.get("finalizers") or []
            ended = (body.get("status") or {}).get("phase") in TERMINAL
            if not ended or finalizer not in held:
                return False
            rest = [f for f in held if f != finalizer]
            version = metadata["resourceVersion"]
            patch = {"metadata": {"finalizers": rest or None, "resourceVersion": version}}
            try:
                await self.kube.patch(PLURAL.failure_events, namespace, name, patch)
            except Conflict:
                continue
            except Gone:
                return False
            return True
        return False

    async def host(self, namespace: str, name: str) -> HostRecord | None:
        try:
            return host_record(await self.kube.get(PLURAL.hosts, namespace, name))
        except Gone:
            return None

    async def hosts(self, namespace: str, segment: str | None = None) -> list[HostRecord]:
        selector = f"spec.segment={segment}" if segment else None
        written = self._hosts_written.get(namespace)
        bodies = await self.kube.list(
            PLURAL.hosts, namespace, selector, not_older_than=str(written) if written else None
        )
        return [host_record(b) for b in bodies]

    async def _write_host(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        written = await self.kube.merge_status(PLURAL.hosts, namespace, name, patch)
        version = str((written.get("metadata") or {}).get("resourceVersion") or "")
        if version.isdigit():
            self._hosts_written[namespace] = max(
                int(version), self._hosts_written.get(namespace, 0)
            )

    async def segment(self, namespace: str, name: str) -> FailoverSegmentSpec | None:
        try:
            body = await self.kube.get(PLURAL.segments, namespace, name)
        except Gone:
            return None
        return FailoverSegmentSpec.model_validate(body["spec"])

    async def write_event_status(
        self, namespace: str, name: str, status: FailureEventStatus
    ) -> None:
        try:
            await self.kube.write_status(PLURAL.failure_events, namespace, name, status.to_wire())
        except (StorageFull, TooLarge, Invalid) as error:
            raise _not_recorded(error) from None

    async def hold_host_service(self, namespace: str, host: str, event: str) -> None:
        hold = ServiceHold(since=utcnow()).to_wire()
        try:
            await self._write_host(namespace, host, {HOLDS: {event: hold}})
        except (StorageFull, TooLarge, Invalid) as error:
            raise _not_recorded(error) from None

    async def write_host_status(
        self, namespace: str, name: str, status: HostStatus, released_holds: list[str]
    ) -> None:
        # A merge patch that names every field but the holds (None clears one): a hold a
        # recovery recorded after `status` was read survives the write.
        patch = status.to_merge_patch(exclude={"service_holds", "drain"})
        if released_holds:
            patch[HOLDS] = dict.fromkeys(released_holds)  # None removes each
        await self._write_host(namespace, name, patch)

    async def write_host_drain(self, namespace: str, name: str, drain: DrainStatus) -> None:
        # Whole: a merge patch replaces the list of moves, and names every field of the drain.
        patch = {DRAIN: drain.to_merge_patch()}
        await self._write_host(namespace, name, patch)

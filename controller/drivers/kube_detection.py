"""The detection pass's store (recovery.detection_pass.DetectionStore) on the API server.

Its one write is the FailureEvent, built by the host monitor's own code
(controller.monitors.reporting), so what the detection reports has the monitor's shape, name
pattern and labels, and the gates, duplicates and fencing treat it as one of the monitor's.
Writes go through the operator's Kube client, which refuses them once this replica no longer
holds the Lease.
"""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import ValidationError

from controller.drivers.kube import PLURAL, Conflict, Kube
from controller.drivers.kube_cache import CachedStore
from controller.monitors.host_failures import HostEvent, NodeReport
from controller.monitors.reporting import HostEntry, failure_event
from controller.recovery.detection import SOURCE, Finding
from controller.recovery.ports import EventView, HostRecord
from controller.resources.segment import FailoverSegmentSpec

log = logging.getLogger("masakari.detection")


class KubeDetectionStore:
    def __init__(self, kube: Kube, store: CachedStore) -> None:
        self.kube = kube
        self.store = store

    async def segments(self, namespace: str) -> dict[str, FailoverSegmentSpec]:
        found: dict[str, FailoverSegmentSpec] = {}
        for body in await self.kube.list(PLURAL.segments, namespace):
            name = body["metadata"]["name"]
            try:
                found[name] = FailoverSegmentSpec.model_validate(body.get("spec") or {})
            except ValidationError as error:  # one bad segment never blinds the others
                log.warning("segment %s not understood: %s", name, error.errors()[:1])
        return found

    async def hosts(self, namespace: str, segment: str | None = None) -> list[HostRecord]:
        return await self.store.hosts(namespace, segment)

    async def failure_events(self, namespace: str, host: str | None = None) -> list[EventView]:
        return await self.store.failure_events(namespace, host)

    async def report(self, namespace: str, finding: Finding, generated: datetime) -> bool:
        silent = finding.silent
        report = NodeReport(
            node=silent.name,
            event=HostEvent.STOPPED,
            # Nothing confirmed the host off: the fencing step does, as for a monitor's
            # report of a node lost without fencing.
            host_status="UNKNOWN",
            cluster_status="OFFLINE",
            episode=silent.episode,
            generated_time=generated,
        )
        body = failure_event(report, HostEntry(silent.name, silent.segment), SOURCE)
        try:
            await self.kube.create(PLURAL.failure_events, namespace, body)
        except Conflict:
            return False
        return True

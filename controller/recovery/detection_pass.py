"""The detection pass: once per namespace and interval, the hosts `recovery.detection` finds
silent are reported as FailureEvents, shaped as the host monitor's.

What it reads grows with what it finds, so a quiet cloud costs little: the segments first
(nothing else when none of them watches), then the watching segments' Hosts and one list of
Nova's compute services, then the events of the silent hosts only, then one probe round of the
agents of those not reported yet. The ports it needs beyond `Nova` are its own and small.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from controller.recovery import detection
from controller.recovery.detection import Finding, Hold, Silent
from controller.recovery.nova import NovaError
from controller.recovery.ports import EventView, HostRecord, Nova
from controller.recovery.progress import utcnow
from controller.resources.segment import FailoverSegmentSpec

# Up to this many silent hosts, their events are read host by host (a field selector each);
# beyond, one list of the namespace's events is cheaper than that many calls.
EVENTS_PER_HOST = 16


class DetectionStore(Protocol):
    """The namespace's objects as the detection reads them, and its one write."""

    async def segments(self, namespace: str) -> Mapping[str, FailoverSegmentSpec]: ...

    async def hosts(self, namespace: str, segment: str | None = None) -> list[HostRecord]: ...

    async def failure_events(self, namespace: str, host: str | None = None) -> list[EventView]: ...

    async def report(self, namespace: str, finding: Finding, generated: datetime) -> bool:
        """Create the finding's FailureEvent; False when one of its name exists already."""
        ...


class HeartbeatProbe(Protocol):
    """The hosts' heartbeat agents (masakari-operator heartbeat-agent)."""

    async def answered(self, agents: Mapping[str, str]) -> dict[str, bool]:
        """`agents`: host name -> agent address (host or host:port). Which answered within the
        probe's bounded time; a host left out could not be probed (its address did not
        resolve) and counts as neither."""
        ...


class DetectionSignals(Protocol):
    def reported(self, namespace: str, finding: Finding, created: bool) -> None: ...

    def held(self, namespace: str, holds: list[Hold]) -> None:
        """This pass's silent hosts that were not reported, and why (all of them, each pass)."""
        ...

    def unreachable(self, system: str, error: Exception) -> None: ...


@dataclass
class PassResult:
    watching: int = 0  # segments whose hosts are watched
    silent: int = 0  # hosts whose service is down past the threshold
    probed: int = 0
    reported: int = 0  # FailureEvents created
    failed: int = 0  # reports whose create failed; the next pass tries again
    nova_error: str | None = None


@dataclass
class DetectionPass:
    store: DetectionStore
    probe: HeartbeatProbe
    signals: DetectionSignals
    clock: Callable[[], datetime] = field(default=utcnow)

    async def run(self, namespace: str, nova: Nova) -> PassResult:
        segments = await self.store.segments(namespace)
        watched = {name: spec for name, spec in segments.items() if detection.watching(spec)}
        result = PassResult(watching=len(watched))
        if not watched:
            self.signals.held(namespace, [])
            return result
        hosts: list[HostRecord] = []
        for name in sorted(watched):
            hosts += await self.store.hosts(namespace, name)
        try:
            services = {s.host: s for s in await nova.compute_services()}
        except NovaError as error:
            self.signals.unreachable("nova", error)
            result.nova_error = str(error)
            return result
        candidates = detection.silent(hosts, watched, services, self.clock())
        result.silent = len(candidates)
        events = await self._events(namespace, candidates)
        probe, held = detection.unreported(candidates, events, self.clock())
        agents = {c.name: c.host.spec.heartbeat.address for c in probe if c.host.spec.heartbeat}
        answers = await self.probe.answered(agents) if agents else {}
        result.probed = len(answers)
        outcome = detection.decide(probe, answers)
        self.signals.held(namespace, held + outcome.held)
        for finding in outcome.reports:
            try:
                created = await self.store.report(namespace, finding, self.clock())
            except Exception as error:  # one refused report never holds back the others
                self.signals.unreachable("kubernetes", error)
                result.failed += 1
                continue
            result.reported += created
            self.signals.reported(namespace, finding, created)
        return result

    async def _events(self, namespace: str, candidates: list[Silent]) -> list[EventView]:
        if not candidates:
            return []
        if len(candidates) > EVENTS_PER_HOST:
            return await self.store.failure_events(namespace)
        events: list[EventView] = []
        for candidate in candidates:
            events += await self.store.failure_events(namespace, candidate.name)
        return events

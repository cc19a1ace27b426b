"""Which hosts the operator reports failed on its own: a silent nova-compute and a silent host.

For segments whose computes run no Pacemaker (Red Hat InstanceHA's model), nobody else reports
a dead host. Pure, like the gates: the pass (recovery.detection_pass) reads Nova's services once
per namespace, narrows them to the `silent` hosts, reads those hosts' events, probes the heartbeat
agents of the `unreported` ones, and `decide`s. A host is reported only when all of these hold,
checked in this order:

1. its segment has detection.novaServiceDown on and can fence (fencing.method not none: the API
   server refuses that combination, this is the second lock);
2. the Host is not on maintenance (a host taken out of service is often powered off on purpose)
   and names its heartbeat agent (without one, a dead nova-compute looks like a dead host);
3. Nova reports its nova-compute service down, not forced down (a recovery or a person did that,
   it is not silence), with a last heartbeat (updated_at) older than the segment's threshold;
4. this silence was not reported yet: no open host failure of the host, none generated since
   that heartbeat (any reporter's, events deleted since included, through the Host's
   recentFailures) and none within the gates' duplicate window;
5. its heartbeat agent did not answer this pass's probe.

The report is a COMPUTE_HOST STOPPED with host_status UNKNOWN, as the host monitor sends when it
cannot confirm fencing: the fencing step confirms the host down before anything is evacuated.
Its episode is the silent service's last heartbeat, so every pass (and a new leader) names one
silence alike, and a second create of it is refused by the API server.

Many hosts silent at once are each reported: containing a storm is the storm gate's job, on
the whole segment at once, never this detection's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from controller.recovery.gates import DUPLICATE_WINDOW, OPEN_PHASES
from controller.recovery.nova import ComputeService
from controller.recovery.ports import EventView, HostRecord
from controller.resources.failure_event import FailureType
from controller.resources.segment import FailoverSegmentSpec, FencingMethod

SOURCE = "detection/nova-service-down"


class Held(StrEnum):
    """Why a host whose service is down past the threshold was not reported."""

    NO_AGENT = "NoHeartbeatAgent"
    REPORT_OPEN = "ReportOpen"
    ALREADY_REPORTED = "AlreadyReported"
    RECENTLY_REPORTED = "RecentlyReported"
    AGENT_ANSWERED = "AgentAnswered"
    NOT_PROBED = "NotProbed"


@dataclass(frozen=True)
class Silent:
    """A host whose nova-compute service has been down past its segment's threshold."""

    host: HostRecord
    heartbeat: datetime  # the service's last report to Nova
    silent_for: timedelta

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def segment(self) -> str:
        return self.host.spec.segment

    @property
    def episode(self) -> str:
        """Shared by every pass that sees this silence: the last heartbeat, to the second."""
        return "silent-" + self.heartbeat.strftime("%Y%m%d-%H%M%S")


@dataclass(frozen=True)
class Finding:
    """A host to report failed, and why."""

    silent: Silent
    message: str


@dataclass(frozen=True)
class Hold:
    host: str
    reason: Held
    message: str


@dataclass(frozen=True)
class Outcome:
    reports: list[Finding]
    held: list[Hold]


def watching(segment: FailoverSegmentSpec | None) -> bool:
    """Whether the segment's hosts are watched: detection on and a way to fence."""
    return (
        segment is not None
        and segment.detection.nova_service_down.enabled
        and segment.fencing.method != FencingMethod.NONE
    )


def silent(
    hosts: Iterable[HostRecord],
    segments: Mapping[str, FailoverSegmentSpec],
    services: Mapping[str, ComputeService],
    now: datetime,
) -> list[Silent]:
    """Rules 1 to 3 but the agent: the hosts whose service has been down past the threshold,
    in a segment that watches them. `services` by nova-compute host name."""
    found: list[Silent] = []
    for host in hosts:
        segment = segments.get(host.spec.segment)
        if segment is None or not watching(segment) or host.spec.on_maintenance:
            continue
        service = services.get(host.nova_host)
        if service is None or service.is_up or service.forced_down:
            continue
        if service.updated_at is None:  # never reported: how long it has been silent is unknown
            continue
        threshold = timedelta(seconds=segment.detection.nova_service_down.threshold_seconds)
        silent_for = now - service.updated_at
        if silent_for >= threshold:
            found.append(Silent(host, service.updated_at, silent_for))
    return found


def _host_failures(events: Iterable[EventView]) -> dict[str, list[EventView]]:
    by_host: dict[str, list[EventView]] = {}
    for event in events:
        spec = event.spec
        if spec.type == FailureType.COMPUTE_HOST and spec.payload.event == "STOPPED":
            by_host.setdefault(spec.host, []).append(event)
    return by_host


def _reported(candidate: Silent, events: list[EventView], now: datetime) -> Hold | None:
    name = candidate.name
    for event in events:
        if event.status.phase in OPEN_PHASES:
            return Hold(name, Held.REPORT_OPEN, f"{event.name} is still open")
    for event in events:
        generated = event.spec.generated_time
        if generated >= candidate.heartbeat:
            return Hold(name, Held.ALREADY_REPORTED, f"reported by {event.name}")
        if now - generated <= DUPLICATE_WINDOW:
            return Hold(name, Held.RECENTLY_REPORTED, f"{event.name} is within the window")
    for record in candidate.host.status.recent_failures:
        if record.type == FailureType.COMPUTE_HOST and record.time >= candidate.heartbeat:
            return Hold(name, Held.ALREADY_REPORTED, f"reported by {record.event}")
    return None


def unreported(
    candidates: Iterable[Silent], events: Iterable[EventView], now: datetime
) -> tuple[list[Silent], list[Hold]]:
    """Rules 2 (the agent) and 4: the silent hosts worth a probe. `events`: at least every
    event of the candidates."""
    by_host = _host_failures(events)
    probe: list[Silent] = []
    held: list[Hold] = []
    for candidate in candidates:
        if candidate.host.spec.heartbeat is None:
            held.append(Hold(candidate.name, Held.NO_AGENT, "the Host names no heartbeat agent"))
            continue
        hold = _reported(candidate, by_host.get(candidate.name, []), now)
        if hold is None:
            probe.append(candidate)
        else:
            held.append(hold)
    return probe, held


def decide(probed: Iterable[Silent], answers: Mapping[str, bool]) -> Outcome:
    """Rule 5: `answers` by host name, True when its agent answered; a host missing from it
    was not probed and is not reported."""
    reports: list[Finding] = []
    held: list[Hold] = []
    for candidate in probed:
        answered = answers.get(candidate.name)
        if answered is None:
            held.append(Hold(candidate.name, Held.NOT_PROBED, "its agent was not probed"))
        elif answered:
            held.append(
                Hold(
                    candidate.name,
                    Held.AGENT_ANSWERED,
                    "nova-compute is down but the host's heartbeat agent answers",
                )
            )
        else:
            message = (
                f"nova-compute silent for {candidate.silent_for.total_seconds():.0f}s (last "
                f"heartbeat {candidate.heartbeat.isoformat()}) and its heartbeat agent "
                "did not answer"
            )
            reports.append(Finding(candidate, message))
    return Outcome(reports, held)


def detect(
    hosts: Iterable[HostRecord],
    segments: Mapping[str, FailoverSegmentSpec],
    services: Mapping[str, ComputeService],
    events: Iterable[EventView],
    answers: Mapping[str, bool],
    now: datetime,
) -> Outcome:
    """The whole decision at once, for the tests; the pass calls the steps to read and probe
    only what each needs."""
    probe, held = unreported(silent(hosts, segments, services, now), events, now)
    outcome = decide(probe, answers)
    return Outcome(outcome.reports, held + outcome.held)

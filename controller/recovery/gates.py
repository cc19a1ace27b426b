"""The checks a failure report passes before any action: pure, no I/O, one decision.

Order follows Masakari's pipeline (host known, segment enabled, host not on maintenance,
duplicate), then our own safety gates: a host failure is recovered only once the host is
confirmed down, and not while the segment is paused or past its storm limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from controller.resources.failure_event import EventPhase, FailureEventSpec, FailureType
from controller.resources.host import HostSpec
from controller.resources.segment import FailoverSegmentSpec

# Masakari's duplicate_notification_detection_interval.
DUPLICATE_WINDOW = timedelta(seconds=180)
OPEN_PHASES = {None, EventPhase.NEW, EventPhase.RUNNING, EventPhase.ERROR}

# engine/instance_events.py: the (event, vir_domain_event) pairs worth a restart.
RECOVERABLE_VM_EVENTS = {
    ("LIFECYCLE", "STOPPED_FAILED"),
    ("IO_ERROR", "IO_ERROR_REPORT"),
    ("QEMU_GUEST_AGENT_ERROR", "STOPPED_FAILED"),
}


class Verdict(StrEnum):
    PROCEED = "Proceed"  # start (or resume) the recovery
    IGNORE = "Ignore"  # recorded, deliberately not acted on
    WAIT = "Wait"  # stays New, visibly blocked; evaluated again later
    CONFIRM_FENCING = "ConfirmFencing"  # ask Pacemaker whether the host is fenced


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class Report:
    """A FailureEvent as the gates see it."""

    name: str
    spec: FailureEventSpec
    created: datetime
    phase: str | None = None

    def sort_key(self) -> tuple[datetime, str]:
        return (self.created, self.name)


@dataclass(frozen=True)
class SegmentHealth:
    """How many of the segment's hosts are out of service because they failed."""

    hosts: int
    failed_hosts: set[str] = field(default_factory=set)


def storm_limit(segment: FailoverSegmentSpec, hosts: int) -> int | None:
    storm = segment.storm
    if storm.max_failed_hosts is not None:
        return storm.max_failed_hosts
    if storm.max_failed_hosts_percent is not None:
        return max(1, math.floor(hosts * storm.max_failed_hosts_percent / 100))
    return None


def duplicate_of(report: Report, others: list[Report]) -> Report | None:
    for other in sorted(others, key=Report.sort_key):
        if other.sort_key() >= report.sort_key() or other.spec.type != report.spec.type:
            continue
        if other.spec.host != report.spec.host:
            continue
        same_payload = other.spec.payload == report.spec.payload
        close = abs(report.spec.generated_time - other.spec.generated_time) <= DUPLICATE_WINDOW
        if same_payload and close:
            return other
        still_recovering = (
            report.spec.type == FailureType.COMPUTE_HOST
            and report.spec.payload.event == other.spec.payload.event == "STOPPED"
            and other.phase in OPEN_PHASES
        )
        if still_recovering:
            return other
    return None


def admit(
    report: Report,
    host: HostSpec | None,
    segment: FailoverSegmentSpec | None,
    others: list[Report],
    health: SegmentHealth,
) -> Decision:
    """Decide what happens to a failure report that has not started recovering yet."""
    if host is None:
        return Decision(Verdict.IGNORE, "HostNotFound", f"no Host named {report.spec.host}")
    if segment is None:
        return Decision(Verdict.IGNORE, "SegmentNotFound", f"no FailoverSegment {host.segment}")
    if not segment.enabled:
        return Decision(
            Verdict.IGNORE, "SegmentDisabled", f"segment {host.segment} has recovery disabled"
        )
    if host.on_maintenance:
        return Decision(
            Verdict.IGNORE, "HostOnMaintenance", f"{report.spec.host} is on maintenance"
        )
    original = duplicate_of(report, others)
    if original is not None:
        return Decision(Verdict.IGNORE, "Duplicate", f"same failure as {original.name}")
    payload = report.spec.payload
    if report.spec.type == FailureType.VM:
        if (payload.event, payload.vir_domain_event) not in RECOVERABLE_VM_EVENTS:
            return Decision(
                Verdict.IGNORE,
                "NotRecoverableEvent",
                f"{payload.event}/{payload.vir_domain_event} is not a recoverable event",
            )
        return Decision(Verdict.PROCEED)
    if report.spec.type == FailureType.PROCESS or payload.event == "STARTED":
        return Decision(Verdict.PROCEED)
    return _admit_host_failure(report, host, segment, health)


def _admit_host_failure(
    report: Report, host: HostSpec, segment: FailoverSegmentSpec, health: SegmentHealth
) -> Decision:
    if segment.storm.pause_requests:
        return Decision(
            Verdict.WAIT, "RecoveryPaused", "paused: " + "; ".join(segment.storm.pause_requests)
        )
    limit = storm_limit(segment, health.hosts)
    failed_others = health.failed_hosts - {report.spec.host}
    if limit is not None and len(failed_others) >= limit:
        return Decision(
            Verdict.WAIT,
            "StormLimitReached",
            f"{len(failed_others)} host(s) of segment {host.segment} already failed "
            f"(limit {limit})",
        )
    if report.spec.payload.host_status != "NORMAL":
        return Decision(
            Verdict.CONFIRM_FENCING,
            "AwaitingFencing",
            f"{report.spec.host} is not confirmed down by its monitor; checking Pacemaker",
        )
    return Decision(Verdict.PROCEED)

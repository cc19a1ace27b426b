"""The checks a failure report passes before any action: pure, no I/O, one decision.

Order follows Masakari's pipeline (host known, segment enabled, host not on maintenance
unless our drain of it is unfinished, duplicate), then our own safety gates: a host failure is
not recovered once the host reported started again, nor while the segment is paused or past
its storm limit. An admitted host failure is fenced first (`recovery.fencing`), before
anything else. Every attempt passes the gates, retries included; a retry is never a duplicate
(it was the original when first admitted).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from controller.resources.failure_event import EventPhase, FailureEventSpec, FailureType
from controller.resources.host import HostSpec
from controller.resources.segment import FailoverSegmentSpec

# Masakari's duplicate_notification_detection_interval.
DUPLICATE_WINDOW = timedelta(seconds=180)
# An event is open until it ends in one of the TERMINAL phases.
TERMINAL = {EventPhase.FINISHED, EventPhase.IGNORED, EventPhase.FAILED}
OPEN_PHASES = {None, EventPhase.NEW, EventPhase.RUNNING, EventPhase.ERROR}
ADMITTED = {EventPhase.RUNNING, EventPhase.ERROR, EventPhase.FINISHED, EventPhase.FAILED}

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


def _precedence(report: Report) -> tuple[bool, bool, datetime, str]:
    """Which of two reports of one failure is the original: one that was admitted, then one
    whose monitor confirmed the host down (a confirmed report takes over from an unconfirmed
    one still waiting), then the earliest. A total order: no report is the duplicate of its
    own duplicate."""
    waiting = report.phase not in ADMITTED
    unconfirmed = (
        report.spec.type == FailureType.COMPUTE_HOST and report.spec.payload.host_status != "NORMAL"
    )
    return (waiting, waiting and unconfirmed, report.created, report.name)


def of_registration(others: list[Report], registered: datetime) -> list[Report]:
    """The reports made since the host's current record was registered (its Host created).

    Masakari keys its duplicate rule on the host record (source_host_uuid), not on the name: a
    host deleted and registered again reports afresh. Creation times are whole seconds, so a
    report of the very second the record was made counts as its own: one report refused is
    safer than one failure recovered twice."""
    return [other for other in others if other.created >= registered]


def duplicate_of(report: Report, others: list[Report]) -> Report | None:
    for other in sorted(others, key=_precedence):
        if _precedence(other) >= _precedence(report) or other.spec.type != report.spec.type:
            continue
        if other.spec.host != report.spec.host:
            continue
        same_payload = other.spec.payload == report.spec.payload
        close = abs(report.spec.generated_time - other.spec.generated_time) <= DUPLICATE_WINDOW
        if _came_back_between(other, report, others):
            continue
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


def _came_back_between(earlier: Report, later: Report, others: list[Report]) -> bool:
    """The earlier report was never admitted (it waits as New, or ended Ignored: its host came
    back, or was never confirmed off) and the host reported started before the later one: the
    later one is a new failure of a flapping host, not the same one again. Were it a duplicate,
    the host, down for good after the flap, would never be recovered: the earlier one ends
    HostRecovered (`started_since`) or has ended. An admitted earlier report stays the
    original, as in Masakari: one recovery for a host that fell twice within the window."""
    if earlier.phase in ADMITTED or earlier.spec.type != FailureType.COMPUTE_HOST:
        return False
    return any(
        other.spec.type == FailureType.COMPUTE_HOST
        and other.spec.host == later.spec.host
        and other.spec.payload.event == "STARTED"
        and earlier.spec.generated_time < other.spec.generated_time <= later.spec.generated_time
        for other in others
    )


def started_since(report: Report, others: list[Report]) -> Report | None:
    """A STARTED report of the host generated after this STOPPED one: the host came back."""
    return next(
        (
            other
            for other in others
            if other.spec.type == FailureType.COMPUTE_HOST
            and other.spec.host == report.spec.host
            and other.spec.payload.event == "STARTED"
            and other.spec.generated_time > report.spec.generated_time
        ),
        None,
    )


def segment_health(members: Mapping[str, bool], reports: list[Report]) -> SegmentHealth:
    """The segment's failed hosts: those whose Host says so (`members`: host name -> out of
    service by a failure: phase Failed or Recovering, or a service hold not yet released), and
    those of every admitted host recovery still running, which no Host shows before its next
    resync."""
    failed = {name for name, out in members.items() if out}
    failed |= {
        r.spec.host
        for r in reports
        if r.spec.host in members
        and r.spec.type == FailureType.COMPUTE_HOST
        and r.spec.payload.event == "STOPPED"
        and r.phase in (EventPhase.RUNNING, EventPhase.ERROR)
    }
    return SegmentHealth(hosts=len(members), failed_hosts=failed)


def admit(
    report: Report,
    host: HostSpec | None,
    segment: FailoverSegmentSpec | None,
    others: list[Report],
    health: SegmentHealth,
    drain_unfinished: bool = False,
) -> Decision:
    """Decide what happens to a failure report that has not started recovering yet.
    `drain_unfinished`: the host's maintenance drain still owes its instances a move
    (`drain.unfinished`); a failure of the host is then recovered although it is on
    maintenance, and its drain hands over."""
    if host is None:
        return Decision(Verdict.IGNORE, "HostNotFound", f"no Host named {report.spec.host}")
    if segment is None:
        return Decision(Verdict.IGNORE, "SegmentNotFound", f"no FailoverSegment {host.segment}")
    if not segment.enabled:
        return Decision(
            Verdict.IGNORE, "SegmentDisabled", f"segment {host.segment} has recovery disabled"
        )
    # Only a host failure: its instances are lost with it. An instance or process failure
    # of a host on maintenance stays Masakari's, ignored.
    owed = drain_unfinished and report.spec.type == FailureType.COMPUTE_HOST
    if host.on_maintenance and not owed:
        return Decision(
            Verdict.IGNORE, "HostOnMaintenance", f"{report.spec.host} is on maintenance"
        )
    if report.phase in (None, EventPhase.NEW):  # a retry was the original already
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
    return _admit_host_failure(report, host, segment, others, health)


def _admit_host_failure(
    report: Report,
    host: HostSpec,
    segment: FailoverSegmentSpec,
    others: list[Report],
    health: SegmentHealth,
) -> Decision:
    started = started_since(report, others)
    if started is not None:
        return Decision(
            Verdict.IGNORE, "HostRecovered", f"{report.spec.host} reported started ({started.name})"
        )
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
    # Admitted: the recovery's first step fences the host (recovery.fencing), counted by the
    # storm limit from now on, so a partition never has more hosts fenced than the limit.
    return Decision(Verdict.PROCEED)

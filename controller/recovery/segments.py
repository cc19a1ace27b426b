"""A segment's status: host counts, recoveries in flight or blocked, and why recovery may be
blocked. Pure; the handler reads the objects and writes the result."""

from __future__ import annotations

from datetime import datetime

from controller.recovery import capacity as readiness
from controller.recovery.gates import TERMINAL, storm_limit
from controller.recovery.ports import EventRecord, HostRecord
from controller.resources.common import condition_true, set_condition
from controller.resources.failure_event import EventPhase
from controller.resources.host import HostPhase, ReservationState
from controller.resources.segment import (
    CapacityStatus,
    FailoverSegmentSpec,
    FailoverSegmentStatus,
    FencingMethod,
    SegmentPhase,
)


def summarize(
    spec: FailoverSegmentSpec,
    previous: FailoverSegmentStatus,
    hosts: list[HostRecord],
    events: list[EventRecord],
    now: datetime,
    generation: int,
    pacemaker_access: bool | None = None,
    capacity: CapacityStatus | None = None,
) -> FailoverSegmentStatus:
    """`pacemaker_access`: whether the namespace's cloud can be asked about fencing (None
    while the namespace is not bound to a cloud). `capacity`: the latest readiness check
    (recovery.capacity), None while there is none (the last one written stays)."""
    status = previous.model_copy(deep=True)
    phases = [h.status.phase for h in hosts]
    names = {h.name for h in hosts}
    open_events = [e for e in events if e.spec.host in names and e.status.phase not in TERMINAL]
    status.hosts = len(hosts)
    status.active_hosts = phases.count(HostPhase.ACTIVE)
    status.failed_hosts = sum(p in (HostPhase.FAILED, HostPhase.RECOVERING) for p in phases)
    status.maintenance_hosts = phases.count(HostPhase.MAINTENANCE)
    reserved = [h for h in hosts if h.spec.reserved]
    status.reserved_hosts_available = sum(
        h.status.reservation == ReservationState.AVAILABLE and not h.spec.on_maintenance
        for h in reserved
    )
    status.reserved_hosts_in_use = sum(
        h.status.reservation == ReservationState.IN_USE for h in reserved
    )
    status.recoveries_in_flight = sum(e.status.phase == EventPhase.RUNNING for e in open_events)
    blocked = [e for e in open_events if condition_true(e.status.conditions, "Blocked")]
    status.recoveries_blocked = len(blocked)

    limit = storm_limit(spec, len(hosts))
    if not spec.enabled:
        phase, allowed, reason, message = (
            SegmentPhase.DISABLED,
            False,
            "SegmentDisabled",
            "failures are recorded as Ignored",
        )
    elif spec.storm.pause_requests:
        phase, allowed, reason, message = (
            SegmentPhase.PAUSED,
            False,
            "RecoveryPaused",
            "paused: " + "; ".join(spec.storm.pause_requests),
        )
    elif limit is not None and status.failed_hosts >= limit and blocked:
        phase, allowed, reason, message = (
            SegmentPhase.BLOCKED,
            False,
            "StormLimitReached",
            f"{status.failed_hosts} host(s) failed, limit {limit}: new recoveries wait",
        )
    elif status.recoveries_in_flight:
        phase, allowed, reason, message = (
            SegmentPhase.RECOVERING,
            True,
            "Recovering",
            f"{status.recoveries_in_flight} recovery(ies) running",
        )
    else:
        phase, allowed, reason, message = SegmentPhase.READY, True, "Ready", "ready to recover"
    status.phase = phase
    status.observed_generation = generation
    set_condition(status.conditions, "RecoveryAllowed", allowed, reason, message, now, generation)
    degraded = status.failed_hosts > 0 or (status.reserved_hosts_available == 0 and bool(reserved))
    set_condition(
        status.conditions,
        "Degraded",
        degraded,
        "HostsFailed" if status.failed_hosts else "NoReservedHostLeft" if degraded else "Healthy",
        f"{status.failed_hosts} failed host(s), {status.reserved_hosts_available} reserved "
        "host(s) available",
        now,
        generation,
    )
    _fencing_ready(status, spec, pacemaker_access, now, generation)
    _capacity_ready(status, spec, capacity, now, generation)
    return status


def _capacity_ready(
    status: FailoverSegmentStatus,
    spec: FailoverSegmentSpec,
    capacity: CapacityStatus | None,
    now: datetime,
    generation: int,
) -> None:
    if spec.capacity.tolerate_host_failures == 0:
        # Turned off: a verdict nobody renews would be read as today's.
        status.capacity = None
        status.conditions = [c for c in status.conditions if c.type != readiness.CONDITION]
        return
    if capacity is None:
        return
    status.capacity = capacity
    ready, reason, message = readiness.condition(capacity)
    set_condition(status.conditions, readiness.CONDITION, ready, reason, message, now, generation)


def _fencing_ready(
    status: FailoverSegmentStatus,
    spec: FailoverSegmentSpec,
    pacemaker_access: bool | None,
    now: datetime,
    generation: int,
) -> None:
    """Whether a failed host of the segment can be fenced, said before one happens."""
    if spec.fencing.method == FencingMethod.NONE:
        ready, reason, message = (
            False,
            "FencingDisabled",
            "fencing.method is none: a monitor's host_status NORMAL is taken as it is",
        )
    elif pacemaker_access is None:
        ready, reason, message = False, "CloudNotBound", "no cloud to ask (see CloudBound)"
    elif spec.fencing.method in (FencingMethod.REDFISH, FencingMethod.IPMI):
        ready, reason, message = (
            True,
            "BMCFencing",
            f"each Host's BMC powers it off ({spec.fencing.method}); each Host's FencingReady "
            "condition says whether its BMC answers",
        )
    elif pacemaker_access:
        ready, reason, message = (
            True,
            "PacemakerConfigured",
            "the operator asks Pacemaker to fence a failed host and waits for its record",
        )
    else:
        ready, reason, message = (
            False,
            "NoPacemakerAccess",
            "the CloudBinding gives no Pacemaker access: host failures cannot be confirmed "
            f"and end HostNotConfirmedDown after {spec.host_failure.fencing_timeout_seconds}s",
        )
    set_condition(status.conditions, "FencingReady", ready, reason, message, now, generation)

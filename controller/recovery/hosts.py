"""A host's desired state against Nova and Pacemaker, and the status that describes it.

Pure: `plan` looks at the Host, what Nova and Pacemaker report, and the host's FailureEvents,
and says what to change and what status to write. The handler carries the plan out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from controller.recovery import drain as drains
from controller.recovery.bmc_check import Readiness, Target, fencing_ready
from controller.recovery.gates import TERMINAL
from controller.recovery.host_failure import HOST_FAILURE_REASON
from controller.recovery.nova import ComputeService
from controller.recovery.pacemaker import Node
from controller.recovery.ports import EventView, HostRecord
from controller.recovery.retention import ACTED, summarize
from controller.resources.common import set_condition
from controller.resources.failure_event import EventPhase, FailureType
from controller.resources.host import (
    HISTORY_LIMIT,
    FailureRecord,
    HistoryEntry,
    HostPhase,
    HostSpec,
    HostStatus,
    NovaServiceStatus,
    PacemakerNodeStatus,
    ReservationState,
    ServiceHold,
)
from controller.resources.segment import (
    MaintenancePolicy,
    ReturnMode,
    ReturnPolicy,
    UsedReservedHost,
)

OURS = "masakari-operator:"
MAINTENANCE_REASON = f"{OURS} maintenance"
RESERVED_REASON = f"{OURS} reserved host"
# What this reconciler may undo once the host is in service again: its own maintenance and
# reservation, and a released host failure. A process failure is undone only by its STARTED
# report: nova-compute may still be down although Nova has not noticed yet.
UNDOABLE = (MAINTENANCE_REASON, RESERVED_REASON, HOST_FAILURE_REASON)
# A heartbeat older than this is not "reporting": Nova's own service_down_time is 60 s.
REPORTING_WITHIN = timedelta(seconds=60)
# Pacemaker node states (status.pacemaker.state) in which the node is out of the cluster.
# A node in any of these is not up: a node that leaves the cluster shows pending (Pacemaker
# stopped, Corosync still running) on its way out, and one that joins on its way in.
NOT_UP_STATES = ("offline", "unclean", "pending")


@dataclass
class Plan:
    """Changes to make, in order, and the status to write afterwards."""

    disable: str | None = None  # reason
    enable: bool = False
    unforce: bool = False
    standby: bool | None = None  # True: put in standby, False: bring online
    status: HostStatus = field(default_factory=HostStatus)
    transition: tuple[str, str] | None = None  # (reason, message) when the phase changed
    released_holds: list[str] = field(default_factory=list)  # status.serviceHolds to clear


def _open_host_failure(events: Sequence[EventView]) -> EventView | None:
    for event in events:
        if (
            event.spec.type == FailureType.COMPUTE_HOST
            and event.spec.payload.event == "STOPPED"
            and event.status.phase in (EventPhase.RUNNING, EventPhase.ERROR)
        ):
            return event
    return None


def _last_host_failure(
    events: Sequence[EventView], holds: dict[str, ServiceHold]
) -> FailureRecord | None:
    """The latest host failure that took the host out: one acted on (Ignored reports took
    nothing out), or one that recorded a service hold, even if its event has since ended
    Ignored or been deleted."""
    by_name = {e.name: e for e in events}
    failures = [
        (e.created, e.name)
        for e in events
        if e.spec.type == FailureType.COMPUTE_HOST
        and e.spec.payload.event == "STOPPED"
        and (e.status.phase in ACTED or e.name in holds)
    ]
    failures += [(hold.since, name) for name, hold in holds.items() if name not in by_name]
    if not failures:
        return None
    _, name = max(failures)
    event = by_name.get(name)
    if event is None:
        return FailureRecord(event=name, type=FailureType.COMPUTE_HOST, time=holds[name].since)
    return FailureRecord(
        event=name, type=event.spec.type, time=event.spec.generated_time, result=event.status.phase
    )


def _online_since(
    previous: PacemakerNodeStatus | None, node: Node, fenced_at: datetime | None, now: datetime
) -> datetime | None:
    """When the node came online, as far as the operator can tell: the first time it is seen
    online after being seen otherwise, or after a fencing of it that the operator did not see
    happen between two reads."""
    if not node.is_up:
        return previous.online_since if previous else None
    since = previous.online_since if previous and previous.state not in NOT_UP_STATES else None
    if since is None or (fenced_at is not None and fenced_at >= since):
        return now
    return since


def _healthy(
    service: ComputeService | None, node: Node | None, since: datetime, now: datetime
) -> bool:
    """nova-compute reporting again (a forced-down service still heartbeats) after `since`,
    and the Pacemaker node online when the cluster is seen."""
    if service is None or service.updated_at is None:
        return False
    if service.updated_at <= since or now - service.updated_at > REPORTING_WITHIN:
        return False
    return node is None or (node.online and not node.unclean and not node.pending)


def _out_since(status: HostStatus, last: FailureRecord, now: datetime) -> datetime:
    """When the operator saw the failure take the host out. A dead host's last heartbeat can
    be later than the report's time (seconds, from the monitor's clock), never later than
    the operator seeing its recovery start. A host not yet out in its status (a recovery that
    ended between two passes goes straight from Active to Failed) is seen out now: its report
    time alone let a heartbeat sent just before the death pass as a return (found in CI)."""
    out = (HostPhase.RECOVERING, HostPhase.FAILED)
    entered = [e.time for e in status.history if e.phase in out]
    if status.phase not in out or not entered:
        return now
    return max(last.time, entered[-1])


def _returns(
    status: HostStatus,
    policy: ReturnPolicy | None,
    service: ComputeService | None,
    node: Node | None,
    last: FailureRecord,
    now: datetime,
) -> bool:
    """WhenHealthy: whether the failed host has looked healthy for the stable period, without
    interruption (any unhealthy read starts the period again). Records the release in
    status.returnedFailure, so it lasts as a person's spec.releaseFailure would."""
    if policy is None or policy.policy != ReturnMode.WHEN_HEALTHY:
        return False
    if not _healthy(service, node, _out_since(status, last, now), now):
        status.healthy_since = None
        return False
    status.healthy_since = status.healthy_since or now
    if now - status.healthy_since < timedelta(seconds=policy.stable_seconds):
        return False
    status.returned_failure = last.event
    return True


def _back_in_pool(
    spec: HostSpec,
    policy: ReturnPolicy | None,
    instances: int | None,
    recovering: EventView | None,
) -> bool:
    """ReturnsWhenEmpty: a used reserved host with nothing left on it, once the recovery that
    took it ended, is spare again. A new recovery taking it names it again, in an event of
    another name: in use again."""
    return (
        policy is not None
        and policy.used_reserved_host == UsedReservedHost.RETURNS_WHEN_EMPTY
        and instances == 0
        and recovering is None
        and not spec.on_maintenance
    )


def maintenance_since(status: HostStatus, now: datetime) -> datetime | None:
    """When the host entered its current phase Maintenance (now, if it is entering it); None
    if its history does not say, which keeps the drain it has: a guess of "now" would start a
    new drain on every pass."""
    if status.phase != HostPhase.MAINTENANCE:
        return now
    return entered_maintenance(status)


def entered_maintenance(status: HostStatus) -> datetime | None:
    """When the host last entered phase Maintenance, by its history; None if it does not say.
    A failed host has left that phase, its drain's maintenance is still this one."""
    for entry in reversed(status.history):
        if entry.phase == HostPhase.MAINTENANCE:
            return entry.time
    return None


def _taken_last(event: EventView) -> tuple[bool, datetime, datetime, str]:
    # A host is taken again only once returned, and returned only once its taker ended, so
    # the uses follow one another: the last taker is the one still running, else the last to
    # end. Not the creation time: Kubernetes keeps whole seconds, and a report admitted after
    # a wait may have taken the host after a later report.
    end = event.status.end_time
    return (end is None, end or datetime.min.replace(tzinfo=UTC), event.created, event.name)


def reserved_by(host: HostRecord, events: Sequence[EventView]) -> EventView | None:
    """The recovery that last took this reserved host and that the host has not shown
    returned to the pool: the events are the record, the Host's status only catches up."""
    takers = [e for e in events if host.nova_host in e.status.reserved_hosts]
    taker = max(takers, key=_taken_last, default=None)
    if taker is not None and host.status.reservation_returned == taker.name:
        return None
    return taker


def plan(
    host: HostRecord,
    service: ComputeService | None,
    node: Node | None,
    own_events: Sequence[EventView],
    all_events: Sequence[EventView],
    now: datetime,
    generation: int,
    fenced_at: datetime | None = None,
    fencing: Target | None = None,
    bmc_checked: Readiness | None = None,
    maintenance: MaintenancePolicy | None = None,
    returning: ReturnPolicy | None = None,
    instances: int | None = None,
) -> Plan:
    """`fenced_at`: when Pacemaker last fenced the node, if it did. `fencing`: how the host's
    BMC is checked when its segment fences by BMC; `bmc_checked`: the last check's result
    (recovery.bmc_check), shown as the FencingReady condition. `maintenance`: the segment's
    drain policy; a draining host goes to standby once its drain is over. `returning`: the
    segment's return policy; WhenHealthy releases a failed host by itself (`_returns`).
    `instances`: how many servers a used reserved host still runs, when its segment returns
    such hosts to the pool once empty (read only then)."""
    result = Plan()
    status = host.status.model_copy(deep=True)
    spec = host.spec
    recovering = _open_host_failure(own_events)
    last = _last_host_failure(own_events, status.service_holds)
    released = last is None or last.event in (spec.release_failure, status.returned_failure)
    if not released and last is not None and recovering is None:
        released = _returns(status, returning, service, node, last, now)
    if released or recovering is not None:
        status.healthy_since = None
    taker = reserved_by(host, all_events) if spec.reserved else None
    if (
        taker is not None
        and taker.status.phase in TERMINAL
        and _back_in_pool(spec, returning, instances, recovering)
    ):
        status.reservation_returned, taker = taker.name, None

    if last is not None:
        status.last_failure = last
    # Folded in on every resync, before the retention pass may delete an event: it deletes
    # only what this summary already shows (retention.summarized).
    status.recent_failures, status.last_recovery = summarize(status, own_events, now)
    status.reservation = (
        ReservationState.NOT_RESERVED
        if not spec.reserved
        else ReservationState.IN_USE
        if taker is not None
        else ReservationState.AVAILABLE
    )
    status.reserved_for = taker.name if taker is not None else None

    maintenance_blocked = spec.on_maintenance and recovering is not None
    since = maintenance_since(status, now)
    standby_ok = drains.standby_allowed(maintenance, status.drain, since, service)
    phase, reason, why = _decide(
        result, spec, service, node, recovering, last, released, taker, standby_ok,
        returning is not None and returning.policy == ReturnMode.WHEN_HEALTHY,
    )  # fmt: skip
    status.nova = (
        NovaServiceStatus(
            id=service.id,
            state=service.state,
            status=service.status,
            forced_down=service.forced_down,
            disabled_reason=service.disabled_reason,
            updated_at=service.updated_at,
            observed_at=now,
        )
        if service is not None
        else status.nova
    )
    if node is not None:
        state = (
            "unclean"
            if node.unclean
            else "pending"
            if node.pending
            else "maintenance"
            if node.maintenance
            else "standby"
            if node.standby
            else "online"
            if node.online
            else "offline"
        )
        status.pacemaker = PacemakerNodeStatus(
            state=state,
            remote=node.is_remote,
            observed_at=now,
            online_since=_online_since(status.pacemaker, node, fenced_at, now),
        )
    if (
        released
        and recovering is None
        and service is not None
        and not service.forced_down
        and not (service.disabled_reason or "").startswith(HOST_FAILURE_REASON)
    ):
        # Released and nothing of the recovery left in Nova: the holds have done their work.
        result.released_holds = sorted(status.service_holds)
        status.service_holds = {}

    if status.phase != phase:
        status.history.append(HistoryEntry(time=now, phase=phase, reason=reason, message=why))
        del status.history[:-HISTORY_LIMIT]
        result.transition = (reason, f"{status.phase or 'Pending'} -> {phase}: {why}")
    status.phase = phase
    status.observed_generation = generation
    set_condition(
        status.conditions,
        "MaintenanceBlocked",
        maintenance_blocked,
        "RecoveryInProgress" if maintenance_blocked else "NotBlocked",
        f"maintenance waits for recovery {recovering.name}"
        if maintenance_blocked and recovering
        else "",
        now,
        generation,
    )
    set_condition(
        status.conditions,
        "Ready",
        phase in (HostPhase.ACTIVE, HostPhase.RESERVED),
        reason,
        why,
        now,
        generation,
    )
    fencing_ready(status.conditions, fencing, bmc_checked, now, generation)
    result.status = status
    return result


def _decide(
    result: Plan,
    spec: HostSpec,
    service: ComputeService | None,
    node: Node | None,
    recovering: EventView | None,
    last: FailureRecord | None,
    released: bool,
    taker: EventView | None,
    standby_ok: bool = True,
    auto_return: bool = False,
) -> tuple[HostPhase, str, str]:
    """The host's phase, and the changes that bring Nova and Pacemaker in line with spec.

    Only a service this operator disabled (its reason is UNDOABLE) is ever re-enabled here:
    a person who disabled a compute service keeps that decision.
    """
    if service is None:
        return HostPhase.UNKNOWN, "NovaServiceMissing", "no nova-compute service for this host"
    if recovering is not None:
        return HostPhase.RECOVERING, "Recovering", f"recovery {recovering.name} is running"
    if not released and last is not None:
        return (
            HostPhase.FAILED,
            "AwaitingRelease",
            f"failed ({last.event}); set spec.releaseFailure: {last.event} to return it"
            + (", or it returns once healthy" if auto_return else ""),
        )
    if spec.on_maintenance:
        # Disabled at once, so nothing new is scheduled here while the drain runs.
        if service.is_enabled:
            result.disable = MAINTENANCE_REASON
        if not standby_ok:
            return HostPhase.MAINTENANCE, "Draining", "on maintenance: draining"
        if node is not None and not node.standby:
            result.standby = True
        return HostPhase.MAINTENANCE, "OnMaintenance", "on maintenance"
    if spec.reserved and taker is None:
        if service.is_enabled:
            result.disable = RESERVED_REASON
        return HostPhase.RESERVED, "Reserved", "reserved: kept out of the scheduler"
    ours = (service.disabled_reason or "").startswith(UNDOABLE)
    if node is not None and node.standby and ours:
        result.standby = False
    if service.forced_down and last is not None:
        result.unforce = True  # released after a failure: let Nova see the service again
        return HostPhase.FAILED, "AwaitingHealthy", "released; clearing forced-down"
    if not service.is_enabled and ours:
        if not service.is_up:
            return (
                HostPhase.FAILED if last else HostPhase.ACTIVE,
                "AwaitingHealthy",
                "waiting for nova-compute to report up before enabling it",
            )
        result.enable = True
    return HostPhase.ACTIVE, "InService", "in service"

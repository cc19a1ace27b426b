"""Hosts coming back (hosts.plan with a segment's spec.returnToService) and maintenance that
waits for its drain before standby."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controller.recovery import hosts
from controller.recovery.hosts import HOST_FAILURE_REASON
from controller.recovery.nova import ComputeService
from controller.recovery.pacemaker import Node, NodeType
from controller.recovery.ports import EventRecord, HostRecord
from controller.resources.failure_event import (
    EventPhase,
    FailureEventSpec,
    FailureEventStatus,
)
from controller.resources.host import (
    DrainPhase,
    DrainStatus,
    HistoryEntry,
    HostPhase,
    HostSpec,
    HostStatus,
)
from controller.resources.segment import DrainMode, MaintenancePolicy, ReturnPolicy

FAILED_AT = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
WHEN_HEALTHY = ReturnPolicy(policy="WhenHealthy", stable_seconds=300)
MANUAL = ReturnPolicy()
# The host as the pass after its recovery left it: out, in the operator's own time.
OUT = HostStatus(
    phase=HostPhase.FAILED,
    history=[HistoryEntry(time=FAILED_AT, phase=HostPhase.FAILED, reason="AwaitingRelease")],
)


def _failure() -> EventRecord:
    spec = FailureEventSpec.model_validate(
        {
            "type": "COMPUTE_HOST",
            "host": "c1",
            "generatedTime": FAILED_AT.isoformat(),
            "payload": {"event": "STOPPED", "host_status": "NORMAL", "cluster_status": "OFFLINE"},
        }
    )
    status = FailureEventStatus(phase=EventPhase.FINISHED)
    return EventRecord("c1-down", "ns", spec, status, FAILED_AT)


def _service(heartbeat: datetime | None, forced: bool = True) -> ComputeService:
    return ComputeService(
        "s1", "c1", "down" if forced else "up", "disabled", forced,
        f"{HOST_FAILURE_REASON} (c1-down)", heartbeat,
    )  # fmt: skip


def _node(online: bool) -> Node:
    return Node("c1", "1", NodeType.MEMBER, online, False, False, False, False, False, online)


def _host(status: HostStatus, **spec: object) -> HostRecord:
    return HostRecord("c1", HostSpec.model_validate({"segment": "seg", **spec}), status, FAILED_AT)


def _pass(
    status: HostStatus,
    now: datetime,
    policy: ReturnPolicy,
    heartbeat_age: float = 5,
    online: bool | None = True,
) -> hosts.Plan:
    service = _service(now - timedelta(seconds=heartbeat_age))
    node = _node(online) if online is not None else None
    events = [_failure()]
    return hosts.plan(_host(status), service, node, events, events, now, 1, returning=policy)


def test_manual_keeps_a_healthy_host_failed() -> None:
    status = HostStatus()
    for minutes in (1, 10, 60):
        plan = _pass(status, FAILED_AT + timedelta(minutes=minutes), MANUAL)
        status = plan.status
        assert status.phase == HostPhase.FAILED and not plan.unforce


def test_when_healthy_returns_the_host_after_the_stable_period_and_keeps_it_returned() -> None:
    status = _pass(OUT, FAILED_AT + timedelta(minutes=1), WHEN_HEALTHY).status
    assert status.phase == HostPhase.FAILED and status.healthy_since is not None
    status = _pass(status, FAILED_AT + timedelta(minutes=5), WHEN_HEALTHY).status
    assert status.phase == HostPhase.FAILED  # 4 minutes healthy of 5
    plan = _pass(status, FAILED_AT + timedelta(minutes=6, seconds=1), WHEN_HEALTHY)
    assert plan.unforce, "released: forced-down is cleared"
    assert plan.status.returned_failure == "c1-down"
    assert plan.status.healthy_since is None
    # Later passes keep the release, as spec.releaseFailure would.
    later = _pass(plan.status, FAILED_AT + timedelta(minutes=7), WHEN_HEALTHY, online=False)
    assert later.unforce


def test_an_unhealthy_read_starts_the_stable_period_again() -> None:
    status = _pass(OUT, FAILED_AT + timedelta(minutes=1), WHEN_HEALTHY).status
    status = _pass(status, FAILED_AT + timedelta(minutes=4), WHEN_HEALTHY, online=False).status
    assert status.healthy_since is None
    status = _pass(status, FAILED_AT + timedelta(minutes=5), WHEN_HEALTHY).status
    plan = _pass(status, FAILED_AT + timedelta(minutes=9), WHEN_HEALTHY)
    assert not plan.unforce and plan.status.phase == HostPhase.FAILED


def test_a_heartbeat_older_than_the_failure_or_stale_is_not_healthy() -> None:
    now = FAILED_AT + timedelta(minutes=1)
    stale = _pass(OUT, now, WHEN_HEALTHY, heartbeat_age=120)
    assert stale.status.healthy_since is None
    early = FAILED_AT + timedelta(seconds=30)
    before = _pass(OUT, early, WHEN_HEALTHY, heartbeat_age=31)
    assert before.status.healthy_since is None
    after = _pass(OUT, early, WHEN_HEALTHY, heartbeat_age=29)
    assert after.status.healthy_since is not None


def test_a_dead_hosts_last_heartbeat_after_the_report_is_not_healthy() -> None:
    """Found on the simulator: the monitor's report (seconds) came before Nova's last
    heartbeat of the dying host. Only a heartbeat after the recovery started counts."""
    out = FAILED_AT + timedelta(seconds=20)
    status = HostStatus(
        phase=HostPhase.FAILED,
        history=[HistoryEntry(time=out, phase=HostPhase.RECOVERING, reason="Recovering")],
    )
    now = FAILED_AT + timedelta(seconds=40)
    dead = _pass(status, now, WHEN_HEALTHY, heartbeat_age=30)  # beat at +10 s, fresh
    assert dead.status.healthy_since is None
    alive = _pass(status, now, WHEN_HEALTHY, heartbeat_age=5)
    assert alive.status.healthy_since is not None


def test_a_host_entering_failed_is_not_healthy_on_that_pass() -> None:
    """Found in CI: a recovery that ended between two passes takes the host from Active
    straight to Failed, with no entry of its own time yet; the report's time (whole seconds)
    was then the only bound, and the dead host's last heartbeat, a moment later, passed."""
    now = FAILED_AT + timedelta(seconds=2)
    active = HostStatus(
        phase=HostPhase.ACTIVE,
        history=[
            HistoryEntry(
                time=FAILED_AT - timedelta(hours=1), phase=HostPhase.ACTIVE, reason="InService"
            )
        ],
    )
    entering = _pass(active, now, WHEN_HEALTHY, heartbeat_age=1.5)  # beat at +0.5 s
    assert entering.status.phase == HostPhase.FAILED
    assert entering.status.healthy_since is None
    still_dead = _pass(entering.status, now + timedelta(seconds=5), WHEN_HEALTHY, heartbeat_age=6.5)
    assert still_dead.status.healthy_since is None
    beating = _pass(entering.status, now + timedelta(seconds=5), WHEN_HEALTHY, heartbeat_age=1)
    assert beating.status.healthy_since is not None


def test_without_pacemaker_nova_alone_decides() -> None:
    plan = _pass(OUT, FAILED_AT + timedelta(minutes=1), WHEN_HEALTHY, online=None)
    assert plan.status.healthy_since is not None


LIVE = MaintenancePolicy(drain=DrainMode.LIVE_MIGRATE)


def _maintenance(drain: DrainStatus | None, now: datetime) -> hosts.Plan:
    service = ComputeService("s1", "c1", "up", "enabled", False, None, now)
    status = HostStatus(drain=drain)
    return hosts.plan(
        _host(status, onMaintenance=True), service, _node(True), [], [], now, 1, maintenance=LIVE
    )


def test_maintenance_disables_at_once_and_waits_for_the_drain_before_standby() -> None:
    now = FAILED_AT
    waiting = _maintenance(None, now)
    assert waiting.disable and waiting.standby is None
    assert waiting.status.phase == HostPhase.MAINTENANCE
    running = DrainStatus(phase=DrainPhase.DRAINING, mode="LiveMigrate", start_time=now)
    assert _maintenance(running, now).standby is None
    ended = running.model_copy(update={"phase": DrainPhase.DRAINED, "end_time": now})
    assert _maintenance(ended, now).standby is True


def _taker(
    name: str, later: int = 0, ended: int | None = 0, created: datetime | None = None
) -> EventRecord:
    """A recovery that took reserved host c1, `later` minutes after FAILED_AT, and ended
    `ended` minutes after that (None: still running)."""
    event = _failure()
    start = FAILED_AT + timedelta(minutes=later)
    status = FailureEventStatus(
        phase=EventPhase.FINISHED if ended is not None else EventPhase.RUNNING,
        reserved_hosts=["c1"],
        start_time=start,
        end_time=start + timedelta(minutes=ended) if ended is not None else None,
    )
    return EventRecord(
        name, "ns", event.spec.model_copy(update={"host": "c9"}), status, created or start
    )


def _reserved_pass(
    status: HostStatus, policy: ReturnPolicy, instances: int | None, takers: list[EventRecord]
) -> hosts.Plan:
    now = FAILED_AT + timedelta(hours=1)
    service = ComputeService("s1", "c1", "up", "enabled", False, None, now)
    return hosts.plan(
        _host(status, reserved=True), service, None, [], takers, now, 1,
        returning=policy, instances=instances,
    )  # fmt: skip


def test_a_used_reserved_host_returns_to_the_pool_once_empty() -> None:
    policy = ReturnPolicy(usedReservedHost="ReturnsWhenEmpty")
    takers = [_taker("c9-down")]
    busy = _reserved_pass(HostStatus(), policy, 2, takers)
    assert busy.status.reservation == "InUse" and busy.disable is None
    empty = _reserved_pass(busy.status, policy, 0, takers)
    assert empty.status.reservation == "Available"
    assert empty.disable == hosts.RESERVED_REASON  # out of the scheduler again
    assert empty.status.reservation_returned == "c9-down"
    # Not read again once Available: it stays in the pool...
    assert _reserved_pass(empty.status, policy, None, takers).status.reservation == "Available"
    # ...until another recovery takes it.
    again = _reserved_pass(empty.status, policy, None, [*takers, _taker("c8-down", later=30)])
    assert again.status.reservation == "InUse" and again.status.reserved_for == "c8-down"


def test_by_default_a_used_reserved_host_stays_in_use_even_empty() -> None:
    plan = _reserved_pass(HostStatus(), ReturnPolicy(), 0, [_taker("c9-down")])
    assert plan.status.reservation == "InUse"


def test_a_reserved_host_is_not_returned_while_the_recovery_that_took_it_runs() -> None:
    """Empty is not done: a recovery that took the host and has not landed anything on it yet
    leaves it empty. Returned then, it would be disabled again under the recovery's moves."""
    policy = ReturnPolicy(usedReservedHost="ReturnsWhenEmpty")
    plan = _reserved_pass(HostStatus(), policy, 0, [_taker("c9-down", ended=None)])
    assert plan.status.reservation == "InUse" and plan.status.reservation_returned is None
    assert plan.disable is None


def test_the_last_recovery_to_take_a_reserved_host_is_the_last_to_end() -> None:
    """Kubernetes' creationTimestamp has whole seconds: two reports of one second tie, and
    their names say nothing of which took the host last. The one that ended last (or still
    runs) is the host's user: a host is taken again only after its return, so each use ends
    before the next begins."""
    policy = ReturnPolicy(usedReservedHost="ReturnsWhenEmpty")
    same_second = FAILED_AT
    first = _taker("ev8", later=0, ended=1, created=same_second)
    second = _taker("ev10", later=5, ended=None, created=same_second)  # "ev10" < "ev8"
    returned = HostStatus(reservation_returned="ev8", reservation="Available")
    plan = _reserved_pass(returned, policy, 1, [first, second])
    assert (plan.status.reservation, plan.status.reserved_for) == ("InUse", "ev10")
    assert hosts.reserved_by(_host(returned, reserved=True), [first, second]) is second

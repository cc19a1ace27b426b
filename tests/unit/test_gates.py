"""The gates before any recovery action."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from controller.recovery.gates import Report, SegmentHealth, Verdict, admit
from controller.resources.failure_event import FailureEventSpec
from controller.resources.host import HostSpec
from controller.resources.segment import FailoverSegmentSpec

T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
STOPPED = {"event": "STOPPED", "host_status": "NORMAL", "cluster_status": "OFFLINE"}


def report(
    name: str = "ev",
    host: str = "h1",
    kind: str = "COMPUTE_HOST",
    payload: dict[str, Any] | None = None,
    at: datetime = T0,
    phase: str | None = None,
) -> Report:
    spec = FailureEventSpec.model_validate(
        {"type": kind, "host": host, "generatedTime": at.isoformat(), "payload": payload or STOPPED}
    )
    return Report(name, spec, created=at, phase=phase)


def segment(**spec: Any) -> FailoverSegmentSpec:
    return FailoverSegmentSpec.model_validate(
        {"recoveryMethod": "auto", "serviceType": "COMPUTE", **spec}
    )


HOST = HostSpec(segment="seg")
HEALTHY = SegmentHealth(hosts=10)


def decide(
    rep: Report,
    host: HostSpec | None = HOST,
    seg: FailoverSegmentSpec | None = None,
    others: list[Report] | None = None,
    health: SegmentHealth = HEALTHY,
) -> tuple[str, str]:
    decision = admit(rep, host, seg if seg is not None else segment(), others or [], health)
    return decision.verdict, decision.reason


def test_confirmed_host_failure_proceeds() -> None:
    assert decide(report()) == (Verdict.PROCEED, "")


def test_unknown_host_and_segment() -> None:
    assert decide(report(), host=None) == (Verdict.IGNORE, "HostNotFound")
    assert admit(report(), HOST, None, [], HEALTHY).reason == "SegmentNotFound"


def test_disabled_segment_and_maintenance_are_ignored() -> None:
    assert decide(report(), seg=segment(enabled=False)) == (Verdict.IGNORE, "SegmentDisabled")
    on_maintenance = HostSpec(segment="seg", on_maintenance=True)
    assert decide(report(), host=on_maintenance) == (Verdict.IGNORE, "HostOnMaintenance")


def test_duplicates_from_several_monitors_become_one() -> None:
    first = report("first", at=T0)
    second = report("second", at=T0 + timedelta(seconds=2))
    assert decide(first, others=[second]) == (Verdict.PROCEED, "")
    assert decide(second, others=[first]) == (Verdict.IGNORE, "Duplicate")


def test_same_payload_outside_the_window_is_not_a_duplicate() -> None:
    old = report("old", at=T0, phase="Finished")
    new = report("new", at=T0 + timedelta(minutes=10))
    assert decide(new, others=[old]) == (Verdict.PROCEED, "")


def test_open_host_recovery_absorbs_later_stopped_reports() -> None:
    running = report("running", at=T0, phase="Running")
    later = report(
        "later",
        at=T0 + timedelta(minutes=10),
        payload={"event": "STOPPED", "host_status": "UNKNOWN"},
    )
    assert decide(later, others=[running]) == (Verdict.IGNORE, "Duplicate")


def test_other_hosts_and_types_are_not_duplicates() -> None:
    other_host = report("x", host="h2", at=T0 - timedelta(seconds=1))
    assert decide(report(), others=[other_host]) == (Verdict.PROCEED, "")


def test_unconfirmed_host_failure_asks_for_fencing() -> None:
    unknown = report(payload={"event": "STOPPED", "host_status": "UNKNOWN"})
    assert decide(unknown) == (Verdict.CONFIRM_FENCING, "AwaitingFencing")


def test_pause_and_storm_limits() -> None:
    paused = segment(storm={"pauseRequests": ["alice: storage work"]})
    assert decide(report(), seg=paused) == (Verdict.WAIT, "RecoveryPaused")
    one = segment(storm={"maxFailedHosts": 1})
    assert decide(report(), seg=one, health=SegmentHealth(10, {"h1"})) == (Verdict.PROCEED, "")
    assert decide(report(), seg=one, health=SegmentHealth(10, {"h2"})) == (
        Verdict.WAIT,
        "StormLimitReached",
    )
    percent = segment(storm={"maxFailedHostsPercent": 20})  # 2 of 10
    assert decide(report(), seg=percent, health=SegmentHealth(10, {"h2"}))[0] == Verdict.PROCEED
    assert decide(report(), seg=percent, health=SegmentHealth(10, {"h2", "h3"}))[0] == Verdict.WAIT
    tiny = segment(storm={"maxFailedHostsPercent": 10})  # rounds down to 0: at least one
    assert decide(report(), seg=tiny, health=SegmentHealth(3, set()))[0] == Verdict.PROCEED


def test_vm_events_outside_the_table_are_ignored() -> None:
    crash = {
        "event": "LIFECYCLE",
        "vir_domain_event": "STOPPED_FAILED",
        "instance_uuid": "8f2a5f0e-7a38-4c8b-9d43-2f1b6c1f0a11",
    }
    assert decide(report(kind="VM", payload=crash)) == (Verdict.PROCEED, "")
    shutdown = {**crash, "vir_domain_event": "STOPPED_SHUTDOWN"}
    assert decide(report(kind="VM", payload=shutdown)) == (Verdict.IGNORE, "NotRecoverableEvent")

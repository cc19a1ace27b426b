"""The gates before any recovery action."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.recovery.gates import Report, SegmentHealth, Verdict, admit, segment_health
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


PASSED = (Verdict.PROCEED, "")


def test_a_host_failure_passing_the_gates_is_admitted_to_be_fenced() -> None:
    """A NORMAL report is a claim: the recovery's fencing step (recovery.fencing) decides."""
    assert decide(report()) == PASSED


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
    assert decide(first, others=[second]) == PASSED
    assert decide(second, others=[first]) == (Verdict.IGNORE, "Duplicate")


def test_same_payload_outside_the_window_is_not_a_duplicate() -> None:
    old = report("old", at=T0, phase="Finished")
    new = report("new", at=T0 + timedelta(minutes=10))
    assert decide(new, others=[old]) == PASSED


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
    assert decide(report(), others=[other_host]) == PASSED


def test_unconfirmed_host_failure_asks_for_fencing() -> None:
    unknown = report(payload={"event": "STOPPED", "host_status": "UNKNOWN"})
    assert decide(unknown) == PASSED


UNKNOWN = {"event": "STOPPED", "host_status": "UNKNOWN", "cluster_status": "OFFLINE"}


def test_a_confirmed_report_takes_over_from_a_held_unconfirmed_one() -> None:
    """Defect 7: an UNKNOWN report still New made a later NORMAL one a duplicate, then timed out
    HostNotConfirmedDown: nothing was recovered although a monitor confirmed the failure."""
    held = report("held", at=T0, payload=UNKNOWN, phase="New")
    confirmed = report("confirmed", at=T0 + timedelta(seconds=30))
    assert decide(confirmed, others=[held]) == PASSED
    assert decide(held, others=[confirmed]) == (Verdict.IGNORE, "Duplicate")
    # Once admitted, the unconfirmed one is the original whatever comes later.
    running = report("held", at=T0, payload=UNKNOWN, phase="Running")
    assert decide(confirmed, others=[running]) == (Verdict.IGNORE, "Duplicate")


def test_a_retry_is_never_a_duplicate() -> None:
    """Every attempt passes the gates; a retry was the original when it was first admitted."""
    retry = report("retry", at=T0 + timedelta(seconds=5), phase="Error")
    earlier = report("earlier", at=T0, phase="Ignored")
    assert decide(retry, others=[earlier]) == PASSED
    assert decide(retry, seg=segment(enabled=False)) == (Verdict.IGNORE, "SegmentDisabled")
    paused = segment(storm={"pauseRequests": ["bob: network work"]})
    assert decide(retry, seg=paused) == (Verdict.WAIT, "RecoveryPaused")


def test_a_newer_started_report_means_the_host_came_back() -> None:
    """Defect 5: a three-hour-old STOPPED held by a pause was admitted after a STARTED for
    that host had finished."""
    old = report("old", at=T0, phase="New")
    started = report(
        "up", at=T0 + timedelta(hours=3), payload={"event": "STARTED"}, phase="Finished"
    )
    paused = segment(storm={"pauseRequests": ["alice: storage work"]})
    assert decide(old, seg=paused, others=[started]) == (Verdict.IGNORE, "HostRecovered")
    before = report("up", at=T0 - timedelta(minutes=1), payload={"event": "STARTED"})
    assert decide(old, others=[before]) == PASSED


def test_segment_health_counts_admitted_recoveries_before_host_status_shows_them() -> None:
    """Defect 6: Host status lags a resync behind; an admitted recovery counts at once."""
    members = {"h1": False, "h2": False, "h3": True, "h4": False}
    events = [
        report("a", host="h1", phase="Running"),
        report("b", host="h2", phase="New"),
        report("c", host="h4", phase="Finished"),
        report("d", host="elsewhere", phase="Running"),
    ]
    health = segment_health(members, events)
    assert (health.hosts, health.failed_hosts) == (4, {"h1", "h3"})


def test_pause_and_storm_limits() -> None:
    paused = segment(storm={"pauseRequests": ["alice: storage work"]})
    assert decide(report(), seg=paused) == (Verdict.WAIT, "RecoveryPaused")
    one = segment(storm={"maxFailedHosts": 1})
    assert decide(report(), seg=one, health=SegmentHealth(10, {"h1"})) == PASSED
    assert decide(report(), seg=one, health=SegmentHealth(10, {"h2"})) == (
        Verdict.WAIT,
        "StormLimitReached",
    )
    percent = segment(storm={"maxFailedHostsPercent": 20})  # 2 of 10
    assert decide(report(), seg=percent, health=SegmentHealth(10, {"h2"})) == PASSED
    assert decide(report(), seg=percent, health=SegmentHealth(10, {"h2", "h3"}))[0] == Verdict.WAIT
    tiny = segment(storm={"maxFailedHostsPercent": 10})  # rounds down to 0: at least one
    assert decide(report(), seg=tiny, health=SegmentHealth(3, set())) == PASSED


def test_vm_events_outside_the_table_are_ignored() -> None:
    crash = {
        "event": "LIFECYCLE",
        "vir_domain_event": "STOPPED_FAILED",
        "instance_uuid": "8f2a5f0e-7a38-4c8b-9d43-2f1b6c1f0a11",
    }
    assert decide(report(kind="VM", payload=crash)) == (Verdict.PROCEED, "")
    shutdown = {**crash, "vir_domain_event": "STOPPED_SHUTDOWN"}
    assert decide(report(kind="VM", payload=shutdown)) == (Verdict.IGNORE, "NotRecoverableEvent")


def test_reports_created_in_the_same_second_have_one_original() -> None:
    """creationTimestamp has a resolution of one second: three monitors' reports tie on it, and
    one ended Ignored as a duplicate must not become the original of the one it duplicates."""
    names = ["c1-from-node2", "c1-from-node3", "c1-from-node4"]
    reports = {n: report(n, at=T0) for n in names}
    duplicate = dataclasses.replace(reports["c1-from-node3"], phase="Ignored")
    assert decide(reports["c1-from-node2"], others=[duplicate, reports["c1-from-node4"]]) == PASSED
    verdicts = [
        decide(reports[n], others=[r for m, r in reports.items() if m != n])[0] for n in names
    ]
    assert verdicts == [Verdict.PROCEED, Verdict.IGNORE, Verdict.IGNORE]


def test_a_failure_after_the_host_came_back_is_new_when_the_first_moved_nothing() -> None:
    """Defect 9 (issue 16, flapping): down, up, down within the 180 s window. The first report
    ended Ignored without acting (its host back before it was admitted or confirmed off,
    HostRecovered), the host reported started, then failed again: the second failure was taken
    for a duplicate of the first, and the host, down for good, was never recovered."""
    first = report("first", at=T0, phase="Ignored")
    up = report("up", at=T0 + timedelta(seconds=8), payload={"event": "STARTED"}, phase="Finished")
    again = report("again", at=T0 + timedelta(seconds=15))
    assert decide(again, others=[first, up]) == PASSED
    # Without a return in between, it is the same failure reported again.
    assert decide(again, others=[first]) == (Verdict.IGNORE, "Duplicate")
    # A first report that acted (instances moved) stays the original, as in Masakari: the
    # host came back and fell again within the window, one recovery covers it.
    for acted in ("Finished", "Failed"):
        recovered = report("first", at=T0, phase=acted)
        assert decide(again, others=[recovered, up]) == (Verdict.IGNORE, "Duplicate")


def test_a_failure_after_the_host_came_back_is_new_when_the_first_still_waits() -> None:
    """Defect 10 (issue 16, flapping while the segment is paused): the first STOPPED waited as
    New, the host reported started, then failed again. The second was taken for a duplicate of
    the first, still open; the first, once let through, ended HostRecovered (the host had come
    back after it): nothing recovered the host that was down for good."""
    first = report("first", at=T0, phase="New")
    up = report("up", at=T0 + timedelta(seconds=8), payload={"event": "STARTED"}, phase="Finished")
    again = report("again", at=T0 + timedelta(seconds=15))
    paused = segment(storm={"pauseRequests": ["carol: switch upgrade"]})
    assert decide(again, seg=paused, others=[first, up]) == (Verdict.WAIT, "RecoveryPaused")
    assert decide(again, others=[first, up]) == PASSED
    assert decide(first, others=[up, again]) == (Verdict.IGNORE, "HostRecovered")
    # An admitted first report stays the original: it acts for the host, as long as it is open.
    running = report("first", at=T0, phase="Running")
    assert decide(again, others=[running, up]) == (Verdict.IGNORE, "Duplicate")

"""Bounded history: which ended FailureEvents go, and what the Host keeps of them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.recovery.ports import EventRecord, HostRecord, by_host
from controller.recovery.retention import (
    FAILURE_WINDOW,
    Policy,
    Reason,
    judge,
    of_segment,
    summarize,
    to_delete,
)
from controller.resources.failure_event import FailureEventSpec, FailureEventStatus
from controller.resources.host import FAILURES_KEPT, HostSpec, HostStatus, ServiceHold
from controller.resources.segment import FailoverSegmentSpec

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
STOPPED = {"event": "STOPPED", "host_status": "NORMAL", "cluster_status": "OFFLINE"}
VM = {
    "event": "LIFECYCLE",
    "instance_uuid": "6f1d2c3b-0000-4000-8000-000000000001",
    "vir_domain_event": "STOPPED_FAILED",
}
POLICY = Policy(
    ttl=7 * DAY,
    keep_per_host=20,
    restart_window=timedelta(hours=1),
    settle=timedelta(minutes=10),
)


def event(
    name: str,
    host: str = "h1",
    kind: str = "PROCESS",
    age: timedelta = 10 * DAY,
    phase: str | None = "Finished",
    payload: dict[str, Any] | None = None,
    **status: Any,
) -> EventRecord:
    at = NOW - age
    if payload is None:
        payload = {"event": "STOPPED", "process_name": "nova-compute"}
    spec = FailureEventSpec.model_validate(
        {"type": kind, "host": host, "generatedTime": at.isoformat(), "payload": payload}
    )
    if phase in ("Finished", "Ignored", "Failed"):
        status.setdefault("endTime", (at + timedelta(minutes=1)).isoformat())
    return EventRecord(
        name=name,
        namespace="ns",
        spec=spec,
        status=FailureEventStatus.model_validate({"phase": phase, **status}),
        created=at,
    )


def host(
    name: str = "h1", events: Sequence[EventRecord] = (), spec: Any = None, **status: Any
) -> HostRecord:
    """A Host whose summary already shows `events` (the reconciler has folded them in)."""
    base = HostStatus.model_validate(status)
    base.recent_failures, base.last_recovery = summarize(base, events, NOW)
    return HostRecord(
        name=name,
        spec=HostSpec.model_validate({"segment": "seg", **(spec or {})}),
        status=base,
        created=NOW - 100 * DAY,
    )


def reasons(
    events: list[EventRecord], hosts: list[HostRecord], policy: Policy = POLICY
) -> dict[str, str]:
    return {d.event: d.reason for d in judge(events, hosts, policy, NOW)}


def test_an_old_ended_event_expires() -> None:
    old = event("old")
    assert reasons([old], [host(events=[old])]) == {"old": Reason.EXPIRED}


def test_a_recent_one_is_retained() -> None:
    fresh = event("fresh", age=DAY)
    assert reasons([fresh], [host(events=[fresh])]) == {"fresh": Reason.RETAINED}


def test_only_the_newest_per_host_are_kept() -> None:
    events = [event(f"e{i}", age=DAY + timedelta(minutes=i)) for i in range(25)]
    other = [event(f"o{i}", host="h2", age=DAY) for i in range(3)]
    got = reasons(events + other, [host(events=events), host("h2", events=other)])
    assert sorted(n for n, r in got.items() if r == Reason.BEYOND_COUNT) == sorted(
        f"e{i}" for i in range(20, 25)
    )
    assert all(got[f"o{i}"] == Reason.RETAINED for i in range(3))


# Each rule below would see its event deleted without it (old, ended, summarized).


@pytest.mark.parametrize("phase", [None, "New", "Running", "Error"])
def test_open_events_stay(phase: str | None) -> None:
    open_ = event("open", phase=phase)
    assert reasons([open_], [host(events=[open_])]) == {"open": Reason.OPEN}


def test_an_event_a_host_holds_its_service_for_stays() -> None:
    held = event("held", phase="Ignored", reason="HostNotConfirmedDown")
    hold = {"serviceHolds": {"held": {"since": (NOW - 10 * DAY).isoformat()}}}
    assert reasons([held], [host(events=[held], **hold)]) == {"held": Reason.SERVICE_HOLD}


def host_failure(name: str, age: timedelta = 10 * DAY, **status: Any) -> EventRecord:
    return event(name, kind="COMPUTE_HOST", age=age, payload=STOPPED, **status)


def test_the_failure_a_failed_host_awaits_release_for_stays() -> None:
    """Deleted, `hosts.plan` would find no failure to release and return the host to service."""
    failure = host_failure("down", phase="Failed")
    summary = host(events=[failure], lastFailure=last_failure(failure), phase="Failed")
    assert reasons([failure], [summary]) == {"down": Reason.LAST_FAILURE}


def test_an_older_failure_goes_once_a_later_one_is_the_last() -> None:
    first, second = host_failure("first", age=20 * DAY), host_failure("second", age=10 * DAY)
    summary = host(events=[first, second], lastFailure=last_failure(second))
    assert reasons([first, second], [summary]) == {
        "first": Reason.EXPIRED,
        "second": Reason.LAST_FAILURE,
    }


def last_failure(record: EventRecord) -> dict[str, Any]:
    return {
        "event": record.name,
        "type": "COMPUTE_HOST",
        "time": record.spec.generated_time.isoformat(),
        "result": record.status.phase,
    }


def test_a_failure_not_yet_shown_as_the_last_stays() -> None:
    failure = host_failure("down")
    assert reasons([failure], [host(events=[failure])]) == {"down": Reason.LAST_FAILURE}


def test_an_event_whose_reserved_host_is_still_reserved_stays() -> None:
    """`hosts.plan` shows a reserved host InUse from the events naming it: deleted, it would
    disable the host again while it runs the evacuated instances."""
    took = event("took", reservedHosts=["spare-nova"])
    spare = host("spare", spec={"reserved": True, "novaHost": "spare-nova"})
    assert reasons([took], [host(events=[took]), spare]) == {"took": Reason.RESERVED_HOST}
    unreserved = host("spare", spec={"novaHost": "spare-nova"})
    assert reasons([took], [host(events=[took]), unreserved]) == {"took": Reason.EXPIRED}


def test_reports_within_the_duplicate_window_stay() -> None:
    # Ended long ago by the clock of its status, but generated moments ago.
    late = event("late", age=timedelta(seconds=100), endTime=(NOW - 8 * DAY).isoformat())
    assert reasons([late], [host(events=[late])]) == {"late": Reason.DUPLICATE_WINDOW}


def test_vm_events_the_restart_limit_counts_stay() -> None:
    vm = event("vm", kind="VM", payload=VM, age=timedelta(minutes=30), reason="Recovered")
    crowd = [event(f"p{i}", age=timedelta(minutes=29 - i)) for i in range(25)]
    got = reasons([vm, *crowd], [host(events=[vm, *crowd])])
    assert got["vm"] == Reason.RESTART_WINDOW


def test_an_event_that_just_ended_stays() -> None:
    events = [event(f"e{i}", age=DAY + timedelta(minutes=i)) for i in range(21)]
    events[20] = event("e20", age=DAY + timedelta(minutes=20), endTime=NOW.isoformat())
    got = reasons(events, [host(events=events)])
    assert got["e20"] == Reason.RECENTLY_ENDED


def test_nothing_goes_before_the_host_shows_it() -> None:
    short = Policy(DAY, 20, POLICY.restart_window, POLICY.settle)
    old = event("old", age=3 * DAY)
    assert reasons([old], [host()], short) == {"old": Reason.NOT_SUMMARIZED}
    ran = event("ran", startTime=(NOW - 10 * DAY).isoformat())
    assert reasons([ran], [host(events=[old])]) == {"ran": Reason.NOT_SUMMARIZED}
    assert reasons([ran], [host(events=[ran])]) == {"ran": Reason.EXPIRED}


def test_an_event_of_a_deleted_host_needs_no_summary() -> None:
    assert reasons([event("orphan", host="gone")], [host()]) == {"orphan": Reason.EXPIRED}


def test_a_pass_deletes_at_most_its_limit_oldest_first() -> None:
    events = [event(f"e{i}", age=(10 + i) * DAY) for i in range(5)]
    chosen = to_delete(events, [host(events=events)], POLICY, NOW, limit=2)
    assert [d.event for d in chosen] == ["e4", "e3"]


def test_a_segment_has_the_events_of_its_hosts_and_of_deleted_hosts_that_ran_in_it() -> None:
    hosts = [host("h1"), host("h2", spec={"segment": "other"})]
    events = [
        event("mine"),
        event("theirs", host="h2"),
        event("orphan", host="gone", segment="seg"),
        event("stray", host="gone2"),
    ]
    assert [e.name for e in of_segment(by_host(events), hosts, "seg")] == ["mine", "orphan"]


class _Unscannable(list[EventRecord]):
    """Another segment's host's events."""

    def __iter__(self) -> Any:
        raise AssertionError("went through the events of another segment's host")


def test_a_segments_events_are_found_without_going_through_other_segments() -> None:
    hosts = [host("h1"), *(host(f"o{n}", spec={"segment": "other"}) for n in range(100))]
    events = by_host([event("mine"), *(event(f"e{n}", host=f"o{n % 100}") for n in range(1000))])
    for name in events:
        if name != "h1":
            events[name] = _Unscannable(events[name])
    assert [e.name for e in of_segment(events, hosts, "seg")] == ["mine"]


# The Host's summary


def test_the_summary_outlives_deleted_events() -> None:
    ran = event("ran", age=DAY, startTime=(NOW - DAY).isoformat())
    dup = event("dup", age=DAY, phase="Ignored", reason="Duplicate")
    first = host(events=[ran, dup]).status
    assert [r.event for r in first.recent_failures] == ["ran"]
    assert first.last_recovery is not None and first.last_recovery.event == "ran"
    assert first.last_recovery.duration_seconds == 60
    # The events deleted: nothing lost; a week later the failure leaves the window.
    assert summarize(first, [], NOW) == (first.recent_failures, first.last_recovery)
    recent, last = summarize(first, [], NOW + FAILURE_WINDOW)
    assert recent == [] and last == first.last_recovery


def test_the_summary_is_bounded() -> None:
    events = [event(f"e{i:03}", age=timedelta(hours=i + 1)) for i in range(FAILURES_KEPT + 10)]
    recent, _ = summarize(HostStatus(), events, NOW)
    assert len(recent) == FAILURES_KEPT
    assert recent[-1].event == "e000"
    # Those that fell off the bounded list are summarized as far as they can be: they go.
    got = reasons(events, [host(events=events)])
    assert got["e059"] == Reason.BEYOND_COUNT


def test_the_segment_policy_defaults() -> None:
    spec = FailoverSegmentSpec.model_validate({"recoveryMethod": "auto", "serviceType": "C"})
    policy = Policy.of(spec, timedelta(0))
    assert (policy.ttl, policy.keep_per_host) == (7 * DAY, 20)


PHASES = st.sampled_from([None, "New", "Running", "Error", "Finished", "Ignored", "Failed"])


@given(
    st.lists(
        st.tuples(
            PHASES,
            st.integers(min_value=0, max_value=30 * 24 * 60),
            st.booleans(),
            st.sampled_from(["h1", "h2", "gone"]),
        ),
        max_size=40,
    ),
    st.integers(min_value=1, max_value=5),
)
def test_nothing_open_or_held_is_ever_deleted(
    drawn: list[tuple[str | None, int, bool, str]], keep: int
) -> None:
    events = [
        event(f"e{i}", host=h, age=timedelta(minutes=minutes), phase=phase)
        for i, (phase, minutes, _, h) in enumerate(drawn)
    ]
    held = {f"e{i}" for i, (_, _, hold, _) in enumerate(drawn) if hold}
    holds = {"serviceHolds": {n: {"since": NOW.isoformat()} for n in sorted(held)[:20]}}
    hosts = [host("h1", events=events, **holds), host("h2", events=events)]
    policy = Policy(
        ttl=DAY, keep_per_host=keep, restart_window=POLICY.restart_window, settle=0 * DAY
    )
    for decision in to_delete(events, hosts, policy, NOW, limit=100):
        record = next(e for e in events if e.name == decision.event)
        assert record.status.phase in ("Finished", "Ignored", "Failed")
        assert decision.event not in holds["serviceHolds"]


class _CountedHolds(HostStatus):
    """Counts the reads of `serviceHolds`: one look through every Host per event was a pass
    of events x hosts (250 million checks at the issue's 50,000 events and 5,000 Hosts)."""

    reads: ClassVar[int] = 0

    def __getattribute__(self, name: str) -> Any:
        if name == "service_holds":
            type(self).reads += 1
        return super().__getattribute__(name)


def test_a_pass_reads_each_hosts_holds_once_not_once_per_event() -> None:
    events = [event(f"e{n}", f"h{n % 100}") for n in range(1000)]
    hosts = []
    for n in range(100):
        own = [e for e in events if e.spec.host == f"h{n}"]
        summarized = host(f"h{n}", own)
        hosts.append(
            HostRecord(
                name=summarized.name,
                spec=summarized.spec,
                status=_CountedHolds.model_validate(summarized.status.model_dump()),
                created=summarized.created,
            )
        )
    holder = hosts[42]
    holder.status.service_holds["e7"] = ServiceHold(since=NOW)
    _CountedHolds.reads = 0

    decided = reasons(events, hosts)

    assert decided["e7"] == Reason.SERVICE_HOLD and decided["e8"] == Reason.EXPIRED
    print(f"serviceHolds read {_CountedHolds.reads} times for 1,000 events and 100 Hosts")
    assert _CountedHolds.reads <= 2 * len(hosts)

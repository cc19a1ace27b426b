"""Bounded history: what a Host keeps of its failures, and which ended FailureEvents may go.

Pure, no I/O. Two halves, with one writer each:

- `summarize`: the Host reconciler folds the host's FailureEvents into its status
  (`recentFailures`, `lastRecovery`) on every resync, so the summary outlives the events;
- `judge`: the retention pass of a segment decides, per FailureEvent, whether to delete it.

The checks of `judge`, in order; the first that applies decides. What something still needs is
never deleted:

1. open (New, Running, Error): a recovery still drives it;
2. named in a Host's `status.serviceHolds`: the host awaits its release by that name;
3. a host failure that took its host out and that the Host's `lastFailure` has not moved past:
   deleting it would let `hosts.plan` release a Failed host, or pick an older failure as the
   one to release;
4. it took a reserved host that is still reserved: `hosts.plan` derives the host's `InUse`
   from the events naming it, and without one would take the host back out of Nova while it
   runs the evacuated instances;
5. generated within the duplicate window (`gates.DUPLICATE_WINDOW`): a late report of the
   same failure must still find its original;
6. a VM event within the segment's `restartWindowSeconds`: the restart rate limit counts it;
7. ended less than `settle` ago: a client polling the notification sees how it ended;
8. not yet in its Host's summary: the Host reconciler has not folded it in.

Of the rest, an event is deleted when it ended more than `ttlSecondsAfterFinished` ago
(`Expired`) or when `keepPerHost` newer ended events of its host exist (`BeyondCount`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from controller.recovery.gates import DUPLICATE_WINDOW, OPEN_PHASES
from controller.recovery.ports import EventView, HostRecord
from controller.resources.failure_event import EventPhase, FailureType
from controller.resources.host import (
    FAILURE_WINDOW_DAYS,
    FAILURES_KEPT,
    FailureRecord,
    HostStatus,
    RecoveryRecord,
)
from controller.resources.segment import FailoverSegmentSpec

# Host failures that took the host out of service (Ignored ones took nothing out).
ACTED = {EventPhase.RUNNING, EventPhase.ERROR, EventPhase.FINISHED, EventPhase.FAILED}
FAILURE_WINDOW = timedelta(days=FAILURE_WINDOW_DAYS)
DUPLICATE = "Duplicate"  # the gates' reason for a second report of one failure


class Reason(StrEnum):
    OPEN = "Open"
    SERVICE_HOLD = "ServiceHold"
    LAST_FAILURE = "LastFailure"
    RESERVED_HOST = "ReservedHostInUse"
    DUPLICATE_WINDOW = "DuplicateWindow"
    RESTART_WINDOW = "RestartWindow"
    RECENTLY_ENDED = "RecentlyEnded"
    NOT_SUMMARIZED = "NotSummarized"
    RETAINED = "Retained"
    EXPIRED = "Expired"  # deleted
    BEYOND_COUNT = "BeyondCount"  # deleted


DELETED = {Reason.EXPIRED, Reason.BEYOND_COUNT}


@dataclass(frozen=True)
class Decision:
    event: str
    reason: Reason
    message: str = ""

    @property
    def delete(self) -> bool:
        return self.reason in DELETED


# The Host's summary -------------------------------------------------------------------------


def _open(event: EventView) -> bool:
    """New, Running or Error: a recovery still drives it (lifecycle.TERMINAL ends it)."""
    return event.status.phase in OPEN_PHASES


def _counted(event: EventView) -> bool:
    """A failure of its own: every report but those ignored as another report's duplicate."""
    return not (event.status.phase == EventPhase.IGNORED and event.status.reason == DUPLICATE)


def _failure(event: EventView) -> FailureRecord:
    return FailureRecord(
        event=event.name,
        type=event.spec.type,
        time=event.spec.generated_time,
        result=event.status.phase,
    )


def _recovery(event: EventView) -> RecoveryRecord | None:
    start, end = event.status.start_time, event.status.end_time
    if _open(event) or start is None or end is None:
        return None
    return RecoveryRecord(
        event=event.name,
        type=event.spec.type,
        result=event.status.phase,
        start_time=start,
        end_time=end,
        duration_seconds=max(0.0, (end - start).total_seconds()),
    )


def _recovery_key(record: RecoveryRecord) -> tuple[datetime, str]:
    return (record.end_time, record.event)


def summarize(
    previous: HostStatus, events: Iterable[EventView], now: datetime
) -> tuple[list[FailureRecord], RecoveryRecord | None]:
    """The host's `recentFailures` and `lastRecovery`: what it showed, updated with its
    FailureEvents as they are now (an event deleted since keeps its entry)."""
    failures = {record.event: record for record in previous.recent_failures}
    last = previous.last_recovery
    for event in events:
        if _counted(event):
            failures[event.name] = _failure(event)
        else:
            failures.pop(event.name, None)
        recovery = _recovery(event)
        if recovery is not None and (last is None or _recovery_key(recovery) > _recovery_key(last)):
            last = recovery
    since = now - FAILURE_WINDOW
    recent = sorted(
        (record for record in failures.values() if record.time >= since),
        key=lambda record: (record.time, record.event),
    )
    return recent[-FAILURES_KEPT:], last


def summarized(event: EventView, host: HostRecord | None, now: datetime) -> bool:
    """Whether deleting the event loses nothing of the Host's summary."""
    if host is None:
        return True  # no Host left to keep a summary on
    status = host.status
    recent = status.recent_failures
    key = (event.spec.generated_time, event.name)
    counted = (
        not _counted(event)
        or event.spec.generated_time < now - FAILURE_WINDOW
        or any(r.event == event.name and r.result == event.status.phase for r in recent)
        or (len(recent) >= FAILURES_KEPT and key < (recent[0].time, recent[0].event))
    )
    recovery = _recovery(event)
    last = status.last_recovery
    recorded = recovery is None or (
        last is not None and _recovery_key(last) >= _recovery_key(recovery)
    )
    return counted and recorded


# The retention decision ---------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """A segment's retention, with the windows other decisions count events in."""

    ttl: timedelta
    keep_per_host: int
    restart_window: timedelta
    settle: timedelta  # an ended event is kept at least this long (the operator's setting)

    @classmethod
    def of(cls, segment: FailoverSegmentSpec, settle: timedelta) -> Policy:
        return cls(
            ttl=timedelta(seconds=segment.retention.ttl_seconds_after_finished),
            keep_per_host=segment.retention.keep_per_host,
            restart_window=timedelta(seconds=segment.instance_failure.restart_window_seconds),
            settle=settle,
        )


def _ended(event: EventView) -> datetime:
    return event.status.end_time or event.created


def _age_key(event: EventView) -> tuple[datetime, datetime, str]:
    """Newer failures first by when they happened, then by when they were reported."""
    return (event.spec.generated_time, event.created, event.name)


def _takes_host_out(event: EventView) -> bool:
    return (
        event.spec.type == FailureType.COMPUTE_HOST
        and event.spec.payload.event == "STOPPED"
        and event.status.phase in ACTED
    )


@dataclass(frozen=True)
class _Hosts:
    """The namespace's Hosts as `_needed` asks about them, each map built once per pass:
    looking through every Host for each event made a pass cost events x hosts (250 million
    checks at 50,000 events and 5,000 hosts, twice)."""

    by_name: dict[str, HostRecord]
    holders: dict[str, str]  # event name -> the first Host holding its service for it
    reserved: dict[str, tuple[int, str]]  # Nova host -> (order, name) of a reserved Host

    @classmethod
    def of(cls, hosts: list[HostRecord]) -> _Hosts:
        holders: dict[str, str] = {}
        reserved: dict[str, tuple[int, str]] = {}
        for order, host in enumerate(hosts):
            for event in host.status.service_holds:
                holders.setdefault(event, host.name)
            if host.spec.reserved:
                reserved.setdefault(host.nova_host, (order, host.name))
        return cls({h.name: h for h in hosts}, holders, reserved)

    def reserved_taken(self, event: EventView) -> str | None:
        """The first reserved Host, in the order listed, that the event took."""
        taken = [self.reserved[n] for n in event.status.reserved_hosts if n in self.reserved]
        return min(taken)[1] if taken else None


def _needed(event: EventView, hosts: _Hosts, policy: Policy, now: datetime) -> Decision | None:
    """Why the event must stay, if it must."""
    name = event.name
    if _open(event):
        return Decision(name, Reason.OPEN, f"phase {event.status.phase or 'New'}")
    holder = hosts.holders.get(name)
    if holder is not None:
        return Decision(name, Reason.SERVICE_HOLD, f"Host {holder} holds its service for it")
    host = hosts.by_name.get(event.spec.host)
    if host is not None and _takes_host_out(event):
        last = host.status.last_failure
        if last is None or last.event == name or last.time <= event.spec.generated_time:
            return Decision(name, Reason.LAST_FAILURE, f"the last failure of {host.name}")
    taken = hosts.reserved_taken(event)
    if taken is not None:
        return Decision(name, Reason.RESERVED_HOST, f"took reserved host {taken}")
    age = now - event.spec.generated_time
    if age <= DUPLICATE_WINDOW:
        return Decision(name, Reason.DUPLICATE_WINDOW, "a later report may be its duplicate")
    if event.spec.type == FailureType.VM and age <= policy.restart_window:
        return Decision(name, Reason.RESTART_WINDOW, "counted by the restart rate limit")
    if now - _ended(event) < policy.settle:
        return Decision(name, Reason.RECENTLY_ENDED, "ended moments ago")
    if not summarized(event, host, now):
        return Decision(name, Reason.NOT_SUMMARIZED, f"not yet in Host {event.spec.host}'s status")
    return None


def judge(
    events: list[EventView],
    hosts: list[HostRecord],
    policy: Policy,
    now: datetime,
) -> list[Decision]:
    """A decision for each of `events` (one segment's), against every Host of the namespace
    (holds and reserved hosts may be on any of them)."""
    known = _Hosts.of(hosts)
    newer: dict[str, int] = {}  # ended events of each host seen so far, newest first
    ranks: dict[str, int] = {}
    for event in sorted(events, key=_age_key, reverse=True):
        if not _open(event):
            ranks[event.name] = newer.get(event.spec.host, 0)
            newer[event.spec.host] = ranks[event.name] + 1
    decisions = []
    for event in events:
        needed = _needed(event, known, policy, now)
        if needed is not None:
            decisions.append(needed)
        elif now - _ended(event) > policy.ttl:
            decisions.append(Decision(event.name, Reason.EXPIRED, f"ended {_ended(event)}"))
        elif ranks[event.name] >= policy.keep_per_host:
            decisions.append(
                Decision(
                    event.name,
                    Reason.BEYOND_COUNT,
                    f"{ranks[event.name]} newer ended events of {event.spec.host}",
                )
            )
        else:
            decisions.append(Decision(event.name, Reason.RETAINED))
    return decisions


def to_delete(
    events: list[EventView], hosts: list[HostRecord], policy: Policy, now: datetime, limit: int
) -> list[Decision]:
    """The deletions of one pass: at most `limit`, oldest first."""
    keys = {e.name: _age_key(e) for e in events}
    chosen = [d for d in judge(events, hosts, policy, now) if d.delete]
    return sorted(chosen, key=lambda d: keys[d.event])[:limit]


def of_segment(
    events: Mapping[str, Iterable[EventView]], hosts: list[HostRecord], segment: str
) -> list[EventView]:
    """The segment's events: those of its Hosts, and those of deleted Hosts that ran in it.
    `events` by host (`ports.by_host`): each segment's pass going through every event of the
    namespace made a round of 100 segments over 50,000 events 10 million checks."""
    known = {h.name for h in hosts}
    own = [e for h in hosts if h.spec.segment == segment for e in events.get(h.name, ())]
    left = [
        e
        for host, theirs in events.items()
        if host not in known
        for e in theirs
        if e.status.segment == segment
    ]
    return own + left

"""How well recovery did over a window: failures, time to recover, instances recovered and
lost, per segment, host and project. Neither Masakari nor InstanceHA can tell a cloud this.

Read from the FailureEvents still stored: a segment's retention (spec.retention) bounds how
far back the figures reach, and the report says which window it covers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from controller.recovery.retention import ACTED
from controller.resources.failure_event import (
    EventPhase,
    FailureEventSpec,
    FailureEventStatus,
    MoveStatus,
)

UNKNOWN_SEGMENT = "(no segment)"
NO_PROJECT = "(no project)"
# An instance lost: its move failed, or its recovery ended Failed before it moved.
LOST_WHEN_FAILED = frozenset({MoveStatus.PENDING, MoveStatus.ONGOING, MoveStatus.FAILED})


@dataclass(frozen=True)
class Move:
    """One instance of a recovery: its project, how its move ended, and when it was back
    (seconds from the monitor's report), if it was."""

    project: str
    status: MoveStatus
    seconds: float | None


@dataclass(frozen=True)
class Recovery:
    """One failure the operator acted on, as the report counts it."""

    event: str
    host: str
    segment: str
    type: str
    reported: datetime
    phase: EventPhase
    ended: datetime | None
    moves: tuple[Move, ...]

    @property
    def seconds_to_recover(self) -> float | None:
        """From the monitor's report to the recovery's end: what the cloud's users waited."""
        if self.phase != EventPhase.FINISHED:
            return None
        return _seconds(self.reported, self.ended)

    def lost(self, status: MoveStatus) -> bool:
        return status == MoveStatus.FAILED or (
            self.phase == EventPhase.FAILED and status in LOST_WHEN_FAILED
        )


def recovery_of(body: Mapping[str, Any], segments: Mapping[str, str]) -> Recovery | None:
    """The event's outcome, or None for one nothing was done for (New, Ignored) or that
    does not parse. `segments`: each Host object's segment, for events whose status does
    not name it (older ones, or a report of a host since deleted)."""
    try:
        spec = FailureEventSpec.model_validate(body.get("spec") or {})
        status = FailureEventStatus.model_validate(body.get("status") or {})
    except ValidationError:
        return None
    if status.phase not in ACTED:
        return None
    return Recovery(
        event=body["metadata"]["name"],
        host=spec.host,
        segment=status.segment or segments.get(spec.host, UNKNOWN_SEGMENT),
        type=str(spec.type),
        reported=spec.generated_time,
        phase=EventPhase(status.phase),
        ended=status.end_time,
        moves=tuple(
            Move(
                m.project_id or NO_PROJECT,
                m.status,
                _seconds(spec.generated_time, m.end_time)
                if m.status == MoveStatus.SUCCEEDED
                else None,
            )
            for m in status.instances
        ),
    )


def _seconds(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else max(0.0, (end - start).total_seconds())


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile: a value that happened, never an interpolation."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


@dataclass
class Figures:
    """One row of the report."""

    failures: int = 0
    recovered: int = 0  # Finished
    failed: int = 0  # Failed: given up
    open: int = 0  # still Running or in Error (retrying)
    instances_recovered: int = 0
    instances_lost: int = 0
    instances_ignored: int = 0
    times: list[float] = field(default_factory=list)

    def add(self, recovery: Recovery) -> None:
        self.failures += 1
        if recovery.phase == EventPhase.FINISHED:
            self.recovered += 1
        elif recovery.phase == EventPhase.FAILED:
            self.failed += 1
        else:
            self.open += 1
        seconds = recovery.seconds_to_recover
        if seconds is not None:
            self.times.append(seconds)
        for move in recovery.moves:
            self.count(recovery, move)

    def count(self, recovery: Recovery, move: Move) -> None:
        if move.status == MoveStatus.SUCCEEDED:
            self.instances_recovered += 1
        elif move.status == MoveStatus.IGNORED:
            self.instances_ignored += 1
        elif recovery.lost(move.status):
            self.instances_lost += 1

    def add_instance(self, recovery: Recovery, move: Move) -> None:
        """A project's row: its instances, and how long each took to come back."""
        self.count(recovery, move)
        if move.seconds is not None:
            self.times.append(move.seconds)

    @property
    def mean_seconds(self) -> float | None:
        return sum(self.times) / len(self.times) if self.times else None

    @property
    def p95_seconds(self) -> float | None:
        return percentile(self.times, 0.95) if self.times else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "failures": self.failures,
            "recovered": self.recovered,
            "failed": self.failed,
            "open": self.open,
            "instancesRecovered": self.instances_recovered,
            "instancesLost": self.instances_lost,
            "instancesIgnored": self.instances_ignored,
            "meanSecondsToRecover": _rounded(self.mean_seconds),
            "p95SecondsToRecover": _rounded(self.p95_seconds),
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


@dataclass
class Report:
    since: datetime
    until: datetime
    total: Figures = field(default_factory=Figures)
    segments: dict[str, Figures] = field(default_factory=dict)
    hosts: dict[tuple[str, str], Figures] = field(default_factory=dict)  # (segment, host)
    # Instances only, each timed from its failure's report to its own move's end.
    projects: dict[str, Figures] = field(default_factory=dict)
    recoveries: list[Recovery] = field(default_factory=list)  # newest first

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "total": self.total.as_dict(),
            "segments": {name: row.as_dict() for name, row in sorted(self.segments.items())},
            "hosts": [
                {"segment": segment, "host": host, **row.as_dict()}
                for (segment, host), row in sorted(self.hosts.items())
            ],
            "projects": {name: row.as_dict() for name, row in sorted(self.projects.items())},
            "recoveries": [
                {
                    "event": r.event,
                    "segment": r.segment,
                    "host": r.host,
                    "type": r.type,
                    "reported": r.reported.isoformat(),
                    "phase": r.phase.value,
                    "secondsToRecover": _rounded(r.seconds_to_recover),
                }
                for r in self.recoveries
            ],
        }


def report(
    recoveries: Iterable[Recovery],
    hosts: Mapping[str, str],
    since: datetime,
    until: datetime,
) -> Report:
    """The figures of the recoveries reported in [since, until). `hosts`: each Host object's
    segment, so that a host without failures shows as a row of zeros (its availability is
    news too)."""
    result = Report(since, until)
    for host, segment in hosts.items():
        result.hosts[(segment, host)] = Figures()
        result.segments.setdefault(segment, Figures())
    chosen = sorted(
        (r for r in recoveries if since <= r.reported < until),
        key=lambda r: (r.reported, r.event),
        reverse=True,
    )
    for recovery in chosen:
        result.total.add(recovery)
        result.segments.setdefault(recovery.segment, Figures()).add(recovery)
        result.hosts.setdefault((recovery.segment, recovery.host), Figures()).add(recovery)
        for move in recovery.moves:
            result.projects.setdefault(move.project, Figures()).add_instance(recovery, move)
    result.recoveries = chosen
    return result

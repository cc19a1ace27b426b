"""The recoveries-in-flight gauge counts each running recovery once, resumed ones included."""

from __future__ import annotations

from datetime import UTC, datetime

from controller import metrics
from controller.handlers.signals import RecoverySignals
from controller.recovery.ports import EventRecord
from controller.resources.failure_event import FailureEventSpec, FailureEventStatus


def record(name: str) -> EventRecord:
    spec = FailureEventSpec.model_validate(
        {
            "type": "PROCESS",
            "host": "h1",
            "generatedTime": "2026-11-26T02:00:00Z",
            "payload": {"event": "STOPPED", "process_name": "nova-compute"},
        }
    )
    return EventRecord(name, "ns", spec, FailureEventStatus(), datetime.now(UTC))


def in_flight() -> float:
    value = metrics.REGISTRY.get_sample_value("masakari_recoveries_in_flight", {"type": "PROCESS"})
    return value or 0.0


def test_in_flight_counts_each_recovery_once() -> None:
    signals = RecoverySignals()
    before = in_flight()
    first, second = record("a"), record("b")
    signals.running(first, True)
    signals.running(first, True)  # e.g. a retry after Error
    signals.running(second, True)  # e.g. resumed after an operator restart
    assert in_flight() == before + 2
    signals.running(first, False)
    signals.running(first, False)
    assert in_flight() == before + 1
    signals.running(second, False)
    assert in_flight() == before


def test_ending_a_recovery_this_process_never_counted_does_not_go_negative() -> None:
    signals = RecoverySignals()
    before = in_flight()
    signals.running(record("c"), False)
    assert in_flight() == before

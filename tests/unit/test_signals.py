"""The recoveries-in-flight gauge counts each running recovery once, resumed ones included."""

from __future__ import annotations

from datetime import UTC, datetime

import kopf
import pytest

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


def blocked(reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value("masakari_recoveries_blocked", {"reason": reason})
    return value or 0.0


def test_an_event_ending_while_blocked_leaves_the_blocked_gauge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It waited for fencing, then ended HostNotConfirmedDown: no longer blocked."""
    monkeypatch.setattr(kopf, "info", lambda *_, **__: None)  # no API server to post to
    signals = RecoverySignals()
    before = blocked("AwaitingFencing")
    event = record("d")
    signals.blocked(event, "AwaitingFencing")
    assert blocked("AwaitingFencing") == before + 1
    ended = FailureEventStatus(phase="Ignored", reason="HostNotConfirmedDown")
    signals.transition(event, ended)
    assert blocked("AwaitingFencing") == before
    assert signals._blocked == {} and signals._observed_moves == set()

"""The series the alerts count: present at 0 from the start, an event ending
HostNotConfirmedDown counted, and every failed Nova call counted once, whoever made it (a
recovery's evacuate included), over real HTTP against the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import kopf
import pytest

from controller import metrics
from controller.drivers.nova.openstack import OpenStackNova, RetryPolicy
from controller.handlers.signals import RecoverySignals
from controller.recovery.nova import NotFound, NovaError, Unavailable
from controller.recovery.ports import EventRecord
from controller.resources.failure_event import FailureEventSpec, FailureEventStatus
from tests.harness.sim import Sim, running_sim

FAST = RetryPolicy(attempts=3, deadline=30, base_delay=0.01, max_delay=0.05)


def sample(name: str, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, labels)


def test_the_series_alerts_count_from_exist_at_zero_before_any_event() -> None:
    metrics.initialise()
    for kind in ("COMPUTE_HOST", "VM", "PROCESS"):
        assert sample("masakari_recoveries_total", type=kind, result="Failed") is not None
        ignored = sample(
            "masakari_recoveries_ignored_total", type=kind, reason="HostNotConfirmedDown"
        )
        assert ignored is not None
    assert sample("masakari_drain_moves_total", result="failed") is not None


def test_an_event_ending_host_not_confirmed_down_is_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kopf, "info", lambda *_, **__: None)  # no API server to post to
    spec = FailureEventSpec.model_validate(
        {
            "type": "COMPUTE_HOST",
            "host": "h1",
            "generatedTime": "2026-11-26T02:00:00Z",
            "payload": {"event": "STOPPED", "host_status": "UNKNOWN", "cluster_status": "OFFLINE"},
        }
    )
    event = EventRecord("e", "ns", spec, FailureEventStatus(), datetime.now(UTC))
    labels = {"type": "COMPUTE_HOST", "reason": "HostNotConfirmedDown"}
    before = sample("masakari_recoveries_ignored_total", **labels) or 0.0
    ended = FailureEventStatus(phase="Ignored", reason="HostNotConfirmedDown")
    RecoverySignals().transition(event, ended)
    assert sample("masakari_recoveries_ignored_total", **labels) == before + 1


@pytest.fixture(scope="module")
def sim() -> Iterator[Sim]:
    with running_sim(None, "--seed", "3") as running:
        yield running


def nova_errors(kind: str) -> float:
    return sample("masakari_api_errors_total", api="nova", error=kind) or 0.0


def test_a_failed_nova_call_counts_once_after_its_retries(sim: Sim) -> None:
    sim.control("PUT", "faults", {"routes": {"services": {"error_rate": 1.0, "status": 503}}})
    try:
        nova = OpenStackNova.from_clouds_yaml(sim.clouds_yaml, sim.cloud, retry=FAST)
        before = nova_errors("Unavailable")
        with pytest.raises(Unavailable):
            asyncio.run(nova.compute_services())
        assert nova_errors("Unavailable") == before + 1  # three tries, one failed call
    finally:
        sim.control("PUT", "faults", {})


def test_a_recoverys_failed_evacuation_counts_and_a_404_does_not(sim: Sim) -> None:
    sim.control("POST", "reset")
    (sid,) = sim.control("POST", "servers", {"host": "compute1", "count": 1})["ids"]
    nova = OpenStackNova.from_clouds_yaml(sim.clouds_yaml, sim.cloud, retry=FAST)
    before = nova_errors("Conflict")
    with pytest.raises(NovaError):  # the source host is still up: Nova refuses
        asyncio.run(nova.reset_and_evacuate(sid, None, reset=False))
    assert nova_errors("Conflict") == before + 1
    before_404 = nova_errors("NotFound")
    with pytest.raises(NotFound):
        asyncio.run(nova.server("0c6f2b4e-5d3a-4f8e-9d1c-000000000000"))
    assert nova_errors("NotFound") == before_404

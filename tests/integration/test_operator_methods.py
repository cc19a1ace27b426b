"""Recovery methods, their fallbacks, reserved hosts and retries, on the simulator."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.operator_env import (
    host,
    host_failure,
    iter_moves,
    segment,
    servers,
    topology,
    wait_for,
)

pytestmark = pytest.mark.integration

COMPUTES = [{"name": f"compute{i}", "vcpus": 8} for i in (1, 2, 3)]
SPARE = {"name": "spare1", "vcpus": 8}
DONE = {"Finished", "Failed", "Ignored"}


def ha(names: list[str], on: str = "compute1") -> list[dict[str, Any]]:
    return servers(names, on, metadata={"HA_Enabled": "True"})


def test_reserved_host_takes_everything(cloud_factory: Any) -> None:
    cloud = cloud_factory(topology([*COMPUTES, SPARE], ha(["a", "b"])))
    cloud.apply(
        segment(method="reserved_host"),
        *(host(h["name"]) for h in COMPUTES),
        host("spare1", reserved=True),
    )
    cloud.wait_phase("mhost", "spare1", {"Reserved"}, 30)
    spare = next(cloud.nova().compute.services(host="spare1", binary="nova-compute"))
    assert spare.status == "disabled"  # kept out of the scheduler while reserved

    cloud.sim.control("POST", "hosts/compute1/kill")
    cloud.apply(host_failure("c1", "compute1"))
    status = cloud.wait_phase("fev", "c1", DONE)
    assert status["phase"] == "Finished", status
    assert {dest for _, _, dest in iter_moves(status)} == {"spare1"}
    assert status["reservedHosts"] == ["spare1"]
    spare_status = wait_for(
        "spare in use",
        lambda: (s := cloud.status("mhost", "spare1")).get("reservation") == "InUse" and s,
        30,
    )
    assert spare_status["reservedFor"] == "c1" and spare_status["phase"] == "Active"
    assert next(cloud.nova().compute.services(host="spare1")).status == "enabled"
    assert cloud.get("mhost", "spare1")["spec"]["reserved"] is True  # spec untouched
    seg = wait_for(
        "segment",
        lambda: (s := cloud.status("fseg", "seg")).get("reservedHostsInUse") == 1 and s,
        30,
    )
    assert seg["reservedHostsAvailable"] == 0


def test_auto_priority_falls_back_to_the_reserved_host(cloud_factory: Any) -> None:
    others = [{**h, "status": "disabled", "disabled_reason": "ops: firmware"} for h in COMPUTES[1:]]
    cloud = cloud_factory(topology([COMPUTES[0], *others, SPARE], ha(["a"])))
    cloud.apply(
        segment(method="auto_priority"),
        *(host(h["name"]) for h in COMPUTES),
        host("spare1", reserved=True),
    )
    cloud.wait_phase("mhost", "spare1", {"Reserved"}, 30)
    cloud.sim.control("POST", "hosts/compute1/kill")
    cloud.apply(host_failure("c1", "compute1"))
    status = cloud.wait_phase("fev", "c1", DONE)
    assert status["phase"] == "Finished", status
    [(_name, state, dest)] = list(iter_moves(status))
    assert (state, dest) == ("succeeded", "spare1")
    notes = [d["message"] for s in status["steps"] for d in s.get("progressDetails", [])]
    assert any("falling back to reserved hosts" in n for n in notes), notes
    # Someone else's disabled services stay disabled.
    assert next(cloud.nova().compute.services(host="compute2")).status == "disabled"


def test_rh_priority_falls_back_to_the_scheduler(cloud_factory: Any) -> None:
    cloud = cloud_factory(topology(COMPUTES, ha(["a", "b"])))
    cloud.apply(segment(method="rh_priority"), *(host(h["name"]) for h in COMPUTES))
    cloud.sim.control("POST", "hosts/compute1/kill")
    cloud.apply(host_failure("c1", "compute1"))
    status = cloud.wait_phase("fev", "c1", DONE)
    assert status["phase"] == "Finished", status
    assert {dest for _, _, dest in iter_moves(status)} <= {"compute2", "compute3"}


def test_no_reserved_host_fails_after_bounded_retries(cloud_factory: Any) -> None:
    cloud = cloud_factory(topology(COMPUTES, ha(["a"])))
    cloud.apply(
        segment(method="reserved_host", retry={"maxAttempts": 2, "initialBackoffSeconds": 1}),
        *(host(h["name"]) for h in COMPUTES),
    )
    cloud.sim.control("POST", "hosts/compute1/kill")
    cloud.apply(host_failure("c1", "compute1"))
    status = cloud.wait_phase("fev", "c1", DONE)
    assert (status["phase"], status["reason"]) == ("Failed", "ReservedHostsUnavailable")
    assert status["attempts"] == 2
    assert "gave up after 2 attempt(s)" in status["message"]
    assert cloud.sim.control("GET", "evacuations")["evacuations"] == {}
    warnings = [e for e in cloud.events("c1") if e["type"] == "Warning"]
    assert {e["reason"] for e in warnings} == {"ReservedHostsUnavailable"}


def test_retry_moves_only_what_failed(cloud_factory: Any) -> None:
    # compute2 has room for two of the three; compute3 is disabled by someone else.
    hosts = [
        COMPUTES[0],
        {"name": "compute2", "vcpus": 2},
        {"name": "compute3", "vcpus": 8, "status": "disabled", "disabled_reason": "ops"},
    ]
    cloud = cloud_factory(topology(hosts, ha(["a", "b", "c"])))
    # Boundary Region: Nova's scheduler alone, so the third is tried and refused (NoValidHost);
    # with a plan it would not be tried at all (test_operator_placement.py).
    cloud.apply(
        segment(
            retry={"maxAttempts": 3, "initialBackoffSeconds": 3}, placement={"boundary": "Region"}
        ),
        *(host(h["name"]) for h in hosts),
    )
    cloud.sim.control("POST", "hosts/compute1/kill")
    cloud.apply(host_failure("c1", "compute1"))
    first = cloud.wait_phase("fev", "c1", {"Error", *DONE})
    assert (first["phase"], first["reason"]) == ("Error", "EvacuationFailed"), first
    failed = [name for name, state, _ in iter_moves(first) if state == "failed"]
    assert len(failed) == 1 and first["nextAttemptTime"]
    nova = cloud.nova()
    nova.compute.enable_service(next(nova.compute.services(host="compute3")))
    status = cloud.wait_phase("fev", "c1", DONE)
    assert status["phase"] == "Finished" and status["attempts"] == 2, status
    counts = cloud.sim.control("GET", "evacuations")["evacuations"]
    assert sorted(counts.values()) == [1, 1, 2]
    assert dict(iter_moves_by_name(status))[failed[0]] == "compute3"


def test_instance_broken_on_its_destination_is_left_for_a_person(cloud_factory: Any) -> None:
    spec = topology(
        COMPUTES,
        [{"name": "b", "host": "compute1", "id": "bbbb", "metadata": {"HA_Enabled": "True"}}],
    )
    cloud = cloud_factory(spec)
    cloud.apply(
        segment(retry={"maxAttempts": 2, "initialBackoffSeconds": 1}),
        *(host(h["name"]) for h in COMPUTES),
    )
    cloud.sim.control("PUT", "faults", {"fail_evacuation": ["bbbb"]})
    cloud.sim.control("POST", "hosts/compute1/kill")
    cloud.apply(host_failure("c1", "compute1"))
    status = cloud.wait_phase("fev", "c1", DONE)
    assert status["phase"] == "Failed", status
    [move] = status["instances"]
    assert move["status"] == "failed" and "after an evacuation" in move["message"], move
    assert cloud.sim.control("GET", "evacuations")["evacuations"] == {"bbbb": 1}


def iter_moves_by_name(status: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(name, dest) for name, _, dest in iter_moves(status)]

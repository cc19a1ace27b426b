"""The operator on a real API server and the OpenStack simulator: host failures end to end."""

from __future__ import annotations

import time
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

HOSTS = [{"name": f"compute{i}", "vcpus": 8} for i in (1, 2, 3, 4)]


def test_auto_recovery_end_to_end(cloud_factory: Any) -> None:
    cloud = cloud_factory(
        topology(
            HOSTS,
            [
                *servers(["ha-1", "ha-2"], "compute1", metadata={"HA_Enabled": "True"}),
                *servers(["plain"], "compute1"),
                *servers(["off"], "compute1", state="stopped"),
                *servers(["elsewhere"], "compute2"),
            ],
        )
    )
    cloud.apply(segment(), *(host(h["name"]) for h in HOSTS))
    wait_for(
        "hosts active",
        lambda: all(cloud.status("mhost", h["name"]).get("phase") == "Active" for h in HOSTS),
        30,
    )

    cloud.sim.control("POST", "hosts/compute1/kill")
    cloud.apply(host_failure("compute1-down", "compute1"))
    status = cloud.wait_phase("fev", "compute1-down", {"Finished", "Failed", "Ignored"})
    assert (status["phase"], status["reason"]) == ("Finished", "Recovered"), status

    moves = {name: (state, dest) for name, state, dest in iter_moves(status)}
    assert list(moves)[:2] == ["ha-1", "ha-2"]  # HA-enabled first
    assert set(moves) == {"ha-1", "ha-2", "plain", "off"}
    assert all(
        state == "succeeded" and dest not in (None, "compute1") for state, dest in moves.values()
    ), moves
    assert [(s["name"], s["state"]) for s in status["steps"]] == [
        ("FenceHostTask", "SKIPPED"),  # fencing.method none: the monitor's word is taken
        ("DisableComputeServiceTask", "SUCCESS"),
        ("PrepareHAEnabledInstancesTask", "SUCCESS"),
        ("EvacuateInstancesTask", "SUCCESS"),
    ]

    counts = cloud.sim.control("GET", "evacuations")["evacuations"]
    assert sorted(counts.values()) == [1, 1, 1, 1]
    nova = cloud.nova()
    by_name = {s.name: s for s in nova.compute.servers(all_projects=True)}
    assert by_name["off"].status == "SHUTOFF" and by_name["ha-1"].status == "ACTIVE"
    assert not any(s.is_locked for s in by_name.values())
    service = next(nova.compute.services(host="compute1", binary="nova-compute"))
    assert service.is_forced_down and service.status == "disabled"

    labels = cloud.get("fev", "compute1-down")["metadata"]["labels"]
    assert labels["masakari.dev/segment"] == "seg"
    host_status = cloud.wait_phase("mhost", "compute1", {"Failed"}, 30)
    assert host_status["lastFailure"]["event"] == "compute1-down"
    # Events are posted asynchronously, after the status write.
    wait_for(
        "Kubernetes Events",
        lambda: {"Recovering", "Recovered"} <= {e["reason"] for e in cloud.events("compute1-down")},
        10,
    )
    seg = wait_for(
        "segment counts",
        lambda: (s := cloud.status("fseg", "seg")).get("failedHosts") == 1 and s,
        30,
    )
    assert seg["hosts"] == 4 and seg["activeHosts"] == 3

    text = cloud.operator.metrics()
    assert 'masakari_recoveries_total{result="Finished",type="COMPUTE_HOST"} 1.0' in text
    assert "masakari_evacuation_duration_seconds_count" in text


def test_failed_host_returns_only_when_released(cloud_factory: Any) -> None:
    cloud = cloud_factory(topology(HOSTS, servers(["vm"], "compute1")))
    cloud.apply(segment(), *(host(h["name"]) for h in HOSTS))
    cloud.sim.control("POST", "hosts/compute1/kill")
    cloud.apply(host_failure("c1", "compute1"))
    cloud.wait_phase("fev", "c1", {"Finished"})
    cloud.wait_phase("mhost", "compute1", {"Failed"}, 30)

    cloud.sim.control("POST", "hosts/compute1/revive")
    cloud.apply(host("compute1", releaseFailure="some-other-event"))
    assert cloud.status("mhost", "compute1")["phase"] == "Failed"
    cloud.apply(host("compute1", releaseFailure="c1"))
    cloud.wait_phase("mhost", "compute1", {"Active"}, 30)
    service = next(cloud.nova().compute.services(host="compute1", binary="nova-compute"))
    assert service.status == "enabled" and not service.is_forced_down
    spec = cloud.get("mhost", "compute1")["spec"]
    assert spec == {
        "segment": "seg",
        "type": "COMPUTE",
        "controlAttributes": "",
        "reserved": False,
        "onMaintenance": False,
        "releaseFailure": "c1",
    }


def test_a_deleted_failure_event_does_not_strand_its_host(cloud_factory: Any) -> None:
    """What the recovery did to Nova is on the Host's status: deleting the event leaves the
    host Failed (not Active with its service forced down forever), and releasing the failure
    by its name still returns the host to service."""
    cloud = cloud_factory(topology(HOSTS, servers(["vm"], "compute1")))
    cloud.apply(segment(), *(host(h["name"]) for h in HOSTS))
    cloud.sim.control("POST", "hosts/compute1/kill")
    cloud.apply(host_failure("c1", "compute1"))
    cloud.wait_phase("fev", "c1", {"Finished"})
    assert "c1" in cloud.status("mhost", "compute1")["serviceHolds"]
    cloud.cluster.kubectl("delete", "fev", "c1", "-n", cloud.namespace)
    cloud.sim.control("POST", "hosts/compute1/revive")
    time.sleep(3)  # resyncs run every second in tests
    status = cloud.wait_phase("mhost", "compute1", {"Failed"}, 30)
    assert "releaseFailure: c1" in status["history"][-1]["message"]
    cloud.apply(host("compute1", releaseFailure="c1"))
    status = cloud.wait_phase("mhost", "compute1", {"Active"}, 30)
    service = next(cloud.nova().compute.services(host="compute1", binary="nova-compute"))
    assert service.status == "enabled" and not service.is_forced_down
    wait_for("holds cleared", lambda: not cloud.status("mhost", "compute1").get("serviceHolds"))

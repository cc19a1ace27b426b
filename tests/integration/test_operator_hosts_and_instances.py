"""Maintenance, instance failures and nova-compute process failures, on the simulator."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.integration.operator_env import (
    host,
    host_failure,
    segment,
    servers,
    topology,
    wait_for,
)

pytestmark = pytest.mark.integration

HOSTS = [{"name": f"compute{i}", "vcpus": 8} for i in (1, 2, 3)]
DONE = {"Finished", "Failed", "Ignored"}
UUID = "8f2a5f0e-7a38-4c8b-9d43-2f1b6c1f0a11"


def report(name: str, kind: str, host_name: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "masakari.dev/v1alpha1",
        "kind": "FailureEvent",
        "metadata": {"name": name},
        "spec": {
            "type": kind,
            "host": host_name,
            "payload": payload,
            "generatedTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    }


def service(cloud: Any, name: str) -> Any:
    return next(cloud.nova().compute.services(host=name, binary="nova-compute"))


def test_maintenance_round_trip(cloud_factory: Any) -> None:
    cloud = cloud_factory(topology(HOSTS, []))
    cloud.apply(segment(), *(host(h["name"]) for h in HOSTS))
    cloud.wait_phase("mhost", "compute2", {"Active"}, 30)
    cloud.apply(host("compute2", onMaintenance=True))
    cloud.wait_phase("mhost", "compute2", {"Maintenance"}, 30)
    disabled = service(cloud, "compute2")
    assert disabled.status == "disabled" and "maintenance" in disabled.disabled_reason
    cloud.apply(host("compute2"))
    cloud.wait_phase("mhost", "compute2", {"Active"}, 30)
    assert service(cloud, "compute2").status == "enabled"
    history = cloud.status("mhost", "compute2")["history"]
    assert [h["phase"] for h in history][-3:] == ["Active", "Maintenance", "Active"]


def test_a_service_someone_else_disabled_is_left_alone(cloud_factory: Any) -> None:
    hosts = [*HOSTS[:2], {**HOSTS[2], "status": "disabled", "disabled_reason": "ops: RAM test"}]
    cloud = cloud_factory(topology(hosts, []))
    cloud.apply(segment(), *(host(h["name"]) for h in hosts))
    cloud.wait_phase("mhost", "compute3", {"Active"}, 30)
    time.sleep(2)  # a few resyncs
    assert service(cloud, "compute3").status == "disabled"


def test_instance_failure_restarts_ha_enabled_instances_only(cloud_factory: Any) -> None:
    cloud = cloud_factory(
        topology(
            HOSTS,
            [
                {"name": "ha", "host": "compute1", "id": UUID, "metadata": {"HA_Enabled": "True"}},
                {"name": "plain", "host": "compute1", "id": UUID.replace("8f2a", "0000")},
            ],
        )
    )
    cloud.apply(segment(), *(host(h["name"]) for h in HOSTS))
    crash = {"event": "LIFECYCLE", "vir_domain_event": "STOPPED_FAILED"}
    cloud.apply(
        report("ha-crash", "VM", "compute1", {**crash, "instance_uuid": UUID}),
        report(
            "plain-crash",
            "VM",
            "compute1",
            {**crash, "instance_uuid": UUID.replace("8f2a", "0000")},
        ),
        report(
            "ha-shutdown",
            "VM",
            "compute1",
            {**crash, "vir_domain_event": "STOPPED_SHUTDOWN", "instance_uuid": UUID},
        ),
    )
    status = cloud.wait_phase("fev", "ha-crash", DONE)
    assert (status["phase"], status["reason"]) == ("Finished", "Recovered"), status
    assert [s["name"] for s in status["steps"]] == [
        "StopInstanceTask",
        "StartInstanceTask",
        "ConfirmInstanceActiveTask",
    ]
    assert cloud.wait_phase("fev", "plain-crash", DONE)["reason"] == "NotHAEnabled"
    assert cloud.wait_phase("fev", "ha-shutdown", DONE)["reason"] == "NotRecoverableEvent"
    server = cloud.nova().compute.get_server(UUID)
    assert server.status == "ACTIVE" and server.compute_host == "compute1"


def test_nova_compute_process_failure_and_return(cloud_factory: Any) -> None:
    cloud = cloud_factory(topology(HOSTS, []))
    cloud.apply(segment(), *(host(h["name"]) for h in HOSTS))
    cloud.wait_phase("mhost", "compute1", {"Active"}, 30)
    cloud.apply(
        report(
            "stopped", "PROCESS", "compute1", {"event": "STOPPED", "process_name": "nova-compute"}
        )
    )
    assert cloud.wait_phase("fev", "stopped", DONE)["reason"] == "ComputeServiceDisabled"
    time.sleep(2.5)  # host resyncs run meanwhile and must not undo it
    assert service(cloud, "compute1").status == "disabled"
    cloud.apply(
        report(
            "started", "PROCESS", "compute1", {"event": "STARTED", "process_name": "nova-compute"}
        )
    )
    assert cloud.wait_phase("fev", "started", DONE)["reason"] == "ComputeServiceEnabled"
    assert service(cloud, "compute1").status == "enabled"
    cloud.apply(
        report("libvirt", "PROCESS", "compute1", {"event": "STOPPED", "process_name": "libvirtd"})
    )
    assert cloud.wait_phase("fev", "libvirt", DONE)["reason"] == "Recorded"
    assert service(cloud, "compute1").status == "enabled"
    assert cloud.status("mhost", "compute1")["phase"] == "Active"


def test_maintenance_waits_while_the_host_recovers(cloud_factory: Any) -> None:

    cloud = cloud_factory(
        topology(HOSTS, servers(["a", "b", "c"], "compute1")),
        sim_args=("--evacuation-seconds", "3"),
    )
    cloud.apply(
        segment(hostFailure={"evacuationConcurrency": 1}), *(host(h["name"]) for h in HOSTS)
    )
    cloud.sim.control("POST", "hosts/compute1/kill")
    cloud.apply(host_failure("c1", "compute1"))
    cloud.wait_phase("fev", "c1", {"Running"}, 30)
    cloud.apply(host("compute1", onMaintenance=True))

    def maintenance_blocked() -> dict[str, Any] | None:
        for condition in cloud.status("mhost", "compute1").get("conditions", []):
            if condition["type"] == "MaintenanceBlocked" and condition["status"] == "True":
                return condition
        return None

    condition = wait_for("maintenance blocked", maintenance_blocked, 30)
    assert condition["reason"] == "RecoveryInProgress" and "c1" in condition["message"]
    assert cloud.wait_phase("fev", "c1", {"Finished", "Failed"}, 60)["phase"] == "Finished"
    wait_for("condition cleared", lambda: not maintenance_blocked(), 30)

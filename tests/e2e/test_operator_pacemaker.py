"""The whole chain on real parts: a Pacemaker node SIGKILLed, the host monitors inside the
surviving nodes report it, the operator checks the fencing with crm_mon, recovers the node's
instances on the simulated Nova, and puts a node in standby for maintenance."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cluster
from tests.e2e.conftest import LabFactory
from tests.harness.hostmonitor_fleet import HostMonitorFleet
from tests.harness.operator import running_operator
from tests.harness.pacemaker_lab import PacemakerLab
from tests.harness.sim import running_sim
from tests.integration.operator_env import (
    Cloud,
    host,
    host_failure,
    iter_moves,
    segment,
    wait_for,
)

pytestmark = [pytest.mark.pacemaker, pytest.mark.integration]

NODES = ("node1", "node2", "node3")


def pacemaker_cloud(
    stack: contextlib.ExitStack,
    lab_factory: LabFactory,
    cluster: Cluster,
    tmp_path: Path,
    prefix: str,
    servers: list[dict[str, Any]],
) -> tuple[PacemakerLab, Cloud]:
    """A three-node lab, a simulated Nova of the same three hosts, and the operator bound to
    both in a namespace of its own; it reads and changes the cluster through node1, as it
    would over SSH."""
    namespace = f"{prefix}-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", namespace)
    topology = {"hosts": [{"name": n, "vcpus": 8} for n in NODES], "servers": servers}
    lab = stack.enter_context(lab_factory(members=3, fence_delay=2))
    sim = stack.enter_context(running_sim(topology, "--service-down-time", "2"))
    operator = stack.enter_context(
        running_operator(
            cluster.kubeconfig,
            namespace,
            sim.clouds_yaml,
            sim.cloud,
            tmp_path,
            {"MASAKARI_PACEMAKER_LOCAL_PREFIX": " ".join(lab.nsenter_prefix("node1"))},
            pacemaker={"local": {}},
        )
    )
    return lab, Cloud(cluster, namespace, sim, operator)


def test_killed_node_is_recovered_and_maintenance_uses_standby(
    lab_factory: LabFactory, cluster: Cluster, tmp_path: Path
) -> None:
    servers = [
        {"name": f"vm-{i}", "host": "node3", "metadata": {"HA_Enabled": "True"}} for i in range(3)
    ]
    with contextlib.ExitStack() as stack:
        lab, cloud = pacemaker_cloud(
            stack, lab_factory, cluster, tmp_path, "operator-pcmk", servers
        )
        assert cloud.sim is not None
        sim = cloud.sim
        fleet = HostMonitorFleet(lab, cluster.kubeconfig, cluster.kubectl, cloud.namespace)
        cloud.apply(
            segment(fleet.segment, fencing="pacemaker", hostFailure={"fencingTimeoutSeconds": 30}),
            *(host(n, fleet.segment) for n in NODES),
        )
        wait_for(
            "pacemaker state in host status",
            lambda: all(
                (cloud.status("mhost", n).get("pacemaker") or {}).get("state") == "online"
                for n in NODES
            ),
            60,
        )
        fleet.start_all()
        fleet.wait_ready()

        lab.kill("node3")
        sim.control("POST", "hosts/node3/kill")  # the same machine, as Nova sees it
        report = fleet.wait_event("node3", "STOPPED", exclude=set())
        name = report["metadata"]["name"]
        status = cloud.wait_phase("fev", name, {"Finished", "Failed", "Ignored"}, 120)
        assert status["phase"] == "Finished", status
        assert {dest for _, _, dest in iter_moves(status)} <= {"node1", "node2"}
        assert sorted(sim.control("GET", "evacuations")["evacuations"].values()) == [1, 1, 1]
        failures = [e for e in fleet.events("node3") if e["spec"]["payload"]["event"] == "STOPPED"]
        assert len(failures) == 1  # two monitors reported it, one object, one recovery

        cloud.apply(host("node2", fleet.segment, onMaintenance=True))
        wait_for(
            "node2 in standby",
            lambda: lab.node_states("node1").get("node2", {}).get("standby") == "true",
            60,
        )
        cloud.wait_phase("mhost", "node2", {"Maintenance"}, 30)
        cloud.apply(host("node2", fleet.segment))
        wait_for(
            "node2 online",
            lambda: lab.node_states("node1").get("node2", {}).get("standby") == "false",
            60,
        )
        cloud.wait_phase("mhost", "node2", {"Active"}, 30)


def test_a_cleanly_stopped_live_node_is_never_evacuated(
    lab_factory: LabFactory, cluster: Cluster, tmp_path: Path
) -> None:
    """node3's cluster stack is stopped by hand (Pacemaker, then Corosync): offline in a
    quorate cluster, never fenced, while the hypervisor and its instances run on. A monitor
    claims it dead with host_status NORMAL: a claim, not a confirmation. Nothing of node3 is
    forced down or evacuated, and the event ends with a reason."""
    servers: list[dict[str, Any]] = [{"name": f"vm-{i}", "host": "node3"} for i in range(2)]
    with contextlib.ExitStack() as stack:
        lab, cloud = pacemaker_cloud(
            stack, lab_factory, cluster, tmp_path, "operator-clean", servers
        )
        assert cloud.sim is not None
        sim = cloud.sim
        cloud.apply(
            segment(fencing="pacemaker", hostFailure={"fencingTimeoutSeconds": 30}),
            *(host(n) for n in NODES),
        )
        wait_for(
            "node3 online in its Host status",
            lambda: (cloud.status("mhost", "node3").get("pacemaker") or {}).get("onlineSince"),
            60,
        )
        lab.exec("node3", ["pacemakerd", "--shutdown"])
        wait_for(
            "Pacemaker stopped on node3",
            lambda: lab.node_states("node1").get("node3", {}).get("pending") == "true",
            60,
        )
        lab.exec("node3", ["corosync-cfgtool", "-H", "--force"])

        def offline() -> dict[str, str] | None:
            states = lab.node_states("node1").get("node3", {})
            return states if states.get("online") == "false" else None

        states = wait_for("node3 cleanly offline", offline, 60)
        assert states["unclean"] == "false"

        claim = host_failure("node3-claimed-dead", "node3")
        claim["spec"]["source"] = "a monitor that never checked the power"
        cloud.apply(claim)
        waiting = wait_for(
            "the claim held for fencing",
            lambda: (
                (s := cloud.status("fev", "node3-claimed-dead")).get("reason") == "AwaitingFencing"
                and s
            ),
            30,
        )
        assert "no fencing of it since it last came online" in waiting["message"]
        status = cloud.wait_phase(
            "fev", "node3-claimed-dead", {"Finished", "Failed", "Ignored"}, 90
        )
        # Nova still hears from node3 (HostRecovered), or the fencing timeout passes first.
        assert status["phase"] == "Ignored", status
        assert status["reason"] in ("HostRecovered", "HostNotConfirmedDown"), status
        assert sim.control("GET", "evacuations")["evacuations"] == {}
        service = next(cloud.nova().compute.services(host="node3", binary="nova-compute"))
        assert service.status == "enabled" and not service.is_forced_down

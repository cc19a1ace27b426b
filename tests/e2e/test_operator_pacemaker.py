"""The whole chain on real parts: a Pacemaker node SIGKILLed, the host monitors inside the
surviving nodes report it, the operator checks the fencing with crm_mon, recovers the node's
instances on the simulated Nova, and puts a node in standby for maintenance. A node that
Pacemaker would never fence by itself (its stack stopped cleanly) is fenced at the operator's
request before anything moves; a node the cluster cannot fence is never evacuated."""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from controller.drivers.pacemaker.cluster import CrmCluster
from controller.drivers.pacemaker.runner import LocalRunner
from controller.recovery.pacemaker import FenceEvent
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
    **lab_options: Any,
) -> tuple[PacemakerLab, Cloud]:
    """A three-node lab, a simulated Nova of the same three hosts, and the operator bound to
    both in a namespace of its own; it reads, changes and fences the cluster through node1, as
    it would over SSH."""
    lab = stack.enter_context(lab_factory(**{"members": 3, "fence_delay": 2, **lab_options}))
    return lab, lab_cloud(stack, lab, cluster, tmp_path, prefix, servers)


def lab_cloud(
    stack: contextlib.ExitStack,
    lab: PacemakerLab,
    cluster: Cluster,
    workdir: Path,
    prefix: str,
    servers: list[dict[str, Any]],
    via: str = "node1",
) -> Cloud:
    """A simulated Nova of the lab's three hosts and an operator of its own, in a namespace of
    its own, reaching the cluster through node `via`."""
    namespace = f"{prefix}-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", namespace)
    topology = {"hosts": [{"name": n, "vcpus": 8} for n in NODES], "servers": servers}
    sim = stack.enter_context(running_sim(topology, "--service-down-time", "2"))
    operator = stack.enter_context(
        running_operator(
            cluster.kubeconfig,
            namespace,
            sim.clouds_yaml,
            sim.cloud,
            workdir,
            {"MASAKARI_PACEMAKER_LOCAL_PREFIX": " ".join(lab.nsenter_prefix(via))},
            pacemaker={"local": {}},
        )
    )
    return Cloud(cluster, namespace, sim, operator)


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
        # Pacemaker fenced the lost node by itself; the operator found the record (or, had
        # it been quicker, asked for a fencing itself) before anything moved.
        first = status["steps"][0]
        assert first["name"] == "FenceHostTask" and first["state"] in ("SKIPPED", "SUCCESS")
        assert status["fencing"].get("confirmedTime"), status["fencing"]
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


def fencings_of(lab: PacemakerLab, node: str) -> tuple[FenceEvent, ...]:
    """The cluster-wide fencing history of `node`, as node1 reads it."""
    return (
        CrmCluster(LocalRunner(prefix=tuple(lab.nsenter_prefix("node1")))).state().fencing_of(node)
    )


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_a_cleanly_stopped_live_node_is_fenced_before_anything_moves(
    lab_factory: LabFactory, cluster: Cluster, tmp_path: Path
) -> None:
    """node3's cluster stack is stopped by hand and its nova-compute falls silent, while the
    hypervisor and its instances may run on. Pacemaker never fences a node that left cleanly,
    and a clean stop is not fencing: the operator asks the cluster to fence node3, and only
    once the fencing is on record does anything of node3 move."""
    servers: list[dict[str, Any]] = [
        {"name": f"vm-{i}", "host": "node3", "metadata": {"HA_Enabled": "True"}} for i in range(2)
    ]
    with contextlib.ExitStack() as stack:
        lab, cloud = pacemaker_cloud(
            stack, lab_factory, cluster, tmp_path, "operator-clean", servers
        )
        assert cloud.sim is not None
        sim = cloud.sim
        cloud.apply(
            segment(fencing="pacemaker", hostFailure={"fencingTimeoutSeconds": 60}),
            *(host(n) for n in NODES),
        )
        wait_for(
            "node3 online in its Host status",
            lambda: (cloud.status("mhost", "node3").get("pacemaker") or {}).get("onlineSince"),
            60,
        )
        lab.stop_stack("node3", observer="node1")
        sim.control("POST", "hosts/node3/kill")  # nova-compute silent: Nova cannot tell either
        assert not any(event.succeeded for event in fencings_of(lab, "node3"))

        claim = host_failure("node3-claimed-dead", "node3")
        claim["spec"]["source"] = "a monitor that never checked the power"
        cloud.apply(claim)
        status = cloud.wait_phase(
            "fev", "node3-claimed-dead", {"Finished", "Failed", "Ignored"}, 120
        )
        assert status["phase"] == "Finished", status

        # The fencing was the operator's request, the first step, and its proof is recorded.
        first = status["steps"][0]
        assert (first["name"], first["state"]) == ("FenceHostTask", "SUCCESS"), first
        fencing = status["fencing"]
        assert fencing["method"] == "pacemaker" and fencing["requests"] >= 1, fencing
        assert "fenced" in fencing["proof"] and fencing.get("confirmedTime"), fencing
        created = at(cloud.get("fev", "node3-claimed-dead")["metadata"]["creationTimestamp"])
        fenced = [
            event
            for event in fencings_of(lab, "node3")
            if event.succeeded and event.completed is not None and event.completed >= created
        ]
        assert fenced, fencings_of(lab, "node3")
        assert all((e.client or "").startswith("stonith_admin") for e in fenced), fenced

        # Nothing moved before the fencing was confirmed and recorded.
        confirmed = at(fencing["confirmedTime"])
        moves = status["instances"]
        assert len(moves) == 2 and all(m["status"] == "succeeded" for m in moves), moves
        assert all(at(m["startTime"]) >= confirmed for m in moves), (confirmed, moves)
        first_fenced = min(e.completed for e in fenced if e.completed is not None)
        assert all(at(m["startTime"]) >= first_fenced for m in moves), (first_fenced, moves)
        assert {dest for _, _, dest in iter_moves(status)} <= {"node1", "node2"}
        assert sorted(sim.control("GET", "evacuations")["evacuations"].values()) == [1, 1]


@pytest.mark.parametrize(
    ("lab_option", "why"),
    [
        ("unfenceable", "no fencing device can fence node3"),
        ("failing_fence", "the fencing device failed to fence node3"),
    ],
)
def test_a_node_the_cluster_cannot_fence_is_never_evacuated(
    lab_factory: LabFactory, cluster: Cluster, tmp_path: Path, lab_option: str, why: str
) -> None:
    """node3 loses power, and no fencing device can fence it (unfenceable) or its device fails
    every fencing (failing_fence): Pacemaker cannot, and neither can the operator's requests.
    Its instances might still run for all anyone can prove, so none is evacuated: the event
    ends HostNotConfirmedDown, saying why."""
    servers: list[dict[str, Any]] = [
        {"name": f"vm-{i}", "host": "node3", "metadata": {"HA_Enabled": "True"}} for i in range(2)
    ]
    with contextlib.ExitStack() as stack:
        lab, cloud = pacemaker_cloud(
            stack,
            lab_factory,
            cluster,
            tmp_path,
            "operator-unfenced",
            servers,
            **{lab_option: ("node3",)},
        )
        assert cloud.sim is not None
        sim = cloud.sim
        policy = segment(fencing="pacemaker", hostFailure={"fencingTimeoutSeconds": 60})
        policy["spec"]["fencing"].update({"attempts": 2, "attemptTimeoutSeconds": 10})
        cloud.apply(policy, *(host(n) for n in NODES))
        wait_for(
            "node3 online in its Host status",
            lambda: (cloud.status("mhost", "node3").get("pacemaker") or {}).get("onlineSince"),
            60,
        )
        lab.kill("node3")
        sim.control("POST", "hosts/node3/kill")
        lab.wait_node("node3", "node1", online="false")

        cloud.apply(host_failure("node3-unfenced", "node3"))
        status = cloud.wait_phase("fev", "node3-unfenced", {"Finished", "Failed", "Ignored"}, 120)
        assert (status["phase"], status["reason"]) == ("Ignored", "HostNotConfirmedDown"), status
        first = status["steps"][0]
        assert (first["name"], first["state"]) == ("FenceHostTask", "FAILURE"), first
        fencing = status["fencing"]
        assert fencing["requests"] == 2 and not fencing.get("confirmedTime"), fencing
        assert why in (fencing.get("lastError") or ""), fencing
        assert why in status["message"], status
        assert not any(event.succeeded for event in fencings_of(lab, "node3"))
        # The operator's requests reached the cluster: they are in its history, failed.
        assert any(
            (event.client or "").startswith("stonith_admin") for event in fencings_of(lab, "node3")
        )
        assert sim.control("GET", "evacuations")["evacuations"] == {}
        service = next(cloud.nova().compute.services(host="node3", binary="nova-compute"))
        assert not service.is_forced_down

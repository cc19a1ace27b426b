"""Two operator replicas: only the Lease holder acts; when it dies, or freezes past its Lease,
the standby takes over, and a frozen leader that wakes up acts on nothing."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest

from tests.conftest import Cluster
from tests.harness.operator import STARTED, Operator
from tests.harness.sim import Sim, running_sim
from tests.integration.operator_env import (
    Cloud,
    host,
    host_failure,
    segment,
    servers,
    topology,
    wait_for,
)

pytestmark = pytest.mark.integration

HOSTS = [{"name": f"compute{i}", "vcpus": 8} for i in (1, 2, 3)]


def start_replicas(
    stack: contextlib.ExitStack, cluster: Cluster, namespace: str, sim: Sim, tmp_path: Path
) -> tuple[Operator, Operator]:
    """Two replicas electing a leader; the first one started leads."""
    replicas = [
        Operator(
            cluster.kubeconfig,
            namespace,
            sim.clouds_yaml,
            sim.cloud,
            tmp_path / f"replica-{i}.log",
            standalone=False,
        )
        for i in (1, 2)
    ]
    for replica in replicas:
        stack.callback(replica.stop)
        replica.start()
    leader, standby = replicas
    assert STARTED in leader.log() and STARTED not in standby.log()
    return leader, standby


def lease_holder(cluster: Cluster, namespace: str) -> str:
    return cluster.kubectl(
        "get",
        "lease",
        "masakari-operator",
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ).stdout


def test_only_the_leader_acts_and_a_standby_takes_over(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    spec = topology(HOSTS, servers(["a", "b"], "compute1") + servers(["c"], "compute2"))
    with contextlib.ExitStack() as stack:
        sim = stack.enter_context(running_sim(spec, "--service-down-time", "2"))
        leader, standby = start_replicas(stack, cluster, namespace, sim, tmp_path)
        cloud = Cloud(cluster, namespace, sim, leader)

        cloud.apply(segment(), *(host(h["name"]) for h in HOSTS))
        sim.control("POST", "hosts/compute1/kill")
        cloud.apply(host_failure("c1", "compute1"))
        assert cloud.wait_phase("fev", "c1", {"Finished", "Failed", "Ignored"})["phase"] == (
            "Finished"
        )
        assert sorted(sim.control("GET", "evacuations")["evacuations"].values()) == [1, 1]
        assert "masakari.recovery" not in standby.log()
        assert "kopf.objects" not in standby.log()  # it handled nothing at all

        leader.kill()
        wait_for("the standby to lead", lambda: STARTED in standby.log(), 30)
        sim.control("POST", "hosts/compute2/kill")
        cloud.apply(host_failure("c2", "compute2"))
        second = cloud.wait_phase("fev", "c2", {"Finished", "Failed", "Ignored"})
        assert second["phase"] == "Finished", second
        # Servers that landed on compute2 in the first recovery move again: once per failure.
        counts = sim.control("GET", "evacuations")["evacuations"]
        assert sum(counts.values()) == 2 + len(second["instances"]), counts
        lease = lease_holder(cluster, namespace)
        assert lease and lease in standby.log()


def test_a_leader_frozen_past_its_lease_acts_on_nothing_when_it_wakes_up(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    names = [f"vm-{i}" for i in range(5)]
    spec = topology(HOSTS, servers(names, "compute1", metadata={"HA_Enabled": "True"}))
    with contextlib.ExitStack() as stack:
        sim = stack.enter_context(
            running_sim(spec, "--service-down-time", "2", "--evacuation-seconds", "1")
        )
        leader, standby = start_replicas(stack, cluster, namespace, sim, tmp_path)
        frozen = leader.process
        assert frozen is not None

        def resume() -> None:
            if frozen.poll() is None:
                os.kill(frozen.pid, signal.SIGCONT)

        # At teardown, resumed before it is stopped (the stack unwinds backwards): a stopped
        # process ignores SIGTERM until it is continued.
        stack.callback(resume)
        cloud = Cloud(cluster, namespace, sim, leader)

        def moving() -> bool:
            moves = cloud.status("fev", "c1").get("instances", [])
            return any(m["status"] == "ongoing" for m in moves)

        cloud.apply(
            segment(hostFailure={"evacuationConcurrency": 1}), *(host(h["name"]) for h in HOSTS)
        )
        sim.control("POST", "hosts/compute1/kill")
        cloud.apply(host_failure("c1", "compute1"))
        # Mid-recovery: one server moving, the others still to go.
        wait_for("the first evacuation", moving, 60, 0.05)
        os.kill(frozen.pid, signal.SIGSTOP)

        wait_for("the standby to lead", lambda: STARTED in standby.log(), 30)
        cloud.operator = standby
        done = cloud.wait_phase("fev", "c1", {"Finished", "Failed", "Ignored"}, 90)
        assert done["phase"] == "Finished", done
        finished = cloud.get("fev", "c1")
        counts = sim.control("GET", "evacuations")["evacuations"]
        assert sorted(counts.values()) == [1] * len(names), counts

        woke_at = len(leader.log())
        resume()
        wait_for("the woken leader to exit", lambda: frozen.poll() is not None, 15)
        assert frozen.returncode == 70
        after = leader.log()[woke_at:]
        assert "not renewed in time; stopping at once" in after, after
        assert "masakari.recovery" not in after, after  # no transition recorded
        assert sim.control("GET", "evacuations")["evacuations"] == counts
        # Not a single write to the event from the woken leader.
        again = cloud.get("fev", "c1")
        assert again["metadata"]["resourceVersion"] == finished["metadata"]["resourceVersion"]
        assert lease_holder(cluster, namespace) in standby.log()

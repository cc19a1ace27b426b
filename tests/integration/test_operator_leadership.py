"""Two operator replicas: only the Lease holder acts; when it dies, the standby takes over."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from tests.conftest import Cluster
from tests.harness.operator import STARTED, Operator
from tests.harness.sim import running_sim
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


def test_only_the_leader_acts_and_a_standby_takes_over(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    spec = topology(HOSTS, servers(["a", "b"], "compute1") + servers(["c"], "compute2"))
    with contextlib.ExitStack() as stack:
        sim = stack.enter_context(running_sim(spec, "--service-down-time", "2"))
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
        lease = cluster.kubectl(
            "get",
            "lease",
            "masakari-operator",
            "-n",
            namespace,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ).stdout
        assert lease and lease in standby.log()

"""One operator serving three namespaces: two bound each to its own simulated cloud, with the
same host names in both, and one bound to nothing. A failure is recovered in the cloud of its
own namespace only, and nothing of a namespace without exactly one binding is acted on."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cluster
from tests.harness.operator import Operator, bind_namespace
from tests.harness.sim import running_sim
from tests.integration.operator_env import (
    Cloud,
    host,
    host_failure,
    servers,
    topology,
    wait_for,
)

pytestmark = pytest.mark.integration

HOSTS = [{"name": f"compute-{i}", "vcpus": 8} for i in (1, 2, 3)]
SIM_ARGS = ("--service-down-time", "2", "--evacuation-seconds", "0.3")
SEGMENT = {
    "apiVersion": "masakari.dev/v1alpha1",
    "kind": "FailoverSegment",
    "metadata": {"name": "seg"},
    # The simulated clouds have no Pacemaker: a monitor's NORMAL confirms a host down.
    "spec": {"recoveryMethod": "auto", "serviceType": "COMPUTE", "fencing": {"method": "none"}},
}


def condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions", []) if c["type"] == kind), None)


def reason_of(cloud: Cloud, kind: str, name: str, condition_type: str) -> str | None:
    found = condition(cloud.status(kind, name), condition_type)
    return f"{found['status']}/{found['reason']}" if found else None


def hosts_ready(cloud: Cloud) -> Callable[[], bool]:
    return lambda: all(
        cloud.status("mhost", h["name"]).get("phase") == "Active"
        and reason_of(cloud, "mhost", h["name"], "CloudBound") == "True/Bound"
        for h in HOSTS
    )


def test_a_failure_is_recovered_in_its_own_namespaces_cloud_only(
    cluster: Cluster, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:6]
    a, b, unbound = (f"cloud-{x}-{suffix}" for x in ("a", "b", "none"))
    for name in (a, b, unbound):
        cluster.kubectl("create", "namespace", name)
    with contextlib.ExitStack() as stack:
        sim_a = stack.enter_context(
            running_sim(topology(HOSTS, servers(["a-1", "a-2"], "compute-1")), *SIM_ARGS)
        )
        sim_b = stack.enter_context(
            running_sim(topology(HOSTS, servers(["b-1", "b-2", "b-3"], "compute-1")), *SIM_ARGS)
        )
        bind_namespace(cluster.kubeconfig, b, sim_b.clouds_yaml, sim_b.cloud)
        operator = Operator(
            cluster.kubeconfig,
            a,  # bound to sim A by the harness
            sim_a.clouds_yaml,
            sim_a.cloud,
            tmp_path / "operator.log",
            also_serve=(b, unbound),
        )
        stack.callback(lambda: print(operator.log()[-8000:]))  # shown when the test fails
        stack.callback(operator.stop)
        operator.start()
        cloud_a, cloud_b, cloud_none = (
            Cloud(cluster, a, sim_a, operator),
            Cloud(cluster, b, sim_b, operator),
            Cloud(cluster, unbound, None, operator),
        )
        for cloud in (cloud_a, cloud_b, cloud_none):
            cloud.apply(SEGMENT, *(host(h["name"]) for h in HOSTS))
        for cloud in (cloud_a, cloud_b):
            wait_for(f"hosts of {cloud.namespace} active and bound", hosts_ready(cloud), 30)
        assert reason_of(cloud_b, "mcloud", "cloud", "Ready") == "True/Bound"

        # compute-1 exists in both clouds; only cloud B's dies and is reported, in B.
        sim_b.control("POST", "hosts/compute-1/kill")
        cloud_b.apply(host_failure("compute-1-down", "compute-1"))
        status = cloud_b.wait_phase("fev", "compute-1-down", {"Finished", "Failed", "Ignored"})
        assert (status["phase"], status["reason"]) == ("Finished", "Recovered"), status
        assert sorted(sim_b.control("GET", "evacuations")["evacuations"].values()) == [1, 1, 1]
        assert sim_a.control("GET", "evacuations")["evacuations"] == {}
        [service_a] = cloud_a.nova().compute.services(host="compute-1", binary="nova-compute")
        assert service_a.status == "enabled" and not service_a.is_forced_down

        # The namespace bound to nothing: its report waits, and everything says why.
        cloud_none.apply(host_failure("compute-1-down", "compute-1"))
        wait_for(
            "the unbound namespace's report blocked",
            lambda: (
                reason_of(cloud_none, "fev", "compute-1-down", "Blocked") == "True/CloudNotBound"
            ),
            30,
        )
        assert cloud_none.status("fev", "compute-1-down")["phase"] == "New"
        wait_for(
            "the unbound namespace's segment and hosts saying why",
            lambda: (
                reason_of(cloud_none, "fseg", "seg", "CloudBound") == "False/NoCloudBinding"
                and reason_of(cloud_none, "fseg", "seg", "RecoveryAllowed") == "False/CloudNotBound"
                and reason_of(cloud_none, "mhost", "compute-1", "CloudBound")
                == "False/NoCloudBinding"
            ),
            30,
        )
        assert cloud_none.status("fseg", "seg")["phase"] == "Blocked"
        assert "phase" not in cloud_none.status("mhost", "compute-1")  # nothing was read

        # A second binding in A unbinds A at once; removing it binds A again.
        duplicate = {
            "apiVersion": "masakari.dev/v1alpha1",
            "kind": "CloudBinding",
            "metadata": {"name": "another"},
            "spec": {"secretName": "openstack-clouds", "cloud": sim_a.cloud},
        }
        cloud_a.apply(duplicate)
        wait_for(
            "both bindings of A refused",
            lambda: (
                {reason_of(cloud_a, "mcloud", n, "Ready") for n in ("cloud", "another")}
                == {"False/DuplicateCloudBinding"}
            ),
            30,
        )
        wait_for(
            "A's segment unbound",
            lambda: (
                reason_of(cloud_a, "fseg", "seg", "CloudBound") == "False/DuplicateCloudBinding"
            ),
            30,
        )
        cluster.kubectl("delete", "mcloud", "another", "-n", a)
        wait_for(
            "A bound again",
            lambda: (
                reason_of(cloud_a, "mcloud", "cloud", "Ready") == "True/Bound"
                and reason_of(cloud_a, "fseg", "seg", "CloudBound") == "True/Bound"
            ),
            30,
        )

    # No credential in what the operator wrote to its log.
    for sim in (sim_a, sim_b):
        assert sim.admin_password not in operator.log()

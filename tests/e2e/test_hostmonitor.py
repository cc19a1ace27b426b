"""End to end: a real 3-node cluster, the real API server, one host monitor inside each node."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import Cluster
from tests.e2e.conftest import LabFactory
from tests.harness.hostmonitor_fleet import HostMonitorFleet

pytestmark = [pytest.mark.pacemaker, pytest.mark.integration]

SURVIVORS = ("node1", "node2")


@pytest.fixture(scope="module")
def fleet(lab_factory: LabFactory, cluster: Cluster) -> Iterator[HostMonitorFleet]:
    namespace = f"hostmonitor-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", namespace)
    with lab_factory(members=3, fence_delay=2) as lab:
        monitors = HostMonitorFleet(lab, cluster.kubeconfig, cluster.kubectl, namespace)
        monitors.create_hosts()
        monitors.start_all()
        monitors.wait_ready()
        yield monitors


def reported(fleet: HostMonitorFleet, node: str, event: str, name: str) -> list[str]:
    """How each survivor's monitor ended its report of `event` for `node` named `name`."""
    pattern = rf"reported {event} of node {node} .* as {name}: (created|already reported)"
    return [fleet.wait_log(monitor, pattern, timeout=30).group(1) for monitor in SURVIVORS]


def test_killed_node_gives_one_failure_event_then_started(fleet: HostMonitorFleet) -> None:
    before = {item["metadata"]["name"] for item in fleet.events("node3")}
    fleet.lab.kill("node3")
    stopped = fleet.wait_event("node3", "STOPPED", exclude=before)
    name = stopped["metadata"]["name"]
    # Both survivors reported the failure; the second one's create met the first one's object.
    assert sorted(reported(fleet, "node3", "STOPPED", name)) == ["already reported", "created"]
    stops = [i for i in fleet.events("node3") if i["spec"]["payload"]["event"] == "STOPPED"]
    assert [
        item["metadata"]["name"] for item in stops if item["metadata"]["name"] not in before
    ] == [name]
    assert stopped["spec"]["type"] == "COMPUTE_HOST" and stopped["spec"]["host"] == "node3"
    assert stopped["spec"]["payload"] == {
        "event": "STOPPED",
        "cluster_status": "OFFLINE",
        "host_status": "NORMAL",
    }
    assert stopped["metadata"]["labels"] == {
        "masakari.dev/host": "node3",
        "masakari.dev/type": "COMPUTE_HOST",
        "masakari.dev/segment": fleet.segment,
    }
    assert stopped["spec"]["source"] in {"hostmonitor/node1", "hostmonitor/node2"}

    fleet.lab.start_node("node3")
    fleet.start("node3")
    started = fleet.wait_event("node3", "STARTED", exclude=before)
    assert started["spec"]["payload"]["cluster_status"] == "ONLINE"
    assert sorted(reported(fleet, "node3", "STARTED", started["metadata"]["name"])) == [
        "already reported",
        "created",
    ]
    starts = [i for i in fleet.events("node3") if i["spec"]["payload"]["event"] == "STARTED"]
    assert len([i for i in starts if i["metadata"]["name"] not in before]) == 1
    fleet.wait_ready()


def test_partitioned_minority_reports_nothing(fleet: HostMonitorFleet) -> None:
    before = {item["metadata"]["name"] for item in fleet.events()}
    fleet.lab.cut("node3")
    try:
        # The majority reports the lost node3 ...
        stopped = fleet.wait_event("node3", "STOPPED", exclude=before)
        reported(fleet, "node3", "STOPPED", stopped["metadata"]["name"])
        # ... while node3, alive and able to reach the API server, sees the others lost ...
        fleet.wait_log("node3", "partition without quorum")
        view = fleet.lab.node_states("node3")
        assert any(
            view[other]["online"] == "false" or view[other]["unclean"] == "true"
            for other in SURVIVORS
        ), view
        assert fleet.processes["node3"].poll() is None
        # ... and reports none of them.
        new = [i for i in fleet.events() if i["metadata"]["name"] not in before]
        assert [item["spec"]["host"] for item in new] == ["node3"]
        assert "reported" not in fleet.log("node3").split("partition without quorum")[-1]
    finally:
        fleet.lab.restore("node3")
    # fence_dummy "fenced" node3 without touching it; reboot it as a real fence would.
    fleet.lab.kill("node3")
    fleet.lab.start_node("node3")
    fleet.start("node3")
    fleet.wait_event("node3", "STARTED", exclude=before)

"""The Pacemaker driver against a real 3-node cluster with a pacemaker-remote node."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from controller.drivers.pacemaker.cluster import CrmCluster
from controller.drivers.pacemaker.runner import LocalRunner
from controller.recovery.pacemaker import ClusterState, ClusterUnavailable, NodeNotFound
from controller.recovery.ports import PacemakerCluster
from tests.e2e.conftest import LabFactory
from tests.harness.pacemaker_lab import PacemakerLab

pytestmark = pytest.mark.pacemaker


@pytest.fixture(scope="module")
def lab(lab_factory: LabFactory) -> Iterator[PacemakerLab]:
    with lab_factory(members=3, remotes=1, fence_delay=3) as running:
        yield running


def on(lab: PacemakerLab, node: str) -> CrmCluster:
    """The driver as an agent on `node` would use it: commands run inside that node."""
    return CrmCluster(LocalRunner(prefix=tuple(lab.nsenter_prefix(node))))


def wait_state(cluster: PacemakerCluster, done: object, timeout: float = 60.0) -> ClusterState:
    deadline = time.monotonic() + timeout
    state = cluster.state()
    while not done(state):  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not reached in {timeout}s: {state}"
        time.sleep(0.1)
        state = cluster.state()
    return state


def test_state_of_a_healthy_cluster(lab: PacemakerLab) -> None:
    state = on(lab, "node2").state()
    assert state.has_quorum and state.dc in {"node1", "node2", "node3"}
    assert state.stonith_enabled and not state.maintenance_mode
    assert {node.name: node.is_remote for node in state.nodes} == {
        "node1": False,
        "node2": False,
        "node3": False,
        "remote1": True,
    }
    assert all(node.is_up for node in state.nodes)


@pytest.mark.parametrize("target", ["node1", "remote1"])
def test_standby_round_trip(lab: PacemakerLab, target: str) -> None:
    cluster = on(lab, "node2")
    cluster.put_in_standby(target)
    # Another node sees it too: the change is in the cluster, not in one node's cache.
    assert lab.wait_node(target, "node3", standby="true")["online"] == "true"
    cluster.bring_online(target)
    lab.wait_node(target, "node3", standby="false")
    node = cluster.state().node(target)
    assert node is not None and not node.standby and node.is_up


@pytest.mark.parametrize("target", ["node3", "remote1"])
def test_maintenance_round_trip(lab: PacemakerLab, target: str) -> None:
    cluster = on(lab, "node1")
    cluster.start_maintenance(target)
    lab.wait_node(target, "node2", maintenance="true")
    cluster.end_maintenance(target)
    lab.wait_node(target, "node2", maintenance="false")


def test_unknown_node_is_refused(lab: PacemakerLab) -> None:
    with pytest.raises(NodeNotFound):
        on(lab, "node1").put_in_standby("node9")


def test_node_without_a_running_stack_is_unavailable(lab: PacemakerLab) -> None:
    # The hub namespace runs no cluster daemons: crm_mon there fails "not connected".
    cluster = CrmCluster(LocalRunner(prefix=("ip", "netns", "exec", lab.hub)))
    with pytest.raises(ClusterUnavailable, match="not connected"):
        cluster.state()


def test_killed_node_is_unclean_then_fenced(lab: PacemakerLab) -> None:
    cluster = on(lab, "node1")
    lab.kill("node3")
    unclean = wait_state(cluster, lambda s: (n := s.node("node3")) is not None and n.unclean)
    node = unclean.node("node3")
    assert node is not None and not node.online and node.is_down
    fenced = wait_state(
        cluster,
        lambda s: (
            any(e.succeeded for e in s.fencing_of("node3"))
            and (n := s.node("node3")) is not None
            and not n.unclean
        ),
    )
    node = fenced.node("node3")
    assert node is not None and not node.online and not node.expected_up
    lab.start_node("node3")
    lab.wait_online(["node3"], observer="node1")


def fenced_count(state: ClusterState, node: str) -> int:
    return sum(event.succeeded for event in state.fencing_of(node))


def test_partitioned_minority_has_no_quorum(lab: PacemakerLab) -> None:
    majority = on(lab, "node1")
    fenced_before = fenced_count(majority.state(), "node3")
    lab.cut("node3")
    try:
        minority = wait_state(on(lab, "node3"), lambda s: not s.has_quorum)
        lost = [node.name for node in minority.nodes if node.is_down]
        assert "node1" in lost or "node2" in lost
        assert majority.state().has_quorum
        # The majority fences the lost node. Waiting for it also keeps that fencing from
        # landing after the restart below, which would make the new node3 stop itself.
        wait_state(majority, lambda s: fenced_count(s, "node3") > fenced_before)
    finally:
        lab.restore("node3")
    # fence_dummy "fenced" node3 without touching it; reboot it as a real fence would.
    lab.kill("node3")
    lab.start_node("node3")
    lab.wait_online(["node3"], observer="node1")

"""CrmCluster.fence against a real cluster: a fencing on request leaves a new successful record in
the fencing history, and one that cannot succeed raises and leaves none.

A lab of its own (not test_pacemaker_driver's), since it needs nodes that cannot be fenced:
node2 is in no device's host list, node3's device fails every fencing. node1 is fenced by
fence_dummy, which records success and touches nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from controller.drivers.pacemaker import stonith_admin
from controller.drivers.pacemaker.cluster import CrmCluster
from controller.drivers.pacemaker.runner import LocalRunner
from controller.recovery.pacemaker import (
    ClusterState,
    CommandTimeout,
    FenceEvent,
    FencingFailed,
)
from tests.e2e.conftest import LabFactory
from tests.harness.pacemaker_lab import PacemakerLab

pytestmark = pytest.mark.pacemaker

FENCE_DELAY = 2


@pytest.fixture(scope="module")
def lab(lab_factory: LabFactory) -> Iterator[PacemakerLab]:
    with lab_factory(
        members=3, fence_delay=FENCE_DELAY, unfenceable=("node2",), failing_fence=("node3",)
    ) as running:
        yield running


def on(lab: PacemakerLab, node: str) -> CrmCluster:
    return CrmCluster(LocalRunner(prefix=tuple(lab.nsenter_prefix(node))))


def since(state: ClusterState, node: str, begin: datetime) -> list[FenceEvent]:
    # crm_mon's completion times have one-second resolution.
    floor = begin.replace(microsecond=0)
    return [e for e in state.fencing_of(node) if e.completed is not None and e.completed >= floor]


def test_a_live_node_is_fenced_on_request(lab: PacemakerLab) -> None:
    cluster = on(lab, "node2")
    assert cluster.state().node("node1").is_up  # type: ignore[union-attr]
    begin = datetime.now(UTC)
    cluster.fence("node1", 20)
    state = cluster.state()
    (record,) = since(state, "node1", begin)
    assert record.succeeded and record.action == "off", record
    assert record.client is not None and record.client.startswith("stonith_admin")
    assert record.completed is not None
    assert record.completed <= datetime.now(UTC) + timedelta(seconds=1)
    # A member told it was fenced stops its own stack. The record can be read before the
    # cluster has acted on it (node1 still up, then online and pending for a moment); then
    # the cluster shows it out, cleanly.
    deadline = time.monotonic() + 30
    node = state.node("node1")
    while node is None or node.online:
        assert time.monotonic() < deadline, f"node1 still in after its fencing: {node}"
        time.sleep(0.2)
        node = cluster.state().node("node1")
    assert not node.unclean
    # fence_dummy touched nothing: power it off and on as a real fence would.
    lab.kill("node1")
    lab.start_node("node1")
    lab.wait_online(["node1"], observer="node2")


@pytest.mark.parametrize(
    ("target", "why"),
    [("node3", "fencing device failed to fence node3"), ("node2", "no fencing device can fence")],
)
def test_a_fencing_that_cannot_succeed_raises_and_records_no_success(
    lab: PacemakerLab, target: str, why: str
) -> None:
    cluster = on(lab, "node1")
    begin = datetime.now(UTC)
    started = time.monotonic()
    with pytest.raises(FencingFailed, match=why):
        cluster.fence(target, 20)
    assert time.monotonic() - started < 20  # an answer, not a timeout
    state = cluster.state()
    recorded = since(state, target, begin)
    assert recorded and not any(event.succeeded for event in recorded), recorded
    # Nothing happened to the node: it is still a working member.
    node = state.node(target)
    assert node is not None and node.is_up


def test_the_timeout_is_pacemakers_own(lab: PacemakerLab) -> None:
    """fence_dummy waits FENCE_DELAY seconds before it answers; a shorter fencing timeout must
    end the request at Pacemaker's bound, well before the command's."""
    cluster = on(lab, "node2")
    started = time.monotonic()
    with pytest.raises(CommandTimeout, match="did not end in time"):
        cluster.fence("node1", FENCE_DELAY / 2)
    assert time.monotonic() - started < stonith_admin.command_timeout(FENCE_DELAY / 2)

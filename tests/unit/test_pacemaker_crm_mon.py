"""The crm_mon parser on XML captured from the lab (tests/unit/data/pacemaker/capture.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller.drivers.pacemaker import crm_mon
from controller.drivers.pacemaker.runner import CommandResult
from controller.recovery.pacemaker import (
    ClusterUnavailable,
    CommandTimeout,
    FenceStatus,
    NodeNotFound,
    NodeType,
    PacemakerError,
    PermissionDenied,
)

DATA = Path(__file__).parent / "data" / "pacemaker"


def sample(name: str) -> str:
    return (DATA / f"{name}.xml").read_text()


def test_healthy_cluster() -> None:
    state = crm_mon.parse(sample("healthy"))
    assert state.has_quorum and state.dc == "node1"
    assert state.stonith_enabled and not state.maintenance_mode
    assert [node.name for node in state.nodes] == ["node1", "node2", "node3", "remote1"]
    assert all(node.is_up for node in state.nodes)
    remote = state.node("remote1")
    assert remote is not None and remote.is_remote and remote.type is NodeType.REMOTE
    node1 = state.node("node1")
    assert node1 is not None and node1.is_dc and node1.expected_up
    assert state.fence_history == ()


def test_standby_and_maintenance_of_members_and_remotes() -> None:
    state = crm_mon.parse(sample("standby-maintenance"))
    flags = {node.name: (node.standby, node.maintenance) for node in state.nodes}
    assert flags == {
        "node1": (True, False),
        "node2": (False, False),
        "node3": (False, True),
        "remote1": (True, False),
    }


@pytest.mark.parametrize(
    ("target", "lost_sample", "fenced_sample", "remote"),
    [
        ("node3", "member-unclean", "member-fenced", False),
        ("remote1", "remote-lost", "remote-fenced", True),
    ],
)
def test_killed_node_is_unclean_then_fenced(
    target: str, lost_sample: str, fenced_sample: str, remote: bool
) -> None:
    lost = crm_mon.parse(sample(lost_sample)).node(target)
    assert lost is not None and lost.unclean and not lost.online and lost.is_down
    assert lost.is_remote is remote
    fenced_state = crm_mon.parse(sample(fenced_sample))
    fenced = fenced_state.node(target)
    assert fenced is not None and not fenced.online and not fenced.unclean
    assert not fenced.expected_up and fenced.is_down
    (event,) = fenced_state.fencing_of(target)
    assert event.succeeded and event.action == "reboot" and event.status is FenceStatus.SUCCESS
    assert event.completed is not None and event.completed.tzinfo is UTC
    assert event.delegate and event.origin


def test_joining_member_is_neither_up_nor_down() -> None:
    joining = crm_mon.parse(sample("member-joining")).node("node3")
    assert joining is not None and joining.online and joining.pending and joining.standby
    assert joining.is_joining and not joining.is_up and not joining.is_down


def test_minority_partition_has_no_quorum() -> None:
    state = crm_mon.parse(sample("minority-no-quorum"))
    assert not state.has_quorum and state.dc == "node3"
    lost = state.node("node1")
    assert lost is not None and lost.unclean


def test_disabled_stonith_and_clean_offline() -> None:
    state = crm_mon.parse(sample("member-offline-no-fencing"))
    assert not state.stonith_enabled
    offline = state.node("node2")
    assert offline is not None and not offline.online and not offline.unclean
    assert offline.is_down and state.fencing_of("node2") == ()


def test_fencing_in_progress_has_no_completion() -> None:
    # The shape crm_mon printed for a fencing still running when a partition healed.
    running = (
        '<fence_history><fence_event action="reboot" target="node3" client="c" origin="node1" '
        'status="pending" extended-status="1"/></fence_history><status code="0"'
    )
    state = crm_mon.parse(sample("healthy").replace('<status code="0"', running))
    (event,) = state.fencing_of("node3")
    assert event.status is FenceStatus.PENDING and event.completed is None
    assert not event.succeeded


def test_not_connected_is_cluster_unavailable() -> None:
    code = int((DATA / "not-connected.rc").read_text())
    result = CommandResult(("crm_mon", "--output-as=xml"), code, sample("not-connected"), "")
    with pytest.raises(ClusterUnavailable, match=r"not connected.*Connection refused"):
        crm_mon.read(result)
    # The document alone, even with exit code 0, is a failure report, not a state.
    with pytest.raises(ClusterUnavailable):
        crm_mon.parse(sample("not-connected"))


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (102, ClusterUnavailable),
        (7, ClusterUnavailable),
        (4, PermissionDenied),
        (105, NodeNotFound),
        (124, CommandTimeout),
        (1, PacemakerError),
    ],
)
def test_exit_codes_become_errors(code: int, error: type[Exception]) -> None:
    result = CommandResult(("crm_attribute",), code, "", "crm_attribute: something\n")
    with pytest.raises(error, match=f"crm_attribute.*{code}"):
        crm_mon.raise_for_exit(result)


def test_garbage_is_refused() -> None:
    with pytest.raises(PacemakerError, match="not XML"):
        crm_mon.parse("Connection to cluster failed")
    with pytest.raises(PacemakerError, match="unexpected"):
        crm_mon.parse("<cib/>")


def test_completed_time_is_utc() -> None:
    (event,) = crm_mon.parse(sample("member-fenced")).fencing_of("node3")
    assert event.completed is not None
    assert event.completed < datetime.now(UTC)

"""HA readiness honours server-group anti-affinity as the recovery's plan does: a member never
goes to a host that holds another member, whether that member moves or stays."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.recovery import capacity
from controller.recovery.nova import Server, ServerGroup
from controller.recovery.placement import Candidate, Instance, SegmentHost, readiness
from tests.unit.fake_cluster import T0
from tests.unit.test_capacity import record, room, segment, servers

ROOMY = {"VCPU": 64, "MEMORY_MB": 65536, "DISK_GB": 1000}
ASK = {"VCPU": 1, "MEMORY_MB": 512, "DISK_GB": 1}


def _host(name: str, holds: tuple[str, ...], *members: tuple[str, tuple[str, ...]]) -> SegmentHost:
    return SegmentHost(
        Candidate(name, ROOMY, holds=frozenset(holds)),
        tuple(Instance(f"{name}-{i}", f"{name}-{i}", ASK, 0, groups) for i, groups in members),
    )


@pytest.mark.parametrize(
    ("hosts", "ready", "separated"),
    [
        # Two members on c1, two other hosts free of the group: each goes to one.
        (
            {
                "c1": _host("c1", ("g",), ("a", ("g",)), ("b", ("g",))),
                "c2": _host("c2", ()),
                "c3": _host("c3", ()),
            },
            True,
            (),
        ),
        # Two members on c1, one survivor: they would share it.
        (
            {"c1": _host("c1", ("g",), ("a", ("g",)), ("b", ("g",))), "c2": _host("c2", ())},
            False,
            ("g",),
        ),
        # One member each on c1 and c2, c3 empty: either loss has c3 to go to.
        (
            {
                "c1": _host("c1", ("g",), ("a", ("g",))),
                "c2": _host("c2", ("g",), ("b", ("g",))),
                "c3": _host("c3", ()),
            },
            True,
            (),
        ),
        # Members on all three hosts: the lost one's member finds only hosts with a member.
        (
            {
                "c1": _host("c1", ("g",), ("a", ("g",))),
                "c2": _host("c2", ("g",), ("b", ("g",))),
                "c3": _host("c3", ("g",), ("c", ("g",))),
            },
            False,
            ("g",),
        ),
        # A member that stays (excluded, not moving) still holds its host.
        (
            {"c1": _host("c1", ("g",), ("a", ("g",))), "c2": _host("c2", ("g",))},
            False,
            ("g",),
        ),
        # Without the group, the same two hosts are ready.
        ({"c1": _host("c1", (), ("a", ())), "c2": _host("c2", ())}, True, ()),
    ],
)
def test_readiness_with_anti_affinity(
    hosts: dict[str, SegmentHost], ready: bool, separated: tuple[str, ...]
) -> None:
    verdict = readiness(hosts)
    assert (verdict.ready, verdict.separated) == (ready, separated)


def test_a_segment_that_would_stack_two_members_is_not_ready_and_the_reason_names_the_group() -> (
    None
):
    # c1 runs two members of "db-cluster"; c2 and c3 have room for both, but c3 runs a third.
    hosts = [record(h) for h in ("c1", "c2", "c3")]
    listed = [*servers("c1", 2), *servers("c3", 1)]
    group = ServerGroup("sg-1", "db-cluster", "anti-affinity", ("c1-0", "c1-1", "c3-0"))
    resources = [room(h) for h in ("c1", "c2", "c3")]
    verdict = capacity.evaluate(segment(), hosts, resources, listed, T0, [group])
    assert not verdict.ready
    assert verdict.separated_groups == ["db-cluster (sg-1)"]
    ready, reason, message = capacity.condition(verdict)
    print(message)
    assert (ready, reason) == (False, "InsufficientCapacity")
    assert "db-cluster (sg-1)" in message
    # Soft anti-affinity is a preference: ready. So is the same segment without the group.
    soft = replace(group, policy="soft-anti-affinity")
    assert capacity.evaluate(segment(), hosts, resources, listed, T0, [soft]).ready
    assert capacity.evaluate(segment(), hosts, resources, listed, T0).ready


def test_members_excluded_from_evacuation_still_hold_their_host() -> None:
    hosts = [record("c1"), record("c2")]
    member_c1 = servers("c1", 1)
    member_c2: list[Server] = [replace(s, project_id="octavia") for s in servers("c2", 1)]
    group = ServerGroup("sg-2", "lb", "anti-affinity", ("c1-0", "c2-0"))
    spec = segment(hostFailure={"excludeProjects": ["octavia"]})
    verdict = capacity.evaluate(
        spec, hosts, [room("c1"), room("c2")], [*member_c1, *member_c2], T0, [group]
    )
    # Losing c1: its member may not join the excluded one on c2.
    assert not verdict.ready and verdict.worst_loss == ["c1"]
    assert verdict.separated_groups == ["lb (sg-2)"]

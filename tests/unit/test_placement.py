"""The placement plan: table tests of its decisions and a property that it never over-commits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.recovery.nova import (
    DISK_GB,
    MEMORY_MB,
    RESOURCE_CLASSES,
    VCPU,
    HostResources,
    Inventory,
)
from controller.recovery.placement import (
    Candidate,
    Instance,
    Plan,
    SegmentHost,
    order,
    plan,
    readiness,
)
from controller.resources.segment import PlacementStrategy


def vm(
    name: str,
    vcpus: int = 1,
    ram: int = 1024,
    disk: int = 10,
    priority: int = 0,
    groups: tuple[str, ...] = (),
) -> Instance:
    return Instance(name, name, {VCPU: vcpus, MEMORY_MB: ram, DISK_GB: disk}, priority, groups)


def host(
    name: str, vcpus: int = 8, ram: int = 8192, disk: int = 100, holds: tuple[str, ...] = ()
) -> Candidate:
    return Candidate(name, {VCPU: vcpus, MEMORY_MB: ram, DISK_GB: disk}, holds=frozenset(holds))


def test_everything_fits_and_spread_uses_the_host_with_most_free_memory() -> None:
    result = plan([vm("a", ram=2048), vm("b", ram=2048)], [host("h1", ram=4096), host("h2")])
    assert result == Plan({"a": "h2", "b": "h2"}, {})
    # After a and b, h2 has 4096 left like h1: ties go to the first host by name.
    result = plan(
        [vm("a", ram=2048), vm("b", ram=2048), vm("c", ram=2048)],
        [host("h1", ram=4096), host("h2")],
    )
    assert result.targets == {"a": "h2", "b": "h2", "c": "h1"}


def test_best_fit_packs_the_fullest_host_that_fits() -> None:
    result = plan(
        [vm("a", ram=2048), vm("b", ram=2048)],
        [host("h1", ram=4096), host("h2")],
        PlacementStrategy.BEST_FIT,
    )
    assert result.targets == {"a": "h1", "b": "h1"}


@pytest.mark.parametrize(
    ("instance", "hosts", "why"),
    [
        (vm("big", ram=16384), [host("h1"), host("h2")], "MEMORY_MB: needs 16384, at most 8192"),
        (vm("wide", vcpus=12), [host("h1")], "VCPU: needs 12, at most 8 free"),
        (vm("fat", disk=500), [host("h1")], "DISK_GB: needs 500, at most 100"),
        (vm("any"), [], "no live host to go to"),
        # Each resource exists somewhere, never together on one host.
        (
            vm("split", vcpus=4, ram=4096),
            [host("cpu", vcpus=8, ram=1024), host("ram", vcpus=1, ram=8192)],
            "no host has VCPU 4, MEMORY_MB 4096, DISK_GB 10 free together",
        ),
        (
            vm("member", groups=("g1",)),
            [host("h1", holds=("g1",)), host("h2", holds=("g1",))],
            "anti-affinity (g1): every host with room holds a member",
        ),
    ],
)
def test_an_instance_that_does_not_fit_is_named_with_what_it_lacks(
    instance: Instance, hosts: list[Candidate], why: str
) -> None:
    result = plan([instance], hosts)
    assert result.targets == {}
    assert why in result.unplaced[instance.id]


def test_max_unit_keeps_a_flavor_larger_than_any_host_off_it() -> None:
    limited = Candidate("h1", {VCPU: 64, MEMORY_MB: 65536, DISK_GB: 100}, {VCPU: 16})
    result = plan([vm("wide", vcpus=32)], [limited])
    assert result.unplaced == {
        "wide": "does not fit: VCPU: needs 32, more than one host gives (16)"
    }


def test_anti_affinity_puts_members_of_a_group_on_different_hosts() -> None:
    members = [vm(f"m{i}", groups=("web",)) for i in range(3)]
    result = plan([*members, vm("other")], [host("h1"), host("h2"), host("h3", holds=("web",))])
    placed = [result.targets[m.id] for m in members if m.id in result.targets]
    assert sorted(placed) == ["h1", "h2"]  # h3 already holds a member
    assert len(result.unplaced) == 1 and "anti-affinity (web)" in next(
        iter(result.unplaced.values())
    )
    assert "other" in result.targets


def test_when_room_is_short_the_lowest_priority_go_without() -> None:
    instances = [
        vm("low", ram=4096, priority=0),
        vm("high", ram=4096, priority=10),
        vm("mid", ram=4096, priority=5),
    ]
    result = plan(instances, [host("h1", ram=8192)])
    assert set(result.targets) == {"high", "mid"}
    assert set(result.unplaced) == {"low"}
    assert [i.id for i in order(instances)] == ["high", "mid", "low"]


def test_within_a_priority_large_instances_are_placed_first() -> None:
    # Smallest first would put s1, s2 on h1 and h2 and leave no 6 GiB anywhere.
    instances = [vm("s1", ram=2048), vm("s2", ram=2048), vm("big", ram=6144)]
    result = plan(instances, [host("h1", ram=6144), host("h2", ram=4096)])
    assert result.unplaced == {}
    assert result.targets["big"] == "h1"


def test_reserved_hosts_are_candidates_like_any_other() -> None:
    # A reserved host's provider has no usage: the plan fills it only as far as it holds.
    reserved = Candidate.of(
        HostResources(
            "reserved1",
            "rp-1",
            {
                VCPU: Inventory(16, reserved=2, allocation_ratio=2.0),
                MEMORY_MB: Inventory(8704, reserved=512),
                DISK_GB: Inventory(200, allocation_ratio=1.0),
            },
            {},
        )
    )
    assert reserved.free == {VCPU: 28, MEMORY_MB: 8192, DISK_GB: 200}
    instances = [vm(f"v{i}", vcpus=4, ram=1024) for i in range(8)]
    result = plan(instances, [reserved])
    assert len(result.targets) == 7  # 7 x 4 vCPU = 28; the 8th lacks VCPU
    assert "VCPU: needs 4, at most 0 free" in result.unplaced["v7"]


def test_a_stale_plan_is_made_again_without_the_refused_hosts() -> None:
    first = plan([vm("a")], [host("h1", ram=9000), host("h2")])
    assert first.targets == {"a": "h1"}
    again = plan([vm("a")], [host("h1", ram=9000), host("h2")], refused={"a": {"h1"}})
    assert again.targets == {"a": "h2"}
    last = plan([vm("a")], [host("h1"), host("h2")], refused={"a": {"h1", "h2"}})
    assert last.unplaced == {"a": "Nova refused every host it was planned on (h1, h2)"}


# --- the property ------------------------------------------------------------------------------

instances_st = st.lists(
    st.builds(
        vm,
        name=st.uuids().map(str),
        vcpus=st.integers(0, 8),
        ram=st.integers(0, 16384),
        disk=st.integers(0, 200),
        priority=st.integers(0, 3),
        groups=st.lists(st.sampled_from(["g1", "g2", "g3"]), max_size=2, unique=True).map(tuple),
    ),
    max_size=40,
)
hosts_st = st.lists(
    st.builds(
        host,
        name=st.sampled_from([f"h{i}" for i in range(12)]),
        vcpus=st.integers(0, 32),
        ram=st.integers(0, 65536),
        disk=st.integers(0, 1000),
        holds=st.lists(st.sampled_from(["g1", "g2"]), max_size=1).map(tuple),
    ),
    max_size=8,
    unique_by=lambda c: c.host,
)


@settings(max_examples=300, deadline=None)
@given(instances_st, hosts_st, st.sampled_from(list(PlacementStrategy)))
def test_a_plan_never_over_commits_and_accounts_for_every_instance(
    instances: list[Instance], hosts: list[Candidate], strategy: PlacementStrategy
) -> None:
    result = plan(instances, hosts, strategy)
    ids = {i.id for i in instances}
    assert set(result.targets) | set(result.unplaced) == ids
    assert not set(result.targets) & set(result.unplaced)
    assert all(why for why in result.unplaced.values())
    by_name = {h.host: h for h in hosts}
    for name, added in result.load(instances).items():
        for rc in RESOURCE_CLASSES:
            assert added[rc] <= by_name[name].free[rc], (name, rc)
    for instance in instances:
        target = result.targets.get(instance.id)
        if target is None:
            continue
        assert not set(instance.anti_affinity) & by_name[target].holds
        for other in instances:
            if other.id != instance.id and result.targets.get(other.id) == target:
                assert not set(instance.anti_affinity) & set(other.anti_affinity)
    # Priority: an unplaced instance never loses to a lower-priority one of the same shape.
    for lost in (i for i in instances if i.id in result.unplaced):
        for won in (i for i in instances if i.id in result.targets):
            if won.request == lost.request and not (won.anti_affinity or lost.anti_affinity):
                assert won.priority >= lost.priority


# --- readiness -----------------------------------------------------------------------------------


def segment_of(*hosts: tuple[str, int, list[int]]) -> dict[str, SegmentHost]:
    """(name, free vCPUs, vCPUs of each instance on it)."""
    return {
        name: SegmentHost(
            host(name, vcpus=free, ram=65536, disk=10000),
            tuple(vm(f"{name}-{i}", vcpus=v, ram=512, disk=1) for i, v in enumerate(sizes)),
        )
        for name, free, sizes in hosts
    }


def test_n_plus_one_ready_when_every_hosts_loss_fits_elsewhere() -> None:
    verdict = readiness(segment_of(("a", 2, [2]), ("b", 2, [2]), ("c", 2, [2])))
    assert verdict.ready and verdict.unplaced == 0


def test_n_plus_one_names_the_host_whose_loss_does_not_fit_and_the_shortfall() -> None:
    verdict = readiness(segment_of(("a", 1, [1]), ("big", 0, [4, 4]), ("c", 1, [1])))
    assert not verdict.ready
    assert verdict.lost == ("big",)
    assert (verdict.unplaced, verdict.shortfall[VCPU]) == (2, 8)
    assert verdict.shortfall[MEMORY_MB] == 1024


def test_tolerating_k_hosts_loses_the_largest_together() -> None:
    hosts = segment_of(("a", 4, [2]), ("b", 4, [2]), ("c", 0, [1]), ("d", 1, []))
    assert readiness(hosts, 1).ready
    two = readiness(hosts, 2)
    # a and b run the most; their two 2-vCPU instances find 0 on c and 1 on d.
    assert two.lost == ("a", "b") and not two.ready
    assert (two.unplaced, two.shortfall[VCPU]) == (2, 4)


def test_losing_every_host_is_never_ready_with_instances() -> None:
    verdict = readiness(segment_of(("a", 8, [1]), ("b", 8, [1])), tolerated=2)
    assert not verdict.ready and verdict.unplaced == 2

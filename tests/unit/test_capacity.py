"""HA readiness from Placement's figures: which hosts count, which receive, the verdict and the
CapacityReady condition it puts on the segment."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Collection
from datetime import timedelta
from typing import Any, cast

import pytest

from controller.recovery import capacity
from controller.recovery.nova import (
    DISK_GB,
    MEMORY_MB,
    VCPU,
    Flavor,
    HostResources,
    Inventory,
    Server,
    ServerGroup,
)
from controller.recovery.ports import EventRecord, HostRecord, Nova
from controller.recovery.segments import summarize
from controller.resources.failure_event import FailureEventStatus
from controller.resources.host import HostPhase, HostSpec, HostStatus, ReservationState
from controller.resources.segment import FailoverSegmentSpec, FailoverSegmentStatus
from tests.unit import fake_cluster
from tests.unit.fake_cluster import T0, MemoryStore

SMALL = Flavor("m1.small", 2, 4096, 20)


def segment(method: str = "auto", **spec: Any) -> FailoverSegmentSpec:
    return FailoverSegmentSpec.model_validate(
        {"recoveryMethod": method, "serviceType": "COMPUTE", **spec}
    )


def record(name: str, reserved: bool = False, phase: HostPhase = HostPhase.ACTIVE) -> HostRecord:
    status = HostStatus(
        phase=HostPhase.RESERVED if reserved else phase,
        reservation=ReservationState.AVAILABLE if reserved else ReservationState.NOT_RESERVED,
    )
    return HostRecord(name, HostSpec(segment="seg", type="COMPUTE", reserved=reserved), status, T0)


def room(host: str, vcpus: int = 16, ram: int = 16384, disk: int = 200, used: int = 0) -> Any:
    """A resource provider with `used` small instances' worth allocated."""
    return HostResources(
        host,
        f"rp-{host}",
        {VCPU: Inventory(vcpus), MEMORY_MB: Inventory(ram), DISK_GB: Inventory(disk)},
        {VCPU: used * SMALL.vcpus, MEMORY_MB: used * SMALL.ram_mb, DISK_GB: used * SMALL.disk_gb},
    )


def servers(host: str, count: int, **extra: Any) -> list[Server]:
    return [
        Server(
            f"{host}-{n}", f"{host}-vm{n}", "ACTIVE", "active", None, 1, host, False, SMALL, **extra
        )
        for n in range(count)
    ]


def test_three_hosts_half_full_can_lose_any_one() -> None:
    hosts = [record(h) for h in ("c1", "c2", "c3")]
    # 16 GiB each, 2 of 4 GiB used per host: a lost host's 2 go one to each survivor.
    verdict = capacity.evaluate(
        segment(),
        hosts,
        [room(h, used=2) for h in ("c1", "c2", "c3")],
        [s for h in ("c1", "c2", "c3") for s in servers(h, 2)],
        T0,
    )
    assert verdict.ready
    assert verdict.hosts_checked == 3
    assert verdict.unplaced_instances == 0
    assert verdict.shortfall == {}
    assert verdict.observed_at == T0


def test_full_hosts_report_the_worst_loss_and_the_shortfall_per_resource() -> None:
    hosts = [record(h) for h in ("c1", "c2")]
    # c1 full (4 x 4 GiB), c2 with room for one more: losing c1 leaves 3 without room.
    verdict = capacity.evaluate(
        segment(),
        hosts,
        [room("c1", used=4), room("c2", used=3)],
        [*servers("c1", 4), *servers("c2", 3)],
        T0,
    )
    assert not verdict.ready
    assert verdict.worst_loss == ["c1"]
    assert verdict.unplaced_instances == 3
    assert verdict.shortfall == {VCPU: 6, MEMORY_MB: 12288, DISK_GB: 60}
    ready, reason, message = capacity.condition(verdict)
    assert (ready, reason) == (False, "InsufficientCapacity")
    assert "3 instance(s) of c1" in message and "MEMORY_MB 12288" in message


def test_reserved_host_method_counts_only_reserved_hosts_as_targets() -> None:
    hosts = [record("c1"), record("c2"), record("r1", reserved=True)]
    resources = [room("c1", used=2), room("c2", used=0), room("r1", ram=8192)]
    listed = servers("c1", 2)
    # auto: c2's room takes c1's two; the reserved host is out of the scheduler.
    auto = capacity.evaluate(segment("auto"), hosts, resources, listed, T0)
    assert auto.ready and auto.hosts_checked == 2
    # reserved_host: only r1 receives, and 8 GiB holds both.
    reserved = capacity.evaluate(segment("reserved_host"), hosts, resources, listed, T0)
    assert reserved.ready and reserved.hosts_checked == 3
    # ... but not three.
    listed3 = servers("c1", 3)
    reserved3 = capacity.evaluate(
        segment("reserved_host"), hosts, [room("c1", used=3), *resources[1:]], listed3, T0
    )
    assert not reserved3.ready and reserved3.unplaced_instances == 1


def test_hosts_out_of_service_neither_lose_nor_receive() -> None:
    hosts = [record("c1"), record("c2", phase=HostPhase.FAILED)]
    verdict = capacity.evaluate(
        segment(), hosts, [room("c1", used=1), room("c2")], servers("c1", 1), T0
    )
    # c1 alone: its loss has nowhere to go, though c2's provider shows room.
    assert verdict.hosts_checked == 1
    assert not verdict.ready and verdict.worst_loss == ["c1"]


def test_instances_a_recovery_would_leave_are_not_counted() -> None:
    hosts = [record("c1"), record("c2")]
    # Only HA-enabled instances move without evacuateAllInstances: c1's three do not.
    spec = segment(hostFailure={"evacuateAllInstances": False})
    verdict = capacity.evaluate(
        spec, hosts, [room("c1", used=3), room("c2", used=4)], servers("c1", 3), T0
    )
    assert verdict.ready
    enabled = servers("c1", 3, metadata={"HA_Enabled": "True"})
    verdict = capacity.evaluate(spec, hosts, [room("c1", used=3), room("c2", used=4)], enabled, T0)
    assert not verdict.ready and verdict.unplaced_instances == 3


def test_a_host_without_a_resource_provider_gives_no_room() -> None:
    hosts = [record("c1"), record("c2")]
    verdict = capacity.evaluate(segment(), hosts, [room("c1", used=1)], servers("c1", 1), T0)
    assert not verdict.ready


@pytest.mark.parametrize(("tolerate", "ready"), [(1, True), (2, False)])
def test_tolerating_more_failures_asks_for_more_room(tolerate: int, ready: bool) -> None:
    names = ("c1", "c2", "c3")
    spec = segment(capacity={"tolerateHostFailures": tolerate})
    verdict = capacity.evaluate(
        spec,
        [record(h) for h in names],
        [room(h, used=2) for h in names],
        [s for h in names for s in servers(h, 2)],
        T0,
    )
    assert verdict.ready is ready
    assert verdict.tolerated_host_failures == tolerate
    assert len(verdict.worst_loss) == tolerate


def test_summarize_sets_the_condition_keeps_it_without_a_check_and_drops_it_when_off() -> None:
    verdict = capacity.evaluate(
        segment(),
        [record("c1"), record("c2")],
        [room("c1", used=4), room("c2", used=4)],
        [*servers("c1", 4), *servers("c2", 4)],
        T0,
    )
    status = summarize(segment(), FailoverSegmentStatus(), [], [], T0, 1, True, verdict)
    [condition] = [c for c in status.conditions if c.type == "CapacityReady"]
    assert (condition.status, condition.reason) == ("False", "InsufficientCapacity")
    assert status.capacity == verdict
    # The resync between two checks keeps what the last one wrote.
    again = summarize(segment(), status, [], [], T0, 1, True, None)
    assert again.capacity == verdict
    assert [c for c in again.conditions if c.type == "CapacityReady"] == [condition]
    off = summarize(
        segment(capacity={"tolerateHostFailures": 0}), status, [], [], T0, 1, True, None
    )
    assert off.capacity is None
    assert not [c for c in off.conditions if c.type == "CapacityReady"]


def test_the_verdict_reads_back_equal_from_the_wire() -> None:
    """A status written and read back unchanged is not written again every resync."""
    verdict = capacity.evaluate(
        segment(), [record("c1")], [room("c1")], [], T0.replace(microsecond=123456)
    )
    status = FailoverSegmentStatus(capacity=verdict)
    assert FailoverSegmentStatus.model_validate(status.to_wire()) == status


def test_check_reads_placement_once_and_lists_servers_once() -> None:
    asyncio.run(_check_reads_placement_once_and_lists_servers_once())


class Counting:
    """The three reads `check` makes on a segment that names no image, counted."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def host_resources(self, hosts: Collection[str]) -> list[HostResources]:
        self.calls.append("placement")
        return [room(h) for h in hosts]

    async def all_servers(self) -> list[Server]:
        self.calls.append("servers")
        return servers("c1", 2)

    async def server_groups(self) -> list[ServerGroup]:
        self.calls.append("groups")
        return []


async def _check_reads_placement_once_and_lists_servers_once() -> None:
    nova = Counting()
    hosts = [record("c1"), record("c2"), record("c3", phase=HostPhase.MAINTENANCE)]
    verdict = await capacity.check(cast(Nova, nova), segment(), hosts, T0)
    assert sorted(nova.calls) == ["groups", "placement", "servers"]
    assert verdict.hosts_checked == 2 and verdict.ready


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_segments_checked_together_share_one_listing_and_a_later_check_lists_again() -> None:
    asyncio.run(_segments_share_one_listing())


async def _segments_share_one_listing() -> None:
    counting, clock = Counting(), Clock()
    nova = cast(Nova, counting)
    listings = capacity.Listings(30, clock)
    spec, hosts = segment(), [record("c1"), record("c2")]
    for _ in range(3):  # three segments of one namespace
        await capacity.check(nova, spec, hosts, T0, listings.listing("ns", nova))
    assert counting.calls.count("servers") == counting.calls.count("groups") == 1
    assert counting.calls.count("placement") == 3
    # Another namespace is another cloud: its own listing.
    await listings.listing("other", nova)
    assert counting.calls.count("servers") == 2
    clock.now = 31
    await capacity.check(nova, spec, hosts, T0, listings.listing("ns", nova))
    assert counting.calls.count("servers") == 3


class _Elsewhere(Server):
    """A server of another segment's host: only where it runs may be read, once per listing
    (grouped by host). Each check going through every server of the cloud made 100 segments
    of 50,000 servers 5 million checks a round."""

    reads = 0

    def __getattribute__(self, name: str) -> Any:
        if name != "host":
            raise AssertionError("looked at a server of another segment")
        type(self).reads += 1
        return object.__getattribute__(self, name)


def test_a_segments_check_looks_only_at_the_servers_of_its_hosts() -> None:
    others = [
        _Elsewhere(*(getattr(s, f.name) for f in dataclasses.fields(s)))
        for s in servers("elsewhere", 1000)
    ]
    listing = capacity.Listing([*servers("c1", 3), *others, *servers("c2", 2)], [])
    nova = Counting()
    hosts = [record("c1"), record("c2"), record("c3")]

    async def listed() -> capacity.Listing:
        return listing

    for _ in range(3):  # three segments checked on one listing
        verdict = asyncio.run(capacity.check(cast(Nova, nova), segment(), hosts, T0, listed()))
        assert verdict.hosts_checked == 3 and verdict.ready
    assert _Elsewhere.reads == 1000
    assert [s.id for s in listing.on(["c2", "c1"])] == ["c2-0", "c2-1", "c1-0", "c1-1", "c1-2"]


def test_evaluation_of_100_hosts_with_20_instances_each_is_quick() -> None:
    names = [f"c{n:03}" for n in range(100)]
    resources = [room(h, vcpus=64, ram=131072, disk=2000, used=20) for h in names]
    listed = [s for h in names for s in servers(h, 20)]
    start = time.perf_counter()
    verdict = capacity.evaluate(segment(), [record(h) for h in names], resources, listed, T0)
    elapsed = time.perf_counter() - start
    assert verdict.ready
    # 100 scenarios of 20 instances over 99 hosts: 45 ms measured here (2 shared cores).
    assert elapsed < 5, elapsed


def test_an_unchanged_verdict_keeps_its_time_until_it_is_old() -> None:
    """A status write per segment per check only to move `observedAt` was most of what an idle
    operator wrote at 100 segments: an unchanged verdict is carried, for at most `max_age`."""
    hosts = [record(h) for h in ("c1", "c2", "c3")]
    rooms = [room(h, used=2) for h in ("c1", "c2", "c3")]
    listed = [s for h in ("c1", "c2", "c3") for s in servers(h, 2)]
    max_age = timedelta(minutes=10)

    def check(at: timedelta, counted: int = 3) -> Any:
        return capacity.evaluate(segment(), hosts[:counted], rooms, listed, T0 + at)

    first = check(timedelta(0))
    shown = capacity.carried(None, first, max_age)
    assert shown is first
    for minute in range(1, 10):
        shown = capacity.carried(shown, check(timedelta(minutes=minute)), max_age)
        assert shown is first
    # Old: the check's own, with its time.
    refreshed = capacity.carried(shown, check(timedelta(minutes=10)), max_age)
    assert refreshed.observed_at == T0 + timedelta(minutes=10)
    # Changed: the check's at once (a host left the segment).
    changed = check(timedelta(minutes=11), counted=2)
    assert changed.model_dump(exclude={"observed_at"}) != refreshed.model_dump(
        exclude={"observed_at"}
    )
    assert capacity.carried(refreshed, changed, max_age) is changed


def report(kind: str, host: str, phase: str | None) -> EventRecord:
    payload: dict[str, Any] = {}
    if kind == "VM":
        payload = {
            "event": "LIFECYCLE",
            "instance_uuid": "6a1b0a3e-0000-4000-8000-000000000001",
            "vir_domain_event": "STOPPED_FAILED",
        }
    if kind == "PROCESS":
        payload = {"process_name": "nova-compute"}
    record = MemoryStore(fake_cluster.Clock()).report(f"{host}-{kind}", host, kind=kind, **payload)
    status = FailureEventStatus.model_validate({"phase": phase} if phase else {})
    return dataclasses.replace(record, status=status)


@pytest.mark.parametrize(
    ("events", "waits_for"),
    [
        ([], None),
        ([report("COMPUTE_HOST", "c1", "Running")], "c1"),
        # Not recovering yet (admission may still turn it away), or waiting for its retry.
        ([report("COMPUTE_HOST", "c1", None), report("COMPUTE_HOST", "c2", "Error")], None),
        # An instance's or a process's failure is one or two calls to Nova, not a host's.
        ([report("VM", "c1", "Running"), report("PROCESS", "c2", "Running")], None),
        ([report("VM", "c1", "Running"), report("COMPUTE_HOST", "c3", "Running")], "c3"),
    ],
)
def test_the_check_waits_while_a_host_of_the_cloud_is_being_recovered(
    events: list[EventRecord], waits_for: str | None
) -> None:
    assert capacity.recovering(events) == waits_for

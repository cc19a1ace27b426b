"""A placement plan: where each instance of a failed host goes, decided before the first evacuate.

From what each instance's flavor asks Placement for (VCPU, MEMORY_MB, DISK_GB), its priority and
its anti-affinity server groups, and from the free resources of the candidate hosts (Placement's
(total - reserved) * allocation_ratio - used, with max_unit), `plan` gives each instance a host or
says which resource it lacks. Pure: no I/O; the recovery reads Placement and writes the plan.

Order: higher priority first, so when room is short the lowest priorities go without; within a
priority, larger instances first (memory, then vCPU, then disk), then by name, so small ones fill
the gaps the large ones leave (first-fit decreasing: never far from the best packing).

Strategies, per segment:
- `Spread` (the default): the host with the most free memory once the instance is on it, as
  Nova's default RAM weigher picks. The plan then agrees with the scheduler that validates each
  target, survivors keep even headroom for the next failure, and a second failure takes fewer
  of the recovered instances with it.
- `BestFit`: the host with the least free memory left that still fits. It packs, keeping whole
  hosts free for large flavors, for segments whose flavors are large next to their hosts.

Never an over-commit: a host is a candidate only if every resource class covers the request and
no request exceeds max_unit, and each placement is subtracted before the next is planned. An
anti-affinity group never gets two members on one host, nor one on a host that holds a member.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from controller.recovery.nova import MEMORY_MB, RESOURCE_CLASSES, HostResources
from controller.resources.segment import PlacementStrategy

_MEMORY = RESOURCE_CLASSES.index(MEMORY_MB)
_UNLIMITED = 2**62


@dataclass(frozen=True)
class Instance:
    """One instance to place."""

    id: str
    name: str
    request: Mapping[str, int]  # resource class -> amount (controller.recovery.nova)
    priority: int = 0  # higher is placed first
    anti_affinity: tuple[str, ...] = ()  # server groups with the anti-affinity policy


@dataclass(frozen=True)
class Candidate:
    """A host instances may go to, with what Placement says is free on it."""

    host: str
    free: Mapping[str, int]
    max_unit: Mapping[str, int] = field(default_factory=dict)  # absent: no limit
    holds: frozenset[str] = frozenset()  # anti-affinity groups with a member on it already

    @classmethod
    def of(cls, resources: HostResources, holds: Iterable[str] = ()) -> Candidate:
        return cls(
            host=resources.host,
            free={rc: resources.free(rc) for rc in RESOURCE_CLASSES},
            max_unit={
                rc: inventory.max_unit
                for rc, inventory in resources.inventories.items()
                if inventory.max_unit is not None
            },
            holds=frozenset(holds),
        )


@dataclass(frozen=True)
class Plan:
    """Each instance's target host, or why it has none (naming the resource it lacks)."""

    targets: dict[str, str]  # instance id -> host
    unplaced: dict[str, str]  # instance id -> why
    # Unplaced instances that had room but only on hosts holding a member of their anti-affinity
    # groups: instance id -> those groups.
    separated: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def load(self, instances: Iterable[Instance]) -> dict[str, dict[str, int]]:
        """What the plan adds to each host, per resource class."""
        added: dict[str, dict[str, int]] = {}
        for instance in instances:
            host = self.targets.get(instance.id)
            if host is not None:
                on_host = added.setdefault(host, dict.fromkeys(RESOURCE_CLASSES, 0))
                for rc, amount in instance.request.items():
                    on_host[rc] = on_host.get(rc, 0) + amount
        return added


def order(instances: Iterable[Instance]) -> list[Instance]:
    """The order instances are planned (and get room when it is short)."""

    def key(instance: Instance) -> tuple[int, int, int, int, str, str]:
        asked = [instance.request.get(rc, 0) for rc in RESOURCE_CLASSES]
        return (
            -instance.priority,
            -asked[_MEMORY],
            -asked[0],
            -asked[2],
            instance.name,
            instance.id,
        )

    return sorted(instances, key=key)


@dataclass
class _Host:
    name: str
    free: list[int]
    limit: list[int]  # max_unit; _UNLIMITED where Placement sets none
    holds: set[str]


def plan(
    instances: Iterable[Instance],
    candidates: Sequence[Candidate],
    strategy: PlacementStrategy = PlacementStrategy.SPREAD,
    refused: Mapping[str, AbstractSet[str]] | None = None,
) -> Plan:
    """Plan every instance onto `candidates`. `refused`: instance id -> hosts Nova refused it
    (a stale plan), which it is not planned onto again."""
    refused = refused or {}
    hosts = [
        _Host(
            c.host,
            [c.free.get(rc, 0) for rc in RESOURCE_CLASSES],
            [c.max_unit.get(rc, _UNLIMITED) for rc in RESOURCE_CLASSES],
            set(c.holds),
        )
        for c in sorted(candidates, key=lambda c: c.host)
    ]
    spread = strategy == PlacementStrategy.SPREAD
    targets: dict[str, str] = {}
    unplaced: dict[str, str] = {}
    separated: dict[str, tuple[str, ...]] = {}
    for instance in order(instances):
        asked = [instance.request.get(rc, 0) for rc in RESOURCE_CLASSES]
        a0, a1, a2 = asked
        groups = set(instance.anti_affinity)
        no = refused.get(instance.id, frozenset())
        best: _Host | None = None
        best_left = 0
        for host in hosts:
            free = host.free
            limit = host.limit
            # Inline comparisons: this loop runs instances x hosts times (20,000 in the bench).
            if (
                free[0] < a0
                or free[1] < a1
                or free[2] < a2
                or a0 > limit[0]
                or a1 > limit[1]
                or a2 > limit[2]
                or (no and host.name in no)
                or (groups and groups & host.holds)
            ):
                continue
            left = free[_MEMORY] - asked[_MEMORY]
            if best is None or (left > best_left if spread else left < best_left):
                best, best_left = host, left
        if best is None:
            unplaced[instance.id], apart = _why(instance, asked, hosts, no)
            if apart:
                separated[instance.id] = apart
            continue
        for index, amount in enumerate(asked):
            best.free[index] -= amount
        best.holds |= groups
        targets[instance.id] = best.name
    return Plan(targets, unplaced, separated)


def _why(
    instance: Instance, asked: list[int], hosts: list[_Host], refused: AbstractSet[str]
) -> tuple[str, tuple[str, ...]]:
    """The resource the instance lacks, as a person reading the FailureEvent needs it, and the
    anti-affinity groups that kept it from the hosts with room (when they did)."""
    if not hosts:
        return "no live host to go to", ()
    open_hosts = [h for h in hosts if h.name not in refused]
    if not open_hosts:
        return f"Nova refused every host it was planned on ({', '.join(sorted(refused))})", ()
    too_big = []
    for i, rc in enumerate(RESOURCE_CLASSES):
        largest = max(h.limit[i] for h in open_hosts)
        if asked[i] > largest:
            too_big.append(f"{rc}: needs {asked[i]}, more than one host gives ({largest})")
    if too_big:
        return "does not fit: " + "; ".join(too_big), ()
    short = [
        f"{rc}: needs {asked[i]}, at most {most} free on a host"
        for i, rc in enumerate(RESOURCE_CLASSES)
        if asked[i] > (most := max(h.free[i] for h in open_hosts))
    ]
    if short:
        return "does not fit: " + "; ".join(short), ()
    groups = tuple(sorted(set(instance.anti_affinity)))
    roomy = [h for h in open_hosts if all(f >= a for f, a in zip(h.free, asked, strict=True))]
    if roomy and groups:
        why = f"anti-affinity ({', '.join(groups)}): every host with room holds a member"
        return why, tuple(g for g in groups if any(g in h.holds for h in roomy))
    asking = ", ".join(f"{rc} {asked[i]}" for i, rc in enumerate(RESOURCE_CLASSES))
    return f"does not fit: no host has {asking} free together", ()


@dataclass(frozen=True)
class Readiness:
    """Whether a segment can absorb the loss of `tolerated` hosts now, and if not, by how much."""

    tolerated: int
    ready: bool
    lost: tuple[str, ...]  # the hosts whose loss hurts most (none when there are too few)
    unplaced: int  # instances of those hosts that would have no room
    shortfall: dict[str, int]  # per resource class, what those instances ask for
    # Anti-affinity groups whose members of those hosts found room only beside another member.
    separated: tuple[str, ...] = ()


@dataclass(frozen=True)
class SegmentHost:
    """One host of a segment as readiness sees it: its room (with the anti-affinity groups
    that have a member on it, moving or not) and what would move off it."""

    room: Candidate
    instances: tuple[Instance, ...]


def readiness(
    hosts: Mapping[str, SegmentHost],
    tolerated: int = 1,
    strategy: PlacementStrategy = PlacementStrategy.SPREAD,
) -> Readiness:
    """N+K on a snapshot, as the recovery would plan it. With K = 1, every host's loss is
    planned in turn (N+1: the worst one decides). With more, the K hosts running the most
    memory are lost together: every combination would be exponential, and the largest hosts
    are the ones whose loss a segment is sized for."""
    names = sorted(hosts)
    if tolerated >= len(names):
        everything = [i for name in names for i in hosts[name].instances]
        return _verdict(tolerated, tuple(names), everything, [], strategy)
    scenarios: list[tuple[str, ...]]
    if tolerated == 1:
        scenarios = [(name,) for name in names]
    else:

        def running(name: str) -> int:
            return sum(i.request.get(MEMORY_MB, 0) for i in hosts[name].instances)

        scenarios = [tuple(sorted(sorted(names, key=lambda n: (-running(n), n))[:tolerated]))]
    worst: Readiness | None = None
    for lost in scenarios:
        moving = [i for name in lost for i in hosts[name].instances]
        rest = [hosts[name].room for name in names if name not in lost]
        verdict = _verdict(tolerated, lost, moving, rest, strategy)
        if worst is None or _worse(verdict, worst):
            worst = verdict
    assert worst is not None  # scenarios is never empty here: len(names) > tolerated >= 1
    return worst


def _verdict(
    tolerated: int,
    lost: tuple[str, ...],
    moving: list[Instance],
    rest: list[Candidate],
    strategy: PlacementStrategy,
) -> Readiness:
    result = plan(moving, rest, strategy)
    shortfall = dict.fromkeys(RESOURCE_CLASSES, 0)
    for instance in moving:
        if instance.id in result.unplaced:
            for rc in RESOURCE_CLASSES:
                shortfall[rc] += instance.request.get(rc, 0)
    separated = tuple(sorted({g for groups in result.separated.values() for g in groups}))
    return Readiness(
        tolerated, not result.unplaced, lost, len(result.unplaced), shortfall, separated
    )


def _worse(one: Readiness, other: Readiness) -> bool:
    return (one.unplaced, one.shortfall.get(MEMORY_MB, 0)) > (
        other.unplaced,
        other.shortfall.get(MEMORY_MB, 0),
    )

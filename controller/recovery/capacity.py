"""HA readiness of a segment, checked on a quiet day: could it lose its largest host (N+1), or
the `spec.capacity.tolerateHostFailures` hosts running the most, and still place every instance
a recovery would move?

`evaluate` is pure: from Placement's figures of the segment's hosts and one listing of every
server, it builds what `placement.readiness` plans over. `check` does the two reads. The targets
follow the recovery method, as a recovery would use them:
- auto: the segment's hosts in service (reserved hosts are kept out of Nova's scheduler);
- reserved_host: only the reserved hosts available (the others lose, never receive);
- auto_priority, rh_priority: both.
Instances are the ones a recovery would evacuate (`select_for_evacuation`, with their images
when the segment selects or ranks by image), with their priorities. Anti-affinity groups count
as in the recovery's plan: a member never goes to a host that holds another member (moving or
left behind), so a segment whose loss would put two members on one host is not ready, and the
verdict names the group. Soft anti-affinity is a preference, not a rule: not counted.
With placement boundary Aggregates or Region the check still counts the segment's own hosts:
conservative, since the recovery may find room outside.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from controller.recovery import images as image_rules
from controller.recovery.instances import instance_priority, select_for_evacuation
from controller.recovery.nova import (
    RESOURCE_CLASSES,
    HostResources,
    Server,
    ServerGroup,
    flavor_resources,
)
from controller.recovery.placement import Candidate, Instance, SegmentHost, readiness
from controller.recovery.ports import EventRecord, HostRecord, Nova
from controller.resources.failure_event import EventPhase, FailureType
from controller.resources.host import HostPhase, ReservationState
from controller.resources.segment import CapacityStatus, FailoverSegmentSpec, RecoveryMethod

CONDITION = "CapacityReady"

_TO_SERVICE = {RecoveryMethod.AUTO, RecoveryMethod.AUTO_PRIORITY, RecoveryMethod.RH_PRIORITY}
_TO_RESERVED = {
    RecoveryMethod.RESERVED_HOST,
    RecoveryMethod.AUTO_PRIORITY,
    RecoveryMethod.RH_PRIORITY,
}


def _in_service(host: HostRecord) -> bool:
    return (
        not host.spec.reserved
        and not host.spec.on_maintenance
        and host.status.phase == HostPhase.ACTIVE
    )


def _reserved_available(host: HostRecord) -> bool:
    return (
        host.spec.reserved
        and not host.spec.on_maintenance
        and host.status.reservation == ReservationState.AVAILABLE
    )


def checked_hosts(spec: FailoverSegmentSpec, hosts: Iterable[HostRecord]) -> list[HostRecord]:
    """The hosts the check counts: those that may fail now and those that may receive."""
    reserved = spec.recovery_method in _TO_RESERVED
    return [h for h in hosts if _in_service(h) or (reserved and _reserved_available(h))]


def evaluate(
    spec: FailoverSegmentSpec,
    hosts: Iterable[HostRecord],
    resources: Iterable[HostResources],
    servers: Iterable[Server],
    now: datetime,
    server_groups: Iterable[ServerGroup] = (),
    images: image_rules.Images | None = None,
) -> CapacityStatus:
    """The segment's readiness on this snapshot. A host without a resource provider gives no
    room (Nova could not schedule to it either)."""
    counted = checked_hosts(spec, hosts)
    rooms = {r.host: r for r in resources}
    by_host: dict[str, list[Server]] = {}
    for server in servers:
        if server.host is not None:
            by_host.setdefault(server.host, []).append(server)
    groups_of: dict[str, list[str]] = {}
    names = {}
    for group in server_groups:
        if group.policy == "anti-affinity":
            names[group.id] = f"{group.name} ({group.id})" if group.name else group.id
            for member in group.members:
                groups_of.setdefault(member, []).append(group.id)
    receives_service = spec.recovery_method in _TO_SERVICE
    ha_key = spec.host_failure.ha_enabled_metadata_key
    segment: dict[str, SegmentHost] = {}
    for host in counted:
        nova_host = host.nova_host
        provider = rooms.get(nova_host)
        receives = receives_service if not host.spec.reserved else True
        on_host = by_host.get(nova_host, [])
        holds = {g for s in on_host for g in groups_of.get(s.id, ())}
        room = (
            Candidate.of(provider, holds)
            if provider is not None and receives
            else Candidate(nova_host, dict.fromkeys(RESOURCE_CLASSES, 0), holds=frozenset(holds))
        )
        moving = select_for_evacuation(on_host, spec.host_failure, images).evacuate
        instances = tuple(
            Instance(
                s.id,
                s.name,
                flavor_resources(s.flavor),
                instance_priority(s, spec.placement, ha_key, images),
                tuple(groups_of.get(s.id, ())),
            )
            for s in moving
        )
        segment[nova_host] = SegmentHost(room, instances)
    tolerated = spec.capacity.tolerate_host_failures
    verdict = readiness(segment, tolerated, spec.placement.strategy)
    return CapacityStatus(
        ready=verdict.ready,
        tolerated_host_failures=tolerated,
        hosts_checked=len(segment),
        worst_loss=list(verdict.lost),
        unplaced_instances=verdict.unplaced,
        shortfall={rc: n for rc, n in verdict.shortfall.items() if n},
        separated_groups=[names[g] for g in verdict.separated],
        # Whole seconds, as the API server keeps it: an unchanged check reads back equal.
        observed_at=now.replace(microsecond=0),
    )


@dataclass(frozen=True)
class Listing:
    """Every server of the cloud, and every server group (anti-affinity)."""

    servers: list[Server]
    server_groups: list[ServerGroup]

    @cached_property
    def by_host(self) -> dict[str, list[Server]]:
        """Grouped once per listing: each segment's check going through every server made
        100 segments of a 50,000-server cloud cost 5 million checks a round."""
        grouped: dict[str, list[Server]] = {}
        for server in self.servers:
            if (host := server.host) is not None:
                grouped.setdefault(host, []).append(server)
        return grouped

    def on(self, hosts: Iterable[str]) -> list[Server]:
        return [server for host in hosts for server in self.by_host.get(host, ())]


async def _list(nova: Nova) -> Listing:
    servers, groups = await asyncio.gather(nova.all_servers(), nova.server_groups())
    return Listing(servers, groups)


class Listings:
    """The listing of every server and server group, shared by the checks of one namespace's
    segments within `max_age` seconds: it is the cloud's whichever segment asks, so ten
    segments checked together cost one listing, not ten. A failed listing is shared too, and
    retried by the first check after `max_age`."""

    def __init__(self, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_age = max_age
        self._clock = clock
        self._made: dict[str, tuple[float, asyncio.Future[Listing]]] = {}

    async def listing(self, namespace: str, nova: Nova) -> Listing:
        now = self._clock()
        made = self._made.get(namespace)
        if made is None or now - made[0] > self._max_age:
            made = (now, asyncio.ensure_future(_list(nova)))
            self._made[namespace] = made
        # Shielded: one check cancelled (its timeout) does not cancel the others' listing.
        return await asyncio.shield(made[1])

    def forget(self, namespace: str) -> None:
        self._made.pop(namespace, None)


def recovering(events: Iterable[EventRecord]) -> str | None:
    """A host of the cloud whose failure is being recovered now (its event Running), if any:
    the check waits until none is. It lists every server of the cloud on the Nova the recovery
    needs (on the real-Nova lab 1.3-2.2 s of nova-api's time in the middle of thirty
    evacuations), and with instances in flight its verdict would judge a passing state."""
    for event in events:
        if event.spec.type == FailureType.COMPUTE_HOST and event.status.phase == EventPhase.RUNNING:
            return event.spec.host
    return None


async def check(
    nova: Nova,
    spec: FailoverSegmentSpec,
    hosts: list[HostRecord],
    now: datetime,
    listing: Awaitable[Listing] | None = None,
) -> CapacityStatus:
    """One Placement read of the counted hosts and one listing of every server and server
    group (`listing`, a shared one, or Nova's own), together; then, when the segment selects
    or ranks by image, each distinct image of the counted hosts' servers (an image Glance does
    not give counts as unknown: its instances need room)."""
    counted = checked_hosts(spec, hosts)
    nova_hosts = sorted({h.nova_host for h in counted})
    resources, listed = await asyncio.gather(
        nova.host_resources(nova_hosts), listing if listing is not None else _list(nova)
    )
    servers = listed.on(nova_hosts)
    found: image_rules.Images = {}
    if image_rules.needed(spec.host_failure, spec.placement):
        found = await image_rules.read(nova, servers)
    return evaluate(spec, counted, resources, servers, now, listed.server_groups, found)


# Checks an unchanged verdict keeps the time of the check that found it for: moving
# `observedAt` on every check wrote every segment's status every check, most of what an idle
# operator wrote (100 segments: 1.7 writes/s, in bursts of 100). A verdict whose observedAt is
# older than this many intervals, and one more, is stale: its checks fail.
SAME_VERDICT_CHECKS = 10


def carried(
    shown: CapacityStatus | None, verdict: CapacityStatus, max_age: timedelta
) -> CapacityStatus:
    """What the segment shows after a check: the verdict it shows while the check finds the
    same, until that is `max_age` old; else the check's."""
    if shown is None or shown.observed_at is None or verdict.observed_at is None:
        return verdict
    if verdict.observed_at - shown.observed_at >= max_age:
        return verdict
    same = shown.model_dump(exclude={"observed_at"}) == verdict.model_dump(exclude={"observed_at"})
    return shown if same else verdict


def condition(capacity: CapacityStatus) -> tuple[bool, str, str]:
    """CapacityReady: status, reason and message, the shortfall in the message."""
    k = capacity.tolerated_host_failures
    if capacity.ready:
        lost = ", ".join(capacity.worst_loss) or "none"
        return (
            True,
            "EnoughCapacity",
            f"can lose {k} host(s) of {capacity.hosts_checked}; worst loss ({lost}) fits",
        )
    short = ", ".join(f"{rc} {n}" for rc, n in capacity.shortfall.items()) or "nothing"
    apart = (
        f"; anti-affinity group(s) {', '.join(capacity.separated_groups)} would need a host "
        "without a member"
        if capacity.separated_groups
        else ""
    )
    return (
        False,
        "InsufficientCapacity",
        f"cannot lose {k} host(s) of {capacity.hosts_checked}: {capacity.unplaced_instances} "
        f"instance(s) of {', '.join(capacity.worst_loss)} would find no room (short of "
        f"{short}){apart}",
    )

"""Host failure recovery: take the dead host out of Nova and evacuate its instances.

Masakari's flow, with its task names kept for `recovery_workflow_details`, and four
differences: the service is forced down instead of waiting 180 s for Nova to notice, every
step checks the world before acting (an instance already elsewhere is not evacuated again),
progress is written ahead of every action so a restarted operator resumes, not repeats, and a
host that failed mid-drain has its instances' live migrations learned first
(controller.recovery.handover): none is both live-migrated and evacuated.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import NamedTuple

from controller.recovery import handover, images
from controller.recovery.handover import Learned
from controller.recovery.instance_reads import InstanceReads
from controller.recovery.instances import instance_priority, select_for_evacuation
from controller.recovery.nova import (
    ComputeService,
    Conflict,
    HostResources,
    Image,
    NotFound,
    NovaError,
    NoValidHost,
    Server,
    ServerGroup,
    flavor_resources,
)
from controller.recovery.outcome import Outcome
from controller.recovery.placement import Candidate, Instance, order, plan
from controller.recovery.ports import Nova
from controller.recovery.progress import Progress
from controller.resources.failure_event import (
    InstanceMove,
    MoveStatus,
    PlacementRecord,
    StepState,
)
from controller.resources.segment import (
    HostFailurePolicy,
    MaintenancePolicy,
    PlacementBoundary,
    PlacementPolicy,
    RecoveryMethod,
)

DISABLE = "DisableComputeServiceTask"
# An instance move's type, as Masakari's vmoves name them (InstanceMove's default is the first).
EVACUATION = "evacuation"
PREPARE = "PrepareHAEnabledInstancesTask"
EVACUATE = "EvacuateInstancesTask"

HOST_FAILURE_REASON = "masakari-operator: host failure"
DISABLE_REASON = HOST_FAILURE_REASON + " ({event})"
# Nova's migration record is created before evacuate returns; one older than our write-ahead
# mark by more than this is from an earlier failure, not from our interrupted call.
CLOCK_SKEW = timedelta(seconds=30)
_SETTLED_STATES = {"active", "stopped", "error"}
# Nova's task states while it rebuilds an instance on its destination (an evacuation).
REBUILDING = {"rebuilding", "rebuild_block_device_mapping", "rebuild_spawning"}
# Plans per attempt: the first, and one per round in which Nova refused a planned target (the
# plan went stale: another boot took the room). Bounded: a cloud that keeps refusing ends the
# attempt in Error and the retry plans afresh.
MAX_PLANS = 3
NO_ROOM = "no room in the segment: "
NO_RESERVED_ROOM = "no room on the reserved hosts: "


@dataclass(frozen=True)
class Timing:
    """How the recovery waits on Nova: tests give it a virtual clock."""

    poll_interval: float = 1.0  # the longest wait between two reads of one instance
    clock: Callable[[], float] = time.monotonic  # deadlines of the waits
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    first_poll: float = 0.1

    def after(self, waited: float) -> float:
        """The next wait of a poll that has waited `waited` seconds: a fifth of that, between
        first_poll and poll_interval. An instance that lands is seen within a fifth of its
        move's time (a fixed period loses half a period per move on average), and a long
        move costs no more reads than a fixed period would."""
        return min(self.poll_interval, max(self.first_poll, waited / 5))

    def until_next_read(self, asked: float, waited: float) -> float:
        """How long to sleep before reading again a landing instance last asked for at
        `asked`, its poll having waited `waited` seconds: until the tick (of first_poll, or of
        poll_interval if shorter, on the clock) nearest to `after(waited)` past the ask; never
        less than half a tick past it, as no wait is shorter than a tick. Counted from the
        ask, not the answer, which a shared read gave 30-50 ms later under load (the
        simulator, fifty moves): each wait was that much longer than meant. On ticks, so that
        the moves waiting together ask together and one read answers them: each asking from
        its own ask, fifty moves kept a listing of Nova always under way (313 in 4.5 s,
        against one a tick at most)."""
        wait = self.after(waited)
        tick = min(self.first_poll, self.poll_interval)
        if tick <= 0:
            return wait
        return max(0.0, round((asked + wait) / tick) * tick - self.clock())


async def wait_for_vm_state(
    nova: Nova,
    server_id: str,
    vm_state: str,
    timeout: float,
    timing: Timing,
) -> Server:
    """Poll until the server is in `vm_state` with no task running; TimeoutError after
    `timeout` seconds."""
    deadline = timing.clock() + timeout
    while True:
        server = await nova.server(server_id)
        if server.vm_state == vm_state and server.task_state is None:
            return server
        if timing.clock() >= deadline:
            raise TimeoutError(f"{server.name} not {vm_state} after {timeout:.0f}s")
        await timing.sleep(timing.poll_interval)


class _Destinations(NamedTuple):
    """What a plan reads of the hosts instances may go to."""

    services: list[ComputeService]
    resources: list[HostResources]
    server_groups: list[ServerGroup]


@dataclass(frozen=True)
class _Ending:
    """How one instance's move ended, to record once its slot is free."""

    status: MoveStatus
    destination: str | None = None
    message: str | None = None
    # Whether a lock the recovery holds comes off now; not after a failed first read (the
    # instance unread, its lock is left to the next attempt) nor after the drain moved it.
    unlock: bool = False


@dataclass
class HostFailure:
    """One attempt at recovering one failed host."""

    event: str
    host: str  # the failed host's nova-compute service host
    method: RecoveryMethod
    policy: HostFailurePolicy
    nova: Nova
    progress: Progress
    reserved_candidates: list[str] = field(default_factory=list)  # available, in order
    # Takes a reserved host for this recovery; False when another recovery has it.
    claim: Callable[[str], bool] = lambda _host: True
    # Records on the Host that its service is being taken out (before Nova is touched).
    hold: Callable[[], Awaitable[None]] = lambda: asyncio.sleep(0)
    overall_limit: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(64))
    timing: Timing = field(default_factory=Timing)
    # Where instances may go and how their hosts are planned; None: Nova's scheduler picks.
    placement: PlacementPolicy | None = None
    # The segment's hosts that may take instances (not reserved, on maintenance or failed).
    segment_hosts: list[str] = field(default_factory=list)
    # The host's compute service as the fencing step read it, moments before; None: unknown.
    known_service: ComputeService | None = None
    # The segment's maintenance.instanceTimeoutSeconds: the longest a drain's live migration
    # left open by the failure is waited for, from its start (recovery.handover.patience).
    live_migration_timeout: float = MaintenancePolicy().instance_timeout_seconds
    _listed: list[Server] | None = field(default=None, init=False, repr=False)
    # The first plan's reads of where instances may go, begun as the attempt starts.
    _early_destinations: asyncio.Task[_Destinations] | None = field(
        default=None, init=False, repr=False
    )
    # What Glance said of each image, read once per attempt (controller.recovery.images).
    _images: dict[str, Image | images.Unreadable] = field(
        default_factory=dict, init=False, repr=False
    )
    _reads: InstanceReads = field(init=False, repr=False)
    # Instances seen on their new host whose move has not recorded its end yet: the failed host
    # no longer holds them, though their moves still show ongoing.
    _landed: set[str] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        self._reads = InstanceReads(self.nova, self.progress.clock, self.host, self._held)

    def _held(self) -> int:
        return sum(
            m.status not in (MoveStatus.SUCCEEDED, MoveStatus.IGNORED)
            and m.instance_uuid not in self._landed
            for m in self.progress.status.instances
        )

    async def run(self) -> Outcome:
        # The plan's reads of the other hosts depend neither on taking this one out nor on
        # what it holds: begun now, beside those steps, they are in by the time the plan needs
        # them (on the real-Nova lab they took 70 ms of the 0.25 s before the first evacuate).
        policy = self._plan_policy()
        if (
            self.method in (RecoveryMethod.AUTO, RecoveryMethod.AUTO_PRIORITY)
            and policy is not None
        ):
            self._early_destinations = asyncio.create_task(self._destinations(policy))
        try:
            await self._disable_service()
            if not await self._prepare_instances():
                return Outcome.finished("NoInstancesToEvacuate", "no instance to evacuate")
            return await self._evacuate()
        except NovaError as error:
            return Outcome.error("NovaUnavailable", f"Nova failed: {error}")
        finally:
            if self._early_destinations is not None:  # never used: no plan came to be made
                self._early_destinations.cancel()
                await asyncio.gather(self._early_destinations, return_exceptions=True)

    # -- steps ---------------------------------------------------------------------------

    async def _disable_service(self) -> None:
        if self.progress.done(DISABLE):
            return
        # Written ahead (with the fencing proof before it): on a restart the recovery resumes
        # from here instead of passing the gates again. The Host's hold is another object's
        # write: the two go out together, and Nova is touched only once both are stored. (A
        # hold stored beside a refused write-ahead errs the safe way: the host stays held until
        # the retry writes both again.)
        written = await asyncio.gather(
            self.progress.begin(DISABLE, f"taking {self.host} out of Nova"),
            self.hold(),
            return_exceptions=True,
        )
        for result in written:
            if isinstance(result, BaseException):
                raise result
        # Forced down first, or with the disable: Nova then accepts evacuations at once, and
        # disabling a host that Nova still thinks is up would block nova-api on an RPC timeout.
        # With no read before it: the fencing step read the service moments ago. Enabled then,
        # it is forced down and disabled in one update (one round trip fewer before the first
        # evacuation: 23-46 ms on the real-Nova lab). Else forced down alone, unconditionally
        # (forcing down a service already down changes nothing), and disabled if Nova's answer
        # says it is enabled: one an operator disabled keeps its reason, and stays theirs.
        reason = DISABLE_REASON.format(event=self.event)
        if self.known_service is not None and self.known_service.is_enabled:
            await self.nova.take_out(self.host, reason)
        else:
            service = await self.nova.force_down(self.host, True)
            if service.is_enabled:
                await self.nova.disable_service(self.host, reason)
        await self.progress.end(
            DISABLE, StepState.SUCCESS, "service forced down and disabled", persist=False
        )

    async def _prepare_instances(self) -> bool:
        if self.progress.done(PREPARE):
            return any(m.status != MoveStatus.IGNORED for m in self.progress.status.instances)
        await self.progress.begin(PREPARE, f"listing instances on {self.host}", persist=False)
        self._listed = await self.nova.servers_on_host(self.host)
        found = await self._read_images(self._listed, PREPARE)
        selection = select_for_evacuation(self._listed, self.policy, found)
        moves = [self._new_move(s, MoveStatus.PENDING) for s in selection.evacuate]
        for server, why in selection.left:
            move = self._new_move(server, MoveStatus.IGNORED)
            move.message = why
            moves.append(move)
        self.progress.status.instances = moves
        message = f"{len(selection.evacuate)} to evacuate, {len(selection.left)} left in place"
        # Both go out with the next write: the event's end, or the first moves' write-ahead.
        if not selection.evacuate:
            await self.progress.end(PREPARE, StepState.SKIPPED, message, persist=False)
            return False
        await self.progress.end(PREPARE, StepState.SUCCESS, message, persist=False)
        return True

    async def _read_images(self, servers: list[Server], step: str) -> images.Images:
        """The images of `servers` not read yet in this attempt, when the segment's selection
        or priorities name one; one that Glance does not give is noted on `step`."""
        if not images.needed(self.policy, self.placement or PlacementPolicy()):
            return self._images
        before = set(self._images)
        self._images = await images.read(self.nova, servers, self._images)
        fresh = [s for s in servers if s.image_id not in before]
        for line in images.unreadable(self._images, fresh):
            self.progress.note(step, line)
        return self._images

    def _new_move(self, server: Server, status: MoveStatus) -> InstanceMove:
        return InstanceMove(
            instance_uuid=server.id,
            instance_name=server.name,
            status=status,
            source_host=self.host,
            original_state=server.vm_state,
            project_id=server.project_id,
        )

    async def _evacuate(self) -> Outcome:
        await self.progress.begin(EVACUATE, f"evacuating with method {self.method}", persist=False)
        if self.method == RecoveryMethod.AUTO:
            outcome = await self._to_scheduler()
        elif self.method == RecoveryMethod.RESERVED_HOST:
            outcome = await self._to_reserved_hosts()
        elif self.method == RecoveryMethod.AUTO_PRIORITY:
            outcome = await self._to_scheduler()
            if outcome.phase != "Finished":
                self.progress.note(EVACUATE, "scheduler failed, falling back to reserved hosts")
                outcome = await self._to_reserved_hosts()
        else:
            outcome = await self._to_reserved_hosts()
            if outcome.phase != "Finished":
                self.progress.note(EVACUATE, "reserved hosts failed, falling back to scheduler")
                outcome = await self._to_scheduler()
        state = StepState.SUCCESS if outcome.phase == "Finished" else StepState.FAILURE
        await self.progress.end(EVACUATE, state, outcome.message, persist=False)
        return outcome

    def _plan_policy(self) -> PlacementPolicy | None:
        """What the segment's hosts are planned by; None: Nova's scheduler picks."""
        if self.placement is None or self.placement.boundary == PlacementBoundary.REGION:
            return None
        return self.placement

    async def _to_scheduler(self) -> Outcome:
        policy = self._plan_policy()
        if policy is None:
            return await self._evacuate_remaining(None)
        return await self._by_plan(policy)

    # -- the placement plan --------------------------------------------------------------

    async def _by_plan(self, policy: PlacementPolicy) -> Outcome:
        """Plan every remaining instance onto the boundary's live hosts from Placement, write
        the plan, evacuate each to its host. An instance that does not fit is failed with the
        resource it lacks, never sent blindly (the method's fallback may take it); one whose
        planned host Nova refused is planned again, elsewhere, with fresh usages."""
        refused: dict[str, set[str]] = {}
        outcome = Outcome.error("NoPlan", "nothing was planned")
        for round_ in range(MAX_PLANS):
            # After the first plan only what Nova refused is planned again: any other failure
            # waits for the attempt's retry, with its backoff, as without a plan.
            planned = await self._plan(policy, refused, None if round_ == 0 else set(refused))
            outcome = await self._evacuate_planned(planned)
            stale = [
                m
                for m in self.progress.status.instances
                if m.instance_uuid in planned
                and m.status == MoveStatus.FAILED
                and m.target_host
                and "no valid host" in (m.message or "").lower()
            ]
            if not stale:
                break
            for move in stale:
                refused.setdefault(move.instance_uuid, set()).add(move.target_host or "")
            self.progress.note(
                EVACUATE, f"Nova refused {len(stale)} planned target(s); planning again"
            )
        return outcome

    async def _plan(
        self, policy: PlacementPolicy, refused: dict[str, set[str]], only: set[str] | None
    ) -> list[str]:
        """Write the plan (each move's targetHost, or failed with why) before any evacuate
        call; returns the instances to move now, highest priority first."""
        remaining = {
            m.instance_uuid: m
            for m in self.progress.status.instances
            if m.status in (MoveStatus.PENDING, MoveStatus.ONGOING, MoveStatus.FAILED)
            and (only is None or m.instance_uuid in only)
        }
        # The listing made by PREPARE a moment ago, and the reads begun with the attempt, are
        # used once.
        listed, self._listed = self._listed, None
        early, self._early_destinations = self._early_destinations, None
        destinations, servers = await asyncio.gather(
            early if early is not None else self._destinations(policy),
            self.nova.servers_on_host(self.host) if listed is None else _ready(listed),
        )
        services, provided, server_groups = destinations
        live = {s.host for s in services if s.is_enabled and s.is_up and not s.forced_down}
        resources = [r for r in provided if r.host in live]
        # Only what is still on the failed host needs a host; a move in flight (after a restart)
        # keeps the target it was sent to.
        on_host = [s for s in servers if s.id in remaining and s.host == self.host]
        groups, holds = await self._anti_affinity(server_groups, {s.id for s in on_host})
        found = await self._read_images(on_host, EVACUATE)
        instances = [
            Instance(
                s.id,
                s.name,
                flavor_resources(s.flavor),
                instance_priority(s, policy, self.policy.ha_enabled_metadata_key, found),
                groups.get(s.id, ()),
            )
            for s in on_host
        ]
        candidates = [Candidate.of(r, holds.get(r.host, ())) for r in resources]
        away = await self._away_from_live_migrations(on_host)
        for instance_id, hosts in refused.items():
            away.setdefault(instance_id, set()).update(hosts)
        result = plan(instances, candidates, policy.strategy, away)
        for instance_id, host in result.targets.items():
            remaining[instance_id].target_host = host
        for instance_id, why in result.unplaced.items():
            move = remaining[instance_id]
            move.status = MoveStatus.FAILED
            move.target_host = None
            move.message = NO_ROOM + why
            move.end_time = self.progress.clock()
        previous = self.progress.status.placement
        self.progress.status.placement = PlacementRecord(
            boundary=policy.boundary,
            strategy=policy.strategy,
            planned_time=self.progress.clock(),
            plans=(previous.plans + 1) if previous else 1,
            candidate_hosts=len(resources),
            planned=len(result.targets),
            unplaced=len(result.unplaced),
        )
        self.progress.note(
            EVACUATE,
            f"plan ({policy.strategy}): {len(result.targets)} instance(s) onto "
            f"{len(set(result.targets.values()))} of {len(resources)} host(s), "
            f"{len(result.unplaced)} without room",
        )
        # Not written on its own: the first move's write-ahead carries the whole plan, and each
        # move's carries its own target, before its evacuate call (three writes from admission
        # to the first evacuate, as without a plan); with nothing to move, the end writes it.
        still_on_host = {i.id for i in instances}
        return [i.id for i in order(instances) if i.id in result.targets] + [
            k for k in remaining if k not in still_on_host
        ]

    async def _anti_affinity(
        self, server_groups: list[ServerGroup], moving: set[str]
    ) -> tuple[dict[str, tuple[str, ...]], dict[str, set[str]]]:
        """The anti-affinity groups of the instances to move, and the hosts that hold another
        member of each: Nova's scheduler refuses a second member there, so the plan does not
        try. Soft anti-affinity is a preference of Nova's weighers, not a rule: left out."""
        of: dict[str, list[str]] = {}
        others: list[tuple[str, str]] = []  # (group, member) not moving with this host
        for group in server_groups:
            if group.policy != "anti-affinity" or not moving.intersection(group.members):
                continue
            for member in group.members:
                if member in moving:
                    of.setdefault(member, []).append(group.id)
                else:
                    others.append((group.id, member))

        async def where(member: str) -> str | None:
            try:
                return (await self.nova.server(member)).host
            except NotFound:
                return None

        hosts = await asyncio.gather(*(where(member) for _, member in others))
        holds: dict[str, set[str]] = {}
        for (group_id, _), host in zip(others, hosts, strict=True):
            if host and host != self.host:
                holds.setdefault(host, set()).add(group_id)
        return {k: tuple(v) for k, v in of.items()}, holds

    async def _away_from_live_migrations(self, servers: list[Server]) -> dict[str, set[str]]:
        """For an instance a drain's migration (live or cold) was moving when the host failed,
        the migration's destination: it may still hold the incoming copy. Only servers Nova shows
        migrating are read: one read per such instance, none for the others. (Reserved hosts
        need no such care: disabled in Nova, no live migration goes to one.)"""
        migrating = [s for s in servers if handover.migrating(s)]
        records = await asyncio.gather(*(self.nova.migrations(s.id) for s in migrating))
        away: dict[str, set[str]] = {}
        for server, migrations in zip(migrating, records, strict=True):
            dest = handover.open_destination(migrations, self.host)
            if dest is not None:
                away[server.id] = {dest}
        return away

    async def _destinations(self, policy: PlacementPolicy) -> _Destinations:
        """Independent reads at once: the plan costs one round trip, not three."""
        members = await self._boundary(policy)
        services, provided, server_groups = await asyncio.gather(
            self.nova.compute_services(),
            self.nova.host_resources(sorted(members)),
            self.nova.server_groups(),
        )
        return _Destinations(services, provided, server_groups)

    async def _boundary(self, policy: PlacementPolicy) -> set[str]:
        """The hosts instances may go to; of those, the plan uses the ones Nova would schedule
        to now (enabled, up, not forced down)."""
        if policy.boundary == PlacementBoundary.AGGREGATES:
            wanted = set(policy.aggregates)
            members = {h for a in await self.nova.aggregates() if a.name in wanted for h in a.hosts}
        else:
            members = set(self.segment_hosts)
        members.discard(self.host)
        return members

    async def _evacuate_planned(self, planned: list[str]) -> Outcome:
        moves = [m for i in planned if (m := self.progress.move(i)) is not None]
        await self._run_moves(moves, lambda move: move.target_host)
        return self._outcome("to the planned hosts")

    async def _to_reserved_hosts(self) -> Outcome:
        self._listed = None  # instances move from here on: a later plan lists them again
        taken = self.progress.status.reserved_hosts
        candidates = [*taken, *(h for h in self.reserved_candidates if h not in taken)]
        if not candidates:
            return Outcome.error(
                "ReservedHostsUnavailable", "the segment has no reserved host available"
            )
        policy = self._plan_policy()
        if policy is not None:
            return await self._to_reserved_by_plan(policy, candidates, taken)
        outcome = Outcome.error(
            "ReservedHostsUnavailable", "every reserved host is taken by another recovery"
        )
        for reserved in candidates:
            # Claimed one at a time, as it is taken: two hosts failing together in one segment
            # each get a reserved host of their own.
            if not self.claim(reserved) and reserved not in taken:
                continue
            await self._take_reserved_host(reserved)
            outcome = await self._evacuate_remaining(reserved)
            if outcome.phase == "Finished":
                break
        return outcome

    async def _to_reserved_by_plan(
        self, policy: PlacementPolicy, candidates: list[str], taken: list[str]
    ) -> Outcome:
        """Each reserved host, in Masakari's order, takes the instances that fit on it by its
        Placement inventory, highest priority first: a failure consumes only the reserved hosts
        it needs, none is enabled that the plan leaves empty, and what fits on none is failed
        with why (the method's fallback may take it), never sent to overflow a host."""
        moves = {
            m.instance_uuid: m
            for m in self.progress.status.instances
            if m.status in (MoveStatus.PENDING, MoveStatus.ONGOING, MoveStatus.FAILED)
        }
        services, provided, servers = await asyncio.gather(
            self.nova.compute_services(),
            self.nova.host_resources(candidates),
            self.nova.servers_on_host(self.host),
        )
        up = {s.host for s in services if s.is_up and not s.forced_down}
        rooms = {r.host: Candidate.of(r) for r in provided if r.host in up}
        found = await self._read_images(servers, EVACUATE)
        left = order(
            Instance(
                s.id,
                s.name,
                flavor_resources(s.flavor),
                instance_priority(s, policy, self.policy.ha_enabled_metadata_key, found),
            )
            for s in servers
            if s.id in moves and s.host == self.host
        )
        on_host = {i.id for i in left}
        # Moves no longer on the failed host (in flight after a restart) keep their target.
        await self._run_moves(
            [m for i, m in moves.items() if i not in on_host], lambda move: move.target_host
        )
        refused: list[str] = []
        for reserved in (c for c in candidates if c in rooms):
            if not left:
                break
            result = plan(left, [rooms[reserved]], policy.strategy)
            if not result.targets:
                continue
            # Claimed only once the plan puts something on it, as it is taken: two hosts
            # failing together in one segment each get reserved hosts of their own.
            if not self.claim(reserved) and reserved not in taken:
                refused.append(reserved)
                continue
            added = result.load(left).get(reserved, {})
            room = rooms[reserved]
            rooms[reserved] = Candidate(
                reserved, {rc: room.free[rc] - added.get(rc, 0) for rc in room.free}, room.max_unit
            )
            for instance_id in result.targets:
                moves[instance_id].target_host = reserved
            await self._take_reserved_host(reserved)
            await self._run_moves(
                [moves[i.id] for i in left if i.id in result.targets],
                lambda move: move.target_host,
            )
            left = [i for i in left if i.id not in result.targets]
        if left:
            why = plan(left, [r for h, r in rooms.items() if h not in refused]).unplaced
            for instance in left:
                move = moves[instance.id]
                move.status, move.target_host = MoveStatus.FAILED, None
                move.message = NO_RESERVED_ROOM + why[instance.id]
                move.end_time = self.progress.clock()
            self.progress.note(EVACUATE, f"{len(left)} instance(s) without room on reserved hosts")
        if left and not any(h in self.progress.status.reserved_hosts for h in candidates):
            return Outcome.error(
                "ReservedHostsUnavailable",
                "no reserved host could be taken: taken by another recovery, down, or too small",
            )
        return self._outcome("to reserved hosts")

    async def _take_reserved_host(self, reserved: str) -> None:
        if reserved not in self.progress.status.reserved_hosts:
            # Recorded before Nova is touched: a crash leaves it marked taken, never enabled
            # and forgotten.
            self.progress.status.reserved_hosts.append(reserved)
            self.progress.note(EVACUATE, f"taking reserved host {reserved}")
            await self.progress.save()
        if self.policy.add_reserved_host_to_aggregate:
            for aggregate in await self.nova.aggregates():
                if self.host in aggregate.hosts and reserved not in aggregate.hosts:
                    await self.nova.add_host_to_aggregate(aggregate.id, reserved)
        service = await self.nova.compute_service(reserved)
        if not service.is_enabled:
            await self.nova.enable_service(reserved)

    async def _evacuate_remaining(self, target: str | None) -> Outcome:
        moves = [
            m
            for m in self.progress.status.instances
            if m.status in (MoveStatus.PENDING, MoveStatus.ONGOING, MoveStatus.FAILED)
        ]
        await self._run_moves(moves, lambda _move: target)
        return self._outcome(f"to {target}" if target else "by the scheduler")

    async def _run_moves(
        self, moves: list[InstanceMove], target_of: Callable[[InstanceMove], str | None]
    ) -> None:
        host_limit = asyncio.Semaphore(self.policy.evacuation_concurrency)

        async def bounded(move: InstanceMove) -> None:
            async with host_limit, self.overall_limit:
                ending = await self._move(move, target_of(move))
            # Out of the slot: the instance is no longer being evacuated, and the next one
            # need not wait for this one's unlock and status write (with 100 moves a write
            # takes 40-100 ms; the next move's write-ahead now carries this end with it).
            await self._end_move(move, ending)

        # A TaskGroup, not gather: if one move fails unexpectedly the others are cancelled
        # rather than left running behind the attempt's back.
        async with asyncio.TaskGroup() as group:
            for move in moves:
                group.create_task(bounded(move))

    def _outcome(self, where: str) -> Outcome:
        moves = self.progress.status.instances
        no_room = [
            m
            for m in moves
            if m.status == MoveStatus.FAILED
            and (m.message or "").startswith((NO_ROOM, NO_RESERVED_ROOM))
        ]
        failed = sum(m.status == MoveStatus.FAILED for m in moves)
        moved = sum(m.status == MoveStatus.SUCCEEDED and m.type == EVACUATION for m in moves)
        landed = sum(m.status == MoveStatus.SUCCEEDED and m.type != EVACUATION for m in moves)
        by_drain = f", {landed} already live-migrated by the drain" if landed else ""
        if no_room and failed == len(no_room):
            names = ", ".join(_name(m) for m in no_room[:10])
            return Outcome.error(
                "InsufficientCapacity",
                f"{moved} instance(s) evacuated; {len(no_room)} without room in the segment "
                f"({names}{', ...' if len(no_room) > 10 else ''})",
            )
        if failed:
            return Outcome.error(
                "EvacuationFailed", f"{failed} instance(s) failed to evacuate {where}"
            )
        return Outcome.finished("Recovered", f"{moved} instance(s) evacuated{by_drain}")

    # -- one instance --------------------------------------------------------------------

    async def _move(self, move: InstanceMove, target: str | None) -> _Ending:
        """Nova's part of one instance's move, up to its landing; `_end_move` records it."""
        try:
            server = await self._reads.before_move(move.instance_uuid)
        except NotFound:
            return _Ending(MoveStatus.IGNORED, message="the instance no longer exists")
        except NovaError as error:
            return _Ending(MoveStatus.FAILED, message=_describe(error))
        try:
            if move.attempts == 0 and _maybe_live_migrated(server, self.host):
                learned, server = await self._after_live_migration(move, server)
                if learned.learned == Learned.LANDED:
                    # The drain moved it: recorded as its move, under the move's type.
                    move.type = handover.move_type(learned)
                    return _Ending(MoveStatus.SUCCEEDED, server.host, learned.message)
                if learned.learned == Learned.UNSURE:
                    raise NovaError(learned.message)
            if server.host == self.host or server.task_state is not None:
                if not await self._evacuation_in_flight(move, server):
                    await self._start_evacuation(move, server, target)
                server = await self._wait_landed(move, server)
                self._landed.add(move.instance_uuid)
            elif server.vm_state == "error" and move.original_state != "error":
                # Off the failed host but broken: a rebuild that failed on its destination.
                # Evacuating again is impossible (that host is up) and guessing a repair could
                # hurt its disks, so it is left for a person, and said so.
                raise NovaError(
                    f"in error on {server.host} after an evacuation: {server.fault or 'no fault'}"
                )
            server = await self._restore_state(move, server)
            return _Ending(MoveStatus.SUCCEEDED, server.host, unlock=True)
        except (NovaError, TimeoutError) as error:
            return _Ending(MoveStatus.FAILED, message=_describe(error), unlock=True)

    async def _end_move(self, move: InstanceMove, ending: _Ending) -> None:
        if ending.unlock and move.locked_by_recovery:
            with contextlib.suppress(NovaError):
                await self.nova.unlock_server(move.instance_uuid)
                move.locked_by_recovery = False
        await self._finish(move, ending.status, ending.destination, ending.message)

    async def _after_live_migration(
        self, move: InstanceMove, server: Server
    ) -> tuple[handover.Handover, Server]:
        """What the instance's live migrations say (recovery.handover), waiting while one may
        still end (handover.patience); not at all for one only its fenced source could end."""
        host_off = handover.confirmed_off(self.progress.status.fencing)
        migrations = await self.nova.migrations(server.id)
        bound = handover.patience(
            handover.newest(migrations), self.live_migration_timeout, self.progress.clock()
        )
        start = self.timing.clock()
        waiting = False
        while True:
            expired = self.timing.clock() - start >= bound
            learned = handover.learn(server, self.host, migrations, expired, host_off=host_off)
            if learned.learned != Learned.WAIT:
                if learned.learned == Learned.EVACUATE:
                    self.progress.note(EVACUATE, f"{_name(move)}: {learned.message}")
                return learned, server
            if not waiting:
                waiting = True
                move.message = learned.message
                self.progress.note(EVACUATE, f"{_name(move)}: {learned.message}")
                await self.progress.save()
            await self.timing.sleep(self.timing.after(self.timing.clock() - start))
            server = await self.nova.server(server.id)
            migrations = await self.nova.migrations(server.id)

    async def _start_evacuation(
        self, move: InstanceMove, server: Server, target: str | None
    ) -> None:
        """One write ahead of the calls: the move ongoing (its attempt counted) and, when the
        recovery is about to lock the instance, that the lock is its own, so a crash after
        locking still unlocks. An instance someone else locked stays theirs to unlock.

        Locked once its evacuation has begun, not before it as Masakari does: with fifty moves
        starting at once, their fifty locks went out among the evacuate calls (the first
        wave's calls 0.12 s apart on the simulator against 0.06 s), and every evacuate waited
        for a lock's round trip (about 100 ms on the real-Nova lab). The lock still guards the
        whole rebuild, during which Nova refuses most other actions anyway."""
        lock = not server.locked
        move.locked_by_recovery = move.locked_by_recovery or lock
        move.status = MoveStatus.ONGOING
        move.target_host = target
        move.start_time = self.progress.clock()
        move.end_time = None
        move.destination_host = None
        move.message = None
        move.attempts += 1
        await self.progress.save()
        await self.nova.reset_and_evacuate(
            server.id,
            target,
            # Nova evacuates only settled instances; Masakari resets the others to error first.
            reset=server.vm_state not in _SETTLED_STATES or server.task_state is not None,
        )
        if not lock:
            return
        try:
            await self.nova.lock_server(server.id, f"evacuation ({self.event})")
        except NovaError as error:
            # The evacuation is under way: a refused lock does not stop it. The unlock at the
            # end is tried all the same: a lock whose answer was lost may have been taken.
            self.progress.note(EVACUATE, f"{_name(move)} not locked: {_describe(error)}")

    async def _evacuation_in_flight(self, move: InstanceMove, server: Server) -> bool:
        """Is Nova still moving it? Then wait for it: resetting it or evacuating it again while
        a rebuild runs would start the instance twice. Asked before every evacuate call: after
        a restart, after a move that timed out (its rebuild may still run), on a retry, and
        before a method's fallback."""
        if server.task_state in REBUILDING:
            return True
        if move.start_time is None:
            return False
        since = move.start_time - CLOCK_SKEW
        for migration in await self.nova.migrations(move.instance_uuid):
            if (
                migration.migration_type == "evacuation"
                and migration.created_at is not None
                and migration.created_at >= since
                and migration.status not in ("failed", "error")
            ):
                return True
        return False

    async def _evacuation_failed(self, move: InstanceMove) -> bool:
        """Nova ended this move's evacuation without moving the instance: every evacuation
        record since the move started has ended, one of them in failure."""
        if move.start_time is None:
            return False
        since = move.start_time - CLOCK_SKEW
        recent = [
            m
            for m in await self.nova.migrations(move.instance_uuid)
            if m.migration_type == "evacuation"
            and m.created_at is not None
            and m.created_at >= since
        ]
        return all(m.status in ("failed", "error", "done", "completed") for m in recent) and any(
            m.status in ("failed", "error") for m in recent
        )

    async def _wait_landed(self, move: InstanceMove, before: Server) -> Server:
        start = self.timing.clock()
        deadline = start + self.policy.evacuation_timeout_seconds
        while True:
            asked = self.timing.clock()
            if move.start_time is None:  # a rebuild this recovery did not start: since when?
                server = await self.nova.server(before.id)
            else:
                server = await self._reads.server(before.id, move.start_time - CLOCK_SKEW)
            if server.task_state is None:
                if server.vm_state == "error" and before.vm_state != "error":
                    # Nova gave up on the rebuild; waiting longer only delays the retry.
                    raise NovaError(
                        f"instance went to error on {server.host}: {server.fault or 'no fault'}"
                    )
                if server.host != self.host:
                    return server
                if before.vm_state == "error" and await self._evacuation_failed(move):
                    # Already in error (a refused planned target, or an instance that was):
                    # its state cannot say the evacuation ended, Nova's record of it can.
                    raise NovaError(
                        f"evacuation failed, still in error on {server.host}: "
                        f"{server.fault or 'no fault'}"
                    )
            if self.timing.clock() >= deadline:
                raise TimeoutError(
                    f"not landed after {self.policy.evacuation_timeout_seconds}s "
                    f"(host {server.host}, task {server.task_state})"
                )
            await self.timing.sleep(self.timing.until_next_read(asked, asked - start))

    async def _restore_state(self, move: InstanceMove, server: Server) -> Server:
        """Put the instance back in the state it had: stopped stays stopped."""
        if move.original_state in ("stopped", "error") and server.vm_state == "active":
            await self.nova.stop_server(server.id)
            server = await wait_for_vm_state(
                self.nova,
                server.id,
                "stopped",
                self.policy.evacuation_timeout_seconds,
                self.timing,
            )
        if move.original_state == "error" and server.vm_state != "error":
            await self.nova.reset_state(server.id, "error")
        return server

    async def _finish(
        self, move: InstanceMove, status: MoveStatus, destination: str | None, message: str | None
    ) -> None:
        move.status = status
        move.destination_host = destination
        move.message = message
        move.end_time = self.progress.clock()
        done = sum(
            m.status in (MoveStatus.SUCCEEDED, MoveStatus.IGNORED, MoveStatus.FAILED)
            for m in self.progress.status.instances
        )
        total = len(self.progress.status.instances)
        verb = {"succeeded": "evacuated to", "failed": "failed:", "ignored": "ignored:"}
        if move.type != EVACUATION:
            verb["succeeded"] = "already live-migrated to"
        detail = destination if status == MoveStatus.SUCCEEDED else message
        self.progress.note(
            EVACUATE,
            f"{_name(move)} {verb[status]} {detail}",
            done / total if total else 1.0,
        )
        # A move waiting for this one's slot writes its write-ahead within a read: this end
        # goes out with it, not as a patch of its own ahead of it (with fifty landing
        # together on the simulator, their next moves' evacuate calls waited 0.13-0.17 s
        # for two patches). Nothing waits on an end but the recovery's own.
        await self.progress.save(within=self.timing.first_poll if self._pending() else 0.0)

    def _pending(self) -> bool:
        return any(m.status == MoveStatus.PENDING for m in self.progress.status.instances)


def _maybe_live_migrated(server: Server, failed_host: str) -> bool:
    """Worth reading its migrations before the first evacuation: a live migration runs (Nova
    shows it migrating), or it left the failed host by itself since it was listed. Any other
    instance costs no read."""
    return handover.migrating(server) or (server.host != failed_host and server.task_state is None)


def _name(move: InstanceMove) -> str:
    return move.instance_name or move.instance_uuid


async def _ready(servers: list[Server]) -> list[Server]:
    return servers


def _describe(error: Exception) -> str:
    if isinstance(error, NoValidHost):
        return f"no valid host: {error}"
    if isinstance(error, Conflict):
        return f"Nova refused: {error}"
    return str(error) or type(error).__name__

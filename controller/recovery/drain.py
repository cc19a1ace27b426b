"""The decisions of a maintenance drain: pure, no I/O, table-tested.

A drain empties a host on maintenance by live migration, and cold migration for its stopped
instances where the segment says so (its spec.maintenance). The orchestration
(controller.recovery.host_drain) asks, in this order:

1. `wanted`: should a drain run on the host now? Only while the host is on maintenance, its
   segment drains, and nothing says the host failed (a recovery holds it, its service is down
   or forced down, its phase is Recovering or Failed): a live migration needs a live source,
   and a failed host is the recovery's. Otherwise a running drain stops starting moves
   (`STOP` when maintenance ended, `HAND_OVER` when the host failed).
2. `begin` and `kind_for`: which instances, found on the host when it starts, and how: running
   ones (active, paused) are live-migrated; stopped ones cold-migrated (stoppedInstances
   ColdMigrate) or left (Leave); any other state is left, Nova moves it neither way.
3. `next_moves`: which pending instances start now, within the per-host and per-segment bounds.
4. `in_flight`: before every migration call (a resumed drain, a retry), whether Nova still
   runs an earlier one, of either kind: then it is followed, never started twice. A cold
   migration Nova landed waits for its confirmation (`to_confirm`): it is confirmed, not
   started again.
5. `after_failure`: a failed attempt is retried up to `attempts`, then reported (or a running
   instance stopped, with LiveMigrateOrStop); a migration is never forced past the scheduler.
6. `outcome`: the phase once nothing is pending or ongoing.

And the gates ask `unfinished` when a host on maintenance fails: Masakari ignores that failure,
here it is recovered while the drain still owes the host's instances a move.

Where Masakari differs: it has no drain; maintenance only disables the service and the
instances stay on the host.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from controller.recovery.nova import ComputeService, Migration, Server
from controller.resources.host import (
    DrainMove,
    DrainMoveStatus,
    DrainPhase,
    DrainStatus,
    HostPhase,
    MigrationKind,
)
from controller.resources.segment import DrainMode, MaintenancePolicy, StoppedInstances

# Vm states Nova live-migrates (nova/compute/api.py live_migrate's check_instance_state).
LIVE_MIGRATABLE = frozenset({"active", "paused"})
# Nova cold-migrates active and stopped ones (resize's check_instance_state); a drain takes only
# the stopped ones that way, the running ones keep running through a live migration.
COLD_MIGRATABLE = frozenset({"stopped"})
# Task states of a cold migration under way: the conductor's prep to the destination's finish.
RESIZING = frozenset({"resize_prep", "resize_migrating", "resize_migrated", "resize_finish"})
# Nova's migration_type of each kind (a cold migration keeps its flavor: not "resize").
MIGRATION_TYPE = {MigrationKind.LIVE: "live-migration", MigrationKind.COLD: "migration"}
# Migration records in these states are over; any other state means Nova still runs it. A cold
# one "finished" (landed, VERIFY_RESIZE) or "confirming" is open: its source still holds it.
ENDED_MIGRATION = frozenset(
    {"completed", "done", "confirmed", "error", "failed", "cancelled", "reverted"}
)
# "reverted": a cold migration someone took back, the instance on its source again.
FAILED_MIGRATION = frozenset({"error", "failed", "cancelled", "reverted"})
# Records of a migration that moved the instance: a cold one has landed once "finished" (its
# guest on the destination; the confirmation only frees what the source holds).
LANDED = {
    MigrationKind.LIVE: frozenset({"completed", "done"}),
    MigrationKind.COLD: frozenset({"finished", "confirming", "confirmed"}),
}
# A migration record's creation time is the cloud's clock, a move's start the operator's.
CLOCK_SKEW = timedelta(seconds=15)
OPEN = frozenset({DrainMoveStatus.PENDING, DrainMoveStatus.ONGOING})
ENDED_DRAIN = frozenset(
    {DrainPhase.DRAINED, DrainPhase.INCOMPLETE, DrainPhase.STOPPED, DrainPhase.HANDED_OVER}
)


class Want(StrEnum):
    DRAIN = "Drain"  # start or resume it
    STOP = "Stop"  # maintenance ended: start nothing more, follow what runs
    HAND_OVER = "HandOver"  # the host failed: start nothing more, the recovery takes over
    NOTHING = "Nothing"


@dataclass(frozen=True)
class HostView:
    """What `wanted` looks at."""

    on_maintenance: bool
    phase: HostPhase | None
    service: ComputeService | None
    recovering: bool  # a recovery of the host holds its lock
    drain: DrainStatus | None
    maintenance_since: datetime | None  # when the host last entered phase Maintenance


def failed(view: HostView) -> bool:
    service = view.service
    return (
        view.recovering
        or view.phase in (HostPhase.RECOVERING, HostPhase.FAILED)
        or service is None
        or service.forced_down
        or not service.is_up
    )


def current(drain: DrainStatus | None, since: datetime | None) -> bool:
    """Whether `drain` belongs to the maintenance that began at `since`: a drain that ended
    before it is an earlier maintenance's."""
    if drain is None:
        return False
    return drain.end_time is None or since is None or drain.end_time >= since


def wanted(view: HostView, policy: MaintenancePolicy | None) -> Want:
    drain = view.drain
    running = drain is not None and drain.phase == DrainPhase.DRAINING
    if not view.on_maintenance:
        return Want.STOP if running else Want.NOTHING
    if failed(view):
        return Want.HAND_OVER if running else Want.NOTHING
    if running:
        return Want.DRAIN  # resumed under the policy it started with, even if edited since
    if policy is None or policy.drain == DrainMode.NONE:
        return Want.NOTHING
    return Want.NOTHING if current(drain, view.maintenance_since) else Want.DRAIN


def unfinished(
    policy: MaintenancePolicy | None, drain: DrainStatus | None, since: datetime | None
) -> bool:
    """Does this maintenance's drain still owe the host's instances a move? Then a failure of
    the host is recovered: the running instances the drain was to move are still there, and
    nobody chose to leave them. Not once it is Drained (what stays was left on purpose:
    stopped, or stopped by LiveMigrateOrStop), nor under a policy that does not drain: the
    person who put the host on maintenance knows its instances stay, Masakari's rule.
    Incomplete, Stopped and HandedOver drains owe a move: instances they meant to move are
    still on the host. `since`: when the host entered maintenance."""
    if drain is not None and current(drain, since):
        return drain.phase != DrainPhase.DRAINED
    # None begun yet for this maintenance: a draining policy is about to start one.
    return policy is not None and policy.drain != DrainMode.NONE


def standby_allowed(
    policy: MaintenancePolicy | None,
    drain: DrainStatus | None,
    since: datetime | None,
    service: ComputeService | None,
) -> bool:
    """The node goes to standby once the drain is over: standby stops what Pacemaker runs on
    it (nova-compute of a pacemaker-remote node), and with it every live migration off it. A
    host whose service is not up cannot be drained: nothing to wait for."""
    if drain is not None and drain.phase == DrainPhase.DRAINING:
        return False
    if policy is None or policy.drain == DrainMode.NONE:
        return True
    if service is None or service.forced_down or not service.is_up:
        return True
    return current(drain, since) and drain is not None and drain.phase in ENDED_DRAIN


def kind_for(server: Server, policy: MaintenancePolicy) -> MigrationKind | None:
    """How the drain moves the instance in its current state, or None: left on the host."""
    if server.vm_state in LIVE_MIGRATABLE:
        return MigrationKind.LIVE
    if (
        server.vm_state in COLD_MIGRATABLE
        and policy.stopped_instances == StoppedInstances.COLD_MIGRATE
    ):
        return MigrationKind.COLD
    return None


def left_because(server: Server) -> str:
    if server.vm_state in COLD_MIGRATABLE:
        return f"{server.vm_state}: not running, left on the host (stoppedInstances Leave)"
    return f"{server.vm_state}: Nova migrates it neither live nor cold, left on the host"


def begin(servers: Iterable[Server], policy: MaintenancePolicy, now: datetime) -> DrainStatus:
    moves = []
    for server in sorted(servers, key=lambda s: (s.name, s.id)):
        kind = kind_for(server, policy)
        if kind is not None:
            moves.append(
                DrainMove(
                    instance_uuid=server.id,
                    name=server.name,
                    status=DrainMoveStatus.PENDING,
                    kind=kind,
                )
            )
        else:
            moves.append(
                DrainMove(
                    instance_uuid=server.id,
                    name=server.name,
                    status=DrainMoveStatus.LEFT,
                    end_time=now,
                    message=left_because(server),
                )
            )
    return DrainStatus(
        phase=DrainPhase.DRAINING, mode=policy.drain, start_time=now, instances=moves
    )


@dataclass(frozen=True)
class Slots:
    per_host: int
    per_segment: int
    ongoing_in_segment: int  # live migrations of the segment's other drains too


def next_moves(drain: DrainStatus, slots: Slots, running: Iterable[str] = ()) -> list[str]:
    """Pending instances to start now, in the drain's order, within both bounds. `running`:
    instances an attempt is already busy with (asked for or about to be): never picked again,
    and counted against the host's bound."""
    busy = {m.instance_uuid for m in drain.instances if m.status == DrainMoveStatus.ONGOING}
    busy.update(running)
    free = min(slots.per_host - len(busy), slots.per_segment - slots.ongoing_in_segment)
    pending = [
        m.instance_uuid
        for m in drain.instances
        if m.status == DrainMoveStatus.PENDING and m.instance_uuid not in busy
    ]
    return pending[: max(free, 0)]


def in_flight(server: Server, move: DrainMove, migrations: Iterable[Migration]) -> bool:
    """Does Nova still run a migration of it, of either kind, asked for by this move or not?
    Either kind: an instance stopped or started since its move was planned changes the kind
    the next attempt asks for, and Nova must not get a second migration of any kind."""
    if server.task_state == "migrating" or server.task_state in RESIZING:
        return True
    since = move.start_time - CLOCK_SKEW if move.start_time is not None else None
    return any(
        m.migration_type in MIGRATION_TYPE.values()
        and m.status not in ENDED_MIGRATION
        and (since is None or (m.created_at is not None and m.created_at >= since))
        for m in migrations
    )


def _newest_since(
    move: DrainMove, migrations: Iterable[Migration], kind: MigrationKind
) -> Migration | None:
    """The newest record of `kind` since the move started: an earlier attempt's is not this
    one's."""
    if move.start_time is None:
        return None
    since = move.start_time - CLOCK_SKEW
    records = [
        m
        for m in migrations
        if m.migration_type == MIGRATION_TYPE[kind] and m.created_at is not None
        and m.created_at >= since
    ]  # fmt: skip
    return max(records, key=lambda m: (m.created_at or since, m.id), default=None)


def to_confirm(server: Server, move: DrainMove, migrations: Iterable[Migration]) -> bool:
    """Did Nova land the move's cold migration, waiting for its confirmation (VERIFY_RESIZE)?
    Only this move's: a resize someone else left unconfirmed is theirs."""
    if server.vm_state != "resized" or server.task_state is not None:
        return False
    newest = _newest_since(move, migrations, MigrationKind.COLD)
    return newest is not None and newest.status == "finished"


def attempt_failed(server: Server, move: DrainMove, migrations: Iterable[Migration]) -> str | None:
    """Nova's word that the move's latest migration (of its kind) failed, or None."""
    if server.task_state is not None:
        return None
    newest = _newest_since(move, migrations, move.kind)
    if newest is None or newest.status not in FAILED_MIGRATION:
        return None
    target = f" to {newest.dest_host}" if newest.dest_host else ""
    return f"{move.kind} migration{target} ended {newest.status}"


class Next(StrEnum):
    RETRY = "retry"
    GIVE_UP = "give-up"
    STOP_INSTANCE = "stop-instance"


def after_failure(move: DrainMove, policy: MaintenancePolicy) -> Next:
    if move.attempts < policy.attempts:
        return Next.RETRY
    if policy.drain == DrainMode.LIVE_MIGRATE_OR_STOP and move.kind == MigrationKind.LIVE:
        return Next.STOP_INSTANCE
    return Next.GIVE_UP


def outcome(drain: DrainStatus) -> DrainPhase | None:
    """The phase of a drain with nothing left to do, or None while something is open."""
    if any(m.status in OPEN for m in drain.instances):
        return None
    if any(m.status == DrainMoveStatus.FAILED for m in drain.instances):
        return DrainPhase.INCOMPLETE
    return DrainPhase.DRAINED


def cancel_pending(drain: DrainStatus, why: str, now: datetime) -> None:
    for move in drain.instances:
        if move.status == DrainMoveStatus.PENDING:
            move.status, move.end_time, move.message = DrainMoveStatus.CANCELLED, now, why

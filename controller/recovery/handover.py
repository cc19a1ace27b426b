"""A host that failed under a live migration: what its recovery does with the instance.

A maintenance drain (controller.recovery.drain) live-migrates instances off a host; when the
host dies mid-drain, its recovery (controller.recovery.host_failure) takes over what is still
there. Before it evacuates such an instance it reads the instance's migration records, and
`learn` decides from the newest live migration (an older one was overtaken by it):

- none, one off another host, or one that ended while the instance is back on the failed host:
  nothing to learn, the instance is evacuated as usual;
- completed, or landed on its destination (Nova shows the instance there, settled) with the
  record still open: the drain moved it. Recorded as such, never evacuated;
- ended in failure: Nova rolled it back and cleaned its destination: evacuated as usual;
- open before its switch-over (queued, preparing, running): the guest ran on the failed host,
  which is fenced by now. Nova may still end the migration by itself (its conductor fails one
  whose source does not answer), and an evacuation racing that rollback would have both write
  the instance, so the recovery waits, as long as the drain would have
  (`maintenance.instanceTimeoutSeconds` from the migration's start). Past that the source will
  never finish it: evacuated, and a placement plan keeps it off the migration's destination
  (`open_destination`), which may still hold the incoming copy and its resources;
- open after its switch-over (post-migrating, running (post-copy)): the guest may already run
  on the destination while Nova still places it on the failed host. Waited for likewise; past
  the bound the move fails for a person to look at: evacuating would start a second copy of a
  guest that may be running, on the same disks.

Masakari has no drain, and ignores every failure of a host on maintenance: nothing to match.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from controller.recovery.drain import ENDED_MIGRATION, FAILED_MIGRATION
from controller.recovery.nova import Migration, Server

LIVE_MIGRATION = "live-migration"  # Nova's migration_type
COMPLETED_MIGRATION = ENDED_MIGRATION - FAILED_MIGRATION
# Nova's statuses once the guest runs on the destination (libvirt's switch-over done, or
# post-copy started): the source no longer holds the only copy.
SWITCHED_OVER = frozenset({"post-migrating", "running (post-copy)"})


class Learned(StrEnum):
    NOTHING = "nothing"  # evacuate as usual
    LANDED = "landed"  # the live migration moved it: record, never evacuate
    WAIT = "wait"  # the live migration may still end: look again
    EVACUATE = "evacuate"  # it will never end: evacuate, away from its destination
    UNSURE = "unsure"  # the guest may run on the destination: fail the move, for a person


@dataclass(frozen=True)
class Handover:
    learned: Learned
    migration: Migration | None = None
    message: str = ""


def newest(migrations: Iterable[Migration]) -> Migration | None:
    """The instance's latest live migration: records without a time sort first."""
    live = [m for m in migrations if m.migration_type == LIVE_MIGRATION]
    return max(live, key=lambda m: (m.created_at is not None, m.created_at, m.id), default=None)


def patience(migration: Migration | None, timeout: float, now: datetime) -> float:
    """Seconds left of the drain's bound for the migration, counted from its start; the whole
    bound when its start is unknown (a guess of "long ago" would evacuate at once)."""
    if migration is None or migration.created_at is None:
        return timeout
    elapsed = (now - migration.created_at).total_seconds()
    return min(max(timeout - elapsed, 0.0), timeout)


def learn(
    server: Server, failed_host: str, migrations: Iterable[Migration], expired: bool
) -> Handover:
    """What the recovery of `failed_host` does with `server`, from its live migrations.
    `expired`: the bound of `patience` has passed."""
    migration = newest(migrations)
    if migration is None or migration.source_host != failed_host:
        return Handover(Learned.NOTHING)
    dest = migration.dest_host or "a host Nova had not picked yet"
    if migration.status in FAILED_MIGRATION:
        return Handover(Learned.NOTHING, migration)
    settled_elsewhere = server.host != failed_host and server.task_state is None
    # Landed even with the record still open: the destination moves the instance to itself
    # (post_live_migration_at_destination) before the source marks the record completed, and
    # a source that died in between never does.
    if settled_elsewhere and (
        migration.status in COMPLETED_MIGRATION or server.host == migration.dest_host
    ):
        return Handover(
            Learned.LANDED,
            migration,
            f"live-migrated to {server.host} before {failed_host} failed: not evacuated",
        )
    if settled_elsewhere or migration.status in COMPLETED_MIGRATION:
        # Moved by someone else, or back on the failed host since (a later evacuation or
        # cold migration): not this migration's doing.
        return Handover(Learned.NOTHING, migration)
    if not expired:
        waiting = f"waiting for its live migration to {dest} ({migration.status})"
        return Handover(Learned.WAIT, migration, waiting)
    if migration.status in SWITCHED_OVER:
        return Handover(
            Learned.UNSURE,
            migration,
            f"its live migration to {dest} was {migration.status} when {failed_host} failed "
            "and never ended: the guest may run there; not evacuated, check it and reset it",
        )
    return Handover(
        Learned.EVACUATE,
        migration,
        f"its live migration to {dest} never ended ({migration.status}): evacuated elsewhere",
    )


def open_destination(migrations: Iterable[Migration], failed_host: str) -> str | None:
    """The destination of a live migration off `failed_host` that never ended, if any: a
    placement plan keeps the instance off it."""
    migration = newest(migrations)
    if (
        migration is None
        or migration.source_host != failed_host
        or migration.status in ENDED_MIGRATION
    ):
        return None
    return migration.dest_host

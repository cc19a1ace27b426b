"""A host that failed under a drain's migration: what its recovery does with the instance.

A maintenance drain (controller.recovery.drain) live-migrates instances off a host (and
cold-migrates its stopped ones, where the segment says so); when the host dies mid-drain, its
recovery (controller.recovery.host_failure) takes over what is still there. Before it evacuates
such an instance it reads the instance's migration records, and `learn` decides from the newest
live or cold migration (an older one was overtaken by it). For a live one:

- none, one off another host, or one that ended while the instance is back on the failed host:
  nothing to learn, the instance is evacuated as usual;
- completed, or landed on its destination (Nova shows the instance there, settled) with the
  record still open: the drain moved it. Recorded as such, never evacuated;
- ended in failure: Nova rolled it back and cleaned its destination: evacuated as usual;
- open before the guest can have started on the destination (queued, preparing) off a host
  fenced for sure (a fencing record, a BMC read Off: `confirmed_off`): evacuated at once.
  Nova's source compute drives these states, and its memory is gone: nothing in Nova will ever
  end them, so waiting only keeps the guest down. A placement plan keeps it off the migration's
  destination (`open_destination`), which may hold the resources claimed for it;
- otherwise still open (the host only reported down, with fencing.method none; Nova's conductor
  still checking it, `accepted`; or `running`): Nova may still end it by itself (its conductor
  fails one whose source does not answer, the destination lands one its source handed over),
  and an evacuation racing that would have both write the instance, so the recovery waits: at
  most `NOVA_ENDS_WITHIN` from its first look, and never past the drain's own bound
  (`maintenance.instanceTimeoutSeconds` from the migration's start). Past that, one that had
  not reached `running` is evacuated as above;
- `running` or `running (post-copy)`, past the wait: the guest may run on the destination while
  Nova still places it on the failed host. In Nova 34 a live migration stays `running` after
  libvirt has resumed the guest on the destination, through the whole of the source's
  `_post_live_migration` (ports, volumes, the call to the destination), and only then becomes
  `completed`: no record or instance field tells the two sides of the switch-over apart. The
  move fails for a person to look at (is the domain running on the destination?): evacuating
  would start a second copy of a guest that may be running, on the same disks.

For a cold one (`_learn_cold`) the instance's host says everything: Nova's source hands the
instance over (sets its host to the destination) only after its disk is copied and its guest
powered off, and only then does the destination spawn it. So:

- ended in failure (or reverted), or someone else's record: evacuated as usual;
- the instance on the migration's destination (landed, "finished" waiting for its confirmation,
  or the destination still finishing it): the drain moved it, never evacuated. Its resize
  stays unconfirmed: Nova confirms on the source, which is gone (docs/resources.md says what to
  do once it is back);
- still on the failed host with the record open (pre-migrating, migrating, or post-migrating
  just before the hand-over): the guest runs nowhere, and only the source moves these steps on.
  Off a host fenced for sure: evacuated at once (reset from its resize task first, landing
  stopped as it was), away from the destination, which holds the resources claimed for it and
  perhaps part of its disk. Otherwise the same bounded wait as a live one (a source that still
  runs may yet hand it over), then evacuated: never UNSURE, as no guest ran on the destination.

Masakari has no drain, and ignores every failure of a host on maintenance: nothing to match.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from controller.recovery.drain import ENDED_MIGRATION, FAILED_MIGRATION, RESIZING
from controller.recovery.nova import Migration, Server
from controller.resources.failure_event import FencingRecord
from controller.resources.segment import FencingMethod

LIVE_MIGRATION = "live-migration"  # Nova's migration_type
COLD_MIGRATION = "migration"
COMPLETED_MIGRATION = ENDED_MIGRATION - FAILED_MIGRATION
# Nova's live-migration statuses under which the guest may run on the destination: libvirt's
# job under way (`running`: its pre-copy may have ended with the guest resumed there, and Nova
# keeps `running` until its source has finished _post_live_migration), or post-copy started.
# (`post-migrating` is Nova's status for cold migrations and resizes, never live ones.)
MAYBE_SWITCHED_OVER = frozenset({"running", "running (post-copy)"})
# Nova's statuses written by the source compute before libvirt's job starts: from the
# conductor's cast to the source (queued) through the wait on the destination's preparation
# (preparing). No guest on the destination yet, and with the source off no one in Nova writes
# the record again.
SOURCE_DRIVEN = frozenset({"queued", "preparing"})
# Nova's rpc_response_timeout (60 s by default): what Nova can still do to an open live
# migration without its source is a call already made that times out or completes within it
# (the conductor's check of an `accepted` one calls the source; the destination lands a
# switched-over one in the call its source sent it). Counted from the recovery's first look,
# which comes after the host stopped answering. Beyond it only a live source moves the record,
# and with fencing.method none that risk is taken for every instance of the host alike.
NOVA_ENDS_WITHIN = 60.0


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
    """The instance's latest live or cold migration: records without a time sort first."""
    moves = [m for m in migrations if m.migration_type in (LIVE_MIGRATION, COLD_MIGRATION)]
    return max(moves, key=lambda m: (m.created_at is not None, m.created_at, m.id), default=None)


def migrating(server: Server) -> bool:
    """Nova shows a live or cold migration of it under way."""
    return server.task_state == "migrating" or server.task_state in RESIZING


def move_type(handover: Handover) -> str:
    """The recovery's name (a FailureEvent move's type) for the migration that moved it."""
    cold = handover.migration is not None and handover.migration.migration_type == COLD_MIGRATION
    return "cold_migration" if cold else "live_migration"


def confirmed_off(fencing: FencingRecord | None) -> bool:
    """The failed host was confirmed powered off by its fencing (a fencing record, a BMC read
    Off), fenced by this event or found off already; fencing.method none confirms only on its
    monitor's word, which says nothing of the host's memory."""
    return (
        fencing is not None
        and fencing.confirmed_time is not None
        and fencing.method != FencingMethod.NONE
    )


def patience(migration: Migration | None, timeout: float, now: datetime) -> float:
    """Seconds to wait for the migration to end: what is left of the drain's bound, counted from
    its start (the whole bound when its start is unknown: a guess of "long ago" would evacuate
    at once), and no more than Nova takes to end it by itself."""
    left = timeout
    if migration is not None and migration.created_at is not None:
        elapsed = (now - migration.created_at).total_seconds()
        left = min(max(timeout - elapsed, 0.0), timeout)
    return min(left, NOVA_ENDS_WITHIN)


def learn(
    server: Server,
    failed_host: str,
    migrations: Iterable[Migration],
    expired: bool,
    *,
    host_off: bool,
) -> Handover:
    """What the recovery of `failed_host` does with `server`, from its live migrations.
    `expired`: the bound of `patience` has passed; `host_off`: `confirmed_off`."""
    migration = newest(migrations)
    if migration is None or migration.source_host != failed_host:
        return Handover(Learned.NOTHING)
    if migration.status in FAILED_MIGRATION:
        return Handover(Learned.NOTHING, migration)
    if migration.migration_type == COLD_MIGRATION:
        return _learn_cold(server, failed_host, migration, expired, host_off=host_off)
    dest = migration.dest_host or "a host Nova had not picked yet"
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
    if host_off and migration.status in SOURCE_DRIVEN:
        # A wait could only show Nova changing the record or the instance, and in these states
        # only the source does that: the bound would pass with nothing learned, the guest down.
        return Handover(
            Learned.EVACUATE,
            migration,
            f"its live migration to {dest} ({migration.status}) can never end: {failed_host} "
            "is fenced, the source's memory with it; evacuated elsewhere",
        )
    if not expired:
        waiting = f"waiting for its live migration to {dest} ({migration.status})"
        return Handover(Learned.WAIT, migration, waiting)
    if migration.status in MAYBE_SWITCHED_OVER:
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


def _learn_cold(
    server: Server, failed_host: str, migration: Migration, expired: bool, *, host_off: bool
) -> Handover:
    dest = migration.dest_host or "a host Nova had not picked yet"
    if server.host != failed_host:
        if server.host == migration.dest_host:
            unconfirmed = "" if migration.status == "confirmed" else ", its resize unconfirmed"
            return Handover(
                Learned.LANDED,
                migration,
                f"cold-migrated to {server.host} before {failed_host} failed{unconfirmed}: "
                "not evacuated",
            )
        return Handover(Learned.NOTHING, migration)  # moved by someone else since
    if migration.status in ENDED_MIGRATION:
        return Handover(Learned.NOTHING, migration)  # back on the failed host since
    if host_off:
        return Handover(
            Learned.EVACUATE,
            migration,
            f"its cold migration to {dest} ({migration.status}) can never end: {failed_host} "
            "is fenced and had not handed it over; evacuated elsewhere",
        )
    if not expired:
        return Handover(
            Learned.WAIT,
            migration,
            f"waiting for its cold migration to {dest} ({migration.status})",
        )
    return Handover(
        Learned.EVACUATE,
        migration,
        f"its cold migration to {dest} never ended ({migration.status}): evacuated elsewhere",
    )


def open_destination(migrations: Iterable[Migration], failed_host: str) -> str | None:
    """The destination of a live or cold migration off `failed_host` that never ended, if
    any: a placement plan keeps the instance off it."""
    migration = newest(migrations)
    if (
        migration is None
        or migration.source_host != failed_host
        or migration.status in ENDED_MIGRATION
    ):
        return None
    return migration.dest_host

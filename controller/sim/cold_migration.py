"""Cold migration in the simulator: Nova's "migrate" server action and "confirmResize".

As Nova 34 does it (nova/compute/api.py resize, nova/conductor/tasks/migrate.py,
nova/compute/manager.py prep_resize / resize_instance / finish_resize / confirm_resize):
- the API checks policy (admin), the lock, the state (active or stopped, no task), that the
  source's nova-compute is up (409 otherwise), and a named host; then the conductor schedules
  it: a scheduler that finds no host ends the record in "error" and leaves the server as it
  was, the call already accepted (Nova 34 on the lab; no 400 No valid host);
- accepted, the record (type "migration") is "pre-migrating" and the server `resize_prep` while
  the destination prepares; the source then powers the guest off and copies its disk
  ("migrating", `resize_migrating`), hands it over (the server's host becomes the destination)
  and the destination spawns it, powered on only if it was running: "finished", vm_state
  `resized`, status VERIFY_RESIZE. The source keeps its claim until the resize is confirmed;
- a failure before the copy (an injected one here) ends the record in "error" and leaves the
  server as it was, where it was (the conductor's rollback);
- a source that dies mid-way stops it where it is: only the source moves these steps on;
- confirmResize (refused with 409 unless `resized`) goes to the source, which frees its claim:
  "confirming", then "confirmed", the server active or stopped as its power state says.
"""

from __future__ import annotations

from controller.sim.cloud import (
    POWER_SHUTDOWN,
    ApiError,
    Cloud,
    Context,
    Host,
    Server,
)

RESIZABLE_VM_STATES = frozenset({"active", "stopped"})


def migrate(cloud: Cloud, server_id: str, ctx: Context, target: str | None) -> None:
    """POST /servers/{id}/action {"migrate": null | {"host": ...}}."""
    if not ctx.is_admin:
        raise ApiError(
            403, "Policy doesn't allow os_compute_api:os-migrate-server:migrate to be performed."
        )
    if target is not None and ctx.microversion < (2, 56):
        raise ApiError(400, "Additional properties are not allowed ('host' was unexpected)")
    server = cloud.server(server_id, ctx)
    if server.locked and not ctx.is_admin:
        raise ApiError(409, f"Instance {server.id} is locked")
    cloud.check_state(server, "migrate", RESIZABLE_VM_STATES)
    source = cloud.hosts[server.host]
    if cloud.service_state(source) != "up":
        raise ApiError(409, "Service is unavailable at this time.")
    if target is not None:
        cloud.host(target)
    now = cloud.clock()
    migration = cloud.open_migration(server, source.name, "pre-migrating", "migration", now)
    dest = (
        None if target == source.name else cloud.select_destination(server, source, target, False)
    )
    if dest is None:
        migration.status = "error"  # the conductor's NoValidHost: nothing else changes
        return
    migration.dest_compute = dest.name
    dest.claim(server.flavor)
    server.task_state, server.updated = "resize_prep", now
    server.task_seq += 1
    seq = server.task_seq
    remaining = cloud.failing_cold_migrations.get(server.id, 0)
    if remaining > 0:
        cloud.failing_cold_migrations[server.id] = remaining - 1
    fails = remaining != 0
    half = cloud.timing.cold_migration_seconds / 2

    def overtaken() -> bool:
        if cloud.servers.get(server.id) is server and server.task_seq == seq:
            return False
        dest.claim(server.flavor, -1)  # reset or deleted: never landed
        return True

    def copy() -> None:
        if overtaken() or not source.alive:
            return
        migration.updated = server.updated = cloud.clock()
        if fails:
            migration.status = "error"
            server.task_state = None
            dest.claim(server.flavor, -1)
            return
        migration.status, server.task_state = "migrating", "resize_migrating"
        cloud.later(half, finish)

    def finish() -> None:
        if overtaken() or not source.alive:
            return
        _hand_over(server, source, dest)
        migration.status, migration.updated = "finished", cloud.clock()
        server.vm_state, server.task_state, server.updated = "resized", None, cloud.clock()
        server.cold_migrations += 1

    cloud.later(half, copy)


def _hand_over(server: Server, source: Host, dest: Host) -> None:
    """The server is the destination's from now on; its source claim stays until confirmed."""
    del source.servers[server.id]
    dest.servers[server.id] = server
    server.host = dest.name


def confirm_resize(cloud: Cloud, server_id: str, ctx: Context) -> None:
    """POST /servers/{id}/action {"confirmResize": null}."""
    server = cloud.server(server_id, ctx)
    if server.locked and not ctx.is_admin:
        raise ApiError(409, f"Instance {server.id} is locked")
    cloud.check_state(server, "confirmResize", frozenset({"resized"}))
    migration = next(
        (
            m
            for m in reversed(cloud.migrations_by_instance.get(server.id, []))
            if m.status == "finished"
        ),
        None,
    )
    if migration is None:
        raise ApiError(400, "Instance has not been resized.")
    source = cloud.hosts[migration.source_compute]
    migration.status, migration.updated = "confirming", cloud.clock()

    def confirmed() -> None:
        if not source.alive or migration.status != "confirming":
            return  # Nova's cast waits for the source; here the record just stays confirming
        source.claim(server.flavor, -1)
        migration.status, migration.updated = "confirmed", cloud.clock()
        if server.vm_state == "resized":
            stopped = server.power_state == POWER_SHUTDOWN
            server.vm_state = "stopped" if stopped else "active"
            server.updated = cloud.clock()

    cloud.later(cloud.timing.power_seconds, confirmed)

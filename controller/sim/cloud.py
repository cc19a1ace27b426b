"""The simulated cloud: compute hosts, their nova-compute services, servers, migrations.

Everything lives in memory and is changed only from the event loop, so no locks are needed.
Servers are indexed by id and by host: the requests recovery makes (servers on one host, one
server, one service) never scan the whole cloud.

Where recovery depends on it, the semantics are Nova's (see docs/nova.md for the sources):
- a service is down when forced down, or when its host stopped reporting longer than
  `service_down_time` ago;
- evacuate is refused while the source service is up (Nova answers 400 "Compute service of
  <host> is still in use."), and for servers that are not active/stopped/error or have a task;
- the scheduler skips disabled, forced-down, down and full hosts; when nothing fits, the
  evacuation is still accepted (Nova casts to the conductor) and then fails: the server goes to
  ERROR on its source host and the migration record to "error";
- below microversion 2.95 an evacuated server keeps its state (stopped stays stopped, active
  stays active, error comes back active as Nova's rebuild powers it on); from 2.95 it lands
  stopped;
- a locked server refuses stop/start/delete from non-admins only (Nova's check_instance_lock
  lets admins through; evacuate is not lock-checked at all).
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from controller.sim import topology as topo

POWER_RUNNING = 1
POWER_SHUTDOWN = 4

#: Nova's evacuate / stop / start state checks (nova/compute/api.py check_instance_state).
EVACUABLE_VM_STATES = frozenset({"active", "stopped", "error"})
STOPPABLE_VM_STATES = frozenset({"active", "error"})
#: A server's status from its vm_state, where the two differ by more than case.
STATUSES = {"active": "ACTIVE", "stopped": "SHUTOFF", "error": "ERROR", "resized": "VERIFY_RESIZE"}


class ApiError(Exception):
    """An error the API answers with: an HTTP status and Nova's (or Keystone's) message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class Timing:
    service_down_time: float = 10.0
    report_interval: float = 1.0
    evacuation_seconds: float = 0.5
    power_seconds: float = 0.2
    live_migration_seconds: float = 0.5
    cold_migration_seconds: float = 0.5


@dataclass(slots=True)
class Flavor:
    id: str
    name: str
    vcpus: int
    ram: int
    disk: int


@dataclass(slots=True)
class Server:
    id: str
    name: str
    project_id: str
    flavor: Flavor
    metadata: dict[str, str]
    host: str
    vm_state: str
    power_state: int
    created: float
    updated: float
    task_state: str | None = None
    locked: bool = False
    locked_reason: str | None = None
    fault: str | None = None
    image_id: str | None = None  # Glance's (controller.sim.glance); None: booted from a volume
    evacuations: int = 0
    #: Evacuations accepted while nova-compute still ran on the source: the instance may
    #: still run there, which a recovery that fenced first never causes (goal: none).
    unfenced_evacuations: int = 0
    live_migrations: int = 0  # completed ones: with evacuations, the times the server moved
    cold_migrations: int = 0  # landed on their destination (VERIFY_RESIZE), confirmed or not
    #: Bumped by every task, so a stale completion callback can tell it was overtaken.
    task_seq: int = 0

    @property
    def status(self) -> str:
        if self.task_state in ("rebuilding", "rebuild_spawning"):
            return "REBUILD"
        if self.task_state is not None and self.task_state.startswith("resize_"):
            return "RESIZE"
        return STATUSES.get(self.vm_state, self.vm_state.upper())


@dataclass(slots=True)
class Host:
    name: str
    service_id: str
    hypervisor_id: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    zone: str
    status: str = "enabled"
    disabled_reason: str | None = None
    forced_down: bool = False
    alive: bool = True
    last_report: float = 0.0  # when a dead host last reported
    vcpus_used: int = 0
    memory_mb_used: int = 0
    disk_gb_used: int = 0
    servers: dict[str, Server] = field(default_factory=dict)
    #: Placement's view of the host (its resource provider): see inventory().
    cpu_allocation_ratio: float = 1.0
    ram_allocation_ratio: float = 1.0
    disk_allocation_ratio: float = 1.0
    reserved_vcpus: int = 0
    reserved_memory_mb: int = 0
    reserved_disk_gb: int = 0
    generation: int = 0  # the resource provider's, bumped by every claim as Placement does

    def inventory(self) -> dict[str, tuple[int, int, float]]:
        """Resource class -> (total, reserved, allocation ratio), as nova-compute reports it."""
        return {
            "VCPU": (self.vcpus, self.reserved_vcpus, self.cpu_allocation_ratio),
            "MEMORY_MB": (self.memory_mb, self.reserved_memory_mb, self.ram_allocation_ratio),
            "DISK_GB": (self.disk_gb, self.reserved_disk_gb, self.disk_allocation_ratio),
        }

    def usages(self) -> dict[str, int]:
        return {
            "VCPU": self.vcpus_used,
            "MEMORY_MB": self.memory_mb_used,
            "DISK_GB": self.disk_gb_used,
        }

    def fits(self, flavor: Flavor) -> bool:
        """Placement's check: (total - reserved) * ratio - used covers the request, and no
        request exceeds max_unit (the total)."""
        asked = {"VCPU": flavor.vcpus, "MEMORY_MB": flavor.ram, "DISK_GB": flavor.disk}
        used = self.usages()
        return all(
            asked[rc] <= total and int((total - reserved) * ratio) - used[rc] >= asked[rc]
            for rc, (total, reserved, ratio) in self.inventory().items()
        )

    def claim(self, flavor: Flavor, sign: int = 1) -> None:
        self.vcpus_used += sign * flavor.vcpus
        self.memory_mb_used += sign * flavor.ram
        self.disk_gb_used += sign * flavor.disk
        self.generation += 1


@dataclass(slots=True)
class Migration:
    id: int
    uuid: str
    instance_uuid: str
    project_id: str
    source_compute: str
    dest_compute: str | None
    status: str
    created: float
    updated: float
    migration_type: str = "evacuation"


@dataclass(slots=True)
class ServerGroup:
    id: str
    name: str
    policy: str
    project_id: str
    members: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Aggregate:
    id: int
    uuid: str
    name: str
    availability_zone: str | None
    hosts: list[str]
    metadata: dict[str, str]
    created: float


@dataclass(slots=True)
class Context:
    """Who is asking, and at which compute microversion."""

    project_id: str
    is_admin: bool
    is_service: bool = False
    microversion: tuple[int, int] = (2, 1)


def iso(ts: float, *, micro: bool = False) -> str:
    moment = datetime.fromtimestamp(ts, UTC)
    if micro:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Cloud:
    def __init__(
        self,
        spec: topo.Topology,
        *,
        seed: int | None = None,
        timing: Timing | None = None,
    ) -> None:
        self.timing = timing or Timing()
        self.rng = random.Random(seed)
        self.clock = time.time
        self.flavors: dict[str, Flavor] = {}
        self.flavors_by_name: dict[str, Flavor] = {}
        self.hosts: dict[str, Host] = {}
        self.hosts_by_service_id: dict[str, Host] = {}
        self.servers: dict[str, Server] = {}
        self._newest_first: list[Server] | None = None
        self.migrations: list[Migration] = []
        self.migrations_by_instance: dict[str, list[Migration]] = {}
        self.aggregates: dict[int, Aggregate] = {}
        self.server_groups: dict[str, ServerGroup] = {}
        #: Servers whose next evacuation fails on the destination (fault injection).
        self.failing_evacuations: set[str] = set()
        #: Servers whose next evacuation is accepted and whose rebuild never ends.
        self.stalled_evacuations: set[str] = set()
        #: Servers whose next live migrations fail, by how many more fail (< 0: every one).
        self.failing_live_migrations: dict[str, int] = {}
        #: Likewise for cold migrations (they fail before the copy, nothing moved).
        self.failing_cold_migrations: dict[str, int] = {}
        self._load(spec)

    # --- loading -------------------------------------------------------------------------

    @staticmethod
    def later(delay: float, callback: Callable[[], None]) -> None:
        asyncio.get_running_loop().call_later(delay, callback)

    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def open_migration(
        self, server: Server, source: str, status: str, kind: str, now: float
    ) -> Migration:
        """A new migration record of `server` off `source`, listed with the others and its
        instance's: every kind of move starts with one."""
        migration = Migration(
            len(self.migrations) + 1, self.new_uuid(), server.id, server.project_id,
            source, None, status, now, now, kind,
        )  # fmt: skip
        self.migrations.append(migration)
        self.migrations_by_instance.setdefault(server.id, []).append(migration)
        return migration

    def _load(self, spec: topo.Topology) -> None:
        now = self.clock()
        for f in spec.flavors:
            flavor = Flavor(f.id, f.name, f.vcpus, f.ram, f.disk)
            self.flavors[f.id] = flavor
            self.flavors_by_name[f.name] = flavor
        for h in spec.hosts:
            host = self._add_host(h.name, h.vcpus, h.memory_mb, h.disk_gb, h.zone)
            self._set_inventory(host, h)
            host.status = h.status
            host.disabled_reason = h.disabled_reason
            host.forced_down = h.forced_down
            if not h.alive:  # dead for a while already: its service is down from the start
                host.alive = False
                host.last_report = now - 2 * self.timing.service_down_time - 1
            if h.dies_after_seconds is not None:
                self.later(h.dies_after_seconds, functools.partial(self.kill_host, h.name))
        for g in spec.host_groups:
            flavor = self.flavor(g.flavor)
            for i in range(1, g.count + 1):
                host = self._add_host(f"{g.prefix}{i}", g.vcpus, g.memory_mb, g.disk_gb, g.zone)
                self._set_inventory(host, g)
                for j in range(g.servers_per_host):
                    self.boot(
                        host.name, f"{host.name}-vm{j}", flavor, dict(g.metadata), "demo", now=now
                    )
        for a in spec.aggregates:
            aggregate = self.create_aggregate(a.name, a.availability_zone)
            aggregate.metadata.update(a.metadata)
            for name in a.hosts:
                self.add_host_to_aggregate(aggregate.id, name)
        for s in spec.servers:
            server = self.boot(
                s.host, s.name, self.flavor(s.flavor), dict(s.metadata), s.project_id, s.id, now
            )
            if s.state == "stopped":
                server.vm_state, server.power_state = "stopped", POWER_SHUTDOWN
            elif s.state == "error":
                server.vm_state = "error"
            server.locked = s.locked
            server.image_id = s.image
        by_name = {server.name: server.id for server in self.servers.values()}
        for sg in spec.server_groups:
            group = self.create_server_group(sg.name, sg.policy, sg.project_id)
            unknown = [name for name in sg.members if name not in by_name]
            if unknown:
                raise ValueError(f"server group {sg.name}: no server named {unknown[0]}")
            group.members.extend(by_name[name] for name in sg.members)

    def _add_host(self, name: str, vcpus: int, memory_mb: int, disk_gb: int, zone: str) -> Host:
        if name in self.hosts:
            raise ValueError(f"host {name} is defined twice")
        host = Host(name, self.new_uuid(), self.new_uuid(), vcpus, memory_mb, disk_gb, zone)
        self.hosts[name] = host
        self.hosts_by_service_id[host.service_id] = host
        return host

    @staticmethod
    def _set_inventory(host: Host, spec: topo.InventorySpec) -> None:
        host.cpu_allocation_ratio = spec.cpu_allocation_ratio
        host.ram_allocation_ratio = spec.ram_allocation_ratio
        host.disk_allocation_ratio = spec.disk_allocation_ratio
        host.reserved_vcpus = spec.reserved_host_cpus
        host.reserved_memory_mb = spec.reserved_host_memory_mb
        host.reserved_disk_gb = spec.reserved_host_disk_gb

    def flavor(self, name_or_id: str) -> Flavor:
        flavor = self.flavors.get(name_or_id) or self.flavors_by_name.get(name_or_id)
        if flavor is None:
            raise ApiError(404, f"Flavor {name_or_id} could not be found.")
        return flavor

    def host(self, name: str) -> Host:
        host = self.hosts.get(name)
        if host is None:
            raise ApiError(404, f"Compute host {name} could not be found.")
        return host

    def boot(
        self,
        host_name: str,
        name: str,
        flavor: Flavor,
        metadata: dict[str, str],
        project_id: str,
        server_id: str | None = None,
        now: float | None = None,
    ) -> Server:
        """Place a server on a host directly (a boot forced to that host)."""
        host = self.host(host_name)
        if not host.fits(flavor):
            raise ApiError(409, f"Host {host_name} has no room for flavor {flavor.name}.")
        server_id = server_id or self.new_uuid()
        if server_id in self.servers:
            raise ApiError(409, f"Server {server_id} already exists.")
        now = self.clock() if now is None else now
        server = Server(
            server_id, name, project_id, flavor, metadata, host_name, "active", POWER_RUNNING,
            now, now,
        )  # fmt: skip
        host.claim(flavor)
        host.servers[server_id] = server
        self.servers[server_id] = server
        self._newest_first = None
        return server

    def newest_first(self) -> list[Server]:
        """Every server in Nova's default order, newest first; sorted again only after a
        server came or went. Sorted for each page, a listing of 50,000 servers (50 pages)
        kept the simulator busy for seconds, where Nova pages from an index."""
        if self._newest_first is None:
            self._newest_first = sorted(
                self.servers.values(), key=lambda s: (s.created, s.id), reverse=True
            )
        return self._newest_first

    # --- services --------------------------------------------------------------------------

    def service_state(self, host: Host, now: float | None = None) -> str:
        if host.forced_down:
            return "down"
        if host.alive:
            return "up"
        now = self.clock() if now is None else now
        return "up" if now - host.last_report <= self.timing.service_down_time else "down"

    def service_updated_at(self, host: Host, now: float) -> float:
        if host.alive:
            return now - (now % self.timing.report_interval)
        return host.last_report

    def update_service(self, service_id: str, body: dict[str, object]) -> Host:
        """PUT /os-services/{id} with 2.53 semantics."""
        host = self.hosts_by_service_id.get(service_id)
        if host is None:
            raise ApiError(404, f"Service {service_id} not found.")
        allowed = {"status", "disabled_reason", "forced_down"}
        if not body or set(body) - allowed:
            raise ApiError(400, "Invalid input for field/attribute service.")
        status = body.get("status")
        if status not in (None, "enabled", "disabled"):
            raise ApiError(400, f"Invalid input: status {status!r}.")
        if "disabled_reason" in body and status != "disabled":
            raise ApiError(400, "Specifying 'disabled_reason' with status 'enabled' is invalid.")
        forced = body.get("forced_down")
        if forced is not None and not isinstance(forced, bool):
            raise ApiError(400, "Invalid input for field/attribute forced_down.")
        if forced is False and host.forced_down:
            # Nova refuses to un-force a host while evacuations from it are not cleaned up by
            # its restarted nova-compute (lab finding F7).
            pending = [
                m
                for m in self._migrations_from(host.name)
                if m.status in ("accepted", "pre-migrating", "done")
            ]
            if pending:
                raise ApiError(
                    400,
                    f"Unable to un-force down service {service_id}: it has "
                    f"{len(pending)} in-progress evacuation migrations.",
                )
        if status == "disabled":
            host.status = "disabled"
            host.disabled_reason = body.get("disabled_reason")  # type: ignore[assignment]
        elif status == "enabled":
            host.status, host.disabled_reason = "enabled", None
        if forced is not None:
            host.forced_down = forced
        return host

    def kill_host(self, name: str) -> None:
        host = self.host(name)
        if host.alive:
            host.alive = False
            host.last_report = self.clock()

    def revive_host(self, name: str) -> None:
        """nova-compute starts again: it reports, and cleans up the evacuations from it."""
        host = self.host(name)
        host.alive = True
        now = self.clock()
        for migration in self._migrations_from(name):
            if migration.status == "done":
                migration.status, migration.updated = "completed", now

    def _migrations_from(self, host_name: str) -> list[Migration]:
        return [m for m in self.migrations if m.source_compute == host_name]

    # --- servers ---------------------------------------------------------------------------

    def server(self, server_id: str, ctx: Context) -> Server:
        server = self.servers.get(server_id)
        if server is None or (not ctx.is_admin and server.project_id != ctx.project_id):
            raise ApiError(404, f"Instance {server_id} could not be found.")
        return server

    def delete_server(self, server_id: str, ctx: Context) -> None:
        server = self.server(server_id, ctx)
        self._check_lock(server, ctx)
        self.hosts[server.host].claim(server.flavor, -1)
        del self.hosts[server.host].servers[server_id]
        del self.servers[server_id]
        self._newest_first = None
        for group in self.server_groups.values():
            if server_id in group.members:
                group.members.remove(server_id)

    @staticmethod
    def _check_lock(server: Server, ctx: Context) -> None:
        if server.locked and not ctx.is_admin:
            raise ApiError(409, f"Instance {server.id} is locked")

    @staticmethod
    def check_state(server: Server, action: str, vm_states: frozenset[str]) -> None:
        if server.vm_state not in vm_states or server.task_state is not None:
            attribute, state = (
                ("task_state", server.task_state)
                if server.task_state is not None
                else ("vm_state", server.vm_state)
            )
            raise ApiError(
                409,
                f"Cannot '{action}' instance {server.id} while it is in {attribute} {state}",
            )

    def _start_task(
        self, server: Server, task_state: str, seconds: float, done: Callable[[Server], None]
    ) -> None:
        server.task_state = task_state
        server.task_seq += 1
        server.updated = self.clock()
        seq = server.task_seq

        def finish() -> None:
            current = self.servers.get(server.id)
            if current is server and server.task_seq == seq:
                server.task_state = None
                server.updated = self.clock()
                done(server)

        self.later(seconds, finish)

    def stop(self, server_id: str, ctx: Context) -> None:
        server = self.server(server_id, ctx)
        self._check_lock(server, ctx)
        self.check_state(server, "stop", STOPPABLE_VM_STATES)

        def stopped(s: Server) -> None:
            s.vm_state, s.power_state = "stopped", POWER_SHUTDOWN

        self._start_task(server, "powering-off", self.timing.power_seconds, stopped)

    def start(self, server_id: str, ctx: Context) -> None:
        server = self.server(server_id, ctx)
        self._check_lock(server, ctx)
        self.check_state(server, "start", frozenset({"stopped"}))

        def started(s: Server) -> None:
            s.vm_state, s.power_state = "active", POWER_RUNNING

        self._start_task(server, "powering-on", self.timing.power_seconds, started)

    def lock(self, server_id: str, ctx: Context, reason: str | None) -> None:
        server = self.server(server_id, ctx)
        server.locked, server.locked_reason = True, reason

    def unlock(self, server_id: str, ctx: Context) -> None:
        server = self.server(server_id, ctx)
        server.locked, server.locked_reason = False, None

    def reset_state(self, server_id: str, ctx: Context, state: str) -> None:
        if not ctx.is_admin:
            raise ApiError(403, "Policy doesn't allow os_compute_api:os-admin-actions:reset_state")
        if state not in ("active", "error"):
            raise ApiError(400, f"Invalid input for field/attribute state. Value: {state}.")
        server = self.server(server_id, ctx)
        server.vm_state, server.task_state = state, None
        server.task_seq += 1
        if state == "active":
            server.fault = None
        server.updated = self.clock()

    # --- evacuation ------------------------------------------------------------------------

    def evacuate(self, server_id: str, ctx: Context, target: str | None, force: bool) -> None:
        """POST /servers/{id}/action {"evacuate": ...}, in the order Nova checks things."""
        if not ctx.is_admin:
            raise ApiError(403, "Policy doesn't allow os_compute_api:os-evacuate to be performed.")
        if target is not None:
            self.host(target)
        server = self.server(server_id, ctx)
        if target == server.host:
            raise ApiError(400, "The target host can't be the same one.")
        self.check_state(server, "evacuate", EVACUABLE_VM_STATES)
        source = self.hosts[server.host]
        if self.service_state(source) == "up":
            raise ApiError(400, f"Compute service of {source.name} is still in use.")
        now = self.clock()
        migration = self.open_migration(server, source.name, "accepted", "evacuation", now)
        server.evacuations += 1
        if source.alive:
            server.unfenced_evacuations += 1
        original_vm_state = server.vm_state
        server.task_state = "rebuilding"
        server.task_seq += 1
        server.updated = now
        dest = self.select_destination(server, source, target, force)
        if dest is None:
            # The conductor's NoValidHost: the migration fails, the server goes to ERROR on its
            # source host (nova/conductor/manager.py rebuild_instance).
            migration.status, migration.updated = "error", now
            server.vm_state, server.task_state = "error", None
            server.fault = "No valid host was found. There are not enough hosts available."
            return
        migration.dest_compute = dest.name
        migration.status = "pre-migrating"
        self._move(server, source, dest)
        lands_stopped = ctx.microversion >= (2, 95)
        fails = server.id in self.failing_evacuations
        if server.id in self.stalled_evacuations:
            # A rebuild the destination's nova-compute never finishes (a hung libvirt, a
            # stuck volume attachment): REBUILD for ever, its migration never ending.
            self.stalled_evacuations.discard(server.id)
            return

        def rebuilt(s: Server) -> None:
            migration.updated = self.clock()
            if fails:
                self.failing_evacuations.discard(s.id)
                migration.status = "failed"
                s.vm_state = "error"
                s.fault = "Evacuation failed on the destination (injected by the simulator)."
                return
            migration.status = "done"
            # Nova's rebuild powers the server on, then stops it again if it was stopped: an
            # evacuated server in ERROR comes back ACTIVE (nova/compute/manager.py).
            if lands_stopped or original_vm_state == "stopped":
                s.vm_state, s.power_state = "stopped", POWER_SHUTDOWN
            else:
                s.vm_state, s.power_state, s.fault = "active", POWER_RUNNING, None

        self._start_task(server, "rebuilding", self.timing.evacuation_seconds, rebuilt)

    def _move(self, server: Server, source: Host, dest: Host) -> None:
        source.claim(server.flavor, -1)
        del source.servers[server.id]
        dest.claim(server.flavor)
        dest.servers[server.id] = server
        server.host = dest.name

    def schedulable(self, host: Host, flavor: Flavor, now: float) -> bool:
        return (
            host.status == "enabled" and self.service_state(host, now) == "up" and host.fits(flavor)
        )

    def select_destination(
        self, server: Server, source: Host, target: str | None, force: bool
    ) -> Host | None:
        now = self.clock()
        if target is not None:
            host = self.hosts[target]
            if force:
                return host if host.fits(server.flavor) else None
            if self.holds_anti_affine(server, host):
                return None
            return host if self.schedulable(host, server.flavor, now) else None
        best: list[Host] = []
        best_free = -1
        for host in self.hosts.values():
            if host is source or not self.schedulable(host, server.flavor, now):
                continue
            if self.holds_anti_affine(server, host):
                continue
            # Nova's default weigher spreads by free RAM; ties are broken at random (seeded).
            free = host.memory_mb - host.memory_mb_used
            if free > best_free:
                best, best_free = [host], free
            elif free == best_free:
                best.append(host)
        return self.rng.choice(best) if best else None

    # --- live migration --------------------------------------------------------------------

    def live_migrate(self, server_id: str, ctx: Context, target: str | None) -> None:
        """POST /servers/{id}/action {"os-migrateLive": ...} at 2.30 or later (never forced).

        As Nova 34: the API refuses what it checks itself (policy, state, an unknown or
        unusable named target, a source service that is not up); what the conductor finds
        later (no host for the scheduler to pick, the target being the source) ends the
        migration record in "error" and leaves the server active where it was. While it runs
        the server is `migrating` and its destination holds the resources of both copies, as
        Nova's claim does.
        """
        if not ctx.is_admin:
            raise ApiError(
                403, "Policy doesn't allow os_compute_api:os-migrate-server:migrate_live."
            )
        if target is not None and target not in self.hosts:
            raise ApiError(400, f"Compute host {target} could not be found.")
        server = self.server(server_id, ctx)
        named = self.hosts.get(target) if target is not None else None
        if named is not None and not self.schedulable(named, server.flavor, self.clock()):
            # Nova 34 checks a named destination before it answers (found on the lab).
            raise ApiError(400, "No valid host was found.")
        self.check_state(server, "os-migrateLive", frozenset({"active", "paused"}))
        source = self.hosts[server.host]
        if self.service_state(source) != "up":
            raise ApiError(400, f"Compute service of {source.name} is unavailable at this time.")
        now = self.clock()
        migration = self.open_migration(server, source.name, "queued", "live-migration", now)
        dest = (
            None
            if target == source.name
            else self.select_destination(server, source, target, False)
        )
        if dest is None:
            migration.status = "error"
            return
        migration.dest_compute, migration.status = dest.name, "running"
        dest.claim(server.flavor)
        server.task_state = "migrating"
        server.task_seq += 1
        server.updated = now
        seq = server.task_seq
        remaining = self.failing_live_migrations.get(server.id, 0)
        if remaining > 0:
            self.failing_live_migrations[server.id] = remaining - 1
        fails = remaining != 0

        def finish() -> None:
            if self.servers.get(server.id) is not server or server.task_seq != seq:
                dest.claim(server.flavor, -1)  # overtaken (reset, deleted): never landed
                return
            if not source.alive:
                # nova-compute of the source died with the migration: nothing ends it, the
                # record stays "running" and the server "migrating" until someone resets it.
                return
            migration.updated = server.updated = self.clock()
            server.task_state = None
            if fails:  # Nova's rollback of a live migration leaves the record in "error"
                migration.status = "error"
                dest.claim(server.flavor, -1)
                return
            source.claim(server.flavor, -1)
            del source.servers[server.id]
            dest.servers[server.id] = server
            server.host = dest.name
            server.live_migrations += 1
            migration.status = "completed"

        self.later(self.timing.live_migration_seconds, finish)

    # --- server groups ---------------------------------------------------------------------

    def create_server_group(self, name: str, policy: str, project_id: str) -> ServerGroup:
        if policy not in ("anti-affinity", "affinity", "soft-anti-affinity", "soft-affinity"):
            raise ApiError(400, f"Invalid input for field/attribute policy. Value: {policy}.")
        group = ServerGroup(self.new_uuid(), name, policy, project_id)
        self.server_groups[group.id] = group
        return group

    def server_group(self, group_id: str, ctx: Context) -> ServerGroup:
        group = self.server_groups.get(group_id)
        if group is None or (not ctx.is_admin and group.project_id != ctx.project_id):
            raise ApiError(404, f"Instance group {group_id} could not be found.")
        return group

    def holds_anti_affine(self, server: Server, host: Host) -> bool:
        """Nova's ServerGroupAntiAffinityFilter: another member of one of the server's
        anti-affinity groups is on the host."""
        return any(
            group.policy == "anti-affinity"
            and server.id in group.members
            and any(m != server.id and m in host.servers for m in group.members)
            for group in self.server_groups.values()
        )

    # --- aggregates ------------------------------------------------------------------------

    def create_aggregate(self, name: str, zone: str | None) -> Aggregate:
        if any(a.name == name for a in self.aggregates.values()):
            raise ApiError(409, f"Aggregate {name} already exists.")
        next_id = max(self.aggregates, default=0) + 1
        aggregate = Aggregate(next_id, self.new_uuid(), name, zone, [], {}, self.clock())
        if zone:
            aggregate.metadata["availability_zone"] = zone
        self.aggregates[next_id] = aggregate
        return aggregate

    def aggregate(self, aggregate_id: str | int) -> Aggregate:
        try:
            aggregate = self.aggregates.get(int(aggregate_id))
        except ValueError:
            aggregate = None
        if aggregate is None:
            raise ApiError(404, f"Aggregate {aggregate_id} could not be found.")
        return aggregate

    def delete_aggregate(self, aggregate_id: str) -> None:
        aggregate = self.aggregate(aggregate_id)
        if aggregate.hosts:
            raise ApiError(400, f"Cannot delete aggregate {aggregate_id}: it still has hosts.")
        del self.aggregates[aggregate.id]

    def add_host_to_aggregate(self, aggregate_id: str | int, host_name: str) -> Aggregate:
        aggregate = self.aggregate(aggregate_id)
        self.host(host_name)
        if host_name in aggregate.hosts:
            raise ApiError(409, f"Aggregate {aggregate.id} already has host {host_name}.")
        aggregate.hosts.append(host_name)
        return aggregate

    def remove_host_from_aggregate(self, aggregate_id: str, host_name: str) -> Aggregate:
        aggregate = self.aggregate(aggregate_id)
        if host_name not in aggregate.hosts:
            raise ApiError(404, f"Host {host_name} is not in aggregate {aggregate_id}.")
        aggregate.hosts.remove(host_name)
        return aggregate

"""An in-memory Nova for the recovery domain's unit tests (the real driver is tested against
the simulator and real Nova in tests/contract)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Collection
from datetime import UTC, datetime

from controller.recovery.nova import (
    DISK_GB,
    MEMORY_MB,
    VCPU,
    Aggregate,
    ComputeService,
    Conflict,
    Flavor,
    HostCapacity,
    HostResources,
    Image,
    Inventory,
    Migration,
    NotFound,
    NoValidHost,
    Server,
    ServerGroup,
    Unavailable,
)

SMALL = Flavor("small", vcpus=1, ram_mb=512, disk_gb=1)


class Crash(Exception):
    """Raised by the fake where a test kills the operator."""


class FakeNova:
    def __init__(self, hosts: list[str], vcpus: int = 16) -> None:
        self.services = {
            h: ComputeService(
                id=f"svc-{h}", host=h, state="up", status="enabled", forced_down=False
            )
            for h in hosts
        }
        self.vcpus = dict.fromkeys(hosts, vcpus)
        self.servers: dict[str, Server] = {}
        self.migrations_: list[Migration] = []
        self.aggregates_: dict[str, Aggregate] = {}
        self.server_groups_: list[ServerGroup] = []
        self.evacuations: Counter[str] = Counter()
        self.calls: list[tuple[str, ...]] = []
        self.failing_evacuations: set[str] = set()
        self.crash_on: tuple[str, int] | None = None  # (call name, nth call) raises Crash
        self.landing_reads = 0  # server() reads an evacuation stays in flight for
        self._landing: dict[str, tuple[str, int]] = {}  # server id -> (target, reads left)
        self.live_moves: Counter[str] = Counter()  # live migrations that moved a server
        # server id -> (when, status): how Nova ends an open live migration, seen by the next
        # read of the server from then on; `clock` is the cloud's.
        self.live_endings: dict[str, tuple[datetime, str]] = {}
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self._counts: Counter[str] = Counter()
        self.images: dict[str, Image] = {}  # Glance's; an id not here is NotFound
        self.failing_images: set[str] = set()  # image ids whose reads fail (Glance down)

    # -- test set-up ---------------------------------------------------------------------

    def add_server(
        self,
        name: str,
        host: str,
        *,
        vm_state: str = "active",
        metadata: dict[str, str] | None = None,
        locked: bool = False,
    ) -> Server:
        server = Server(
            id=f"uuid-{name}",
            name=name,
            status={"active": "ACTIVE", "stopped": "SHUTOFF", "error": "ERROR"}.get(
                vm_state, "ACTIVE"
            ),
            vm_state=vm_state,
            task_state=None,
            power_state=1,
            host=host,
            locked=locked,
            flavor=SMALL,
            metadata=metadata or {},
        )
        self.servers[server.id] = server
        return server

    def live_migration(
        self,
        server_id: str,
        dest: str,
        status: str = "running",
        created_at: datetime | None = None,
    ) -> None:
        """A drain's live migration of the server off its host, as the host failed under it:
        an open one leaves the server `migrating`; a completed one moved it to `dest`."""
        server = self._drain_record(server_id, dest, status, "live-migration", created_at)
        if status == "completed":
            self.live_moves[server_id] += 1
            self.servers[server_id] = dataclasses.replace(server, host=dest)
        elif status not in ("error", "failed", "cancelled"):
            self.servers[server_id] = dataclasses.replace(server, task_state="migrating")

    def _drain_record(
        self, server_id: str, dest: str, status: str, kind: str, created_at: datetime | None
    ) -> Server:
        server = self.servers[server_id]
        self.migrations_.append(
            Migration(
                id=f"mig-{len(self.migrations_)}",
                server_id=server_id,
                source_host=server.host,
                dest_host=dest,
                status=status,
                migration_type=kind,
                created_at=created_at or self.clock(),
            )
        )
        return server

    def cold_migration(self, server_id: str, dest: str, status: str = "migrating") -> None:
        """A drain's cold migration of the (stopped) server off its host, as the host failed
        under it: before its hand-over the server stays on the host, resizing; from
        "finished" on it is the destination's, VERIFY_RESIZE."""
        server = self._drain_record(server_id, dest, status, "migration", None)
        if status in ("finished", "confirming"):
            self.servers[server_id] = dataclasses.replace(
                server, host=dest, vm_state="resized", status="VERIFY_RESIZE"
            )
        elif status not in ("error", "failed", "reverted"):
            self.servers[server_id] = dataclasses.replace(server, task_state="resize_migrating")

    def _end_live_migration(self, server_id: str, status: str) -> None:
        record = next(
            m
            for m in reversed(self.migrations_)
            if m.server_id == server_id and m.migration_type == "live-migration"
        )
        source = self.services[record.source_host or ""]
        if status != "completed" or source.state == "up":
            # A dead source never marks it completed: the destination has taken the
            # instance (post_live_migration_at_destination), the record stays open.
            self.migrations_[self.migrations_.index(record)] = dataclasses.replace(
                record, status=status
            )
        server = dataclasses.replace(self.servers[server_id], task_state=None)
        if status == "completed":
            self.live_moves[server_id] += 1
            server = dataclasses.replace(server, host=record.dest_host)
        self.servers[server_id] = server

    def kill(self, host: str) -> None:
        self._set_service(host, state="down")

    def _set_service(self, host: str, **changes: object) -> ComputeService:
        self.services[host] = dataclasses.replace(self.services[host], **changes)  # type: ignore[arg-type]
        return self.services[host]

    def _call(self, *call: str) -> None:
        self.calls.append(call)
        self._counts[call[0]] += 1
        if self.crash_on and self.crash_on == (call[0], self._counts[call[0]]):
            raise Crash(f"operator killed at {call}")

    # -- the Nova protocol ---------------------------------------------------------------

    async def compute_services(self, host: str | None = None) -> list[ComputeService]:
        return [s for h, s in self.services.items() if host in (None, h)]

    async def compute_service(self, host: str) -> ComputeService:
        if host not in self.services:
            raise NotFound(f"no compute service on {host}")
        return self.services[host]

    async def disable_service(self, host: str, reason: str) -> ComputeService:
        self._call("disable_service", host)
        return self._set_service(host, status="disabled", disabled_reason=reason)

    async def enable_service(self, host: str) -> ComputeService:
        self._call("enable_service", host)
        return self._set_service(host, status="enabled", disabled_reason=None)

    async def force_down(self, host: str, forced: bool) -> ComputeService:
        self._call("force_down", host)
        return self._set_service(host, forced_down=forced)

    async def take_out(self, host: str, reason: str) -> ComputeService:
        self._call("take_out", host)
        return self._set_service(host, forced_down=True, status="disabled", disabled_reason=reason)

    async def servers_on_host(self, host: str) -> list[Server]:
        """Each read as `server` reads it, as Nova's listing is as fresh as its GET."""
        self._call("servers_on_host", host)
        on_host = [sid for sid, s in self.servers.items() if s.host == host]
        return [s for s in map(self._read, on_host) if s.host == host]

    async def all_servers(self) -> list[Server]:
        return list(self.servers.values())

    async def servers_changed_since(self, since: datetime) -> list[Server]:
        """Every server, each read as `server` reads it (more than Nova's changes, which the
        caller must bear: it asks after a few and may be shown others)."""
        self._call("servers_changed_since")
        return [self._read(server_id) for server_id in list(self.servers)]

    async def server(self, server_id: str) -> Server:
        self._call("server", server_id)
        if server_id not in self.servers:
            raise NotFound(server_id)
        return self._read(server_id)

    def _read(self, server_id: str) -> Server:
        if server_id in self.live_endings:
            when, status = self.live_endings[server_id]
            if self.clock() >= when:
                del self.live_endings[server_id]
                self._end_live_migration(server_id, status)
        if server_id in self._landing:
            target, left = self._landing[server_id]
            if left <= 0:
                del self._landing[server_id]
                self.servers[server_id] = dataclasses.replace(
                    self.servers[server_id], host=target, task_state=None
                )
            else:
                self._landing[server_id] = (target, left - 1)
        return self.servers[server_id]

    def _usage(self, host: str) -> int:
        return sum(s.flavor.vcpus for s in self.servers.values() if s.host == host)

    async def evacuate(self, server_id: str, target_host: str | None = None) -> None:
        self._call("evacuate", server_id, target_host or "")
        server = await self.server(server_id)
        source = self.services[server.host or ""]
        if source.state == "up" and not source.forced_down:
            raise Conflict(f"compute service of {server.host} is still in use")
        candidates = [
            h
            for h, s in self.services.items()
            if h != server.host
            and s.status == "enabled"
            and s.state == "up"
            and not s.forced_down
            and self._usage(h) + server.flavor.vcpus <= self.vcpus[h]
            and (target_host is None or h == target_host)
        ]
        self.evacuations[server_id] += 1
        ok = bool(candidates) and server_id not in self.failing_evacuations
        self.migrations_.append(
            Migration(
                id=f"mig-{len(self.migrations_)}",
                server_id=server_id,
                source_host=server.host,
                dest_host=candidates[0] if candidates else None,
                status="done" if ok else "failed",
                migration_type="evacuation",
                created_at=datetime.now(UTC),
            )
        )
        if not candidates:
            raise NoValidHost(f"no valid host for {server_id}")
        if server_id in self.failing_evacuations:
            self.servers[server_id] = dataclasses.replace(server, vm_state="error", status="ERROR")
            return
        if self.landing_reads:
            self._landing[server_id] = (candidates[0], self.landing_reads)
            self.servers[server_id] = dataclasses.replace(server, task_state="rebuilding")
            return
        # Nova's rebuild powers the instance on: one reset to error comes back active.
        if server.vm_state == "error":
            server = dataclasses.replace(server, vm_state="active", status="ACTIVE")
        self.servers[server_id] = dataclasses.replace(server, host=candidates[0])

    async def stop_server(self, server_id: str) -> None:
        self._call("stop_server", server_id)
        server = await self.server(server_id)
        self.servers[server_id] = dataclasses.replace(server, vm_state="stopped", status="SHUTOFF")

    async def start_server(self, server_id: str) -> None:
        self._call("start_server", server_id)
        server = await self.server(server_id)
        self.servers[server_id] = dataclasses.replace(server, vm_state="active", status="ACTIVE")

    async def lock_server(self, server_id: str, reason: str) -> None:
        self._call("lock_server", server_id)
        self.servers[server_id] = dataclasses.replace(await self.server(server_id), locked=True)

    async def reset_and_evacuate(
        self, server_id: str, target_host: str | None, *, reset: bool
    ) -> None:
        # Each call recorded (and a crash point) as its own, in the driver's order; a failed
        # reset stops the evacuate.
        if reset:
            await self.reset_state(server_id, "error")
        await self.evacuate(server_id, target_host)

    async def unlock_server(self, server_id: str) -> None:
        self._call("unlock_server", server_id)
        self.servers[server_id] = dataclasses.replace(await self.server(server_id), locked=False)

    async def reset_state(self, server_id: str, state: str) -> None:
        self._call("reset_state", server_id, state)
        # Reset under a live migration, the instance is no longer Nova's to end it: as the
        # simulator, a migration overtaken by a reset never lands.
        self.live_endings.pop(server_id, None)
        self.servers[server_id] = dataclasses.replace(
            await self.server(server_id), vm_state=state, task_state=None
        )

    async def aggregates(self) -> list[Aggregate]:
        return list(self.aggregates_.values())

    async def add_host_to_aggregate(self, aggregate_id: str, host: str) -> None:
        self._call("add_host_to_aggregate", aggregate_id, host)
        aggregate = self.aggregates_[aggregate_id]
        if host not in aggregate.hosts:
            self.aggregates_[aggregate_id] = dataclasses.replace(
                aggregate, hosts=(*aggregate.hosts, host)
            )

    async def migrations(self, server_id: str) -> list[Migration]:
        return [m for m in self.migrations_ if m.server_id == server_id]

    async def host_capacity(self, host: str) -> HostCapacity:
        return HostCapacity(host, self.vcpus[host], self._usage(host), 65536, 0)

    async def host_resources(self, hosts: Collection[str]) -> list[HostResources]:
        """Placement as the fake's scheduler counts: vcpus per host; memory and disk ample."""
        found = []
        for host in hosts:
            if host not in self.vcpus:
                continue
            on_host = [s for s in self.servers.values() if s.host == host]
            found.append(
                HostResources(
                    host=host,
                    provider=f"rp-{host}",
                    inventories={
                        VCPU: Inventory(self.vcpus[host], max_unit=self.vcpus[host]),
                        MEMORY_MB: Inventory(65536),
                        DISK_GB: Inventory(10000),
                    },
                    usages={
                        VCPU: self._usage(host),
                        MEMORY_MB: sum(s.flavor.ram_mb for s in on_host),
                        DISK_GB: sum(s.flavor.disk_gb for s in on_host),
                    },
                )
            )
        return found

    async def server_groups(self) -> list[ServerGroup]:
        return list(self.server_groups_)

    async def image(self, image_id: str) -> Image:
        self._call("image", image_id)
        if image_id in self.failing_images:
            raise Unavailable(f"get image {image_id}: HTTP 503 (gave up after 5 attempts)")
        if image_id not in self.images:
            raise NotFound(f"get image {image_id}: HTTP 404")
        return self.images[image_id]

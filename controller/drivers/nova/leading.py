"""`Nova` for a replica that leads on a Lease: every call that changes Nova is refused with
NotLeading once the replica cannot be sure it still leads; reads go on.

A leader frozen past its Lease (SIGSTOP, a paused VM) wakes up with recovery steps due at once;
this is what keeps them from evacuating a server the new leader is already moving.
"""

from __future__ import annotations

from collections.abc import Callable

from controller.drivers.lease import NotLeading
from controller.drivers.nova.model import (
    Aggregate,
    ComputeService,
    HostCapacity,
    Migration,
    Nova,
    Server,
)


class LeaderOnlyNova:
    def __init__(self, nova: Nova, leading: Callable[[], bool]) -> None:
        self._nova = nova
        self._leading = leading

    def _ensure_leading(self, action: str) -> None:
        if not self._leading():
            raise NotLeading(f"not the leader: {action} refused")

    # --- reads -------------------------------------------------------------------------------

    async def compute_services(self, host: str | None = None) -> list[ComputeService]:
        return await self._nova.compute_services(host)

    async def compute_service(self, host: str) -> ComputeService:
        return await self._nova.compute_service(host)

    async def servers_on_host(self, host: str) -> list[Server]:
        return await self._nova.servers_on_host(host)

    async def server(self, server_id: str) -> Server:
        return await self._nova.server(server_id)

    async def aggregates(self) -> list[Aggregate]:
        return await self._nova.aggregates()

    async def migrations(self, server_id: str) -> list[Migration]:
        return await self._nova.migrations(server_id)

    async def host_capacity(self, host: str) -> HostCapacity:
        return await self._nova.host_capacity(host)

    # --- changes -----------------------------------------------------------------------------

    async def disable_service(self, host: str, reason: str) -> ComputeService:
        self._ensure_leading("disabling a compute service")
        return await self._nova.disable_service(host, reason)

    async def enable_service(self, host: str) -> ComputeService:
        self._ensure_leading("enabling a compute service")
        return await self._nova.enable_service(host)

    async def force_down(self, host: str, forced: bool) -> ComputeService:
        self._ensure_leading("forcing a compute service down")
        return await self._nova.force_down(host, forced)

    async def evacuate(self, server_id: str, target_host: str | None = None) -> None:
        self._ensure_leading("evacuation")
        await self._nova.evacuate(server_id, target_host)

    async def stop_server(self, server_id: str) -> None:
        self._ensure_leading("stopping a server")
        await self._nova.stop_server(server_id)

    async def start_server(self, server_id: str) -> None:
        self._ensure_leading("starting a server")
        await self._nova.start_server(server_id)

    async def lock_server(self, server_id: str, reason: str | None = None) -> None:
        self._ensure_leading("locking a server")
        await self._nova.lock_server(server_id, reason)

    async def unlock_server(self, server_id: str) -> None:
        self._ensure_leading("unlocking a server")
        await self._nova.unlock_server(server_id)

    async def reset_state(self, server_id: str, state: str) -> None:
        self._ensure_leading("resetting a server's state")
        await self._nova.reset_state(server_id, state)

    async def add_host_to_aggregate(self, aggregate_id: str, host: str) -> None:
        self._ensure_leading("adding a host to an aggregate")
        await self._nova.add_host_to_aggregate(aggregate_id, host)

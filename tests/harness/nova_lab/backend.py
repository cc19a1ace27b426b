"""The contract suite's real-Nova backend: the lab's cloud, reached with openstacksdk like the
driver reaches it, plus what the API cannot do (kill and revive a host's nova-compute)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from openstack.exceptions import (
    BadRequestException,
    ConflictException,
    NotFoundException,
    raise_from_response,
)

from controller.drivers.nova.openstack import connect

from .lab import TOKEN, NovaLab, NovaLabError, install

CLOUD = "nova-lab"
_CONTRACT_IMAGE = "contract-"  # the names of images the contract tests create; reset() deletes
# Bounds on the harness's own waits; a clean cloud normally takes a few seconds.
BOOT_TIMEOUT = 120.0
REVIVE_TIMEOUT = 90.0
RESET_TIMEOUT = 180.0
POLL_INTERVAL = 0.5
DISABLED_TRAIT = "COMPUTE_STATUS_DISABLED"


@dataclass
class NovaLabBackend:
    lab: NovaLab
    clouds_yaml: Path
    name: str = "nova"
    cloud: str = CLOUD
    hosts: list[str] = field(default_factory=list)
    boot_image: str = ""
    _connection: Any = None
    compute: Any = None

    def __post_init__(self) -> None:
        self.hosts = list(self.lab.hosts)
        self.boot_image = self.lab.image_id
        # The driver's own connection (clouds.yaml only, compute microversion pinned like it).
        self._connection, _secrets = connect(self.clouds_yaml, self.cloud)
        self.compute = self._connection.compute

    def close(self) -> None:
        self._connection.close()

    # -- the NovaBackend protocol ------------------------------------------------------------

    def boot_servers(
        self,
        host: str,
        count: int,
        *,
        metadata: dict[str, str] | None = None,
        stopped: bool = False,
        image: str | None = None,
    ) -> list[str]:
        created = [
            self.compute.create_server(
                name=f"{host}-{index}",
                image_id=image or self.lab.image_id,
                flavor_id=self.lab.flavor_id,
                networks="none",
                # An admin's "zone:host" places the server on that host, whatever the filters say.
                availability_zone=f"nova:{host}",
                metadata=metadata or {},
            )
            for index in range(count)
        ]
        ids = [server.id for server in created]
        self._wait_for_status(host, ids, "ACTIVE")
        if stopped:
            for server_id in ids:
                self.compute.stop_server(server_id)
            self._wait_for_status(host, ids, "SHUTOFF")
        return ids

    def create_image(self, properties: dict[str, str], tags: list[str]) -> str:
        # Glance's own create: an image's properties sit beside its base attributes.
        body = {
            "name": f"{_CONTRACT_IMAGE}{len(properties)}",
            "disk_format": "raw",
            "container_format": "bare",
            "tags": tags,
            **properties,
        }
        response = self._connection.image.post("/images", json=body)
        raise_from_response(response)
        image_id = str(response.json()["id"])
        # 1 MiB of zeros, as the lab's own image: enough for the fake driver to boot from it.
        upload = self._connection.image.put(
            f"/images/{image_id}/file",
            data=b"\0" * 2**20,
            headers={"Content-Type": "application/octet-stream"},
        )
        raise_from_response(upload)
        return image_id

    def kill_host(self, host: str) -> None:
        self.lab.kill_compute(host)

    def revive_host(self, host: str) -> None:
        """Restart the host's nova-compute and wait until it has started. A forced-down service
        stays forced down (un-forcing is the caller's move) but reports again."""
        self._revive([host], time.monotonic() + REVIVE_TIMEOUT)

    def evacuation_count(self, server_id: str) -> int:
        migrations = self.compute.migrations(server_id=server_id, migration_type="evacuation")
        return sum(1 for _ in migrations)

    def reset(self) -> None:
        deadline = time.monotonic() + RESET_TIMEOUT
        self._delete_all_servers(deadline)
        for image in self._connection.image.images():
            if (image.name or "").startswith(_CONTRACT_IMAGE):
                self._connection.image.delete_image(image)
        self._delete_aggregates()
        self._revive([h for h in self.hosts if not self.lab.compute_running(h)], deadline)
        for host in self.hosts:
            self._force_up(host, deadline)
        # Enable only once up: enabling a service Nova counts as down leaves the
        # COMPUTE_STATUS_DISABLED trait in Placement until the next periodic sync (F8).
        _wait("every nova-compute up", deadline - time.monotonic(), self._all_up, "")
        for service in self._compute_services():
            if service.status != "enabled":
                self.compute.enable_service(service)
        # Enabled is not yet schedulable: Nova takes COMPUTE_STATUS_DISABLED off the host's
        # resource provider through that compute, and a boot onto it meanwhile gets NoValidHost
        # (the bench's N=30 run after a recovery, 2026-12-05; F8).
        _wait("every compute schedulable in Placement", deadline - time.monotonic(),
              self._schedulable, "")  # fmt: skip

    # -- helpers -----------------------------------------------------------------------------

    def _compute_services(self) -> list[Any]:
        return [s for s in self.compute.services(binary="nova-compute") if s.host in self.hosts]

    def _service(self, host: str) -> Any:
        return next(s for s in self._compute_services() if s.host == host)

    def _schedulable(self) -> bool:
        listed = self.compute.get("/os-hypervisors/detail", microversion="2.53")
        raise_from_response(listed)
        providers = {
            (h.get("service") or {}).get("host"): h["id"]
            for h in listed.json().get("hypervisors") or []
        }
        for host in self.hosts:
            if host not in providers:
                return False
            traits = self._connection.placement.get(
                f"/resource_providers/{providers[host]}/traits", microversion="1.6"
            )
            raise_from_response(traits)
            if DISABLED_TRAIT in traits.json().get("traits", []):
                return False
        return True

    def _all_up(self) -> bool:
        return all(service.state == "up" for service in self._compute_services())

    def _revive(self, hosts: list[str], deadline: float) -> None:
        """Start the hosts' nova-compute and wait for a heartbeat written after the start.

        "up" alone is not enough: a host killed less than service_down_time ago still counts
        as up on its old heartbeat, and a server booted onto it before the restarted compute
        has finished init_host is put into ERROR ("build was interrupted"). The first
        heartbeat comes after init_host.
        """
        started = datetime.now(UTC).replace(tzinfo=None)
        for host in hosts:
            if not self.lab.compute_running(host):
                self.lab.start_compute(host)

        def reported() -> bool:
            beats = {s.host: s.updated_at for s in self._compute_services()}
            return all(beats[h] is not None and _parse(beats[h]) > started for h in hosts)

        logs = "\n".join(self._compute_log(host) for host in hosts)
        _wait(f"{', '.join(hosts)} to report", deadline - time.monotonic(), reported, logs)

    def _force_up(self, host: str, deadline: float) -> None:
        # Nova refuses to un-force (400) until the restarted compute has cleaned up after the
        # evacuations away from it and marked their migrations completed (F7).
        def unforced() -> bool:
            service = self._service(host)
            if not service.is_forced_down:
                return True
            with contextlib.suppress(BadRequestException):
                self.compute.update_service_forced_down(service, forced=False)
                return True
            return False

        _wait(f"Nova to un-force {host}", deadline - time.monotonic(), unforced, "")

    def _delete_all_servers(self, deadline: float) -> None:
        for server in self.compute.servers(all_projects=True):
            # A server caught mid-task (evacuating, rebuilding) is put back into a plain
            # state first, or Nova may refuse to delete it.
            if server.task_state:
                with contextlib.suppress(NotFoundException, ConflictException):
                    self.compute.reset_server_state(server, "error")
            with contextlib.suppress(NotFoundException):
                self.compute.delete_server(server)

        def gone() -> bool:
            return not list(self.compute.servers(all_projects=True))

        _wait("every server deleted", deadline - time.monotonic(), gone, "")

    def _delete_aggregates(self) -> None:
        for aggregate in self.compute.aggregates():
            for host in aggregate.hosts or []:
                self.compute.remove_host_from_aggregate(aggregate, host)
            self.compute.delete_aggregate(aggregate)

    def _wait_for_status(self, host: str, server_ids: list[str], status: str) -> None:
        def settled() -> bool:
            servers = [self.compute.get_server(server_id) for server_id in server_ids]
            failed = [s for s in servers if s.status == "ERROR"]
            if failed:
                raise NovaLabError(
                    f"server {failed[0].id} went to ERROR: {failed[0].fault}\n"
                    f"nova-conductor:\n{self.lab.log_tail('nova-conductor')}\n"
                    f"nova-compute on {host}:\n{self._compute_log(host)}"
                )
            return all(s.status == status and not s.task_state for s in servers)

        _wait(f"{len(server_ids)} servers {status}", BOOT_TIMEOUT, settled, "")

    def _compute_log(self, host: str) -> str:
        return self.lab.log_tail(f"nova-compute-{host}")


def clouds_yaml(lab: NovaLab) -> dict[str, Any]:
    """The clouds.yaml of the lab's cloud: no Keystone, a token Nova's paste filter accepts."""
    return {
        "clouds": {
            CLOUD: {
                "auth_type": "admin_token",
                "auth": {"endpoint": lab.nova_url, "token": TOKEN},
                "compute_endpoint_override": lab.nova_url,
                # No Keystone catalog: Placement is reached directly (the driver's placement reads).
                "placement_endpoint_override": f"http://127.0.0.1:{lab.ports.placement}",
                # And Glance (the driver's image reads).
                "image_endpoint_override": f"http://127.0.0.1:{lab.ports.glance}",
                "region_name": "RegionOne",
            }
        }
    }


def _parse(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.rstrip("Z")).replace(tzinfo=None)


def _wait(what: str, timeout: float, done: Callable[[], bool], log: str) -> None:
    deadline = time.monotonic() + max(timeout, 0.0)
    while True:
        if done():
            return
        if time.monotonic() > deadline:
            detail = f":\n{log}" if log else ""
            raise NovaLabError(f"timed out waiting for {what}{detail}")
        time.sleep(POLL_INTERVAL)


@contextlib.contextmanager
def running_nova_backend() -> Iterator[NovaLabBackend]:
    """Install (first use), start real Nova with three computes, and yield the backend."""
    lab = NovaLab.temporary(install())
    lab.start()
    try:
        path = lab.workdir / "clouds.yaml"
        path.write_text(yaml.safe_dump(clouds_yaml(lab)))
        path.chmod(0o600)
        print(
            f"\nreal Nova ready in {lab.ready_seconds:.1f}s at {lab.nova_url}, "
            f"{lab.rss_bytes() / 2**20:.0f} MiB resident"
        )
        backend = NovaLabBackend(lab, path)
        try:
            yield backend
        finally:
            backend.close()
    finally:
        lab.stop()

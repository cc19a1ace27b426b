"""The two Nova backends the driver's contract suite runs against: the simulator and real Nova.

Tests reach Nova only through the driver (openstacksdk over HTTP); a backend adds the things a
test needs that Nova's API cannot do, such as killing a compute host.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class NovaBackend(Protocol):
    name: str  # "sim" or "nova"
    clouds_yaml: Path  # a clouds.yaml that the driver loads
    cloud: str  # the cloud's name in it
    hosts: list[str]  # nova-compute hosts, at least three, all up and enabled after reset()
    boot_image: str  # the Glance image boot_servers boots from

    def boot_servers(
        self,
        host: str,
        count: int,
        *,
        metadata: dict[str, str] | None = None,
        stopped: bool = False,
        image: str | None = None,
    ) -> list[str]:
        """Create `count` servers on `host` (from `image`, else boot_image) and wait until they
        are ACTIVE (or SHUTOFF when stopped); returns their ids."""
        ...

    def create_image(self, properties: dict[str, str], tags: list[str]) -> str:
        """Register an image with these properties and tags in Glance, bootable; returns its
        id. reset() removes it."""
        ...

    def kill_host(self, host: str) -> None:
        """The host dies: its nova-compute stops reporting (real Nova: SIGKILL)."""
        ...

    def revive_host(self, host: str) -> None:
        """The host comes back and its nova-compute reports again; returns once Nova says up."""
        ...

    def evacuation_count(self, server_id: str) -> int:
        """How many evacuations of the server Nova has accepted."""
        ...

    def reset(self) -> None:
        """Back to a clean cloud: no servers, every host alive, services up, enabled, not forced
        down. Called before each test."""
        ...

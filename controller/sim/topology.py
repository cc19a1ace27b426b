"""The cloud a simulator starts with: hosts, flavors, aggregates, images, servers and Keystone
users.

A topology is a YAML document; `host_groups` generate many identical hosts (and their servers)
so a 5,000-host cloud fits in a few lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FlavorSpec(_Strict):
    id: str
    name: str
    vcpus: int = Field(ge=1)
    ram: int = Field(ge=1, description="MiB")
    disk: int = Field(default=1, ge=0, description="GiB")


class InventorySpec(_Strict):
    """How Placement counts a host: nova-compute's allocation ratio and reserved options. The
    simulator's ratios default to 1.0 (Nova's initial_cpu_allocation_ratio is 4.0) so a host's
    `vcpus` is what fits on it; its scheduler and its Placement agree either way."""

    cpu_allocation_ratio: float = Field(default=1.0, gt=0)
    ram_allocation_ratio: float = Field(default=1.0, gt=0)
    disk_allocation_ratio: float = Field(default=1.0, gt=0)
    reserved_host_cpus: int = Field(default=0, ge=0)
    reserved_host_memory_mb: int = Field(default=0, ge=0)
    reserved_host_disk_gb: int = Field(default=0, ge=0)


class HostSpec(InventorySpec):
    name: str
    vcpus: int = Field(default=16, ge=1)
    memory_mb: int = Field(default=32768, ge=1)
    disk_gb: int = Field(default=1000, ge=1)
    zone: str = "nova"
    status: Literal["enabled", "disabled"] = "enabled"
    disabled_reason: str | None = None
    forced_down: bool = False
    alive: bool = True
    dies_after_seconds: float | None = Field(
        default=None, ge=0, description="the host dies this long after the topology is loaded"
    )


class HostGroupSpec(InventorySpec):
    """`count` hosts named prefix1..prefixN, each with `servers_per_host` servers."""

    prefix: str = "compute"
    count: int = Field(ge=1)
    vcpus: int = Field(default=64, ge=1)
    memory_mb: int = Field(default=262144, ge=1)
    disk_gb: int = Field(default=4000, ge=1)
    zone: str = "nova"
    servers_per_host: int = Field(default=0, ge=0)
    flavor: str = "m1.small"
    metadata: dict[str, str] = Field(default_factory=dict)


class AggregateSpec(_Strict):
    name: str
    availability_zone: str | None = None
    hosts: list[str] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)


class ImageSpec(_Strict):
    """A Glance image: its own properties (beside Glance's base attributes) and tags."""

    id: str
    name: str = "image"
    properties: dict[str, str] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)


class ServerSpec(_Strict):
    name: str
    host: str
    flavor: str = "m1.tiny"
    id: str | None = None
    image: str | None = Field(
        default=None, description="the id of its image; none: booted from a volume"
    )
    metadata: dict[str, str] = Field(default_factory=dict)
    state: Literal["active", "stopped", "error"] = "active"
    locked: bool = False
    project_id: str = "demo"


class ServerGroupSpec(_Strict):
    """A server group and its members (servers of `servers`, by name)."""

    name: str
    policy: Literal["anti-affinity", "affinity", "soft-anti-affinity", "soft-affinity"] = (
        "anti-affinity"
    )
    members: list[str] = Field(default_factory=list)
    project_id: str = "demo"


class UserSpec(_Strict):
    name: str
    password: str
    project: str
    roles: list[str] = Field(default_factory=lambda: ["member"])


class CatalogEntrySpec(_Strict):
    """A service the simulated Keystone lists in its catalog beside identity and compute,
    e.g. a Masakari-compatible API (type instance-ha) under test."""

    type: str
    name: str
    url: str


class Topology(_Strict):
    flavors: list[FlavorSpec] = Field(
        default_factory=lambda: [
            FlavorSpec(id="1", name="m1.tiny", vcpus=1, ram=512, disk=1),
            FlavorSpec(id="2", name="m1.small", vcpus=1, ram=2048, disk=20),
            FlavorSpec(id="3", name="m1.medium", vcpus=2, ram=4096, disk=40),
            FlavorSpec(id="4", name="m1.large", vcpus=4, ram=8192, disk=80),
        ]
    )
    hosts: list[HostSpec] = Field(default_factory=list)
    host_groups: list[HostGroupSpec] = Field(default_factory=list)
    aggregates: list[AggregateSpec] = Field(default_factory=list)
    images: list[ImageSpec] = Field(default_factory=list)
    servers: list[ServerSpec] = Field(default_factory=list)
    server_groups: list[ServerGroupSpec] = Field(default_factory=list)
    catalog: list[CatalogEntrySpec] = Field(default_factory=list)
    users: list[UserSpec] = Field(
        default_factory=lambda: [
            UserSpec(name="admin", password="admin", project="admin", roles=["admin", "member"]),
            UserSpec(name="demo", password="demo", project="demo", roles=["member"]),
        ]
    )


def default_topology() -> Topology:
    """Three compute hosts with room for a few dozen small servers each."""
    return Topology(hosts=[HostSpec(name=f"compute{i}") for i in (1, 2, 3)])


def parse(text: str) -> Topology:
    return Topology.model_validate(yaml.safe_load(text) or {})


def load(path: Path) -> Topology:
    return parse(path.read_text())

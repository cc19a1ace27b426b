"""Placement reads through the driver: what a recovery plan is built from, on every backend.

The same assertions hold on the simulator and on the real Nova lab's Placement: each compute
host is a resource provider found from its service host, with VCPU, MEMORY_MB and DISK_GB
inventories (allocation ratio and reserved included), and usages that follow what is booted
and evacuated onto it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from controller.drivers.nova.openstack import connect
from controller.recovery.nova import (
    DISK_GB,
    MEMORY_MB,
    RESOURCE_CLASSES,
    VCPU,
    HostResources,
    flavor_resources,
)
from tests.contract.backend import NovaBackend
from tests.contract.test_nova_driver import Driver


@pytest.fixture
def driver(nova_backend: NovaBackend) -> Iterator[Driver]:
    ready = Driver(nova_backend)
    yield ready
    ready.close()


def _by_host(driver: Driver, hosts: list[str]) -> dict[str, HostResources]:
    return {r.host: r for r in driver(driver.nova.host_resources(hosts))}


def test_every_compute_host_has_inventories_with_ratios(
    driver: Driver, nova_backend: NovaBackend
) -> None:
    unknown = f"no-such-host-{uuid.uuid4().hex[:6]}"
    found = _by_host(driver, [*nova_backend.hosts, unknown])
    assert set(found) == set(nova_backend.hosts)
    assert len({r.provider for r in found.values()}) == len(nova_backend.hosts)
    for resources in found.values():
        assert set(RESOURCE_CLASSES) <= set(resources.inventories)
        for rc in RESOURCE_CLASSES:
            inventory = resources.inventories[rc]
            assert inventory.total > 0 and inventory.allocation_ratio > 0
            assert 0 <= inventory.reserved < inventory.total
            assert inventory.capacity == int(
                (inventory.total - inventory.reserved) * inventory.allocation_ratio
            )
            assert resources.free(rc) == inventory.capacity - resources.usages.get(rc, 0)
    assert driver(driver.nova.host_resources([])) == []


def test_usages_follow_booted_servers(driver: Driver, nova_backend: NovaBackend) -> None:
    host, other = nova_backend.hosts[0], nova_backend.hosts[1]
    before = _by_host(driver, [host, other])
    ids = nova_backend.boot_servers(host, 2)
    asked = flavor_resources(driver(driver.nova.server(ids[0])).flavor)
    after = _by_host(driver, [host, other])
    for rc in (VCPU, MEMORY_MB, DISK_GB):
        grown = after[host].usages.get(rc, 0) - before[host].usages.get(rc, 0)
        assert grown == 2 * asked[rc], rc
        assert after[other].usages.get(rc, 0) == before[other].usages.get(rc, 0)
        assert after[host].free(rc) == before[host].free(rc) - 2 * asked[rc]


def test_an_evacuation_allocates_on_its_target(driver: Driver, nova_backend: NovaBackend) -> None:
    source, target = nova_backend.hosts[0], nova_backend.hosts[2]
    [server_id] = nova_backend.boot_servers(source, 1)
    asked = flavor_resources(driver(driver.nova.server(server_id)).flavor)
    before = _by_host(driver, [target])[target]
    nova_backend.kill_host(source)
    driver(driver.nova.force_down(source, True))
    driver(driver.nova.reset_and_evacuate(server_id, target, reset=False))
    landed = driver.settled(server_id, f"on {target}", lambda s: s.host == target)
    assert landed.vm_state == "active"
    after = _by_host(driver, [target])[target]
    assert after.usages.get(MEMORY_MB, 0) == before.usages.get(MEMORY_MB, 0) + asked[MEMORY_MB]
    assert after.usages.get(VCPU, 0) == before.usages.get(VCPU, 0) + asked[VCPU]


def test_server_groups_are_listed_with_their_policy(
    driver: Driver, nova_backend: NovaBackend
) -> None:
    conn, _secrets = connect(nova_backend.clouds_yaml, nova_backend.cloud)
    name = f"web-{uuid.uuid4().hex[:6]}"
    created = conn.compute.create_server_group(name=name, policy="anti-affinity")
    try:
        [group] = [g for g in driver(driver.nova.server_groups()) if g.name == name]
        assert (group.id, group.policy, group.members) == (created.id, "anti-affinity", ())
    finally:
        conn.compute.delete_server_group(created.id)
        conn.close()
    assert name not in {g.name for g in driver(driver.nova.server_groups())}

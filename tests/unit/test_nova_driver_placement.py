"""The driver's placement reads at the size of a region: hypervisors are listed for hosts it
has not seen, not for every plan (bench/scale.py: 5,000 hypervisors paged through before
each recovery's first evacuation). Over real HTTP against the simulator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from controller.drivers.nova.openstack import OpenStackNova
from tests.harness.sim import Sim, running_sim

HOSTS = ("compute1", "compute2", "compute3")


@pytest.fixture(scope="module")
def sim() -> Iterator[Sim]:
    with running_sim(None, "--seed", "5") as running:
        yield running


def _topology(sim: Sim, hosts: list[str]) -> str:
    users = [
        {"name": u, "password": sim.admin_password, "project": u, "roles": roles}
        for u, roles in (("admin", ["admin"]), ("demo", ["member"]))
    ]
    return json.dumps({"hosts": [{"name": h} for h in hosts], "users": users})


@pytest.fixture
def clean(sim: Sim) -> Iterator[Sim]:
    sim.control("POST", "topology", _topology(sim, list(HOSTS)))
    sim.control("DELETE", "stats")
    yield sim
    sim.control("POST", "topology", _topology(sim, list(HOSTS)))


def _listings(sim: Sim) -> int:
    return int(sim.control("GET", "stats")["requests"].get("hypervisors", 0))


def test_hypervisors_are_listed_once_for_the_hosts_a_listing_showed(clean: Sim) -> None:
    nova = OpenStackNova.from_clouds_yaml(clean.clouds_yaml, clean.cloud)

    async def reads() -> list[set[str]]:
        return [
            {r.host for r in await nova.host_resources(hosts)}
            for hosts in (["compute1"], ["compute1", "compute2"], list(HOSTS))
        ]

    try:
        assert asyncio.run(reads()) == [{"compute1"}, {"compute1", "compute2"}, set(HOSTS)]
    finally:
        nova.close()
    assert _listings(clean) == 1


def test_a_host_unknown_to_nova_is_looked_for_again_each_time(clean: Sim) -> None:
    nova = OpenStackNova.from_clouds_yaml(clean.clouds_yaml, clean.cloud)

    async def reads() -> list[set[str]]:
        return [{r.host for r in await nova.host_resources(["compute1", "new"])} for _ in "ab"]

    try:
        assert asyncio.run(reads()) == [{"compute1"}, {"compute1"}]
    finally:
        nova.close()
    assert _listings(clean) == 2  # a host deployed since is found at its first read


def test_a_compute_node_made_again_is_read_under_its_new_provider(clean: Sim) -> None:
    nova = OpenStackNova.from_clouds_yaml(clean.clouds_yaml, clean.cloud)
    try:
        [before] = asyncio.run(nova.host_resources(["compute2"]))
        # Made again alone: the simulator draws its uuids in order, and Nova never gives an
        # old one to another node, so no other node may take compute2's.
        clean.control("POST", "topology", _topology(clean, ["compute2"]))
        [after] = asyncio.run(nova.host_resources(["compute2"]))
    finally:
        nova.close()
    assert after.host == "compute2" and after.provider != before.provider
    assert _listings(clean) == 2

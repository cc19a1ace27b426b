"""The driver's reads: Nova's JSON mapped field by field onto `Server`, a listing longer than
Nova's max_limit read page after page, and a service updated without reading it again (over
real HTTP against the simulator)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from controller.drivers.nova.openstack import OpenStackNova
from controller.drivers.nova.servers import server_from_body
from controller.recovery.nova import ComputeService, Flavor, Server
from tests.harness.sim import Sim, running_sim

#: One server as Nova 34 shows it to an admin at 2.87 (the api-ref's sample, every field the
#: driver reads set, and each lookalike field given a different value, so a wrong key shows).
FULL_BODY: dict[str, Any] = {
    "id": "9168b536-cd40-4630-b43f-b259807c6e87",
    "name": "db-1",
    "status": "REBUILD",
    "tenant_id": "6f70656e737461636b20342065766572",
    "user_id": "fake-user",
    "metadata": {"HA_Enabled": "True", "tier": "db"},
    "flavor": {
        "original_name": "m1.large",
        "vcpus": 4,
        "ram": 8192,
        "disk": 80,
        "ephemeral": 10,
        "swap": 512,
        "extra_specs": {"hw:cpu_policy": "dedicated"},
    },
    "image": {"id": "70a599e0-31e7-49b7-b260-868f441e862b", "links": []},
    "OS-EXT-STS:vm_state": "error",
    "OS-EXT-STS:task_state": "rebuild_spawning",
    "OS-EXT-STS:power_state": 4,
    "OS-EXT-SRV-ATTR:host": "compute7",
    "OS-EXT-SRV-ATTR:hypervisor_hostname": "compute7.example.org",
    "OS-EXT-SRV-ATTR:instance_name": "instance-00000001",
    "OS-EXT-AZ:availability_zone": "az1",
    "locked": True,
    "locked_reason": "masakari: evacuating",
    "fault": {"code": 500, "message": "No valid host was found. ", "created": "2026-12-03T04:00Z"},
    "host_status": "DOWN",
    "hostId": "2091634baaccdc4c5a1d57069c833e402921df696b7f970791b12ec6",
    "links": [],
}


def test_every_field_of_nova_json_lands_on_the_server() -> None:
    assert server_from_body(FULL_BODY) == Server(
        id="9168b536-cd40-4630-b43f-b259807c6e87",
        name="db-1",
        status="REBUILD",
        vm_state="error",
        task_state="rebuild_spawning",
        power_state=4,
        host="compute7",
        locked=True,
        flavor=Flavor(name="m1.large", vcpus=4, ram_mb=8192, disk_gb=80),
        metadata={"HA_Enabled": "True", "tier": "db"},
        project_id="6f70656e737461636b20342065766572",
        fault="No valid host was found. ",
        image_id="70a599e0-31e7-49b7-b260-868f441e862b",
    )


def test_a_volume_booted_server_without_fault_has_no_image_and_no_fault() -> None:
    body = FULL_BODY | {
        "image": "",  # Nova's view of a server booted from a volume
        "status": "ACTIVE",
        "OS-EXT-STS:vm_state": "active",
        "OS-EXT-STS:task_state": None,
        "OS-EXT-STS:power_state": 1,
        "locked": False,
        "metadata": {},
    }
    del body["fault"]
    server = server_from_body(body)
    assert (server.image_id, server.fault, server.task_state) == (None, None, None)
    assert (server.status, server.vm_state, server.power_state, server.locked) == (
        "ACTIVE",
        "active",
        1,
        False,
    )
    assert server.metadata == {}


def test_servers_share_their_repeated_values() -> None:
    """The capacity checks hold every server of the cloud: at 50,000 servers, a Flavor, an
    empty dict and the same strings for each server were 1 KB of the operator a server."""
    decoded = [json.loads(json.dumps(FULL_BODY | {"metadata": {}})) for _ in range(2)]
    one, other = map(server_from_body, decoded)
    assert one == other
    assert one.flavor is other.flavor and one.metadata is other.metadata
    for field in ("status", "vm_state", "task_state", "host", "project_id", "image_id"):
        assert getattr(one, field) is getattr(other, field), field
    assert one.id is not other.id, "a server's own values are its own"


# --- paging, on the simulator ---------------------------------------------------------------

MAX_LIMIT = 1000  # the simulator's (and Nova's default) [api] max_limit
ON_BIG = MAX_LIMIT + 100  # two pages
ON_SMALL = 50


@pytest.fixture(scope="module")
def crowded() -> Iterator[Sim]:
    """compute1 with more servers than one page holds, compute2 with a few."""
    big = {"vcpus": 4096, "memory_mb": 4_000_000, "disk_gb": 100_000, "flavor": "m1.tiny"}
    topology = {
        "host_groups": [
            {"prefix": "compute", "count": 1, "servers_per_host": ON_BIG, **big},
            {"prefix": "small", "count": 1, "servers_per_host": ON_SMALL, **big},
        ]
    }
    with running_sim(topology, "--seed", "5") as sim:
        yield sim


def _server_requests(sim: Sim) -> int:
    return int(sim.control("GET", "stats")["requests"].get("servers", 0))


def test_a_listing_past_max_limit_is_read_page_by_page_with_its_filters(crowded: Sim) -> None:
    nova = OpenStackNova.from_clouds_yaml(crowded.clouds_yaml, crowded.cloud)
    try:
        crowded.control("DELETE", "stats")
        started = time.process_time()
        on_big = asyncio.run(nova.servers_on_host("compute1"))
        cpu = time.process_time() - started
        # The second page keeps the host filter: without it, small1's servers would follow.
        assert {s.host for s in on_big} == {"compute1"}
        assert len({s.id for s in on_big}) == len(on_big) == ON_BIG
        assert _server_requests(crowded) == 2
        every = asyncio.run(nova.all_servers())
        assert len({s.id for s in every}) == len(every) == ON_BIG + ON_SMALL
        assert all(s.flavor == Flavor("m1.tiny", 1, 512, 1) for s in every)
        print(f"\nservers_on_host: {ON_BIG} servers over 2 pages, {cpu * 1000:.0f} ms of CPU")
    finally:
        nova.close()


def _service_requests(sim: Sim) -> int:
    return int(sim.control("GET", "stats")["requests"].get("services", 0))


def test_a_service_read_once_is_updated_without_reading_it_again(crowded: Sim) -> None:
    nova = OpenStackNova.from_clouds_yaml(crowded.clouds_yaml, crowded.cloud)

    async def fail_and_return() -> list[ComputeService]:
        # What recovery does to a failed host, then what it does when the host is back.
        seen = [await nova.compute_service("small1")]
        seen.append(await nova.force_down("small1", True))
        seen.append(await nova.disable_service("small1", "contract"))
        seen.append(await nova.enable_service("small1"))
        seen.append(await nova.force_down("small1", False))
        return seen

    try:
        crowded.control("DELETE", "stats")
        read, down, disabled, enabled, up = asyncio.run(fail_and_return())
        assert _service_requests(crowded) == 5, "one read, then four updates: no read each"
        assert read.id == down.id == up.id and down.forced_down and not up.forced_down
        assert (disabled.status, disabled.disabled_reason) == ("disabled", "contract")
        assert enabled.status == "enabled" and enabled.forced_down
    finally:
        nova.close()


def test_an_update_of_a_service_whose_id_changed_reads_it_again(crowded: Sim) -> None:
    nova = OpenStackNova.from_clouds_yaml(crowded.clouds_yaml, crowded.cloud)
    try:
        service = asyncio.run(nova.compute_service("small1"))
        # As if the host's service had been deleted and registered again under a new uuid.
        nova._service_ids["small1"] = "a-uuid-nova-no-longer-has"
        crowded.control("DELETE", "stats")
        down = asyncio.run(nova.force_down("small1", True))
        assert (down.id, down.forced_down) == (service.id, True)
        assert _service_requests(crowded) == 3, "a refused update, a read, the update"
        asyncio.run(nova.force_down("small1", False))
    finally:
        nova.close()

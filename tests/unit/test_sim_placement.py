"""The simulator's Placement on the wire: what only it can be driven into (non-admin callers,
unsupported microversions, allocation ratios set per host) and that its scheduler agrees with
it. What the driver reads is checked on both backends by tests/contract/test_placement_driver.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from controller.sim import cloud as sim_cloud
from controller.sim import topology as topo
from tests.harness.sim import Sim, running_sim
from tests.unit.test_sim import _http, _token

TOPOLOGY = {
    "hosts": [
        # 4 cores at 2.0 hold 8 one-vCPU servers; 512 MiB of its memory is the host's own.
        {"name": "ratio", "vcpus": 4, "cpu_allocation_ratio": 2.0, "memory_mb": 8704,
         "reserved_host_memory_mb": 512},
        {"name": "plain", "vcpus": 4},
    ]
}  # fmt: skip


@pytest.fixture(scope="module")
def sim() -> Iterator[Sim]:
    with running_sim(TOPOLOGY, "--seed", "3") as running:
        yield running


def _placement(
    sim: Sim, path: str, *, user: str = "admin", version: str | None = "1.20"
) -> tuple[int, dict[str, str], Any]:
    headers = {"X-Auth-Token": _token(sim, user)}
    if version is not None:
        headers["OpenStack-API-Version"] = f"placement {version}"
    return _http("GET", f"{sim.base_url}/placement{path}", headers=headers)


def _provider(sim: Sim, name: str) -> str:
    status, _, body = _placement(sim, f"/resource_providers?name={name}")
    assert status == 200
    [provider] = body["resource_providers"]
    assert provider["name"] == name and provider["root_provider_uuid"] == provider["uuid"]
    return str(provider["uuid"])


def test_inventories_carry_ratios_and_reserved_and_the_version_is_echoed(sim: Sim) -> None:
    status, headers, body = _placement(
        sim, f"/resource_providers/{_provider(sim, 'ratio')}/inventories"
    )
    assert status == 200 and headers["OpenStack-API-Version"] == "placement 1.20"
    vcpu, memory = body["inventories"]["VCPU"], body["inventories"]["MEMORY_MB"]
    assert (vcpu["total"], vcpu["allocation_ratio"], vcpu["max_unit"]) == (4, 2.0, 4)
    assert (memory["total"], memory["reserved"]) == (8704, 512)


def test_the_scheduler_fills_a_host_exactly_as_far_as_placement_says(sim: Sim) -> None:
    sim.control("POST", "reset")
    sim.control("POST", "servers", {"host": "ratio", "count": 8})  # 8 vCPUs of 4 x 2.0
    with pytest.raises(Exception, match="no room"):
        sim.control("POST", "servers", {"host": "ratio", "count": 1})
    provider = _provider(sim, "ratio")
    status, _, body = _placement(sim, f"/resource_providers/{provider}/usages")
    assert status == 200
    assert body["usages"]["VCPU"] == 8 and body["resource_provider_generation"] >= 8


@pytest.mark.parametrize(
    ("user", "version", "status", "detail"),
    [
        ("demo", "1.20", 403, "Policy does not allow"),
        ("admin", "1.99", 406, "Minimum is 1.0, maximum is 1.39"),
        ("admin", "one", 400, "invalid version string"),
    ],
)
def test_refusals_in_placements_error_format(
    sim: Sim, user: str, version: str, status: int, detail: str
) -> None:
    answered, _, body = _placement(sim, "/resource_providers", user=user, version=version)
    assert answered == status
    assert detail in body["errors"][0]["detail"] and body["errors"][0]["status"] == status


def test_no_token_is_401_and_an_unknown_provider_404(sim: Sim) -> None:
    assert _http("GET", f"{sim.base_url}/placement/resource_providers")[0] == 401
    status, _, body = _placement(sim, "/resource_providers/nope/usages", version="1.30")
    assert status == 404 and body["errors"][0]["code"] == "placement.undefined_code"
    assert _http("GET", f"{sim.base_url}/placement/")[2]["versions"][0]["max_version"] == "1.39"


def test_the_scheduler_keeps_server_group_anti_affinity_on_evacuation() -> None:
    spec = topo.Topology.model_validate(
        {
            "hosts": [{"name": n} for n in ("src", "aa1", "aa2")],
            "servers": [{"name": "web1", "host": "aa1"}, {"name": "web2", "host": "src"}],
            "server_groups": [{"name": "web", "members": ["web1", "web2"]}],
        }
    )
    admin = sim_cloud.Context("admin", is_admin=True, microversion=(2, 87))

    async def scenario() -> None:
        cloud = sim_cloud.Cloud(spec, seed=1)
        [web2] = [s for s in cloud.servers.values() if s.name == "web2"]
        cloud.kill_host("src")
        cloud.hosts["src"].forced_down = True
        cloud.evacuate(web2.id, admin, "aa1", force=False)  # web1 is there
        assert (web2.vm_state, web2.host) == ("error", "src")
        assert web2.fault is not None and "No valid host" in web2.fault
        cloud.evacuate(web2.id, admin, None, force=False)
        assert web2.host == "aa2"

    asyncio.run(scenario())

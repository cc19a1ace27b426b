"""Simulator behaviour that only the simulator has (control API, fault injection, seeds) or that
real Nova cannot be driven into by the contract suite (non-admin callers, full hosts, newer
microversions). Raw HTTP where the wire format is the point, openstacksdk elsewhere."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.drivers.nova.openstack import OpenStackNova
from tests.harness.sim import ControlError, Sim, running_sim


@pytest.fixture(scope="module")
def sim() -> Iterator[Sim]:
    with running_sim(None, "--seed", "11", "--service-down-time", "1") as running:
        yield running


@pytest.fixture
def clean(sim: Sim) -> Sim:
    sim.control("PUT", "faults", {})
    sim.control("POST", "reset")
    return sim


def _http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, dict(response.headers), json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, dict(error.headers), json.loads(raw) if raw else None


def _token(sim: Sim, user: str = "admin") -> str:
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": user,
                        "domain": {"name": "Default"},
                        "password": sim.admin_password,
                    }
                },
            },
            "scope": {"project": {"name": user, "domain": {"name": "Default"}}},
        }
    }
    status, headers, issued = _http("POST", f"{sim.base_url}/identity/v3/auth/tokens", body)
    assert status == 201, issued
    return headers["X-Subject-Token"]


def _nova(
    sim: Sim, method: str, path: str, body: Any = None, *, version: str | None = "2.87",
    user: str = "admin",
) -> tuple[int, dict[str, str], Any]:  # fmt: skip
    headers = {"X-Auth-Token": _token(sim, user)}
    if version is not None:
        headers["OpenStack-API-Version"] = f"compute {version}"
    return _http(method, f"{sim.base_url}/compute/v2.1{path}", body, headers)


def _boot(sim: Sim, host: str = "compute1", **spec: Any) -> str:
    return str(sim.control("POST", "servers", {"host": host, "count": 1, **spec})["ids"][0])


def _server(sim: Sim, server_id: str) -> dict[str, Any]:
    status, _, body = _nova(sim, "GET", f"/servers/{server_id}")
    assert status == 200
    return dict(body["server"])


def _wait_settled(sim: Sim, server_id: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = _server(sim, server_id)
        if server["OS-EXT-STS:task_state"] is None:
            return server
        time.sleep(0.05)
    raise AssertionError(f"server {server_id} still busy after {timeout}s")


# --- Keystone -----------------------------------------------------------------------------


def test_keystone_issues_validates_and_refuses_tokens(clean: Sim) -> None:
    admin, demo = _token(clean), _token(clean, "demo")
    url = f"{clean.base_url}/identity/v3/auth/tokens"
    status, _, body = _http("GET", url, headers={"X-Auth-Token": admin, "X-Subject-Token": demo})
    assert status == 200
    token = body["token"]
    assert (token["user"]["name"], token["project"]["name"]) == ("demo", "demo")
    assert [r["name"] for r in token["roles"]] == ["member"]
    assert {s["type"] for s in token["catalog"]} == {"identity", "compute", "placement", "image"}
    assert _http("GET", url, headers={"X-Auth-Token": admin, "X-Subject-Token": "nope"})[0] == 404
    assert _http("GET", url, headers={"X-Subject-Token": demo})[0] == 401
    assert _http("GET", url, headers={"X-Auth-Token": demo, "X-Subject-Token": admin})[0] == 403
    assert _http("GET", url, headers={"X-Auth-Token": demo, "X-Subject-Token": demo})[0] == 200
    bad = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "password": "wrong"}}}}}  # fmt: skip
    assert _http("POST", url, bad)[0] == 401
    assert _http("GET", f"{clean.base_url}/compute/v2.1/servers")[0] == 401


# --- microversions ------------------------------------------------------------------------


def test_microversion_is_echoed_defaulted_and_bounded(clean: Sim) -> None:
    status, headers, _ = _nova(clean, "GET", "/os-services")
    assert status == 200
    assert headers["OpenStack-API-Version"] == "compute 2.87"
    assert headers["X-OpenStack-Nova-API-Version"] == "2.87"
    assert _nova(clean, "GET", "/os-services", version=None)[1]["OpenStack-API-Version"] == (
        "compute 2.1"
    )
    assert (
        _nova(clean, "GET", "/os-services", version="latest")[1]["X-OpenStack-Nova-API-Version"]
        == "2.96"
    )
    assert _nova(clean, "GET", "/os-services", version="2.200")[0] == 406
    assert _nova(clean, "GET", "/os-services", version="3.0")[0] == 406
    assert _nova(clean, "GET", "/os-services", version="two")[0] == 400
    legacy = {"X-Auth-Token": _token(clean), "X-OpenStack-Nova-API-Version": "2.60"}
    headers = _http("GET", f"{clean.base_url}/compute/v2.1/os-services", headers=legacy)[1]
    assert headers["OpenStack-API-Version"] == "compute 2.60"
    status, _, body = _http("GET", f"{clean.base_url}/compute/v2.1/")
    assert status == 200 and body["version"]["version"] == "2.96"


def test_microversion_changes_bodies(clean: Sim) -> None:
    sid = _boot(clean)
    assert _nova(clean, "GET", f"/servers/{sid}", version="2.46")[2]["server"]["flavor"] == {
        "id": "1",
        "links": [],
    }
    assert _nova(clean, "GET", f"/servers/{sid}")[2]["server"]["flavor"]["vcpus"] == 1
    at_87 = _nova(clean, "GET", "/os-hypervisors/detail")[2]["hypervisors"][0]
    at_88 = _nova(clean, "GET", "/os-hypervisors/detail", version="2.88")[2]["hypervisors"][0]
    assert "vcpus" in at_87 and "memory_mb_used" in at_87
    assert "vcpus" not in at_88 and "memory_mb_used" not in at_88
    service_id = _nova(clean, "GET", "/os-services")[2]["services"][0]["id"]
    old = _nova(clean, "PUT", f"/os-services/{service_id}", {"status": "disabled"}, version="2.52")
    assert old[0] == 404


def test_from_2_95_an_evacuated_server_lands_stopped(clean: Sim) -> None:
    sid = _boot(clean)
    clean.control("POST", "hosts/compute1/kill")
    service_id = _nova(clean, "GET", "/os-services?host=compute1")[2]["services"][0]["id"]
    assert _nova(clean, "PUT", f"/os-services/{service_id}", {"forced_down": True})[0] == 200
    assert _nova(clean, "POST", f"/servers/{sid}/action", {"evacuate": {}}, version="2.95")[0] == (
        200
    )
    server = _wait_settled(clean, sid)
    assert server["status"] == "SHUTOFF" and server["OS-EXT-SRV-ATTR:host"] != "compute1"


# --- who may do what ------------------------------------------------------------------------


def test_locked_server_refuses_non_admins_only(clean: Sim) -> None:
    sid = _boot(clean, project_id="demo")
    assert _nova(clean, "POST", f"/servers/{sid}/action", {"lock": {}}, user="demo")[0] == 202
    status, _, body = _nova(clean, "POST", f"/servers/{sid}/action", {"os-stop": None}, user="demo")
    assert status == 409 and "locked" in body["conflictingRequest"]["message"]
    assert _nova(clean, "DELETE", f"/servers/{sid}", user="demo")[0] == 409
    assert _nova(clean, "POST", f"/servers/{sid}/action", {"os-stop": None})[0] == 202
    reset = {"os-resetState": {"state": "error"}}
    assert _nova(clean, "POST", f"/servers/{sid}/action", reset, user="demo")[0] == 403
    assert _nova(clean, "POST", f"/servers/{sid}/action", {"evacuate": {}}, user="demo")[0] == 403
    assert _nova(clean, "GET", "/servers/detail?all_tenants=1", user="demo")[0] == 403


def test_changes_since_must_be_a_moment(clean: Sim) -> None:
    sid = _boot(clean)
    status, _, body = _nova(clean, "GET", "/servers/detail?all_tenants=1&changes-since=2026-13-01")
    assert status == 400 and "changes-since" in body["badRequest"]["message"]
    status, _, body = _nova(clean, "GET", "/servers/detail?all_tenants=1&changes-since=2000-01-01")
    assert status == 200 and sid in {s["id"] for s in body["servers"]}


def test_evacuate_validates_like_nova(clean: Sim) -> None:
    sid = _boot(clean)
    action = f"/servers/{sid}/action"
    assert _nova(clean, "POST", action, {"evacuate": {"host": "nowhere"}})[0] == 404
    assert _nova(clean, "POST", action, {"evacuate": {"host": "compute1"}})[0] == 400
    status, _, body = _nova(clean, "POST", action, {"evacuate": {}})
    assert status == 400 and body["badRequest"]["message"] == (
        "Compute service of compute1 is still in use."
    )
    clean.control("POST", "hosts/compute1/kill")
    time.sleep(1.5)  # --service-down-time 1: the heartbeat is now too old
    assert _nova(clean, "POST", action, {"os-stop": None})[0] == 202
    status, _, body = _nova(clean, "POST", action, {"evacuate": {}})
    assert status == 409, body  # still powering off: task_state must be None
    _wait_settled(clean, sid)
    assert _nova(clean, "POST", action, {"evacuate": {}})[0] == 200
    assert clean.control("GET", f"servers/{sid}/evacuations") == {"evacuations": 1}


# --- scheduler ----------------------------------------------------------------------------------


def test_scheduler_skips_full_disabled_and_down_hosts(sim: Sim) -> None:
    topology = {
        "hosts": [
            {"name": "source"},
            {"name": "tiny", "vcpus": 1},
            {"name": "resting", "status": "disabled", "disabled_reason": "maintenance"},
            {"name": "gone", "alive": False},
            {"name": "roomy"},
        ],
        "servers": [
            {"name": "a", "host": "source", "flavor": "m1.small"},
            {"name": "b", "host": "source", "flavor": "m1.small"},
            {"name": "filler", "host": "tiny"},
        ],
        "users": json.loads(_default_topology(sim))["users"],
    }
    sim.control("POST", "topology", json.dumps(topology))
    try:
        nova = OpenStackNova.from_clouds_yaml(sim.clouds_yaml, sim.cloud)

        async def scenario() -> set[str]:
            await nova.force_down("source", True)
            servers = await nova.servers_on_host("source")
            for server in servers:
                await nova.reset_and_evacuate(server.id, None, reset=False)
            await asyncio.sleep(1)
            return {(await nova.server(s.id)).host or "" for s in servers}

        assert asyncio.run(scenario()) == {"roomy"}
    finally:
        sim.control("POST", "topology", _default_topology(sim))


def _default_topology(sim: Sim) -> str:
    return json.dumps(
        {
            "hosts": [{"name": f"compute{i}"} for i in (1, 2, 3)],
            "users": [
                {"name": u, "password": sim.admin_password, "project": u, "roles": roles}
                for u, roles in (("admin", ["admin"]), ("demo", ["member"]))
            ],
        }
    )


# --- faults and control ---------------------------------------------------------------------


def test_injected_evacuation_failure(clean: Sim) -> None:
    sid = _boot(clean)
    clean.control("PUT", "faults", {"fail_evacuation": [sid]})
    nova = OpenStackNova.from_clouds_yaml(clean.clouds_yaml, clean.cloud)

    async def scenario() -> None:
        await nova.force_down("compute1", True)
        await nova.reset_and_evacuate(sid, None, reset=False)
        for _ in range(100):
            server = await nova.server(sid)
            if server.task_state is None:
                break
            await asyncio.sleep(0.05)
        assert (server.vm_state, server.status) == ("error", "ERROR")
        assert server.fault and "injected" in server.fault
        assert [m.status for m in await nova.migrations(sid)] == ["failed"]

    asyncio.run(scenario())
    # compute1 was forced down, never killed: counted unfenced too.
    assert clean.control("GET", "evacuations") == {"evacuations": {sid: 1}, "unfenced": {sid: 1}}
    assert clean.control("GET", "faults")["fail_evacuation"] == []


def test_stalled_rebuild_and_an_evacuation_from_a_running_host(clean: Sim) -> None:
    """Forced down while its nova-compute still runs: Nova evacuates, the simulator counts it
    unfenced; the stalled rebuild never ends."""
    sid = _boot(clean)
    clean.control("PUT", "faults", {"stall_evacuation": [sid]})
    nova = OpenStackNova.from_clouds_yaml(clean.clouds_yaml, clean.cloud)

    async def scenario() -> None:
        await nova.force_down("compute1", True)
        await nova.reset_and_evacuate(sid, None, reset=False)
        await asyncio.sleep(1.0)  # twice the simulator's default rebuild
        server = await nova.server(sid)
        assert (server.status, server.task_state) == ("REBUILD", "rebuilding")

    asyncio.run(scenario())
    assert clean.control("GET", "evacuations") == {"evacuations": {sid: 1}, "unfenced": {sid: 1}}
    assert clean.control("GET", "faults")["stall_evacuation"] == []


def _compute_answers(sim: Sim) -> str:
    try:
        with urllib.request.urlopen(f"{sim.base_url}/compute/", timeout=10) as answer:
            return str(answer.status)
    except (urllib.error.URLError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        return type(reason).__name__


def test_outages_refuse_then_hang() -> None:
    # A simulator of its own: a refusal closes the port the module's shared one serves on.
    with running_sim(None) as sim:
        sim.control("PUT", "faults", {"outage": {"mode": "refuse", "seconds": 1.0}})
        # A connection the listening socket had accepted just before it closed is reset.
        assert _compute_answers(sim) in {"ConnectionRefusedError", "ConnectionResetError"}
        with pytest.raises(urllib.error.URLError):
            sim.control("GET", "health")
        time.sleep(1.2)
        assert _compute_answers(sim) == "200"

        sim.control("PUT", "faults", {"outage": {"mode": "hang", "seconds": 1.0}})
        began = time.monotonic()
        assert sim.control("GET", "health")["hosts"] == 3  # control answers through a cut
        assert _compute_answers(sim) in {"RemoteDisconnected", "ConnectionResetError"}
        assert time.monotonic() - began >= 0.9
        assert _compute_answers(sim) == "200"

        sim.control("PUT", "faults", {"outage": {"mode": "hang", "seconds": 1.0}})
        with pytest.raises(ControlError, match="already under way"):
            sim.control("PUT", "faults", {"outage": {"mode": "refuse", "seconds": 1.0}})


def test_host_that_dies_on_schedule_goes_down(sim: Sim) -> None:
    topology = json.loads(_default_topology(sim))
    topology["hosts"][0]["dies_after_seconds"] = 0.2
    sim.control("POST", "topology", json.dumps(topology))
    try:
        nova = OpenStackNova.from_clouds_yaml(sim.clouds_yaml, sim.cloud)

        async def state_after(seconds: float) -> str:
            await asyncio.sleep(seconds)
            return (await nova.compute_service("compute1")).state

        assert asyncio.run(state_after(0)) == "up"
        assert asyncio.run(state_after(2.0)) == "down"
    finally:
        sim.control("POST", "topology", _default_topology(sim))


def test_issued_tokens_are_listed(clean: Sim) -> None:
    assert _token(clean) in clean.control("GET", "tokens")["tokens"]


def test_kill_and_revive_through_the_control_api(clean: Sim) -> None:
    nova = OpenStackNova.from_clouds_yaml(clean.clouds_yaml, clean.cloud)
    clean.control("POST", "hosts/compute2/kill")
    time.sleep(1.5)
    assert asyncio.run(nova.compute_service("compute2")).state == "down"
    clean.control("POST", "hosts/compute2/revive")
    assert asyncio.run(nova.compute_service("compute2")).state == "up"


def test_bad_topology_is_refused_and_the_cloud_kept(clean: Sim) -> None:
    _boot(clean)
    with pytest.raises(ControlError) as refused:
        clean.control("POST", "topology", "hosts: [{name: a, vcpus: -1}]")
    assert refused.value.status == 400
    with pytest.raises(ControlError, match="nowhere"):
        clean.control("POST", "topology", "servers: [{name: x, host: nowhere}]")
    assert clean.control("GET", "health") == {"hosts": 3, "servers": 1}
    assert clean.control("POST", "reset") == {"hosts": 3, "servers": 0}


def test_seed_makes_the_cloud_reproducible() -> None:
    def service_ids(seed: str) -> list[str]:
        with running_sim(None, "--seed", seed) as sim:
            nova = OpenStackNova.from_clouds_yaml(sim.clouds_yaml, sim.cloud)
            return [s.id for s in asyncio.run(nova.compute_services())]

    first = service_ids("5")
    assert first == service_ids("5")
    assert first != service_ids("6")


def test_listing_pages_through_more_than_max_limit(sim: Sim) -> None:
    topology = json.loads(_default_topology(sim))
    topology["hosts"].append({"name": "big", "vcpus": 4000, "memory_mb": 4000000, "disk_gb": 4000})
    sim.control("POST", "topology", json.dumps(topology))
    try:
        ids = sim.control("POST", "servers", {"host": "big", "count": 1200})["ids"]
        status, _, body = _nova(sim, "GET", "/servers/detail?all_tenants=1&host=big")
        assert status == 200 and len(body["servers"]) == 1000
        assert body["servers_links"][0]["rel"] == "next"
        nova = OpenStackNova.from_clouds_yaml(sim.clouds_yaml, sim.cloud)
        servers = asyncio.run(nova.servers_on_host("big"))
        assert sorted(s.id for s in servers) == sorted(ids)
    finally:
        sim.control("POST", "topology", _default_topology(sim))


def test_every_server_listed_newest_first_across_pages_as_servers_come_and_go(
    clean: Sim,
) -> None:
    def listed() -> list[str]:
        found: list[str] = []
        path = "/servers?all_tenants=1&limit=3"
        for _ in range(20):
            status, _, body = _nova(clean, "GET", path)
            assert status == 200
            found += [s["id"] for s in body["servers"]]
            if not body.get("servers_links"):
                return found
            path = f"/servers?all_tenants=1&limit=3&marker={found[-1]}"
        raise AssertionError("more pages than servers")

    first = [_boot(clean, f"compute{1 + n % 3}") for n in range(7)]
    assert listed() == first[::-1]
    later = [_boot(clean) for _ in range(2)]  # listed at once: the order is made again
    assert _nova(clean, "DELETE", f"/servers/{first[3]}")[0] == 204
    assert listed() == [*later[::-1], *first[::-1][:3], *first[::-1][4:]]


def test_example_topology_loads(sim: Sim) -> None:
    example = (Path(__file__).resolve().parents[2] / "examples/sim/topology.yaml").read_text()
    sim.control("POST", "topology", example)
    try:
        assert sim.control("GET", "health") == {"hosts": 6, "servers": 8}
    finally:
        sim.control("POST", "topology", _default_topology(sim))


def test_cli_refuses_a_bad_topology_file(tmp_path: Path) -> None:
    bad = tmp_path / "topology.yaml"
    bad.write_text("servers: [{name: x, host: nowhere}]\n")
    result = subprocess.run(
        [sys.executable, "-m", "controller.cli", "sim", "--port", "0", "--topology", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "Compute host nowhere could not be found" in result.stderr

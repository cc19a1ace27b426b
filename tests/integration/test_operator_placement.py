"""Capacity-aware recovery on the real API server and the simulator's Nova and Placement: the
segment is the boundary, each instance goes where the plan put it, what has no room is reported.

compute4 belongs to another segment and has the most room: Nova's scheduler alone (boundary
Region, or Masakari) would send every instance there.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.integration.operator_env import host, host_failure, segment, servers, topology

pytestmark = pytest.mark.integration

TINY = {"flavor": "m1.tiny"}  # 1 vCPU, 512 MiB, 1 GiB
RACK_A = [{"name": "compute1", "vcpus": 16}, *({"name": f"compute{i}", "vcpus": 4} for i in (2, 3))]
RACK_B = {"name": "compute4", "vcpus": 64}
ENDED = {"Finished", "Failed", "Ignored"}


def _apply(cloud: Any, rack_a: list[str], **spec: Any) -> None:
    cloud.apply(
        segment("rack-a", **spec),
        segment("rack-b"),
        *(host(name, "rack-a") for name in rack_a),
        host("compute4", "rack-b"),
    )


def test_a_segment_with_exactly_enough_room_recovers_everything_inside_it(
    cloud_factory: Any,
) -> None:
    names = [f"vm{i}" for i in range(8)]  # compute2 and compute3 hold 4 each
    cloud = cloud_factory(topology([*RACK_A, RACK_B], servers(names, "compute1", **TINY)))
    _apply(cloud, ["compute1", "compute2", "compute3"])
    cloud.sim.control("POST", "hosts/compute1/kill")
    cloud.apply(host_failure("c1", "compute1"))
    status = cloud.wait_phase("fev", "c1", ENDED, 90)
    assert (status["phase"], status["reason"]) == ("Finished", "Recovered"), status
    moves = status["instances"]
    assert len(moves) == 8
    assert {m["destinationHost"] for m in moves} == {"compute2", "compute3"}
    assert all(m["targetHost"] == m["destinationHost"] for m in moves), moves
    assert all(m["projectId"] == "demo" for m in moves)
    landed = [s.compute_host for s in cloud.nova().compute.servers(details=True, all_projects=True)]
    assert sorted(landed).count("compute2") == 4 and sorted(landed).count("compute3") == 4
    placement = status["placement"]
    assert (placement["boundary"], placement["candidateHosts"]) == ("Segment", 2)
    assert (placement["planned"], placement["unplaced"]) == (8, 0)


def test_one_host_short_the_lowest_priority_are_reported_and_the_rest_recovered(
    cloud_factory: Any,
) -> None:
    high = servers([f"high{i}" for i in range(4)], "compute1", metadata={"HA_Priority": "10"})
    low = servers([f"low{i}" for i in range(4)], "compute1", metadata={"HA_Priority": "1"})
    for server in (*high, *low):
        server.update(TINY)
    cloud = cloud_factory(topology([*RACK_A, RACK_B], [*high, *low]))
    # compute3 is not in the segment: only compute2's 4 vCPUs are left for 8 instances.
    _apply(cloud, ["compute1", "compute2"], retry={"maxAttempts": 1})
    cloud.apply(host("compute3", "rack-b"))
    cloud.sim.control("POST", "hosts/compute1/kill")
    cloud.apply(host_failure("c1", "compute1"))
    status = cloud.wait_phase("fev", "c1", ENDED, 90)
    assert (status["phase"], status["reason"]) == ("Failed", "InsufficientCapacity"), status
    moves = {m["instanceName"]: m for m in status["instances"]}
    for name in (f"high{i}" for i in range(4)):
        assert (moves[name]["status"], moves[name]["destinationHost"]) == ("succeeded", "compute2")
    for name in (f"low{i}" for i in range(4)):
        move = moves[name]
        assert move["status"] == "failed" and move["attempts"] == 0, move
        assert move["message"].startswith("no room in the segment: does not fit: VCPU"), move
    # Nova was asked to evacuate the four that fit, once each, and never the others.
    evacuated = cloud.sim.control("GET", "evacuations")["evacuations"]
    assert sorted(evacuated.values()) == [1, 1, 1, 1], evacuated
    on_compute1 = [
        s.name
        for s in cloud.nova().compute.servers(details=True, all_projects=True)
        if s.compute_host == "compute1"
    ]
    assert sorted(on_compute1) == [f"low{i}" for i in range(4)]


def test_an_aggregates_boundary_without_aggregates_is_refused_by_the_api_server(
    cluster: Any, namespace: str
) -> None:
    bad = segment("rack-c", placement={"boundary": "Aggregates"})
    result = cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(bad), check=False
    )
    assert result.returncode != 0
    assert "boundary Aggregates needs at least one aggregate" in result.stderr
    good = segment("rack-c", placement={"boundary": "Aggregates", "aggregates": ["rack-c"]})
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(good))


def test_selection_and_priority_by_image_from_the_simulators_glance(cloud_factory: Any) -> None:
    # Room on compute2 for 4 of the 6 to move: the amphora is left by its image's tag, the two
    # of the "database" image go first by an image property, two of the four plain ones fit.
    images = [
        {"id": "img-amphora", "tags": ["amphora"]},
        {"id": "img-db", "properties": {"service_tier": "database"}},
        {"id": "img-plain", "properties": {"os_distro": "ubuntu"}},
    ]
    booted = [
        *servers(["amp"], "compute1", image="img-amphora", **TINY),
        # Named to come first: without the image rule the plain ones would take the room.
        *servers(["z-db0", "z-db1"], "compute1", image="img-db", **TINY),
        *servers([f"a-plain{i}" for i in range(2)], "compute1", image="img-plain", **TINY),
        *servers([f"a-volume{i}" for i in range(2)], "compute1", **TINY),  # no image
    ]
    cloud = cloud_factory({**topology([*RACK_A, RACK_B], booted), "images": images})
    _apply(
        cloud,
        ["compute1", "compute2"],
        retry={"maxAttempts": 1},
        hostFailure={"excludeImageTags": ["amphora"]},
        placement={
            "priorityRules": [
                {"imageProperty": {"key": "service_tier", "value": "database"}, "priority": 100}
            ]
        },
    )
    cloud.apply(host("compute3", "rack-b"))
    cloud.sim.control("POST", "hosts/compute1/kill")
    cloud.apply(host_failure("c1", "compute1"))
    status = cloud.wait_phase("fev", "c1", ENDED, 90)
    moves = {m["instanceName"]: m for m in status["instances"]}
    print({name: (m["status"], m.get("destinationHost")) for name, m in moves.items()})
    assert moves["amp"]["status"] == "ignored"
    assert moves["amp"]["message"] == "image img-amphora has tag amphora (excludeImageTags)"
    for name in ("z-db0", "z-db1"):
        assert (moves[name]["status"], moves[name]["destinationHost"]) == ("succeeded", "compute2")
    others = [m for name, m in moves.items() if name.startswith("a-")]
    assert sorted(m["status"] for m in others) == ["failed", "failed", "succeeded", "succeeded"]
    evacuated = cloud.sim.control("GET", "evacuations")["evacuations"]
    assert len(evacuated) == 4, evacuated
    # Glance reads: three distinct images, once per recovery (and per readiness check).
    print("glance reads:", cloud.sim.control("GET", "stats")["requests"].get("images"))


def test_glance_down_never_excludes_an_instance_and_the_event_says_so(
    cloud_factory: Any,
) -> None:
    booted = servers(["amp"], "compute1", image="img-amphora", **TINY)
    images = [{"id": "img-amphora", "tags": ["amphora"]}]
    cloud = cloud_factory({**topology([*RACK_A, RACK_B], booted), "images": images})
    _apply(cloud, ["compute1", "compute2"], hostFailure={"excludeImageTags": ["amphora"]})
    # Every Glance read fails (503, retried by the driver, then given up on).
    cloud.sim.control("PUT", "faults", {"routes": {"images": {"error_rate": 1.0, "status": 503}}})
    cloud.sim.control("POST", "hosts/compute1/kill")
    cloud.apply(host_failure("c1", "compute1"))
    status = cloud.wait_phase("fev", "c1", ENDED, 120)
    assert (status["phase"], status["reason"]) == ("Finished", "Recovered"), status
    [move] = status["instances"]
    assert (move["status"], move["destinationHost"]) == ("succeeded", "compute2")
    [prepare] = [s for s in status["steps"] if s["name"] == "PrepareHAEnabledInstancesTask"]
    said = [d["message"] for d in prepare["progressDetails"]]
    print("\n".join(said))
    assert any("image img-amphora not read from Glance" in m and "503" in m for m in said), said

"""HA readiness on the real API server and the simulator's Nova and Placement: a segment with room
says it can lose its largest host; once servers booted through the simulator fill the hosts, its
status, its CapacityReady condition and its metric say it cannot, with the shortfall."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.operator_env import (
    host,
    host_failure,
    segment,
    servers,
    topology,
    wait_for,
)

pytestmark = pytest.mark.integration

HOSTS = ["compute1", "compute2", "compute3"]
# 4 vCPUs each, 2 m1.tiny (1 vCPU, 512 MiB, 1 GiB) on each: any one lost, its 2 fit elsewhere.
TOPOLOGY = topology(
    [{"name": name, "vcpus": 4} for name in HOSTS],
    [s for name in HOSTS for s in servers([f"{name}-a", f"{name}-b"], name, flavor="m1.tiny")],
)
FAST = {"MASAKARI_CAPACITY_INTERVAL": "1"}


def _capacity(cloud: Any, ready: bool) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        status = cloud.status("fseg", "rack-a")
        found = status.get("capacity")
        return status if found is not None and found["ready"] is ready else None

    try:
        return wait_for(f"rack-a capacity ready={ready}", probe, timeout=60, interval=0.5)
    except AssertionError:
        print(cloud.operator.log()[-6000:])
        raise


def _condition(status: dict[str, Any]) -> dict[str, Any]:
    found: list[dict[str, Any]] = [c for c in status["conditions"] if c["type"] == "CapacityReady"]
    [condition] = found
    return condition


def _gauge(cloud: Any) -> str:
    wanted = f'masakari_segment_capacity_ready{{namespace="{cloud.namespace}",segment="rack-a"}}'
    lines = [line for line in cloud.operator.metrics().splitlines() if line.startswith(wanted)]
    return lines[0].split()[-1] if lines else ""


def test_a_segment_with_room_is_ready_and_says_so_no_more_once_its_hosts_fill_up(
    cloud_factory: Any,
) -> None:
    cloud = cloud_factory(TOPOLOGY, env=FAST)
    cloud.apply(segment("rack-a"), *(host(name, "rack-a") for name in HOSTS))

    status = _capacity(cloud, True)
    capacity = status["capacity"]
    assert capacity["toleratedHostFailures"] == 1
    assert capacity["hostsChecked"] == 3
    assert capacity["unplacedInstances"] == 0
    assert _condition(status)["status"] == "True"
    wait_for("the gauge at 1", lambda: _gauge(cloud) == "1.0", timeout=30)

    # compute2 and compute3 full: losing compute1 leaves its 2 with no free vCPU, losing
    # compute2 its 4 with compute1's 2; as bad, the first by name is named.
    for name in ("compute2", "compute3"):
        cloud.sim.control("POST", "servers", {"host": name, "count": 2, "flavor": "m1.tiny"})

    status = _capacity(cloud, False)
    capacity = status["capacity"]
    assert capacity["worstLoss"] == ["compute1"]
    assert capacity["unplacedInstances"] == 2
    assert capacity["shortfall"] == {"VCPU": 2, "MEMORY_MB": 1024, "DISK_GB": 2}
    condition = _condition(status)
    assert (condition["status"], condition["reason"]) == ("False", "InsufficientCapacity")
    assert "VCPU 2" in condition["message"], condition
    wait_for("the gauge at 0", lambda: _gauge(cloud) == "0.0", timeout=30)

    # Turned off: the verdict, its condition and its series go, none left to alert on.
    cloud.apply(segment("rack-a", capacity={"tolerateHostFailures": 0}))
    wait_for(
        "the capacity check gone",
        lambda: "capacity" not in cloud.status("fseg", "rack-a") and _gauge(cloud) == "",
        timeout=30,
    )
    assert not [
        c for c in cloud.status("fseg", "rack-a")["conditions"] if c["type"] == "CapacityReady"
    ]


def test_a_segment_whose_loss_would_stack_anti_affinity_members_is_not_ready(
    cloud_factory: Any,
) -> None:
    # Plenty of room, but "db" has a member on every host: whichever host is lost, its member
    # could only go beside another member, which Nova's scheduler refuses.
    spec = {
        **topology(
            [{"name": name, "vcpus": 16} for name in HOSTS],
            [s for name in HOSTS for s in servers([f"{name}-db"], name, flavor="m1.tiny")],
        ),
        "server_groups": [{"name": "db", "members": [f"{name}-db" for name in HOSTS]}],
    }
    cloud = cloud_factory(spec, env=FAST)
    cloud.apply(segment("rack-a"), *(host(name, "rack-a") for name in HOSTS))
    status = _capacity(cloud, False)
    capacity = status["capacity"]
    assert capacity["unplacedInstances"] == 1
    [named] = capacity["separatedGroups"]
    assert named.startswith("db ("), capacity
    condition = _condition(status)
    print(condition["message"])
    assert (condition["status"], condition["reason"]) == ("False", "InsufficientCapacity")
    assert named in condition["message"]
    # A fourth host free of the group: any loss has somewhere to go.
    cloud.apply(host("compute4", "rack-a"))
    cloud.sim.control(
        "POST",
        "topology",
        {
            **spec,
            "hosts": [{"name": name, "vcpus": 16} for name in [*HOSTS, "compute4"]],
        },
    )
    status = _capacity(cloud, True)
    assert status["capacity"]["hostsChecked"] == 4
    assert not status["capacity"].get("separatedGroups")


def test_no_readiness_check_lists_the_cloud_while_a_host_of_it_is_being_recovered(
    cloud_factory: Any,
) -> None:
    """The check lists every server of the cloud: on the real-Nova lab its listings took
    nova-api 1.3-2.2 s in the middle of thirty evacuations. It waits for the recovery, and
    checks again after it (compute1, failed, then neither loses nor receives)."""
    cloud = cloud_factory(TOPOLOGY, env=FAST)
    cloud.apply(segment("rack-a"), *(host(name, "rack-a") for name in HOSTS))
    assert _capacity(cloud, True)["capacity"]["hostsChecked"] == 3
    cloud.sim.control("PUT", "timing", {"evacuation_seconds": 4})
    cloud.sim.control("POST", "hosts/compute1/kill")
    cloud.apply(host_failure("c1", "compute1"))
    cloud.wait_phase("fev", "c1", {"Running"})
    said = "readiness not checked while compute1 is being recovered"
    wait_for("the check put off", lambda: said in cloud.operator.log(), timeout=10)
    status = cloud.wait_phase("fev", "c1", {"Finished", "Failed", "Error"}, timeout=60)
    assert status["phase"] == "Finished", status

    def checked_after() -> dict[str, Any] | None:
        found = cloud.status("fseg", "rack-a").get("capacity") or {}
        return found if found.get("hostsChecked") == 2 else None

    wait_for("a check after the recovery", checked_after, timeout=30)

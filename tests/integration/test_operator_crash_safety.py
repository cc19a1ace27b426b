"""Principle 3: the operator SIGKILLed at each step of a host recovery, then started again,
finishes the recovery without evacuating any server twice (the simulator counts)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.operator_env import host, host_failure, segment, servers, topology

pytestmark = pytest.mark.integration

HOSTS = [{"name": f"compute{i}", "vcpus": 16} for i in (1, 2, 3)]
NAMES = [f"vm-{i}" for i in range(8)]
Probe = Callable[[dict[str, Any]], bool]


def step_done(name: str) -> Probe:
    done = ("SUCCESS", "SKIPPED")
    return lambda s: any(t["name"] == name and t["state"] in done for t in s.get("steps", []))


def moves_in(state: str, at_least: int) -> Probe:
    return lambda s: sum(m["status"] == state for m in s.get("instances", [])) >= at_least


KILL_POINTS: dict[str, Probe] = {
    "just-created": lambda s: True,
    "fencing-recorded": step_done("FenceHostTask"),
    "service-disabled": step_done("DisableComputeServiceTask"),
    "instances-listed": step_done("PrepareHAEnabledInstancesTask"),
    "first-evacuations-ongoing": moves_in("ongoing", 1),
    "half-moved": moves_in("succeeded", 4),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_killed_operator_resumes_without_a_second_evacuation(
    cloud_factory: Any, point: str
) -> None:
    cloud = cloud_factory(
        topology(
            HOSTS,
            servers(NAMES[:6], "compute1", metadata={"HA_Enabled": "True"})
            + servers(NAMES[6:], "compute1", state="stopped"),
        ),
        sim_args=("--evacuation-seconds", "1.5"),
    )
    cloud.apply(
        segment(hostFailure={"evacuationConcurrency": 2}), *(host(h["name"]) for h in HOSTS)
    )
    cloud.sim.control("POST", "hosts/compute1/kill")
    cloud.apply(host_failure("c1", "compute1"))

    probe = KILL_POINTS[point]
    deadline = time.monotonic() + 60
    while not probe(status := cloud.status("fev", "c1")):
        assert time.monotonic() < deadline, f"never reached {point}: {status}"
        assert status.get("phase") != "Finished", f"finished before {point}"
        time.sleep(0.02)
    cloud.operator.kill()
    at_kill = cloud.status("fev", "c1")
    cloud.operator.start()

    status = cloud.wait_phase("fev", "c1", {"Finished", "Failed", "Ignored"}, 90)
    assert status["phase"] == "Finished", (point, status)
    assert all(m["status"] == "succeeded" for m in status["instances"]), status["instances"]
    counts = cloud.sim.control("GET", "evacuations")["evacuations"]
    assert sorted(counts.values()) == [1] * len(NAMES), (point, counts, at_kill)
    nova = cloud.nova()
    found = {s.name: s for s in nova.compute.servers(all_projects=True)}
    assert not any(s.is_locked for s in found.values()), point
    assert {found[n].status for n in NAMES[6:]} == {"SHUTOFF"}
    assert cloud.operator.starts == 2

"""Principle 3 for the BMC fencing step: the operator SIGKILLed after it recorded a fencing
request and before the confirmation, then started again, waits on the request already at the
BMC instead of sending a second power off, and evacuates only once the power is read back Off
and recorded. The sushy-tools emulator counts the power offs it received and holds its answer to
the first one, so the kill lands while that request is known to be at the BMC and not yet in
effect."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness.bmc import BMCLab, credentials_secret, running_bmc_lab
from tests.integration.operator_env import host, host_failure, segment, servers, topology, wait_for
from tests.integration.test_operator_bmc_fencing import assert_fenced_then_evacuated
from tests.integration.test_operator_crash_safety import step_done

pytestmark = pytest.mark.integration

HOSTS = ["compute1", "compute2", "compute3"]


@pytest.fixture
def lab() -> Iterator[BMCLab]:
    with running_bmc_lab(HOSTS, held=("compute1",)) as running:
        yield running


def test_killed_during_a_power_off_the_operator_neither_fences_twice_nor_evacuates_early(
    cloud_factory: Any, lab: BMCLab
) -> None:
    cloud = cloud_factory(
        topology(
            [{"name": h, "vcpus": 16} for h in HOSTS],
            servers(["vm-a", "vm-b"], "compute1") + servers(["vm-c"], "compute2"),
        )
    )
    fenced = segment(fencing="redfish", hostFailure={"fencingTimeoutSeconds": 90})
    # Long enough for the held request, the restart and the emulator's 1 to 11 s to take effect:
    # a second request within it would be needless, and after it the test would prove nothing.
    fenced["spec"]["fencing"].update(attempts=2, attemptTimeoutSeconds=40)
    cloud.apply(
        credentials_secret("bmc-credentials", lab.secret_data),
        fenced,
        *(host(h, bmc=lab.bmc("redfish", h)) for h in HOSTS),
    )
    cloud.sim.control("POST", "hosts/compute1/kill")
    reported = time.monotonic()
    cloud.apply(host_failure("c1", "compute1", host_status="UNKNOWN"))

    wait_for(
        "the power off at the BMC",
        lambda: lab.power_off_requests("redfish", "compute1") >= 1,
        timeout=60,
        interval=0.02,
    )
    cloud.operator.kill()
    killed = time.monotonic()
    at_kill = cloud.status("fev", "c1")
    fencing = at_kill["fencing"]
    # The kill point: the request recorded, the confirmation not.
    assert fencing["requests"] == 1 and fencing.get("lastRequestTime"), at_kill
    assert "confirmedTime" not in fencing and not step_done("FenceHostTask")(at_kill), at_kill
    assert cloud.sim.control("GET", "evacuations")["evacuations"] == {}

    cloud.operator.start()
    restarted = time.monotonic()
    # The request the dead operator sent now goes on, and the system powers off some seconds
    # later; the new operator reads On until then.
    lab.release_power_off("compute1")
    status = cloud.wait_phase("fev", "c1", {"Finished", "Failed", "Ignored"}, 120)
    finished = time.monotonic()
    print(
        f"\nreported -> killed at the BMC's power off {killed - reported:.2f}s, "
        f"restart {restarted - killed:.2f}s, -> Finished {finished - restarted:.2f}s; "
        f"power-off requests at the BMC: {lab.power_off_requests('redfish', 'compute1')}"
    )
    # Nothing moved before the proof was recorded, and one power off did it.
    fencing = assert_fenced_then_evacuated(cloud, status, moved=2)
    assert fencing["requests"] == 1, fencing
    assert lab.power_off_requests("redfish", "compute1") == 1
    assert lab.redfish_power("compute1") == "Off"
    assert cloud.operator.starts == 2

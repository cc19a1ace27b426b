"""Fencing through a BMC, end to end on the real API server: a host reported down (and not
said NORMAL) is powered off by the operator through its BMC, the power read back Off, and only
then are its instances evacuated; a host whose BMC refuses the credentials or does not answer is
never evacuated, and its event says why and for how long it waited."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness.bmc import BMCLab, running_bmc_lab, secret_data
from tests.integration.operator_env import host, host_failure, segment, servers, topology

pytestmark = pytest.mark.integration

HOSTS = ["compute1", "compute2", "compute3"]
DONE = {"Finished", "Ignored", "Failed"}


@pytest.fixture
def lab() -> Iterator[BMCLab]:
    with running_bmc_lab(HOSTS) as running:
        yield running


def secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data}


def bmc(lab: BMCLab, method: str, name: str, credentials: str = "bmc-credentials") -> Any:
    if method == "redfish":
        return {
            "address": lab.redfish_url,
            "system": lab.systems[name],
            "credentialsSecret": credentials,
        }
    return {"address": lab.ipmi[name], "credentialsSecret": credentials}


def setup(
    cloud_factory: Any, lab: BMCLab, method: str, fencing_timeout: int = 20, **bmc_of: Any
) -> Any:
    cloud = cloud_factory(
        topology(
            [{"name": h, "vcpus": 16} for h in HOSTS],
            servers(["vm-a", "vm-b"], "compute1") + servers(["vm-c"], "compute2"),
        )
    )
    fenced = segment(
        fencing=method,
        hostFailure={"fencingTimeoutSeconds": fencing_timeout, "evacuationTimeoutSeconds": 60},
    )
    # The emulator powers a system off 1 to 11 s after the request: one attempt must outlast it.
    fenced["spec"]["fencing"].update(attempts=2, attemptTimeoutSeconds=15)
    cloud.apply(
        secret("bmc-credentials", lab.secret_data),
        secret("bmc-wrong", secret_data(lab.username, "not-the-password")),
        fenced,
        *(host(h, bmc=bmc_of.get(h, bmc(lab, method, h))) for h in HOSTS),
    )
    return cloud


@pytest.mark.parametrize("method", ["redfish", "ipmi"])
def test_a_host_is_powered_off_before_its_instances_move(
    cloud_factory: Any, lab: BMCLab, method: str
) -> None:
    cloud = setup(cloud_factory, lab, method, fencing_timeout=60)
    cloud.sim.control("POST", "hosts/compute1/kill")
    cloud.apply(host_failure("c1", "compute1", host_status="UNKNOWN"))
    status = cloud.wait_phase("fev", "c1", DONE, 90)
    assert (status["phase"], status["reason"]) == ("Finished", "Recovered"), status
    fencing = status["fencing"]
    assert fencing["requests"] >= 1 and "PowerState Off" in fencing["proof"], fencing
    assert status["steps"][0]["name"] == "FenceHostTask"
    assert status["steps"][0]["state"] == "SUCCESS"
    if method == "redfish":
        assert lab.redfish_power("compute1") == "Off"
    # Every move started after the proof was recorded.
    starts = [m["startTime"] for m in status["instances"]]
    assert starts and min(starts) >= fencing["confirmedTime"], (starts, fencing)
    counts = cloud.sim.control("GET", "evacuations")["evacuations"]
    assert sorted(counts.values()) == [1, 1], counts
    log = cloud.operator.log()
    assert lab.password not in log and lab.username not in log


@pytest.mark.parametrize("broken", ["credentials-refused", "bmc-silent"])
def test_a_host_that_cannot_be_powered_off_is_never_evacuated(
    cloud_factory: Any, lab: BMCLab, broken: str
) -> None:
    wrong = (
        {
            "address": lab.redfish_url,
            "system": lab.systems["compute1"],
            "credentialsSecret": "bmc-wrong",
        }
        if broken == "credentials-refused"
        else {"address": lab.silent_redfish, "credentialsSecret": "bmc-credentials"}
    )
    # A silent BMC costs the driver's 20 s deadline per read and per request: two attempts
    # need about 100 s to be spent.
    timeout = 30 if broken == "credentials-refused" else 150
    cloud = setup(cloud_factory, lab, "redfish", timeout, compute1=wrong)
    cloud.sim.control("POST", "hosts/compute1/kill")
    cloud.apply(host_failure("c1", "compute1"))  # NORMAL: the reporter's word does not count
    status = cloud.wait_phase("fev", "c1", DONE, timeout + 60)
    assert (status["phase"], status["reason"]) == ("Ignored", "HostNotConfirmedDown"), status
    expected = "CredentialsRefused" if broken == "credentials-refused" else "BMCUnreachable"
    assert expected in status["message"] and "after" in status["message"], status["message"]
    assert status["fencing"]["requests"] == 2
    assert [s["name"] for s in status["steps"]] == ["FenceHostTask"]
    assert cloud.sim.control("GET", "evacuations")["evacuations"] == {}
    assert lab.redfish_power("compute1") == "On"
    assert lab.password not in cloud.operator.log()

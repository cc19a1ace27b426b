"""Fencing through a BMC, end to end on the real API server: a host reported down (and not
said NORMAL) is powered off by the operator through its BMC, the power read back Off, and only
then are its instances evacuated; a host whose BMC refuses the credentials, does not answer, or
accepts the power off and keeps reading On is never evacuated, and its event says why and for
how long it waited. Each case runs for Redfish (the sushy-tools emulator) and IPMI (a pyghmi
peer)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness.bmc import BMCLab, credentials_secret, running_bmc_lab, secret_data
from tests.integration.operator_env import host, host_failure, segment, servers, topology

pytestmark = pytest.mark.integration

HOSTS = ["compute1", "compute2", "compute3"]
DONE = {"Finished", "Ignored", "Failed"}


@pytest.fixture
def lab() -> Iterator[BMCLab]:
    with running_bmc_lab(HOSTS) as running:
        yield running


@pytest.fixture
def stuck_lab() -> Iterator[BMCLab]:
    """compute1's BMCs accept a power off and keep the system on."""
    with running_bmc_lab(HOSTS, stuck_on=("compute1",)) as running:
        yield running


def setup(
    cloud_factory: Any,
    lab: BMCLab,
    method: str,
    fencing_timeout: int = 20,
    attempt_timeout: int = 15,
    **bmc_of: Any,
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
    # The emulator powers a system off 1 to 11 s after the request: one attempt that is to
    # succeed must outlast it (15 s).
    fenced["spec"]["fencing"].update(attempts=2, attemptTimeoutSeconds=attempt_timeout)
    cloud.apply(
        credentials_secret("bmc-credentials", lab.secret_data),
        credentials_secret("bmc-wrong", secret_data(lab.username, "not-the-password")),
        fenced,
        *(host(h, bmc=bmc_of.get(h, lab.bmc(method, h))) for h in HOSTS),
    )
    return cloud


def assert_fenced_then_evacuated(cloud: Any, status: dict[str, Any], moved: int) -> dict[str, Any]:
    """The event Finished after a fencing step that powered the host off and read it back Off,
    every move starting after that proof was recorded, and each of `moved` servers evacuated
    once; its status.fencing returned."""
    assert (status["phase"], status["reason"]) == ("Finished", "Recovered"), status
    fencing: dict[str, Any] = status["fencing"]
    assert fencing["requests"] >= 1 and "PowerState Off" in fencing["proof"], fencing
    step = status["steps"][0]
    assert (step["name"], step["state"]) == ("FenceHostTask", "SUCCESS"), status["steps"]
    starts = [m["startTime"] for m in status["instances"]]
    assert starts and min(starts) >= fencing["confirmedTime"], (starts, fencing)
    counts = cloud.sim.control("GET", "evacuations")["evacuations"]
    assert sorted(counts.values()) == [1] * moved, counts
    return fencing


@pytest.mark.parametrize("method", ["redfish", "ipmi"])
def test_a_host_is_powered_off_before_its_instances_move(
    cloud_factory: Any, lab: BMCLab, method: str
) -> None:
    cloud = setup(cloud_factory, lab, method, fencing_timeout=60)
    cloud.sim.control("POST", "hosts/compute1/kill")
    cloud.apply(host_failure("c1", "compute1", host_status="UNKNOWN"))
    status = cloud.wait_phase("fev", "c1", DONE, 90)
    assert_fenced_then_evacuated(cloud, status, moved=2)
    if method == "redfish":
        assert lab.redfish_power("compute1") == "Off"
    log = cloud.operator.log()
    assert lab.password not in log and lab.username not in log


def broken_bmc(lab: BMCLab, method: str, broken: str) -> dict[str, str]:
    if broken == "credentials-refused":
        return lab.bmc(method, "compute1", credentials="bmc-wrong")
    silent = lab.silent_redfish if method == "redfish" else lab.silent_ipmi
    return {"address": silent, "credentialsSecret": "bmc-credentials"}


# A silent Redfish BMC costs the driver's 20 s deadline per read and per request: two attempts
# need about 100 s to be spent. pyghmi gives up on an unanswered IPMI login after about 6 s.
TIMEOUTS = {
    ("redfish", "credentials-refused"): 30,
    ("ipmi", "credentials-refused"): 30,
    ("redfish", "bmc-silent"): 150,
    ("ipmi", "bmc-silent"): 60,
}


@pytest.mark.parametrize(("method", "broken"), list(TIMEOUTS))
def test_a_host_that_cannot_be_powered_off_is_never_evacuated(
    cloud_factory: Any, lab: BMCLab, method: str, broken: str
) -> None:
    timeout = TIMEOUTS[method, broken]
    cloud = setup(cloud_factory, lab, method, timeout, compute1=broken_bmc(lab, method, broken))
    cloud.sim.control("POST", "hosts/compute1/kill")
    reported = time.monotonic()
    cloud.apply(host_failure("c1", "compute1"))  # NORMAL: the reporter's word does not count
    status = cloud.wait_phase("fev", "c1", DONE, timeout + 60)
    print(f"\n{method} {broken}: reported -> {status['reason']} in "
          f"{time.monotonic() - reported:.1f}s: {status['message']}")  # fmt: skip
    assert (status["phase"], status["reason"]) == ("Ignored", "HostNotConfirmedDown"), status
    expected = "CredentialsRefused" if broken == "credentials-refused" else "BMCUnreachable"
    assert expected in status["message"] and "after" in status["message"], status["message"]
    assert status["fencing"]["requests"] == 2
    assert [s["name"] for s in status["steps"]] == ["FenceHostTask"]
    assert cloud.sim.control("GET", "evacuations")["evacuations"] == {}
    # compute1's own BMC never saw a power off: refused at the login, or never reached.
    assert lab.power_off_requests(method, "compute1") == 0
    if method == "redfish":
        assert lab.redfish_power("compute1") == "On"
    assert lab.password not in cloud.operator.log()


@pytest.mark.parametrize("method", ["redfish", "ipmi"])
def test_a_host_whose_power_stays_on_is_never_evacuated(
    cloud_factory: Any, stuck_lab: BMCLab, method: str
) -> None:
    """The BMC accepts every power off and the host keeps reading On: each request has its
    attempt timeout to take effect, then the event ends, naming what the BMC said and how long
    the operator waited."""
    cloud = setup(cloud_factory, stuck_lab, method, fencing_timeout=60, attempt_timeout=5)
    cloud.sim.control("POST", "hosts/compute1/kill")
    reported = time.monotonic()
    cloud.apply(host_failure("c1", "compute1", host_status="UNKNOWN"))
    status = cloud.wait_phase("fev", "c1", DONE, 90)
    elapsed = time.monotonic() - reported
    message = status["message"]
    print(f"\n{method} stuck on: reported -> {status['reason']} in {elapsed:.1f}s, "
          f"{status['fencing']['requests']} request(s) at the operator, "
          f"{stuck_lab.power_off_requests(method, 'compute1')} at the BMC: {message}")  # fmt: skip
    assert (status["phase"], status["reason"]) == ("Ignored", "HostNotConfirmedDown"), status
    assert f"its BMC reports PowerState On ({method})" in message, message
    assert re.search(r"not confirmed off after \d+s and 2 fencing request\(s\)", message), message
    fencing = status["fencing"]
    assert fencing["requests"] == 2 and "confirmedTime" not in fencing, fencing
    # Both requests reached the BMC and were acknowledged: no error to blame but the power.
    assert stuck_lab.power_off_requests(method, "compute1") == 2
    assert "lastError" not in fencing, fencing
    step = status["steps"][0]
    assert (step["name"], step["state"]) == ("FenceHostTask", "FAILURE"), status["steps"]
    assert [s["name"] for s in status["steps"]] == ["FenceHostTask"]
    assert cloud.sim.control("GET", "evacuations")["evacuations"] == {}
    if method == "redfish":
        assert stuck_lab.redfish_power("compute1") == "On"

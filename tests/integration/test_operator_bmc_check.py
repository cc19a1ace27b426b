"""The BMC check on the real API server: the operator reads each Host's BMC Secret, asks the
BMC for the power state (the sushy-tools Redfish emulator, or a pyghmi IPMI peer), and the host
pass shows the answer as the Host's FencingReady condition and as a metric, with no credential in
the operator's log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness.bmc import BMCLab, credentials_secret, running_bmc_lab, secret_data
from tests.integration.operator_env import host, segment, topology, wait_for

pytestmark = pytest.mark.integration

HOSTS = ["compute0", "compute1", "compute2"]
WRONG_PASSWORD = "wrong-password-4c1d"


@pytest.fixture
def lab() -> Iterator[BMCLab]:
    with running_bmc_lab(["compute0", "compute1"]) as running:
        yield running


def fencing_ready(cloud: Any) -> dict[str, tuple[str, str] | None]:
    listed = cloud.cluster.kubectl("get", "mhost", "-n", cloud.namespace, "-o", "json")
    shown: dict[str, tuple[str, str] | None] = {}
    for item in json.loads(listed.stdout)["items"]:
        conditions = (item.get("status") or {}).get("conditions") or []
        found = [c for c in conditions if c["type"] == "FencingReady"]
        shown[item["metadata"]["name"]] = (
            (found[0]["status"], found[0]["reason"]) if found else None
        )
    return shown


@pytest.mark.parametrize("method", ["redfish", "ipmi"])
def test_fencing_ready_shows_each_bmc_as_checked(
    cloud_factory: Any, lab: BMCLab, method: str
) -> None:
    cloud = cloud_factory(topology([{"name": h, "vcpus": 8} for h in HOSTS], []))
    bmc_segment = segment(fencing=method)
    bmc_segment["spec"]["fencing"]["bmcCheckIntervalSeconds"] = 10
    cloud.apply(
        credentials_secret("bmc-good", lab.secret_data),
        credentials_secret("bmc-wrong", secret_data(lab.username, WRONG_PASSWORD)),
        bmc_segment,
        *(
            host(name, bmc=lab.bmc(method, name, secret_name))
            for name, secret_name in (("compute0", "bmc-good"), ("compute1", "bmc-wrong"))
        ),
        host("compute2"),
    )
    expected = {
        "compute0": ("True", "BMCReady"),
        "compute1": ("False", "CredentialsRefused"),
        "compute2": ("False", "CredentialsMissing"),
    }
    try:
        wait_for("FencingReady on every host", lambda: fencing_ready(cloud) == expected, 60)
    except AssertionError:
        print(fencing_ready(cloud))
        raise

    metrics = cloud.operator.metrics()
    assert f'masakari_bmc_fencing_ready{{host="compute0",namespace="{cloud.namespace}"}} 1.0' in (
        metrics
    )
    assert f'masakari_bmc_fencing_ready{{host="compute1",namespace="{cloud.namespace}"}} 0.0' in (
        metrics
    )
    # The Host's status, its Events and the operator's log carry no credential.
    described = cloud.cluster.kubectl("describe", "mhost", "-n", cloud.namespace).stdout
    for text in (cloud.operator.log(), described, metrics):
        assert lab.password not in text
        assert WRONG_PASSWORD not in text
        assert lab.username not in text

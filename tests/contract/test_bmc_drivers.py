"""The BMC drivers (controller.drivers.bmc) against BMCs on loopback, both protocols alike:
Redfish through sushy against the sushy-tools emulator, IPMI through pyghmi against a pyghmi BMC
peer (tests.harness.bmc).

The Secrets are a dict here: the one read the drivers make (`secret(namespace, name)`, Gone when
absent) is KubeClouds' own, tested against the API server elsewhere; what is under test is
everything between that read and the BMC.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from controller.drivers.bmc import BMCPower
from controller.drivers.kube import Gone
from controller.recovery.power import (
    BMCError,
    BMCUnreachable,
    CredentialsMissing,
    CredentialsRefused,
    PowerState,
)
from controller.resources.host import BMC
from controller.resources.segment import FencingMethod
from tests.harness.bmc import BMCLab, running_bmc_lab, secret_data

NAMESPACE = "cloud"
GOOD, WRONG, NO_PASSWORD = "bmc-good", "bmc-wrong", "bmc-no-password"
WRONG_PASSWORD = "not-the-password-7f3a"
OFF_WITHIN = 20.0  # the emulator's fake driver settles a power action within 11 s
METHODS = [FencingMethod.REDFISH, FencingMethod.IPMI]
HOSTS = ["read", "fence", "already-off", "refused"]


class Secrets:
    def __init__(self, secrets: dict[str, dict[str, str]]) -> None:
        self.secrets = secrets
        self.reads = 0

    async def secret(self, namespace: str, name: str) -> dict[str, Any]:
        self.reads += 1
        if namespace != NAMESPACE or name not in self.secrets:
            raise Gone(f"secrets {name} not found")
        return {"metadata": {"name": name}, "data": dict(self.secrets[name])}


@pytest.fixture(scope="module")
def lab() -> Iterator[BMCLab]:
    with running_bmc_lab(HOSTS, power={"already-off": "Off"}) as running:
        yield running


@pytest.fixture
def secrets(lab: BMCLab) -> Secrets:
    good = lab.secret_data
    return Secrets(
        {
            GOOD: good,
            WRONG: secret_data(lab.username, WRONG_PASSWORD),
            NO_PASSWORD: {"username": good["username"]},
        }
    )


def bmc_of(lab: BMCLab, method: FencingMethod, host: str, secret: str = GOOD) -> BMC:
    if method == FencingMethod.REDFISH:
        return BMC(address=lab.redfish_url, system=lab.systems[host], credentials_secret=secret)
    return BMC(address=lab.ipmi[host], credentials_secret=secret)


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


@pytest.mark.parametrize("method", METHODS)
def test_reads_the_power_state(lab: BMCLab, secrets: Secrets, method: FencingMethod) -> None:
    power = BMCPower(secrets, timeout=10)
    assert run(power.power_state(NAMESPACE, method, bmc_of(lab, method, "read"))) == PowerState.ON
    assert run(power.power_state(NAMESPACE, method, bmc_of(lab, method, "already-off"))) == (
        PowerState.OFF
    )


async def _off_and_read_back(power: BMCPower, method: FencingMethod, bmc: BMC) -> float:
    started = time.monotonic()
    await power.power_off(NAMESPACE, method, bmc)
    while await power.power_state(NAMESPACE, method, bmc) != PowerState.OFF:
        assert time.monotonic() - started < OFF_WITHIN, "still On after the power off"
        await asyncio.sleep(0.2)
    return time.monotonic() - started


@pytest.mark.parametrize("method", METHODS)
def test_power_off_reads_back_off(lab: BMCLab, secrets: Secrets, method: FencingMethod) -> None:
    power = BMCPower(secrets, timeout=10)
    bmc = bmc_of(lab, method, "fence")
    assert run(power.power_state(NAMESPACE, method, bmc)) == PowerState.ON
    elapsed = run(_off_and_read_back(power, method, bmc))
    print(f"\n{method}: power off read back Off in {elapsed:.2f}s")
    if method == FencingMethod.REDFISH:
        assert lab.redfish_power("fence") == "Off"  # the emulator agrees, read without sushy


@pytest.mark.parametrize("method", METHODS)
def test_an_already_off_host_stays_off(
    lab: BMCLab, secrets: Secrets, method: FencingMethod
) -> None:
    power = BMCPower(secrets, timeout=10)
    bmc = bmc_of(lab, method, "already-off")
    run(power.power_off(NAMESPACE, method, bmc))
    assert run(power.power_state(NAMESPACE, method, bmc)) == PowerState.OFF
    if method == FencingMethod.REDFISH:
        assert lab.redfish_power("already-off") == "Off"


@pytest.mark.parametrize("method", METHODS)
def test_refused_credentials(lab: BMCLab, secrets: Secrets, method: FencingMethod) -> None:
    power = BMCPower(secrets, timeout=10)
    bmc = bmc_of(lab, method, "refused", secret=WRONG)
    with pytest.raises(CredentialsRefused) as refused:
        run(power.power_state(NAMESPACE, method, bmc))
    assert refused.value.reason == "CredentialsRefused"
    with pytest.raises(CredentialsRefused):
        run(power.power_off(NAMESPACE, method, bmc))
    # Refused, so nothing was done: the host is still on.
    assert run(power.power_state(NAMESPACE, method, bmc_of(lab, method, "refused"))) == (
        PowerState.ON
    )


@pytest.mark.parametrize("method", METHODS)
def test_no_answer_is_unreachable_within_the_timeout(
    lab: BMCLab, secrets: Secrets, method: FencingMethod
) -> None:
    timeout = 3.0
    power = BMCPower(secrets, timeout=timeout)
    silent = lab.silent_redfish if method == FencingMethod.REDFISH else lab.silent_ipmi
    bmc = BMC(address=silent, credentials_secret=GOOD)
    started = time.monotonic()
    with pytest.raises(BMCUnreachable):
        run(power.power_state(NAMESPACE, method, bmc))
    assert time.monotonic() - started < timeout + 1.0
    started = time.monotonic()
    with pytest.raises(BMCUnreachable):
        run(power.power_off(NAMESPACE, method, bmc))
    assert time.monotonic() - started < timeout + 1.0


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("secret", ["bmc-absent", NO_PASSWORD])
def test_missing_secret_or_key(
    lab: BMCLab, secrets: Secrets, method: FencingMethod, secret: str
) -> None:
    power = BMCPower(secrets, timeout=10)
    bmc = bmc_of(lab, method, "read", secret=secret)
    with pytest.raises(CredentialsMissing) as missing:
        run(power.power_off(NAMESPACE, method, bmc))
    assert secret in str(missing.value)
    # Nothing reached the BMC: the host is still on.
    assert run(power.power_state(NAMESPACE, method, bmc_of(lab, method, "read"))) == (PowerState.ON)


def test_no_credential_text_in_logs_or_errors(
    lab: BMCLab, secrets: Secrets, caplog: pytest.LogCaptureFixture
) -> None:
    """Every outcome, at DEBUG for every logger (sushy, urllib3 and pyghmi included): neither
    the username nor either password appears in a log record or an error message."""
    caplog.set_level(logging.DEBUG)
    power = BMCPower(secrets, timeout=3)
    messages: list[str] = []

    async def outcomes() -> None:
        for method in METHODS:
            silent = lab.silent_redfish if method == FencingMethod.REDFISH else lab.silent_ipmi
            cases = [
                bmc_of(lab, method, "read"),
                bmc_of(lab, method, "refused", secret=WRONG),
                bmc_of(lab, method, "read", secret=NO_PASSWORD),
                BMC(address=silent, credentials_secret=GOOD),
            ]
            for bmc in cases:
                try:
                    messages.append(str(await power.power_state(NAMESPACE, method, bmc)))
                except BMCError as error:
                    messages.append(f"{error.reason}: {error!s} {error!r}")

    run(outcomes())
    assert len(messages) == 8
    assert any("CredentialsRefused" in m for m in messages)  # the wrong password was sent
    text = "\n".join(messages) + "\n" + caplog.text
    assert lab.password not in text
    assert WRONG_PASSWORD not in text
    assert lab.username not in text


@pytest.mark.parametrize("method", METHODS)
def test_credentials_are_reused_for_reads_and_reread_after_a_refusal(
    lab: BMCLab, secrets: Secrets, method: FencingMethod
) -> None:
    """Reading the Secret on every call cost 8 reads a second at 5,000 hosts; a rotated
    password must still be picked up at the next call after the BMC refuses the old one."""
    power = BMCPower(secrets, timeout=10)
    bmc = bmc_of(lab, method, "read", secret="rotated")
    secrets.secrets["rotated"] = lab.secret_data
    for _ in range(3):
        assert run(power.power_state(NAMESPACE, method, bmc)) == PowerState.ON
    assert secrets.reads == 1
    # The Secret changes: reads go on with what was read, a power off reads it afresh.
    secrets.secrets["rotated"] = secret_data(lab.username, WRONG_PASSWORD)
    assert run(power.power_state(NAMESPACE, method, bmc)) == PowerState.ON
    assert secrets.reads == 1
    # Refused (pyghmi does not always say so after good logins: a BMCError then).
    with pytest.raises(BMCError):
        run(power.power_off(NAMESPACE, method, bmc))
    assert secrets.reads == 2
    # Failed, the credentials were dropped: the next read takes the Secret as it is now.
    secrets.secrets["rotated"] = lab.secret_data
    assert run(power.power_state(NAMESPACE, method, bmc)) == PowerState.ON
    assert secrets.reads == 3

"""What the BMC drivers make of a Host's spec.bmc.address, and the scrubbing of library text
before it reaches a message."""

from __future__ import annotations

import pytest

from controller.drivers.bmc.credentials import Credentials
from controller.drivers.bmc.ipmi import endpoint
from controller.drivers.bmc.redfish import base_url


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("10.0.0.5", ("10.0.0.5", 623)),
        ("10.0.0.5:6230", ("10.0.0.5", 6230)),
        ("bmc-01.example", ("bmc-01.example", 623)),
        ("[fd00::5]", ("fd00::5", 623)),
        ("[fd00::5]:6230", ("fd00::5", 6230)),
        ("fd00::5", ("fd00::5", 623)),  # a bare IPv6 address has no port
    ],
)
def test_ipmi_endpoints(address: str, expected: tuple[str, int]) -> None:
    assert endpoint(address) == expected


def test_a_redfish_address_without_scheme_is_https() -> None:
    assert base_url("10.0.0.5:8443") == "https://10.0.0.5:8443"
    assert base_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000"


def test_credentials_are_scrubbed_and_never_shown() -> None:
    credentials = Credentials("admin-7", "s3cret-admin-7")
    text = "GET https://admin-7:s3cret-admin-7@10.0.0.5/ failed for admin-7"
    scrubbed = credentials.scrub(text)
    assert "s3cret" not in scrubbed and "admin-7" not in scrubbed
    assert "s3cret" not in repr(credentials) and "admin-7" not in f"{credentials}"

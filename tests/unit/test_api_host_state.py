"""The Masakari API's `on_maintenance` and `reserved` as Masakari clients read them: Masakari
flips them itself (a failed host goes on maintenance, a reserved host a recovery took is no
longer reserved); here the operator records those facts in status, and the API shows them."""

from __future__ import annotations

from typing import Any

import pytest

from controller.api import views
from controller.api.contents import trim
from controller.drivers.kube import PLURAL


def _host(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {
            "name": "compute1",
            "uid": "5e4cc7a0-3f0c-4b0e-9a53-0c1b7a1f2c11",
            "creationTimestamp": "2026-12-02T10:00:00Z",
        },
        "spec": {"segment": "seg", **spec},
    }
    if status is not None:
        body["status"] = status
    return body


@pytest.mark.parametrize(
    ("spec", "status", "on_maintenance", "reserved"),
    [
        ({}, {"phase": "Active"}, False, False),
        ({"onMaintenance": True}, {"phase": "Maintenance"}, True, False),
        ({}, {"phase": "Failed"}, True, False),  # Masakari puts a failed host on maintenance
        ({}, {"phase": "Recovering"}, True, False),
        ({"reserved": True}, {"phase": "Reserved", "reservation": "Available"}, False, True),
        # Masakari clears reserved on the host its recovery took
        ({"reserved": True}, {"phase": "Active", "reservation": "InUse"}, False, False),
        ({"reserved": True}, None, False, True),
    ],
)
def test_on_maintenance_and_reserved_read_as_masakari_sets_them(
    spec: dict[str, Any], status: dict[str, Any] | None, on_maintenance: bool, reserved: bool
) -> None:
    body = trim(PLURAL.hosts, _host(status, **spec))
    shown = views.host(body, None)
    assert (shown["on_maintenance"], shown["reserved"]) == (on_maintenance, reserved)


def test_the_cache_keeps_only_the_phase_and_the_reservation_of_a_hosts_status() -> None:
    status = {"phase": "Failed", "reservation": "NotReserved", "history": [{"phase": "Active"}]}
    assert trim(PLURAL.hosts, _host(status))["status"] == {
        "phase": "Failed",
        "reservation": "NotReserved",
    }

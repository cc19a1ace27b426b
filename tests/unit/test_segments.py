"""A segment's status says, before any failure, whether its host failures can be confirmed."""

from __future__ import annotations

from typing import Any

import pytest

from controller.recovery.segments import summarize
from controller.resources.segment import FailoverSegmentSpec, FailoverSegmentStatus
from tests.unit.fake_cluster import T0


def fencing_ready(method: str, access: bool | None) -> tuple[str, str]:
    spec: dict[str, Any] = {
        "recoveryMethod": "auto",
        "serviceType": "COMPUTE",
        "fencing": {"method": method},
    }
    status = summarize(
        FailoverSegmentSpec.model_validate(spec), FailoverSegmentStatus(), [], [], T0, 1, access
    )
    [condition] = [c for c in status.conditions if c.type == "FencingReady"]
    return condition.status, condition.reason


@pytest.mark.parametrize(
    ("method", "access", "expected"),
    [
        ("pacemaker", True, ("True", "PacemakerConfigured")),
        ("pacemaker", False, ("False", "NoPacemakerAccess")),
        ("pacemaker", None, ("False", "CloudNotBound")),
        ("none", True, ("False", "FencingDisabled")),
        ("none", False, ("False", "FencingDisabled")),
    ],
)
def test_fencing_ready(method: str, access: bool | None, expected: tuple[str, str]) -> None:
    assert fencing_ready(method, access) == expected

"""Who is moved and who keeps room when it is short: selection by project, priority by
metadata and by rules."""

from __future__ import annotations

import pytest

from controller.recovery.instances import instance_priority, select_for_evacuation
from controller.recovery.nova import Flavor, Server
from controller.resources.segment import HostFailurePolicy, PlacementPolicy, PriorityRule


def server(name: str, project: str = "web", flavor: str = "m1.small", **metadata: str) -> Server:
    return Server(
        id=f"uuid-{name}",
        name=name,
        status="ACTIVE",
        vm_state="active",
        task_state=None,
        power_state=1,
        host="h1",
        locked=False,
        flavor=Flavor(flavor, 1, 512, 1),
        metadata=metadata,
        project_id=project,
    )


def test_excluded_projects_stay_where_they_are_with_why() -> None:
    policy = HostFailurePolicy(exclude_projects=["octavia-svc"])
    selection = select_for_evacuation([server("amphora", "octavia-svc"), server("app")], policy)
    assert [s.name for s in selection.evacuate] == ["app"]
    [(left, why)] = selection.left
    assert left.name == "amphora" and why == "project octavia-svc is excluded (excludeProjects)"


RULES = PlacementPolicy(
    priority_rules=[
        PriorityRule(project="billing", flavor="db.large", priority=50),
        PriorityRule(project="billing", priority=20),
        PriorityRule(flavor="batch", priority=-5),
    ]
)


@pytest.mark.parametrize(
    ("instance", "expected"),
    [
        (server("plain"), 0),
        (server("ha", HA_Enabled="True"), 1),  # HA-enabled first within a priority
        (server("meta", HA_Priority="7"), 14),
        (server("meta-wins", "billing", "db.large", HA_Priority="3"), 6),
        (server("rule-both", "billing", "db.large"), 100),
        (server("rule-project", "billing"), 40),
        (server("rule-flavor", "anyone", "batch"), -10),
        (server("garbled", HA_Priority="high"), 0),
        (server("huge", HA_Priority="99999"), 2000),  # clipped: a typo is not an intent
    ],
)
def test_priority_from_metadata_then_rules(instance: Server, expected: int) -> None:
    assert instance_priority(instance, RULES, "HA_Enabled") == expected

"""Maintenance on real Pacemaker with a draining segment: the node stays online (nova-compute
of a Pacemaker-managed compute must keep running) while its instances are live-migrated off on
the simulated Nova, goes to standby once the drain is over, and comes back online and enabled
when maintenance ends."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cluster
from tests.e2e.conftest import LabFactory
from tests.e2e.test_operator_pacemaker import NODES, pacemaker_cloud
from tests.integration.operator_env import host, segment, wait_for

pytestmark = [pytest.mark.pacemaker, pytest.mark.integration]


def test_maintenance_drains_then_standby_and_ends_online_and_enabled(
    lab_factory: LabFactory, cluster: Cluster, tmp_path: Path
) -> None:
    servers = [{"name": f"vm-{i}", "host": "node2"} for i in range(8)]
    with contextlib.ExitStack() as stack:
        lab, cloud = pacemaker_cloud(stack, lab_factory, cluster, tmp_path, "pcmk-drain", servers)
        assert cloud.sim is not None
        cloud.sim.control("PUT", "timing", {"live_migration_seconds": 1.5})
        policy = {"drain": "LiveMigrate", "concurrencyPerHost": 2}
        cloud.apply(segment(fencing="pacemaker", maintenance=policy), *(host(n) for n in NODES))

        def standby(node: str) -> str | None:
            state: str | None = lab.node_states("node1").get(node, {}).get("standby")
            return state

        wait_for(
            "every node online in host status",
            lambda: all(
                (cloud.status("mhost", n).get("pacemaker") or {}).get("state") == "online"
                for n in NODES
            ),
            60,
        )

        cloud.apply(host("node2", onMaintenance=True))
        seen: list[tuple[str, str | None]] = []

        def drained() -> dict[str, Any] | None:
            drain: dict[str, Any] = cloud.status("mhost", "node2").get("drain") or {}
            seen.append((str(drain.get("phase")), standby("node2")))
            return drain if drain.get("phase") in ("Drained", "Incomplete") else None

        drain = wait_for("node2 drained", drained, 120, interval=0.5)
        assert drain["phase"] == "Drained", drain
        # Never in standby while its instances were moving.
        assert ("Draining", "true") not in seen, seen
        assert any(phase == "Draining" for phase, _ in seen), seen
        wait_for("node2 in standby", lambda: standby("node2") == "true", 60)
        cloud.wait_phase("mhost", "node2", {"Maintenance"}, 30)
        nova = cloud.nova()
        on = {s.compute_host for s in nova.compute.servers(all_projects=True)}
        assert on <= {"node1", "node3"}, on
        assert sorted(cloud.sim.control("GET", "moves")["moves"].values()) == [1] * 8

        cloud.apply(host("node2"))
        wait_for("node2 online", lambda: standby("node2") == "false", 60)
        cloud.wait_phase("mhost", "node2", {"Active"}, 30)
        service = next(iter(nova.compute.services(binary="nova-compute", host="node2")))
        assert service.status == "enabled"

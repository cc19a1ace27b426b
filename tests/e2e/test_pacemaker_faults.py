"""The Pacemaker row of the fault matrix (issue 16), on the real lab cluster: a node partitioned
but alive, and a node flapping. Each test asserts what must hold (nothing evacuated before the
node is fenced, never twice, one recovery per flap) and prints one line of figures per row,
in the form of tests/integration/test_faults.py (a row of docs/reliability.md); timings are
figures, never asserted.

- Partition: node3's only link goes down (`PacemakerLab.cut`), so its corosync traffic and its
  nova-compute's heartbeats both stop, while node3 runs on with its instances. A report of it
  comes at once, before any fencing, as masakari-monitors' would: only the fencing may let
  anything move. With a fencing that takes 8 s the operator waits and then recovers once; with
  a device that fails every fencing it never evacuates and says why.
- The minority's word: an operator whose Pacemaker access goes through node3, the partitioned
  side, is told that node1 (of the majority) is down, and Nova agrees (node1's nova-compute
  silent in its simulator). Its partition has no quorum: nothing is fenced or moved.
- Flapping: a node powered off, on, off again, each change waited for only until the cluster
  sees it (about 20 s in all). Three reports (STOPPED, STARTED, STOPPED), one recovery; then
  again while the segment's recovery is paused, where the recovery that counts is of the
  second failure (the one that lasts).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from controller.drivers.pacemaker.cluster import CrmCluster
from controller.drivers.pacemaker.runner import LocalRunner
from tests.conftest import Cluster
from tests.e2e.conftest import LabFactory
from tests.e2e.test_operator_pacemaker import NODES, fencings_of, lab_cloud, pacemaker_cloud
from tests.harness.hostmonitor_fleet import HostMonitorFleet
from tests.harness.pacemaker_lab import PacemakerLab
from tests.harness.sim import Sim
from tests.integration.operator_env import Cloud, host, host_failure, segment, wait_for

pytestmark = [pytest.mark.pacemaker, pytest.mark.integration, pytest.mark.timeout(300)]

ENDED = {"Finished", "Failed", "Ignored"}
FENCE_DELAY = 8


def ha_servers(node: str, count: int) -> list[dict[str, Any]]:
    return [
        {"name": f"{node}-vm{i}", "host": node, "metadata": {"HA_Enabled": "True"}}
        for i in range(count)
    ]


@dataclass
class Row:
    """One line of the fault matrix: the reports a fault gave and what they moved."""

    name: str
    began: float = field(default_factory=time.monotonic)  # the fault struck
    reports: list[dict[str, Any]] = field(default_factory=list)  # FailureEvent objects, ended
    evacuations: dict[str, int] = field(default_factory=dict)  # server id -> times, this row
    unfenced: int = 0
    seconds: float = 0.0

    def report(self) -> None:
        statuses = [item.get("status") or {} for item in self.reports]
        # Recoveries: the host-down reports admitted; a STARTED report is a record, not one.
        failures = [
            item.get("status") or {}
            for item in self.reports
            if item["spec"]["payload"]["event"] == "STOPPED"
        ]
        ends: dict[str, int] = {}
        for status in statuses:
            end = f"{status.get('phase')}/{status.get('reason')}"
            ends[end] = ends.get(end, 0) + 1
        # No fault-free run of these scenarios to compare with: a recovery on the lab without
        # the fault is tests/e2e/test_operator_pacemaker.py's, not repeated here.
        print(
            f"\nFAULT-MATRIX | {self.name} | 1 "
            f"| {sum(bool(s.get('attempts')) for s in failures)} "
            f"| {sum(s.get('phase') == 'Finished' for s in failures)} "
            f"| {sum(n - 1 for n in self.evacuations.values() if n > 1)} "
            f"| {self.unfenced} "
            f"| {self.seconds:.1f} s | n/a | n/a "
            f"| {', '.join(f'{k} x{n}' for k, n in sorted(ends.items()))} |",
            flush=True,
        )


def evacuations(sim: Sim) -> dict[str, int]:
    counts: dict[str, int] = sim.control("GET", "evacuations")["evacuations"]
    return counts


def since(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {key: n - before.get(key, 0) for key, n in after.items() if n > before.get(key, 0)}


def moves_unfenced(
    lab: PacemakerLab, node: str, begin: datetime, reports: Iterable[dict[str, Any]]
) -> int:
    """Moves of the reports that started before the node's first successful fencing since
    `begin` (crm_mon's completion times are whole seconds), or with no such fencing at all."""
    floor = begin.replace(microsecond=0)
    fenced = [
        e.completed
        for e in fencings_of(lab, node)
        if e.succeeded and e.completed is not None and e.completed >= floor
    ]
    first = min(fenced) if fenced else None
    return sum(
        1
        for item in reports
        for move in (item.get("status") or {}).get("instances", [])
        if first is None
        or move.get("startTime") is None
        or datetime.fromisoformat(move["startTime"]) < first
    )


def ended(cloud: Cloud, names: Iterable[str], timeout: float) -> list[dict[str, Any]]:
    def done() -> list[dict[str, Any]] | None:
        items = [cloud.get("fev", name) for name in names]
        return items if all((i.get("status") or {}).get("phase") in ENDED for i in items) else None

    try:
        return wait_for(f"{list(names)} to end", done, timeout, 0.25)
    except AssertionError:
        print(cloud.operator.log()[-6000:])
        raise


def pacemaker_online(cloud: Cloud, nodes: Iterable[str]) -> None:
    wait_for(
        f"{list(nodes)} online in their Host status",
        lambda: all(
            (cloud.status("mhost", n).get("pacemaker") or {}).get("onlineSince") for n in nodes
        ),
        60,
    )


def state_of(lab: PacemakerLab, observer: str) -> CrmCluster:
    return CrmCluster(LocalRunner(prefix=tuple(lab.nsenter_prefix(observer))))


def claim(name: str, node: str, source: str) -> dict[str, Any]:
    """A report of `node` down with host_status NORMAL, sent at once: what masakari-monitors'
    hostmonitor sends when crm_mon shows the node offline, fenced or not."""
    report = host_failure(name, node)
    report["spec"]["source"] = source
    return report


def reasons(items: Iterable[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    return {
        i["metadata"]["name"]: ((i.get("status") or {}).get("phase", ""), i["status"]["reason"])
        for i in items
    }


def test_a_partitioned_node_waits_for_its_fencing_then_is_recovered_once(
    lab_factory: LabFactory, cluster: Cluster, tmp_path: Path
) -> None:
    """node3 cut off, alive; the cluster's fencing of it takes FENCE_DELAY seconds. A report
    sent at once waits for it, then node3's instances move once; the host monitors' own report
    (sent once the fencing is on record) is its duplicate, and node3's monitor, in a partition
    without quorum, reports nobody."""
    row = Row(f"Pacemaker: partitioned node, fencing {FENCE_DELAY} s late")
    with contextlib.ExitStack() as stack:
        lab, cloud = pacemaker_cloud(
            stack,
            lab_factory,
            cluster,
            tmp_path,
            "fault-partition",
            ha_servers("node3", 3),
            fence_delay=FENCE_DELAY,
        )
        assert cloud.sim is not None
        sim = cloud.sim
        fleet = HostMonitorFleet(lab, cluster.kubeconfig, cluster.kubectl, cloud.namespace)
        policy = segment(
            fleet.segment, fencing="pacemaker", hostFailure={"fencingTimeoutSeconds": 60}
        )
        # A request outlives the device's delay, so the operator's own request, if it sends
        # one, is answered rather than timed out.
        policy["spec"]["fencing"].update({"attempts": 2, "attemptTimeoutSeconds": 30})
        cloud.apply(policy, *(host(n, fleet.segment) for n in NODES))
        pacemaker_online(cloud, NODES)
        fleet.start_all()
        fleet.wait_ready()

        begin = datetime.now(UTC)
        row.began = time.monotonic()
        lab.cut("node3")
        sim.control("POST", "hosts/node3/kill")  # its only link: nova-compute falls silent too
        lab.wait_node("node3", "node1", online="false")
        cloud.apply(claim("node3-lost", "node3", "a monitor that reports at once"))
        waiting: set[str] = set()
        cluster_view = state_of(lab, "node1")
        while not any(
            e.succeeded and e.completed is not None and e.completed >= begin.replace(microsecond=0)
            for e in cluster_view.state().fencing_of("node3")
        ):
            assert time.monotonic() - row.began < FENCE_DELAY + 60, "node3 never fenced"
            # Until the fencing is on record nothing moves, and the event says what it awaits.
            assert evacuations(sim) == {}, "evacuated before node3 was fenced"
            status = cloud.status("fev", "node3-lost")
            assert status.get("phase") not in ENDED, status
            waiting |= {
                detail["message"]
                for step in status.get("steps", [])
                for detail in step.get("progressDetails", [])
            }
            time.sleep(0.2)
        status = ended(cloud, ["node3-lost"], 120)[0]["status"]
        assert (status["phase"], status["reason"]) == ("Finished", "Recovered"), status
        # It said what it was waiting for: the cluster's fencing, or its own request's answer.
        assert any("node3 is unclean" in n or "fencing node3" in n for n in waiting), waiting
        assert status["fencing"].get("confirmedTime"), status["fencing"]
        assert sorted(evacuations(sim).values()) == [1, 1, 1]
        assert sim.control("GET", "evacuations")["unfenced"] == {}

        # The monitors of node1 and node2 report node3 once its fencing is recorded: the same
        # failure, no second recovery.
        theirs = fleet.wait_event("node3", "STOPPED", exclude={"node3-lost"})["metadata"]["name"]
        reports = ended(cloud, ["node3-lost", theirs], 60)
        assert reasons(reports)[theirs] == ("Ignored", "Duplicate")
        # node3's own monitor saw the majority lost and, without quorum, reported none of it.
        fleet.wait_log("node3", "partition without quorum")
        assert {item["spec"]["host"] for item in fleet.events()} == {"node3"}
        assert "reported" not in fleet.log("node3").split("partition without quorum")[-1]

        row.seconds = time.monotonic() - row.began
        row.reports = reports
        row.evacuations = evacuations(sim)
        row.unfenced = moves_unfenced(lab, "node3", begin, reports)
        row.report()
        assert row.unfenced == 0


def test_a_partitioned_node_that_cannot_be_fenced_is_never_evacuated_nor_the_majority(
    lab_factory: LabFactory, cluster: Cluster, tmp_path: Path
) -> None:
    """node3 cut off, alive, and its fencing device fails every fencing: its report ends
    HostNotConfirmedDown with the device's failure as reason, nothing moved. Meanwhile an
    operator whose Pacemaker access goes through node3 (the minority) is told node1 is down,
    with node1's nova-compute silent as well: node3's partition has no quorum, so nothing is
    fenced or moved there either."""
    unfenced_row = Row("Pacemaker: partitioned node, fencing failing")
    minority_row = Row("Pacemaker: a majority node reported, cluster read on the minority side")
    with contextlib.ExitStack() as stack:
        lab, cloud = pacemaker_cloud(
            stack,
            lab_factory,
            cluster,
            tmp_path,
            "fault-unfenceable",
            ha_servers("node3", 2),
            failing_fence=("node3",),
        )
        (tmp_path / "minority").mkdir()
        minority = lab_cloud(
            stack,
            lab,
            cluster,
            tmp_path / "minority",
            "fault-minority",
            ha_servers("node1", 2),
            via="node3",
        )
        assert cloud.sim is not None and minority.sim is not None
        policy = segment(fencing="pacemaker", hostFailure={"fencingTimeoutSeconds": 60})
        policy["spec"]["fencing"].update({"attempts": 2, "attemptTimeoutSeconds": 10})
        cloud.apply(policy, *(host(n) for n in NODES))
        minority.apply(
            segment(fencing="pacemaker", hostFailure={"fencingTimeoutSeconds": 20}),
            *(host(n) for n in NODES),
        )
        pacemaker_online(cloud, ["node3"])
        pacemaker_online(minority, ["node1"])

        begin = datetime.now(UTC)
        unfenced_row.began = minority_row.began = time.monotonic()
        lab.cut("node3")
        cloud.sim.control("POST", "hosts/node3/kill")
        minority.sim.control("POST", "hosts/node1/kill")
        lab.wait_node("node3", "node1", online="false")
        wait_for(
            "node3's partition to lose quorum",
            lambda: not state_of(lab, "node3").state().has_quorum,
        )
        cloud.apply(claim("node3-lost", "node3", "a monitor that reports at once"))
        minority.apply(claim("node1-lost", "node1", "a monitor of the minority, without quorum"))

        status = ended(cloud, ["node3-lost"], 120)[0]["status"]
        unfenced_row.seconds = time.monotonic() - unfenced_row.began
        assert (status["phase"], status["reason"]) == ("Ignored", "HostNotConfirmedDown"), status
        assert "the fencing device failed to fence node3" in status["message"], status
        assert status["fencing"]["requests"] == 2, status["fencing"]
        assert not status["fencing"].get("confirmedTime"), status["fencing"]
        assert evacuations(cloud.sim) == {}
        assert not any(e.succeeded for e in fencings_of(lab, "node3"))

        theirs = ended(minority, ["node1-lost"], 60)[0]["status"]
        minority_row.seconds = time.monotonic() - minority_row.began
        assert (theirs["phase"], theirs["reason"]) == ("Ignored", "HostNotConfirmedDown"), theirs
        assert "the Pacemaker partition answering has no quorum" in theirs["message"], theirs
        assert theirs["fencing"].get("requests", 0) == 0, theirs["fencing"]
        assert evacuations(minority.sim) == {}
        assert not any(e.succeeded for e in fencings_of(lab, "node1"))
        assert state_of(lab, "node1").state().node("node1").is_up  # type: ignore[union-attr]

        for row, where, node in ((unfenced_row, cloud, "node3"), (minority_row, minority, "node1")):
            assert where.sim is not None
            row.reports = [where.get("fev", f"{node}-lost")]
            row.evacuations = evacuations(where.sim)
            row.unfenced = moves_unfenced(lab, node, begin, row.reports)
            row.report()


def power_cut(lab: PacemakerLab, sim: Sim, node: str) -> None:
    lab.kill(node)
    sim.control("POST", f"hosts/{node}/kill")


def flap(lab: PacemakerLab, sim: Sim, fleet: HostMonitorFleet, node: str) -> list[str]:
    """`node` off, on, off again, each change waited for only until the monitors report it:
    the names of the three reports (STOPPED, STARTED, STOPPED)."""
    before = {item["metadata"]["name"] for item in fleet.events(node)}
    power_cut(lab, sim, node)
    first = fleet.wait_event(node, "STOPPED", exclude=before)["metadata"]["name"]
    # Its nova-compute stays silent: the cluster stack is back within seconds, a hypervisor's
    # services later.
    lab.start_node(node)
    lab.wait_online([node], observer="node1")
    started = fleet.wait_event(node, "STARTED", exclude=before)["metadata"]["name"]
    power_cut(lab, sim, node)
    second = fleet.wait_event(node, "STOPPED", exclude=before | {first})["metadata"]["name"]
    return [first, started, second]


def flap_row(
    name: str,
    lab: PacemakerLab,
    cloud: Cloud,
    fleet: HostMonitorFleet,
    node: str,
    between: Callable[[list[str]], None] = lambda _names: None,
) -> tuple[Row, list[dict[str, Any]]]:
    """A flap of `node`, its three reports ended (`between` runs once they are all in), and
    the row of figures, printed."""
    assert cloud.sim is not None
    row = Row(name)
    before = evacuations(cloud.sim)
    begin = datetime.now(UTC)
    names = flap(lab, cloud.sim, fleet, node)
    between(names)
    reports = ended(cloud, names, 120)
    row.seconds = time.monotonic() - row.began
    row.reports = reports
    row.evacuations = since(before, evacuations(cloud.sim))
    row.unfenced = moves_unfenced(lab, node, begin, reports) + sum(
        cloud.sim.control("GET", "evacuations")["unfenced"].values()
    )
    row.report()
    return row, reports


def test_a_flapping_node_is_recovered_once(
    lab_factory: LabFactory, cluster: Cluster, tmp_path: Path
) -> None:
    """node3 off, on, off: the first failure is recovered, the return is recorded, and the
    second failure within Masakari's 180 s window is its duplicate. Then node2 flaps while the
    segment's recovery is paused: once let through, the first failure ends HostRecovered (its
    host came back after it) and the second, which lasts, is the one recovered."""
    servers = ha_servers("node3", 3) + ha_servers("node2", 2)
    with contextlib.ExitStack() as stack:
        lab, cloud = pacemaker_cloud(stack, lab_factory, cluster, tmp_path, "fault-flap", servers)
        assert cloud.sim is not None
        fleet = HostMonitorFleet(lab, cluster.kubeconfig, cluster.kubectl, cloud.namespace)
        policy = segment(
            fleet.segment, fencing="pacemaker", hostFailure={"fencingTimeoutSeconds": 30}
        )
        cloud.apply(policy, *(host(n, fleet.segment) for n in NODES))
        pacemaker_online(cloud, NODES)
        fleet.start_all()
        fleet.wait_ready()

        row, reports = flap_row(
            "Pacemaker: node flapping (off, on, off)", lab, cloud, fleet, "node3"
        )
        first, started, second = (item["metadata"]["name"] for item in reports)
        assert reasons(reports) == {
            first: ("Finished", "Recovered"),
            started: ("Finished", "HostStarted"),
            second: ("Ignored", "Duplicate"),
        }
        assert sorted(row.evacuations.values()) == [1, 1, 1] and row.unfenced == 0, row

        # node3 powered on again, so that node2 flapping leaves a quorum (node1 and node3).
        lab.start_node("node3")
        lab.wait_online(["node3"], observer="node1")
        fleet.start("node3")
        on_node2 = {
            server.id
            for server in cloud.nova().compute.servers(details=True, all_projects=True)
            if server.compute_host == "node2"
        }
        pause = "tests: node2 flaps while recovery is paused"
        cloud.apply({**policy, "spec": {**policy["spec"], "storm": {"pauseRequests": [pause]}}})
        cloud.wait_phase("fseg", fleet.segment, {"Paused"}, 30)
        sim = cloud.sim
        before_pause = evacuations(sim)

        def held_then_let_through(names: list[str]) -> None:
            # The first failure ends HostRecovered as soon as the return is reported (the gate
            # before the pause's); the second waits for the pause to be lifted.
            def decided() -> dict[str, Any] | None:
                status = cloud.status("fev", names[2])
                return status if status.get("reason") else None

            status = wait_for(f"{names[2]} decided", decided, 30)
            assert (status["phase"], status["reason"]) == ("New", "RecoveryPaused"), status
            assert since(before_pause, evacuations(sim)) == {}
            cloud.apply(policy)

        row, reports = flap_row(
            "Pacemaker: node flapping while recovery is paused",
            lab,
            cloud,
            fleet,
            "node2",
            held_then_let_through,
        )
        first, started, second = (item["metadata"]["name"] for item in reports)
        assert reasons(reports) == {
            first: ("Ignored", "HostRecovered"),
            started: ("Finished", "HostStarted"),
            second: ("Finished", "Recovered"),
        }
        assert set(row.evacuations) == on_node2 and set(row.evacuations.values()) == {1}, row
        assert row.unfenced == 0, row

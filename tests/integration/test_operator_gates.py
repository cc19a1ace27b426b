"""The gates before any recovery, storm limits and pauses, on the simulator."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.integration.operator_env import (
    host,
    host_failure,
    segment,
    servers,
    topology,
    wait_for,
)

pytestmark = pytest.mark.integration

HOSTS = [{"name": f"compute{i}", "vcpus": 8} for i in (1, 2, 3, 4)]
DONE = {"Finished", "Failed", "Ignored"}


def setup(
    cloud_factory: Any, seg: dict[str, Any] | None = None, **host_spec: dict[str, Any]
) -> Any:
    cloud = cloud_factory(
        topology(
            HOSTS,
            [
                *servers(["a"], "compute1", metadata={"HA_Enabled": "True"}),
                *servers(["b"], "compute2", metadata={"HA_Enabled": "True"}),
            ],
        )
    )
    cloud.apply(seg or segment(), *(host(h["name"], **host_spec.get(h["name"], {})) for h in HOSTS))
    return cloud


def test_disabled_segment_records_and_ignores(cloud_factory: Any) -> None:
    cloud = setup(cloud_factory, segment(enabled=False))
    cloud.sim.control("POST", "hosts/compute1/kill")
    cloud.apply(host_failure("c1", "compute1"))
    status = cloud.wait_phase("fev", "c1", DONE)
    assert (status["phase"], status["reason"]) == ("Ignored", "SegmentDisabled")
    assert cloud.sim.control("GET", "evacuations")["evacuations"] == {}
    seg = wait_for("segment", lambda: (s := cloud.status("fseg", "seg")).get("phase") and s)
    assert seg["phase"] == "Disabled"


def test_host_on_maintenance_and_unknown_host(cloud_factory: Any) -> None:
    cloud = setup(cloud_factory, compute1={"onMaintenance": True})
    cloud.apply(host_failure("c1", "compute1"), host_failure("ghost", "compute9"))
    assert cloud.wait_phase("fev", "c1", DONE)["reason"] == "HostOnMaintenance"
    assert cloud.wait_phase("fev", "ghost", DONE)["reason"] == "HostNotFound"


def test_duplicate_reports_become_one_recovery(cloud_factory: Any) -> None:
    cloud = setup(cloud_factory)
    cloud.sim.control("POST", "hosts/compute1/kill")
    reports = [host_failure(f"c1-from-node{i}", "compute1") for i in (2, 3, 4)]
    cloud.apply(*reports)
    phases = {
        r["metadata"]["name"]: cloud.wait_phase("fev", r["metadata"]["name"], DONE) for r in reports
    }
    finished = [n for n, s in phases.items() if s["phase"] == "Finished"]
    ignored = [s["reason"] for s in phases.values() if s["phase"] == "Ignored"]
    assert len(finished) == 1 and ignored == ["Duplicate", "Duplicate"], phases
    assert list(cloud.sim.control("GET", "evacuations")["evacuations"].values()) == [1]


@pytest.mark.parametrize("host_status", ["UNKNOWN", "NORMAL"])
def test_a_host_that_cannot_be_fenced_is_never_evacuated(
    cloud_factory: Any, host_status: str
) -> None:
    """Where the segment fences by Pacemaker, the reporter's NORMAL is a claim, not a
    confirmation: with no Pacemaker access for the cloud, the recovery's fencing step waits,
    then gives up, and nothing is evacuated."""
    cloud = setup(
        cloud_factory, segment(fencing="pacemaker", hostFailure={"fencingTimeoutSeconds": 4})
    )
    cloud.sim.control("POST", "hosts/compute1/kill")
    cloud.apply(host_failure("c1", "compute1", host_status=host_status))
    fencing_step = wait_for(
        "the fencing step",
        lambda: next(iter(cloud.status("fev", "c1").get("steps", [])), None),
        20,
    )
    assert fencing_step["name"] == "FenceHostTask"
    status = cloud.wait_phase("fev", "c1", DONE, 30)
    assert (status["phase"], status["reason"]) == ("Ignored", "HostNotConfirmedDown")
    assert "no Pacemaker access is configured" in status["message"]
    assert status["fencing"]["requests"] == 0
    assert [s["name"] for s in status["steps"]] == ["FenceHostTask"]
    assert status["steps"][0]["state"] == "FAILURE"
    fencing = wait_for(
        "the segment to say it cannot confirm",
        lambda: next(
            (
                c
                for c in cloud.status("fseg", "seg").get("conditions", [])
                if c["type"] == "FencingReady"
            ),
            None,
        ),
    )
    assert (fencing["status"], fencing["reason"]) == ("False", "NoPacemakerAccess")
    assert cloud.sim.control("GET", "evacuations")["evacuations"] == {}


def test_storm_limit_holds_the_second_failure_until_the_first_is_released(
    cloud_factory: Any,
) -> None:
    cloud = setup(cloud_factory, segment(storm={"maxFailedHosts": 1}))
    cloud.sim.control("POST", "hosts/compute1/kill")
    cloud.apply(host_failure("c1", "compute1"))
    cloud.wait_phase("fev", "c1", {"Finished"})
    cloud.wait_phase("mhost", "compute1", {"Failed"}, 30)
    cloud.sim.control("POST", "hosts/compute2/kill")
    cloud.apply(host_failure("c2", "compute2"))
    wait_for(
        "storm block",
        lambda: (s := cloud.status("fev", "c2")).get("reason") == "StormLimitReached" and s,
        30,
    )
    seg = wait_for(
        "segment blocked",
        lambda: (s := cloud.status("fseg", "seg")).get("phase") == "Blocked" and s,
        30,
    )
    allowed = next(c for c in seg["conditions"] if c["type"] == "RecoveryAllowed")
    assert allowed["status"] == "False" and allowed["reason"] == "StormLimitReached"
    assert 'masakari_recoveries_blocked{reason="StormLimitReached"} 1.0' in cloud.operator.metrics()
    time.sleep(2)
    assert cloud.status("fev", "c2")["phase"] == "New"  # still held, visibly

    cloud.sim.control("POST", "hosts/compute1/revive")
    cloud.apply(host("compute1", releaseFailure="c1"))
    status = cloud.wait_phase("fev", "c2", DONE, 60)
    assert status["phase"] == "Finished", status


def test_pause_requests_hold_recoveries_until_removed(cloud_factory: Any) -> None:
    paused = segment(storm={"pauseRequests": ["alice: storage maintenance"]})
    cloud = setup(cloud_factory, paused)
    cloud.sim.control("POST", "hosts/compute1/kill")
    cloud.apply(host_failure("c1", "compute1"))
    status = wait_for(
        "paused",
        lambda: (s := cloud.status("fev", "c1")).get("reason") == "RecoveryPaused" and s,
        30,
    )
    assert "alice: storage maintenance" in status["message"]
    cloud.apply(segment())
    assert cloud.wait_phase("fev", "c1", DONE)["phase"] == "Finished"


def test_five_hosts_failing_at_once_pass_a_storm_limit_of_one_exactly_once(
    cloud_factory: Any,
) -> None:
    """Five reports applied together: the limit is evaluated over every admitted recovery of
    the segment, not over Host status a resync behind, so one runs and four wait, visibly."""
    rack = [{"name": f"rack{i}", "vcpus": 8} for i in range(1, 8)]
    cloud = cloud_factory(
        topology(rack, [s for i in range(1, 6) for s in servers([f"vm{i}"], f"rack{i}")])
    )
    cloud.apply(segment(storm={"maxFailedHosts": 1}), *(host(h["name"]) for h in rack))
    for i in range(1, 6):
        cloud.sim.control("POST", f"hosts/rack{i}/kill")
    cloud.apply(*(host_failure(f"r{i}", f"rack{i}") for i in range(1, 6)))
    names = [f"r{i}" for i in range(1, 6)]
    first = wait_for(
        "one recovery finished",
        lambda: [n for n in names if cloud.status("fev", n).get("phase") == "Finished"],
        60,
    )
    held = wait_for(
        "four held by the storm limit",
        lambda: (
            (h := [n for n in names if cloud.status("fev", n).get("reason") == "StormLimitReached"])
            and len(h) == 4
            and h
        ),
        30,
    )
    assert len(first) == 1 and set(first) | set(held) == set(names)
    time.sleep(2)  # and they stay held
    assert [cloud.status("fev", n)["phase"] for n in held] == ["New"] * 4
    assert sum(cloud.sim.control("GET", "evacuations")["evacuations"].values()) == 1
    assert 'masakari_recoveries_blocked{reason="StormLimitReached"} 4.0' in cloud.operator.metrics()

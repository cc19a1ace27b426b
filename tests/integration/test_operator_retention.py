"""Bounded history on the real API server: old ended FailureEvents go, what is needed stays,
and the Host's summary keeps what the history was for."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.integration.operator_env import host, host_failure, segment, topology, wait_for

pytestmark = pytest.mark.integration

HOSTS = [{"name": f"compute{i}", "vcpus": 8} for i in (1, 2, 3)]
FAST_RETENTION = {"MASAKARI_RETENTION_INTERVAL": "1", "MASAKARI_RETENTION_SETTLE": "0"}


def process_failure(name: str, host_name: str, hours_ago: float) -> dict[str, Any]:
    """A stopped process other than nova-compute: recorded and Finished, nothing else."""
    event = host_failure(name, host_name)
    generated = time.gmtime(time.time() - hours_ago * 3600)
    event["spec"].update(
        type="PROCESS",
        generatedTime=time.strftime("%Y-%m-%dT%H:%M:%SZ", generated),
        payload={"event": "STOPPED", "process_name": "sshd"},
    )
    return event


def names(cloud: Any) -> set[str]:
    out = cloud.cluster.kubectl("get", "fev", "-n", cloud.namespace, "-o", "json").stdout
    return {item["metadata"]["name"] for item in json.loads(out)["items"]}


def finalizers(cloud: Any, name: str) -> list[str]:
    out = cloud.cluster.kubectl("get", "fev", name, "-n", cloud.namespace, "-o", "json").stdout
    found: list[str] = json.loads(out)["metadata"].get("finalizers") or []
    return found


def test_old_ended_events_go_and_needed_ones_stay(cloud_factory: Any) -> None:
    cloud = cloud_factory(topology(HOSTS, []), env=FAST_RETENTION)
    # Paused: the host failure stays open (New, RecoveryPaused) for the whole test.
    paused = segment(retention={"keepPerHost": 1}, storm={"pauseRequests": ["test: keep open"]})
    cloud.apply(paused, *(host(h["name"]) for h in HOSTS))
    cloud.apply(
        host_failure("open", "compute2"),
        *(process_failure(f"p{i}", "compute1", hours_ago=i) for i in (1, 2, 3)),
    )
    for name in ("p1", "p2", "p3"):
        cloud.wait_phase("fev", name, {"Finished"}, 30)
    # kopf watches open events only: an event's end takes it out of kopf's sight, so the
    # recovery that ended it takes the operator's finalizer off, or a deletion would wait for
    # it forever (p2 and p3, deleted below, would stay). p1 is kept: the newest.
    wait_for("p1 without the operator's finalizer", lambda: not finalizers(cloud, "p1"), 10)
    # compute3 awaits release by the name of p4: a service hold, as a host recovery records it.
    hold = {"status": {"serviceHolds": {"p4": {"since": "2026-01-01T00:00:00Z"}}}}
    cloud.cluster.kubectl(
        "patch", "mhost", "compute3", "-n", cloud.namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps(hold),
    )  # fmt: skip
    cloud.apply(process_failure("p4", "compute1", hours_ago=4))
    cloud.wait_phase("fev", "p4", {"Finished"}, 30)

    # keepPerHost 1: of compute1's ended events the newest (p1) stays and p4 is held; the
    # open host failure of compute2 stays too.
    left = wait_for(
        "the retention pass", lambda: (n := names(cloud)) <= {"p1", "p4", "open"} and n, 30
    )
    time.sleep(3)  # a few more passes: still nothing needed goes
    assert names(cloud) == left == {"p1", "p4", "open"}
    assert cloud.status("fev", "open")["phase"] == "New"

    summary = cloud.status("mhost", "compute1")["recentFailures"]
    assert [r["event"] for r in summary] == ["p4", "p3", "p2", "p1"]
    assert {r["result"] for r in summary} == {"Finished"}
    assert cloud.status("mhost", "compute3")["phase"] == "Failed"  # still awaiting p4
    metrics = cloud.operator.metrics()
    assert 'masakari_failure_events_deleted_total{reason="BeyondCount"} 2.0' in metrics
    assert "deleted FailureEvent p3: BeyondCount" in cloud.operator.log()


def test_an_ended_event_left_with_the_finalizer_is_still_deleted(cloud_factory: Any) -> None:
    """kopf watches open events only: an operator stopped between an event's last status
    write and taking its finalizer off leaves the finalizer on an event no handler sees.
    The retention pass that deletes the event takes it off."""
    cloud = cloud_factory(topology(HOSTS, []), env=FAST_RETENTION)
    cloud.apply(segment(retention={"keepPerHost": 1}), *(host(h["name"]) for h in HOSTS))
    cloud.apply(process_failure("old", "compute1", hours_ago=2))
    cloud.wait_phase("fev", "old", {"Finished"}, 30)
    wait_for("old without the operator's finalizer", lambda: not finalizers(cloud, "old"), 10)
    left = {"metadata": {"finalizers": ["masakari.dev/operator"]}}
    cloud.cluster.kubectl(
        "patch", "fev", "old", "-n", cloud.namespace, "--type=merge", "-p", json.dumps(left)
    )
    cloud.apply(process_failure("new", "compute1", hours_ago=1))  # old is now beyond keepPerHost
    wait_for("old deleted, finalizer and all", lambda: names(cloud) == {"new"}, 30)

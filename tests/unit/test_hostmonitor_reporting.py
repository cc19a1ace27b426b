"""From node reports to FailureEvent objects: naming, labels, duplicates and outages."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controller.monitors.host_failures import HostEvent, NodeReport
from controller.monitors.reporting import (
    HostEntry,
    Rejected,
    Reporter,
    Unreachable,
    event_name,
    failure_event,
)
from controller.resources.failure_event import FailureEventSpec

WHEN = datetime(2026, 11, 26, 2, 27, 5, tzinfo=UTC)
STOPPED = NodeReport(
    "node3", HostEvent.STOPPED, "NORMAL", "OFFLINE", "fenced-20261126-022701", WHEN
)


class MemoryStore:
    """Kubernetes' create semantics: a name is taken once; outages raise Unreachable."""

    def __init__(self, hosts: Mapping[str, HostEntry], outages: int = 0) -> None:
        self._hosts = dict(hosts)
        self.objects: dict[str, dict[str, Any]] = {}
        self.outages = outages
        self.attempts = 0

    def hosts(self) -> Mapping[str, HostEntry]:
        return self._hosts

    def create(self, body: dict[str, Any]) -> bool:
        self.attempts += 1
        if self.outages:
            self.outages -= 1
            raise Unreachable("connection refused")
        name = body["metadata"]["name"]
        if name in self.objects:
            return False
        self.objects[name] = body
        return True

    def taken(self, body: dict[str, Any]) -> bool:
        return body["metadata"]["name"] in self.objects


def wait_empty(reporter: Reporter, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while reporter.pending() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert reporter.pending() == 0


def test_object_follows_the_model_and_carries_labels() -> None:
    body = failure_event(STOPPED, HostEntry("compute-3", "rack-a"), "hostmonitor/node1")
    assert body["metadata"]["name"] == "compute-3-stopped-fenced-20261126-022701"
    assert body["metadata"]["labels"] == {
        "masakari.dev/host": "compute-3",
        "masakari.dev/type": "COMPUTE_HOST",
        "masakari.dev/segment": "rack-a",
    }
    spec = FailureEventSpec.model_validate(body["spec"])
    assert spec.host == "compute-3" and spec.type == "COMPUTE_HOST"
    assert spec.payload.event == "STOPPED" and spec.payload.host_status == "NORMAL"
    assert spec.payload.cluster_status == "OFFLINE" and spec.source == "hostmonitor/node1"


def test_long_host_names_give_valid_distinct_names() -> None:
    first, second = "a" * 250, "a" * 249 + "b"
    names = {event_name(first, STOPPED), event_name(second, STOPPED)}
    assert len(names) == 2 and all(len(name) <= 253 for name in names)


def test_two_monitors_reporting_one_failure_make_one_object() -> None:
    store = MemoryStore({"node3": HostEntry("node3", "seg")})
    first = Reporter(store, "hostmonitor/node1").start()
    second = Reporter(store, "hostmonitor/node2").start()
    try:
        first.submit(STOPPED)
        wait_empty(first)
        later = NodeReport("node3", HostEvent.STOPPED, "NORMAL", "OFFLINE", STOPPED.episode, WHEN)
        second.submit(later)
        wait_empty(second)
    finally:
        first.stop()
        second.stop()
    assert list(store.objects) == ["node3-stopped-fenced-20261126-022701"]
    assert list(first.sent) == [("node3-stopped-fenced-20261126-022701", True)]
    assert list(second.sent) == [("node3-stopped-fenced-20261126-022701", False)]


@pytest.mark.parametrize("apart", [-1, 1])
def test_one_fencing_stamped_a_second_apart_makes_one_object(apart: int) -> None:
    """Each node's fencer stamps a fencing's completion with its own clock: the lab's two
    survivors once read 00:56:18 and 00:56:19 for one fencing, and reported it twice."""
    store = MemoryStore({"node3": HostEntry("node3", "seg")})
    first, second = Reporter(store, "hostmonitor/node1"), Reporter(store, "hostmonitor/node2")
    stamped = (WHEN.replace(second=1) + timedelta(seconds=apart)).strftime("%Y%m%d-%H%M%S")
    for reporter, episode in ((first, STOPPED.episode), (second, f"fenced-{stamped}")):
        reporter.deliver(replace(STOPPED, episode=episode))
        reporter.deliver(
            replace(STOPPED, event=HostEvent.STARTED, cluster_status="ONLINE", episode=episode)
        )
    assert list(store.objects) == [
        "node3-stopped-fenced-20261126-022701",
        "node3-started-fenced-20261126-022701",
    ]
    assert [created for _, created in second.sent] == [False, False]
    # Two seconds apart is another fencing.
    second.deliver(replace(STOPPED, episode="fenced-20261126-022703"))
    assert second.sent[-1] == ("node3-stopped-fenced-20261126-022703", True)


def test_reports_survive_an_outage_in_order() -> None:
    store = MemoryStore({"node3": HostEntry("node3", "seg")}, outages=4)
    waits: list[float] = []
    reporter = Reporter(
        store,
        "hostmonitor/node1",
        backoff_initial=0.5,
        backoff_max=2,
        sleep=lambda s: bool(waits.append(s)),
    )
    started = NodeReport("node3", HostEvent.STARTED, "NORMAL", "ONLINE", STOPPED.episode, WHEN)
    reporter.submit(STOPPED)
    reporter.submit(started)
    reporter.start()
    try:
        wait_empty(reporter)
    finally:
        reporter.stop()
    assert waits == [0.5, 1.0, 2.0, 2.0]
    assert [name for name, _ in reporter.sent] == [
        "node3-stopped-fenced-20261126-022701",
        "node3-started-fenced-20261126-022701",
    ]


def test_queue_is_bounded_and_drops_the_oldest() -> None:
    store = MemoryStore({"node3": HostEntry("node3", "seg")})
    reporter = Reporter(store, "hostmonitor/node1", queue_size=2)
    for episode in ("a", "b", "c"):
        reporter.submit(NodeReport("node3", HostEvent.STOPPED, "UNKNOWN", "OFFLINE", episode, WHEN))
    assert [report.episode for report in reporter.queue] == ["b", "c"]


def test_nodes_without_host_and_refused_objects_are_not_retried() -> None:
    class RefusingStore(MemoryStore):
        def create(self, body: dict[str, Any]) -> bool:
            self.attempts += 1
            raise Rejected("422 Unprocessable Entity")

    store = RefusingStore({"node3": HostEntry("node3", "seg")})
    reporter = Reporter(store, "hostmonitor/node1")
    reporter.deliver(STOPPED)
    reporter.deliver(NodeReport("node9", HostEvent.STOPPED, "NORMAL", "OFFLINE", "x", WHEN))
    assert store.attempts == 1 and not reporter.sent


@pytest.mark.parametrize("status", ["NORMAL", "UNKNOWN"])
def test_host_status_is_carried(status: str) -> None:
    report = NodeReport("node3", HostEvent.STOPPED, status, "OFFLINE", "e", WHEN)  # type: ignore[arg-type]
    body = failure_event(report, HostEntry("node3", "seg"), "m")
    assert body["spec"]["payload"]["host_status"] == status

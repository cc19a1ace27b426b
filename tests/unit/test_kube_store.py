"""The Store reads from the watches' indexes, and sees its own writes before the watch does."""

from __future__ import annotations

import asyncio
from typing import Any

from controller.drivers.kube_store import KubeStore, Watched, event_record, host_record

T = "2026-12-01T03:00:00Z"


def event_body(name: str, version: int, phase: str | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "creationTimestamp": T,
            "resourceVersion": str(version),
        },
        "spec": {
            "type": "COMPUTE_HOST",
            "host": "h1",
            "generatedTime": T,
            "payload": {"event": "STOPPED", "host_status": "NORMAL"},
        },
        "status": {"phase": phase} if phase else {},
    }


def host_body(name: str, version: int, holds: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "creationTimestamp": T,
            "resourceVersion": str(version),
        },
        "spec": {"segment": "seg"},
        "status": {"serviceHolds": holds} if holds else {},
    }


class FakeKube:
    """The API server's answers to status writes: the object as written, one version on."""

    def __init__(self) -> None:
        self.versions = {"ev": 11, "h1": 21}

    async def write_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        self.versions[name] += 1
        return event_body(name, self.versions[name], status.get("phase"))

    async def merge_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        self.versions[name] += 1
        return host_body(name, self.versions[name], status["serviceHolds"])


def store() -> tuple[KubeStore, dict[tuple[str, ...], list[Any]], dict[tuple[str, ...], list[Any]]]:
    events: dict[tuple[str, ...], list[Any]] = {}
    hosts: dict[tuple[str, ...], list[Any]] = {}
    event = (11, event_record(event_body("ev", 11, "New")))
    events[("ns",)] = events[("ns", "host", "h1")] = [event]
    host = (21, host_record(host_body("h1", 21)))
    hosts[("ns",)] = hosts[("ns", "segment", "seg")] = hosts[("ns", "name", "h1")] = [host]
    made = KubeStore(FakeKube(), Watched(events, hosts, {}))  # type: ignore[arg-type]
    return made, events, hosts


def test_reads_come_from_the_indexes() -> None:
    made, _, _ = store()
    assert [e.name for e in asyncio.run(made.failure_events("ns"))] == ["ev"]
    assert [e.name for e in asyncio.run(made.failure_events("ns", "h1"))] == ["ev"]
    assert asyncio.run(made.failure_events("ns", "h2")) == []
    assert [h.name for h in asyncio.run(made.hosts("ns", "seg"))] == ["h1"]
    assert asyncio.run(made.hosts("other")) == []
    assert asyncio.run(made.segment("ns", "seg")) is None


def test_its_own_writes_are_read_before_the_watch_delivers_them() -> None:
    """The storm gate counts admitted recoveries and service holds that this process wrote a
    moment ago: a read right after the write must see them."""
    made, events, hosts = store()
    status = event_record(event_body("ev", 0, "Running")).status
    asyncio.run(made.write_event_status("ns", "ev", status))
    asyncio.run(made.hold_host_service("ns", "h1", "ev"))
    assert [e.status.phase for e in asyncio.run(made.failure_events("ns"))] == ["Running"]
    [host] = asyncio.run(made.hosts("ns", "seg"))
    assert list(host.status.service_holds) == ["ev"]
    assert asyncio.run(made.host("ns", "h1")) == host
    # The watch catches up, then moves past: the newer indexed copy wins.
    newer = (30, event_record(event_body("ev", 30, "Finished")))
    events[("ns",)] = [newer]
    assert [e.status.phase for e in asyncio.run(made.failure_events("ns"))] == ["Finished"]
    hosts[("ns", "segment", "seg")] = [(40, host_record(host_body("h1", 40)))]
    [host] = asyncio.run(made.hosts("ns", "seg"))
    assert host.status.service_holds == {}


def test_open_events_leave_as_soon_as_this_process_ends_them() -> None:
    """The storm gate and the segment summary read only the events not ended, from their own
    index key; one this process just ended is gone from it before the watch says so."""
    made, events, _ = store()
    opened = (11, event_record(event_body("ev", 11, "Running")))
    events[("ns", "open")] = events[("ns", "h1", "open")] = [opened]
    assert [e.name for e in asyncio.run(made.failure_events("ns", open_only=True))] == ["ev"]
    ended = event_record(event_body("ev", 0, "Finished")).status
    asyncio.run(made.write_event_status("ns", "ev", ended))
    assert asyncio.run(made.failure_events("ns", open_only=True)) == []
    assert asyncio.run(made.failure_events("ns", "h1", open_only=True)) == []

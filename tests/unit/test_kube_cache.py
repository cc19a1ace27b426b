"""The namespace cache as its watches feed it (controller.drivers.kube_cache): what it holds,
what it serves, and when it does not serve at all."""

from __future__ import annotations

import asyncio
from datetime import UTC
from typing import Any, cast

import pytest
from pydantic import ValidationError

from controller.drivers import kube_cache
from controller.drivers.kube import PLURAL, Kube
from controller.drivers.kube_cache import CachedStore, NamespaceCache
from controller.drivers.kube_store import KubeStore, event_record
from controller.recovery import ports
from controller.recovery.ports import EndedEvent, EventRecord
from controller.resources.segment import FailoverSegmentSpec


def _host(name: str, segment: str = "seg", **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name, "namespace": "ns", "uid": f"u-{name}", "generation": 1,
            "creationTimestamp": "2026-12-01T10:00:00Z", "managedFields": [{"big": "x" * 100}],
            "annotations": {"kopf": "x"},
        },
        "spec": {"segment": segment, **extra},
    }  # fmt: skip


def _event(name: str, host: str, phase: str | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name, "namespace": "ns", "uid": f"u-{name}",
            "creationTimestamp": "2026-12-01T10:00:00Z",
        },
        "spec": {
            "type": "COMPUTE_HOST", "host": host, "generatedTime": "2026-12-01T10:00:00Z",
            "payload": {"event": "STOPPED", "host_status": "NORMAL", "cluster_status": "OFFLINE"},
        },
        "status": {"phase": phase} if phase else {},
    }  # fmt: skip


def _cache() -> NamespaceCache:
    return NamespaceCache(cast(Kube, None), "ns")  # no informer started: fed by hand


def listed(cache: NamespaceCache, plural: str, bodies: list[dict[str, Any]], at: str) -> None:
    """A list's result as the informer hands it over: each object as its `keep` made it."""
    [informer] = [i for i in cache.informers if i.plural == plural]
    assert informer.keep is not None
    cache.replace(plural, [informer.keep(body) for body in bodies], at)


def test_lists_replace_and_watch_events_apply() -> None:
    cache = _cache()
    listed(cache, PLURAL.hosts, [_host("c1"), _host("c2", "other")], "10")
    listed(
        cache,
        PLURAL.failure_events,
        [_event("e1", "c1", "Finished"), _event("e2", "c1", "Running"), _event("e3", "c2")],
        "10",
    )
    assert [h.name for h in cache.hosts("seg")] == ["c1"]
    assert {e.name for e in cache.failure_events("c1")} == {"e1", "e2"}
    assert {e.name for e in cache.open_events()} == {"e2", "e3"}

    cache.apply(PLURAL.failure_events, "MODIFIED", _event("e2", "c1", "Finished"))
    cache.apply(PLURAL.failure_events, "DELETED", _event("e3", "c2"))
    cache.apply(PLURAL.hosts, "ADDED", _host("c3"))
    assert cache.open_events() == []
    assert sorted(h.name for h in cache.hosts(None)) == ["c1", "c2", "c3"]


def _read_as(view: type, obj: Any) -> dict[str, Any]:
    """Every property of the `view` protocol, read from `obj` (nested views read as theirs)."""
    nested = {
        "spec": ports.EventSpecView,
        "status": ports.EventStatusView,
        "payload": ports.PayloadView,
    }
    read = {}
    for name, member in vars(view).items():
        if isinstance(member, property):
            value = getattr(obj, name)
            read[name] = _read_as(nested[name], value) if name in nested else value
    return read


def test_ended_events_are_held_small_and_read_as_their_whole_record() -> None:
    """Whole, the 50,000 ended events of bench/scale.py were 190 MB of the operator."""
    cache = _cache()
    taker = _event("taker", "c1", "Finished")
    taker["status"].update(
        reason="Recovered", segment="seg", reservedHosts=["r1", "r2"],
        startTime="2026-12-01T10:00:05Z", endTime="2026-12-01T10:01:00Z", steps=[],
    )  # fmt: skip
    vm = _event("vm", "c2", "Ignored")
    vm["spec"].update(type="VM", payload={
        "event": "LIFECYCLE", "instance_uuid": "6f1c3a2e-0000-4000-8000-000000000001",
        "vir_domain_event": "STOPPED_FAILED",
    })  # fmt: skip
    bodies = [taker, vm, _event("failed", "c1", "Failed"), _event("running", "c1", "Running")]
    listed(cache, PLURAL.failure_events, bodies, "1")

    held = cache.records[PLURAL.failure_events]
    for body in bodies[:3]:
        name = body["metadata"]["name"]
        assert isinstance(held[name], EndedEvent), name
        assert held[name].generated_time.tzinfo is held[name].created.tzinfo is UTC
        whole = _read_as(ports.EventView, event_record(body))
        assert _read_as(ports.EventView, held[name]) == {
            **whole,
            "status": {
                **whole["status"],
                "reserved_hosts": tuple(whole["status"]["reserved_hosts"]),
            },
        }
    assert isinstance(held["running"], EventRecord)
    assert [e.name for e in cache.open_events()] == ["running"]

    ended = _event("running", "c1", "Finished")
    cache.apply(PLURAL.failure_events, "MODIFIED", ended)
    assert isinstance(held["running"], EndedEvent) and cache.open_events() == []
    assert {e.name for e in cache.failure_events("c1")} == {"taker", "failed", "running"}


def test_an_object_the_models_refuse_is_left_out_not_fatal() -> None:
    cache = _cache()
    broken = _host("bad")
    broken["spec"]["segment"] = 42
    listed(cache, PLURAL.hosts, [_host("c1"), broken], "1")
    assert [h.name for h in cache.hosts(None)] == ["c1"]
    cache.apply(PLURAL.hosts, "MODIFIED", {**_host("c1"), "spec": {"segment": None}})
    assert cache.hosts(None) == [], "a change the models refuse drops the stale record"


def test_it_serves_only_once_listed_and_while_its_watches_work() -> None:
    cache = _cache()
    assert not cache.serving(), "nothing listed yet: read direct"
    for informer in cache.informers:
        informer.synced.set()
    assert cache.serving()
    cache.informers[1].backoff.next()  # a watch failed, and nothing came since
    assert not cache.serving()
    cache.informers[1].backoff.reset()
    assert cache.serving()


class _Unscannable(dict[str, Any]):
    """The namespace's whole event map: a lookup of one host's or of the open events that
    walks it is what made a start with every Host new cost hosts x events."""

    def values(self) -> Any:
        raise AssertionError("scanned every event of the namespace")


def test_a_hosts_events_and_the_open_ones_are_found_without_scanning_them_all() -> None:
    cache = _cache()
    events = [_event(f"e{n}", f"c{n % 50}", "Finished") for n in range(500)]
    listed(cache, PLURAL.failure_events, [*events, _event("open", "c7", "Running")], "1")
    cache.apply(PLURAL.failure_events, "ADDED", _event("new", "c7"))
    cache.apply(PLURAL.failure_events, "MODIFIED", _event("open", "c7", "Finished"))
    cache.apply(PLURAL.failure_events, "DELETED", _event("e7", "c7", "Finished"))
    cache.records[PLURAL.failure_events] = _Unscannable(cache.records[PLURAL.failure_events])

    assert sorted(e.name for e in cache.failure_events("c7")) == sorted(
        ["new", "open", *(f"e{n}" for n in range(57, 500, 50))]
    )
    assert [e.name for e in cache.open_events()] == ["new"]
    assert cache.failure_events("nobody") == []
    grouped = cache.events_by_host()
    assert sorted(e.name for e in grouped["c7"]) == sorted(
        e.name for e in cache.failure_events("c7")
    )
    assert sum(map(len, grouped.values())) == 501 and "nobody" not in grouped


def test_a_segments_hosts_are_found_without_going_through_the_others() -> None:
    cache = _cache()
    hosts = [_host(f"c{n}", f"seg{n % 10}") for n in range(100)]
    listed(cache, PLURAL.hosts, hosts, "1")
    listed(cache, PLURAL.failure_events, [_event("c3", "c3")], "1")  # an event named as a Host
    cache.apply(PLURAL.hosts, "MODIFIED", _host("c3", "seg4"))  # moved to another segment
    cache.apply(PLURAL.hosts, "DELETED", _host("c9", "seg9"))
    cache.apply(PLURAL.hosts, "ADDED", _host("new", "seg9"))
    cache.records[PLURAL.hosts] = _Unscannable(cache.records[PLURAL.hosts])

    assert sorted(h.name for h in cache.hosts("seg3")) == sorted(
        f"c{n}" for n in range(13, 100, 10)
    )
    assert "c3" in {h.name for h in cache.hosts("seg4")}
    assert sorted(h.name for h in cache.hosts("seg9")) == sorted(
        ["new", *(f"c{n}" for n in range(19, 100, 10))]
    )
    assert [e.name for e in cache.open_events()] == ["c3"]
    for n in range(13, 100, 10):
        cache.apply(PLURAL.hosts, "DELETED", _host(f"c{n}", "seg3"))
    assert cache.hosts("seg3") == [] and "seg3" not in cache._by_segment  # shrinks as they go


def test_segments_are_held_as_listed_and_read_as_the_api_server_would_answer() -> None:
    cache = _cache()
    spec = {"serviceType": "COMPUTE", "recoveryMethod": "auto"}
    segment = {"metadata": {"name": "seg"}, "spec": spec}
    listed(cache, PLURAL.segments, [segment], "1")
    assert cache.segment("seg") == FailoverSegmentSpec.model_validate(spec)
    assert cache.segment("other") is None
    cache.apply(PLURAL.segments, "MODIFIED", {**segment, "spec": {**spec, "recoveryMethod": 7}})
    with pytest.raises(ValidationError):  # refused as the direct read refuses it
        cache.segment("seg")
    cache.apply(PLURAL.segments, "DELETED", segment)
    assert cache.segment("seg") is None


class _SlowDirect:
    """The API server's reads, slow, counting how many run at once."""

    def __init__(self) -> None:
        self.kube = None
        self.running = self.most = self.reads = 0
        self.gate = asyncio.Event()

    async def failure_events(self, namespace: str, *args: Any) -> list[Any]:
        self.reads += 1
        self.running += 1
        self.most = max(self.most, self.running)
        await self.gate.wait()
        self.running -= 1
        return []


def test_while_the_cache_loads_few_reads_go_direct_and_the_rest_wait_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """5,000 Hosts' first syncs each reading direct kept the events' own list from ending."""
    monkeypatch.setattr(kube_cache, "FIRST_LIST_WAIT", 0.01)
    direct = _SlowDirect()
    store = CachedStore(cast(KubeStore, direct))
    cache = store._namespaces["ns"] = _cache()

    async def main() -> list[list[Any]]:
        reads = [asyncio.ensure_future(store.failure_events("ns", f"h{i}")) for i in range(50)]
        while direct.running < kube_cache.DIRECT_READS:
            await asyncio.sleep(0.01)
        listed(cache, PLURAL.failure_events, [_event("e1", "h7")], "10")
        listed(cache, PLURAL.hosts, [], "10")
        for informer in cache.informers:
            informer.synced.set()  # listed: the waiting reads are served from memory
        direct.gate.set()
        return await asyncio.gather(*reads)

    found = asyncio.run(main())
    assert direct.most == direct.reads == kube_cache.DIRECT_READS
    assert [e.name for e in found[7]] == ["e1"]

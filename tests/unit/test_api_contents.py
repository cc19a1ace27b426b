"""The API's contents in memory: pages equal to listing.page over every rendered notification,
kept so through changes and deletes; writes never undone by older events; the informer lists
again after 410 Gone."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from multidict import MultiDict

from controller.api import listing, views
from controller.api.contents import Contents, trim
from controller.api.faults import ApiFault
from controller.api.ids import ID, UUID, object_uuid
from controller.api.notifications import NOTIFICATION_SORT_KEYS
from controller.api.store import Store
from controller.drivers.informer import Backoff, Informer
from controller.drivers.kube import PLURAL, Expired, KubeError

EVENTS, HOSTS, SEGMENTS = PLURAL.failure_events, PLURAL.hosts, PLURAL.segments


def metadata(name: str, rv: int, number: int) -> dict[str, Any]:
    return {
        "name": name,
        "uid": f"uid-{name}",
        "resourceVersion": str(rv),
        "creationTimestamp": "2026-01-01T00:00:00Z",
        "annotations": {ID: str(number), UUID: f"uuid-{name}"},
    }


def segment(name: str = "seg", rv: int = 1) -> dict[str, Any]:
    return {
        "metadata": metadata(name, rv, 1),
        "spec": {"serviceType": "COMPUTE", "recoveryMethod": "auto"},
    }


def host(name: str, rv: int = 1, number: int = 1, seg: str = "seg") -> dict[str, Any]:
    return {"metadata": metadata(name, rv, number), "spec": {"segment": seg}}


def event(
    number: int,
    rv: int,
    *,
    second: int = 0,
    phase: str = "Finished",
    kind: str = "PROCESS",
    on: str = "h1",
    annotated: bool = True,
) -> dict[str, Any]:
    # Every event has an id by the time a list is answered (Store.view numbers them first).
    annotations = {ID: str(number), UUID: f"uuid-ev{number}"} if annotated else {ID: str(number)}
    annotations["masakari.dev/last-handled-configuration"] = "x" * 1000
    return {
        "metadata": {
            "name": f"ev{number}",
            "uid": f"uid-ev{number}",
            "resourceVersion": str(rv),
            "creationTimestamp": f"2026-01-01T00:00:{second:02d}Z",
            "annotations": annotations,
            "managedFields": [
                {"time": f"2026-01-01T00:01:{second:02d}Z"},
                {"time": "2026-01-01T00:00:59Z"},
            ],
        },
        "spec": {
            "type": kind,
            "host": on,
            "generatedTime": f"2026-01-01T00:00:{number % 60:02d}Z",
            "payload": {"event": "STOPPED", "process_name": f"p{number % 3}"},
        },
        "status": {"phase": phase},
    }


def reference(contents: Contents, query: MultiDict[str]) -> list[int]:
    """What the API answered before the cache: every notification rendered, then paged."""
    everything = [
        views.notification(b, contents.host(b["spec"]["host"]), None)
        for b in contents.objects[EVENTS].values()
    ]
    wanted = {key: query.get(key) for key in ("status", "type", "source_host_uuid")}
    return [
        item["id"] for item in listing.answer(everything, query, NOTIFICATION_SORT_KEYS, wanted)
    ]


def cached(contents: Contents, query: MultiDict[str]) -> list[int]:
    limit, marker = listing.limit_and_marker(query)
    sort = listing.sort_params(query, NOTIFICATION_SORT_KEYS)
    wanted = {key: query[key] for key in ("status", "type", "source_host_uuid") if key in query}
    page = contents.notifications(
        sort, limit, marker, lambda row: all(row.values[k] == v for k, v in wanted.items())
    )
    return [int(b["metadata"]["annotations"][ID]) for b in page]


def queries(numbers: list[int]) -> Iterator[MultiDict[str]]:
    sorts: list[list[tuple[str, str]]] = [
        [],
        [("sort_key", "created_at")],
        [("sort_dir", "asc")],
        [("sort_key", "type"), ("sort_dir", "asc"), ("sort_key", "generated_time")],
        [
            ("sort_key", "status"),
            ("sort_key", "payload"),
            ("sort_dir", "desc"),
            ("sort_dir", "asc"),
        ],
        [("sort_key", "source_host_uuid"), ("sort_key", "updated_at"), ("sort_dir", "asc")],
    ]
    filters: list[list[tuple[str, str]]] = [[], [("status", "running")], [("type", "VM")]]
    for sort, filtered, limit, marker in itertools.product(
        sorts, filters, ["1", "4", "1000"], [None, *numbers[::7]]
    ):
        extra = [("limit", limit)] + ([("marker", str(marker))] if marker is not None else [])
        yield MultiDict(sort + filtered + extra)


def build(count: int, seed: int) -> Contents:
    chance = random.Random(seed)
    contents = Contents()
    contents.replace(SEGMENTS, [segment()], "1")
    contents.replace(HOSTS, [host("h1"), host("h2", number=2)], "2")
    bodies = [
        event(
            n,
            10 + n,
            second=chance.randrange(5),
            phase=chance.choice(["Finished", "Running"]),
            kind=chance.choice(["PROCESS", "VM"]),
            on=chance.choice(["h1", "h2", "gone"]),
            annotated=chance.random() < 0.8,
        )
        for n in range(1, count + 1)
    ]
    contents.replace(EVENTS, bodies, str(10 + count))
    return contents


@pytest.mark.parametrize("seed", [1, 2])
def test_pages_are_those_of_listing_over_every_rendered_notification(seed: int) -> None:
    contents = build(30, seed)
    for query in queries(list(range(1, 31))):
        assert cached(contents, query) == reference(contents, query), dict(query)


def test_pages_stay_right_through_changes_deletes_and_hosts_coming_and_going() -> None:
    contents = build(30, 3)
    contents.apply(EVENTS, "MODIFIED", event(4, 100, second=9, phase="Running", kind="VM"))
    contents.apply(EVENTS, "DELETED", event(5, 101))
    contents.apply(EVENTS, "ADDED", event(40, 102, second=1))
    contents.forget(EVENTS, contents.objects[EVENTS]["ev6"])
    contents.apply(HOSTS, "DELETED", host("h2", rv=103, number=2))  # source_host_uuid of some
    contents.apply(HOSTS, "ADDED", host("gone", rv=104, number=3))
    numbers = [int(name[2:]) for name in contents.objects[EVENTS]]
    assert 5 not in numbers and 6 not in numbers and 40 in numbers
    for query in queries(sorted(numbers)):
        assert cached(contents, query) == reference(contents, query), dict(query)


def test_unknown_marker_is_refused_as_before() -> None:
    contents = build(3, 4)
    with pytest.raises(ApiFault, match="Marker 99 could not be found"):
        cached(contents, MultiDict({"marker": "99"}))


def test_an_older_event_never_undoes_a_newer_write() -> None:
    contents = Contents()
    contents.apply(EVENTS, "ADDED", event(1, 50, phase="Running"))  # our write's answer
    contents.apply(EVENTS, "MODIFIED", event(1, 40, phase="New"))  # in flight before it
    assert contents.objects[EVENTS]["ev1"]["status"]["phase"] == "Running"
    contents.apply(EVENTS, "MODIFIED", event(1, 60, phase="Finished"))
    assert contents.objects[EVENTS]["ev1"]["status"]["phase"] == "Finished"


def test_a_deleted_object_is_not_brought_back_by_older_events_nor_the_list() -> None:
    contents = Contents()
    contents.replace(EVENTS, [event(1, 10), event(2, 11)], "11")
    contents.forget(EVENTS, contents.objects[EVENTS]["ev1"])
    contents.apply(EVENTS, "MODIFIED", event(1, 10))
    contents.replace(EVENTS, [event(1, 10), event(2, 11)], "11")  # a list from before the delete
    assert list(contents.objects[EVENTS]) == ["ev2"]
    assert contents.event_by_uuid("uuid-ev1") is None
    contents.apply(EVENTS, "ADDED", event(1, 30))  # made again, after the delete
    assert contents.event_by_uuid("uuid-ev1") is not None


def test_a_list_keeps_what_was_written_after_it_and_drops_what_went() -> None:
    contents = Contents()
    contents.replace(EVENTS, [event(1, 10), event(2, 11)], "11")
    contents.apply(EVENTS, "ADDED", event(3, 20))  # a write answered after the next list's read
    contents.apply(EVENTS, "MODIFIED", event(2, 21, phase="Running"))
    contents.replace(EVENTS, [event(2, 11)], "15")  # ev1 deleted before 15
    assert sorted(contents.objects[EVENTS]) == ["ev2", "ev3"]
    assert contents.objects[EVENTS]["ev2"]["status"]["phase"] == "Running"
    assert contents.notifications([("created_at", "desc"), ("id", "desc")], 10, None, bool)


def test_objects_being_deleted_are_not_served_and_indexes_shrink() -> None:
    contents = build(10, 5)
    for name in list(contents.objects[EVENTS]):
        body = event(int(name[2:]), 500)
        body["metadata"]["deletionTimestamp"] = "2026-01-01T00:02:00Z"
        contents.apply(EVENTS, "MODIFIED", body)
    assert contents.count(EVENTS) == 0 and not contents.events_of("h1")
    assert not contents.notifications([("created_at", "desc"), ("id", "desc")], 10, None, bool)
    assert contents._event_ids == {} and contents._rows == {}


def test_held_objects_are_trimmed_to_what_the_views_read() -> None:
    body = event(1, 10)
    body["metadata"]["labels"] = {"masakari.dev/host": "h1"}
    body["status"].update(
        message="done",
        reason="Recovered",
        steps=[{"name": "s", "state": "done", "progressDetails": [
            {"timestamp": "2026-01-01T00:00:01Z", "message": "m", "progress": 1.0}]}],
        instances=[{"instanceUuid": "i1", "status": "succeeded"}],
    )  # fmt: skip
    held = trim(EVENTS, body)
    assert held["metadata"]["annotations"] == {ID: "1", UUID: "uuid-ev1"}
    assert held["metadata"]["managedFields"] == [{"time": "2026-01-01T00:01:00Z"}]
    assert "labels" not in held["metadata"] and "reason" not in held["status"]
    for details in (False, True):
        assert views.notification(held, None, None, details=details) == views.notification(
            body, None, None, details=details
        )
    assert views.vmoves(held) == views.vmoves(body)
    a_host = {**host("h1"), "status": {"phase": "Active", "history": ["x"] * 100}}
    assert trim(HOSTS, a_host)["status"] == {"phase": "Active"}  # what on_maintenance reads
    assert views.host(trim(HOSTS, a_host), segment()) == views.host(a_host, segment())


def test_lookups_by_name_uuid_segment_and_open_events() -> None:
    contents = build(0, 6)
    contents.apply(EVENTS, "ADDED", event(1, 30, on="h2", phase="Running"))
    seg = contents.segment_by_uuid("uuid-seg")
    assert [h["metadata"]["name"] for h in contents.hosts_of(seg)] == ["h1", "h2"]
    assert contents.host_by_name("h2") is contents.host_by_uuid("uuid-h2")
    assert contents.under_recovery(seg)
    contents.apply(EVENTS, "MODIFIED", event(1, 31, on="h2", phase="Finished"))
    assert not contents.under_recovery(seg)
    with pytest.raises(ApiFault):
        contents.segment_by_uuid("nope")


class FakeKube:
    """Lists and watches of a made-up API server: a 410 on the first watch."""

    def __init__(self) -> None:
        self.lists = 0
        self.watches: list[str] = []
        self.release = threading.Event()

    async def list_versioned(
        self, plural: str, namespace: str, keep: Any = None
    ) -> tuple[list[Any], str]:
        self.lists += 1
        if self.lists == 1:
            return [event(1, 10)], "10"
        return [event(1, 10), event(2, 30)], "30"

    def watch(self, plural: str, namespace: str, version: str, seconds: int) -> Iterator[Any]:
        self.watches.append(version)
        if len(self.watches) == 1:
            yield {"type": "ADDED", "object": event(3, 11)}
            yield {"type": "ERROR", "object": {"code": 410, "message": "too old"}}
        elif len(self.watches) == 2:
            raise KubeError("connection refused")
        else:
            yield {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "35"}}}
            self.release.wait(5)


def test_informer_lists_again_after_410_and_retries_after_errors() -> None:
    async def scenario() -> tuple[FakeKube, Contents, Informer]:
        kube, contents = FakeKube(), Contents()
        informer = Informer(kube, "ns", EVENTS, contents)  # type: ignore[arg-type]
        informer.backoff = Backoff(first=0.01, most=0.02)
        informer.start()
        for _ in range(500):
            if len(kube.watches) >= 3:
                break
            await asyncio.sleep(0.01)
        kube.release.set()
        await informer.stop()
        return kube, contents, informer

    kube, contents, informer = asyncio.run(scenario())
    assert kube.lists == 2 and kube.watches[:3] == ["10", "30", "30"]
    # ev3 came from the watch before the 410, and the new list (at 30) did not hold it.
    assert sorted(contents.objects[EVENTS]) == ["ev1", "ev2"]
    assert informer.synced.is_set() and informer.lists == 2


def test_expired_is_a_kube_error() -> None:
    assert issubclass(Expired, KubeError)


class StoreKube:
    """A made-up API server for the Store: objects in a dict, a watch that never speaks."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.version = 100
        self.counter: dict[str, Any] = {"metadata": {"name": "ids", "resourceVersion": "1"}}
        self.quiet = threading.Event()

    def _stamp(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        body["metadata"]["resourceVersion"] = str(self.version)
        return json.loads(json.dumps(body))

    async def list(self, plural: str, namespace: str) -> list[Any]:
        return [json.loads(json.dumps(b)) for b in self.objects.values() if plural == EVENTS]

    async def list_versioned(
        self, plural: str, namespace: str, keep: Any = None
    ) -> tuple[list[Any], str]:
        return list(map(keep, await self.list(plural, namespace))), str(self.version)

    def watch(self, plural: str, namespace: str, version: str, seconds: int) -> Iterator[Any]:
        self.quiet.wait(5)
        yield from ()

    async def config_map(self, namespace: str, name: str) -> dict[str, Any]:
        return json.loads(json.dumps(self.counter))

    async def replace_config_map(self, namespace: str, name: str, body: Any) -> None:
        self.counter = body

    async def create(self, plural: str, namespace: str, body: dict[str, Any]) -> Any:
        body = json.loads(json.dumps(body))
        name = body["metadata"]["name"]
        body["metadata"].update(uid=f"uid-{name}", creationTimestamp="2026-01-01T00:00:00Z")
        self.objects[name] = self._stamp(body)
        return self.objects[name]

    async def patch(self, plural: str, namespace: str, name: str, patch: Any) -> Any:
        held = self.objects[name]
        held["status"] = {**held.get("status", {}), **patch.get("status", {})}
        return self._stamp(held)

    async def delete(self, plural: str, namespace: str, name: str) -> None:
        del self.objects[name]


def test_the_store_reads_its_own_writes_without_the_watch_and_the_server_before_sync() -> None:
    async def scenario() -> None:
        kube = StoreKube()
        kube.objects["ev1"] = event(1, 50)
        store = Store(kube, "ns")  # type: ignore[arg-type]
        assert not store.ready() and not store.readiness()["ready"]
        direct = await store.view()  # not started: read from the API server
        assert direct.event_by_uuid("uuid-ev1") is not None
        assert store.contents.count(EVENTS) == 0
        await store.start()
        for _ in range(100):
            if store.ready():
                break
            await asyncio.sleep(0.01)
        assert store.ready()
        body = event(2, 0)
        del body["metadata"]["annotations"], body["status"]
        made = await store.create(EVENTS, "ev2", "h1", body)
        view = await store.view()
        assert view.event_by_uuid(object_uuid(made)) is not None
        await store.patch(EVENTS, made, {"status": {"phase": "Running"}})
        assert views.status(view.event_by_uuid(object_uuid(made)) or {}) == "running"
        await store.delete(EVENTS, view.event_by_uuid(object_uuid(made)) or {})
        assert view.event_by_uuid(object_uuid(made)) is None
        kube.quiet.set()
        await store.stop()

    asyncio.run(scenario())


def test_informer_lists_again_when_an_event_cannot_be_applied() -> None:
    class Fragile(Contents):
        failures = 1

        def apply(self, plural: str, kind: str, body: dict[str, Any]) -> None:
            if self.failures:
                self.failures -= 1
                raise KeyError("a bug")
            super().apply(plural, kind, body)

    class Kube(FakeKube):
        def watch(self, plural: str, namespace: str, version: str, seconds: int) -> Iterator[Any]:
            self.watches.append(version)
            if len(self.watches) == 1:
                yield {"type": "ADDED", "object": event(3, 11)}
            self.release.wait(5)

    async def scenario() -> tuple[FakeKube, Contents]:
        kube, contents = Kube(), Fragile()
        informer = Informer(kube, "ns", EVENTS, contents)  # type: ignore[arg-type]
        informer.backoff = Backoff(first=0.01, most=0.02)
        informer.start()
        for _ in range(500):
            if len(kube.watches) >= 2:
                break
            await asyncio.sleep(0.01)
        kube.release.set()
        await informer.stop()
        return kube, contents

    kube, contents = asyncio.run(scenario())
    assert kube.lists == 2 and kube.watches[:2] == ["10", "30"]
    assert sorted(contents.objects[EVENTS]) == ["ev1", "ev2"]

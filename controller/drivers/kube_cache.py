"""The namespace's Hosts, FailureEvents and FailoverSegments kept in memory by watches, for the
passes that read all of them on a timer: the host pass (every 30 s), the segment resync (every
10 s per segment), the capacity check, the retention pass and the detection pass. Read from the API
server, those lists cost a full LIST of every event of the namespace each time: at 50,000
events, several a second.

Not for the recovery: its admission (the storm gate, the duplicate rule, reserved-host claims)
reads the API server under its lock (recovery.lifecycle), since what other recoveries were
admitted is a safety matter. The passes are not: they plan from what they read and write only
what changed, and a watch that works is as fresh as a list (a list of 50,000 events is
seconds old by the time its last page is in). A namespace whose watches do not work (not yet
listed, or failing since their last event) is read from the API server, as before: a cache
that stopped is never served.

Single Hosts and events are read from the API server: one GET, fresh. Segments are read from
memory: the host pass reads every one of them each pass, for how their hosts are fenced.
Unlike kopf's indexes, which were measured to hold every handler back for minutes at start
(docs/scale.md), nothing of a recovery waits for these watches, and a pass waits at most
FIRST_LIST_WAIT for a namespace's first lists before it reads direct.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from controller.drivers.informer import Informer
from controller.drivers.kube import PLURAL, Kube
from controller.drivers.kube_store import KubeStore, event_record, host_record
from controller.recovery.gates import TERMINAL
from controller.recovery.ports import EndedEvent, EventRecord, EventView, HostRecord, by_host
from controller.resources.host import DrainStatus, HostStatus
from controller.resources.segment import FailoverSegmentSpec

log = logging.getLogger("masakari.cache")
T = TypeVar("T")
# How long a pass waits for a namespace's first lists before it reads direct. At start every
# pass of every segment asks at once; each reading 50,000 events direct, side by side, is
# what first made a 500-host operator 650 MiB.
FIRST_LIST_WAIT = 30.0
# Reads made direct while a namespace's cache is not serving, at most this many at once. At
# 5,000 Hosts and 50,000 events every new Host's first sync read its events direct after the
# wait above: 5,000 filtered LISTs side by side kept the API server so busy that the events'
# own first list outlived its continue token (410) and restarted, again and again. The
# operator grew to 2.8 GB and after 10 minutes half the Hosts had status. A read that waited
# its turn asks the cache again first: once it serves, the queue drains from memory.
DIRECT_READS = 4

KEPT_METADATA = ("name", "namespace", "uid", "creationTimestamp", "generation", "resourceVersion")


def _keep(body: dict[str, Any]) -> dict[str, Any]:
    """What the records are made of: the managed fields and annotations are most of a
    listed object and none of a record."""
    meta = body["metadata"]
    return {
        "metadata": {key: meta[key] for key in KEPT_METADATA if key in meta},
        "spec": body.get("spec") or {},
        "status": body.get("status") or {},
    }


class NamespaceCache:
    """One namespace's Hosts and FailureEvents as records (an informer's sink)."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.namespace = namespace
        self.records: dict[str, dict[str, Any]] = {
            PLURAL.hosts: {},
            PLURAL.failure_events: {},
            PLURAL.segments: {},
        }
        # The events by host and the open ones, kept along with the records: a Host's sync
        # scanning every event of the namespace made a start with every Host new cost
        # hosts x events (250 million checks at 5,000 Hosts and 50,000 events), and each
        # segment's resync scanned them all for the few open ones every 10 s.
        self._by_host: dict[str, dict[str, EventView]] = {}
        self._open: dict[str, EventRecord] = {}
        # The Hosts by segment, for the same reason: each of 100 segments' resyncs went through
        # 5,000 Hosts for its own every 10 s, a sixth of the operator's CPU during a recovery.
        self._by_segment: dict[str, dict[str, HostRecord]] = {}
        self.informers = [
            Informer(kube, namespace, plural, self, functools.partial(self._record, plural))
            for plural in self.records
        ]

    def start(self) -> None:
        for informer in self.informers:
            informer.start()

    async def stop(self) -> None:
        for informer in self.informers:
            await informer.stop()

    async def listed(self, patience: float) -> None:
        """Wait, `patience` seconds at most, for every kind's first list."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(i.synced.wait() for i in self.informers)), patience
            )

    def serving(self) -> bool:
        """Listed, and no watch failing since its last event: otherwise read direct."""
        return all(i.synced.is_set() and not i.backoff.failures for i in self.informers)

    def _record(self, plural: str, body: dict[str, Any]) -> Any:
        """A listed object as held: its record, made as its page comes in. Made at the end of
        the list, 50,000 events' records held the event loop for 2.4 s in one go (py-spy; the
        Lease renewal and every recovery with it), with every trimmed body of the list
        still in memory; page by page, about 60 ms at a time."""
        return self._parsed(_PARSERS[plural], _keep(body))

    def replace(self, plural: str, bodies: list[Any], version: str) -> None:
        """`bodies`: the records `_record` made of a list (None where the models refused)."""
        records = {record.name: record for record in bodies if record is not None}
        self.records[plural] = records
        if plural == PLURAL.failure_events:
            self._by_host, self._open = {}, {}
        elif plural == PLURAL.hosts:
            self._by_segment = {}
        for record in records.values():
            self._index(plural, record)

    def apply(self, plural: str, kind: str, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        record = None if kind == "DELETED" else self._parsed(_PARSERS[plural], _keep(body))
        before = self.records[plural].pop(name, None)
        if before is not None:
            self._unindex(plural, before)
        if record is not None:
            self.records[plural][name] = record
            self._index(plural, record)

    def _index(self, plural: str, record: Any) -> None:
        if plural == PLURAL.hosts:
            self._by_segment.setdefault(record.spec.segment, {})[record.name] = record
            return
        if plural == PLURAL.segments:
            return
        self._by_host.setdefault(record.spec.host, {})[record.name] = record
        if isinstance(record, EventRecord):
            self._open[record.name] = record

    def _unindex(self, plural: str, record: Any) -> None:
        if plural == PLURAL.hosts:
            _drop(self._by_segment, record.spec.segment, record.name)
            return
        if plural == PLURAL.segments:
            return
        _drop(self._by_host, record.spec.host, record.name)
        self._open.pop(record.name, None)

    def _parsed(self, parse: Callable[[Mapping[str, Any]], Any], body: dict[str, Any]) -> Any:
        try:
            return parse(body)
        except ValidationError as error:
            # The API server's schema let it in, the models do not: the direct reads would
            # fail on it too. Left out, said once per change of it.
            log.warning(
                "%s/%s left out of the cache: %s",
                self.namespace,
                body["metadata"]["name"],
                error.errors()[:1],
            )
            return None

    def hosts(self, segment: str | None) -> list[HostRecord]:
        hosts = self.records[PLURAL.hosts] if segment is None else self._by_segment.get(segment, {})
        return list(hosts.values())

    def segment(self, name: str) -> FailoverSegmentSpec | None:
        held: _Segment | None = self.records[PLURAL.segments].get(name)
        # Validated as read, as the direct read does: a spec the models refuse raises here too.
        return None if held is None else FailoverSegmentSpec.model_validate(held.spec)

    def events_by_host(self) -> dict[str, list[EventView]]:
        return {host: list(events.values()) for host, events in self._by_host.items()}

    def failure_events(self, host: str | None) -> list[EventView]:
        events = (
            self.records[PLURAL.failure_events] if host is None else self._by_host.get(host, {})
        )
        return list(events.values())

    def open_events(self) -> list[EventRecord]:
        return list(self._open.values())


def _drop(grouped: dict[str, dict[str, Any]], key: str, name: str) -> None:
    """`name` out of its group, and the group out once empty: the index shrinks as objects go."""
    own = grouped.get(key, {})
    own.pop(name, None)
    if not own:
        grouped.pop(key, None)


@dataclass(frozen=True)
class _Segment:
    """A segment as held: its spec as listed, validated when read (see NamespaceCache.segment)."""

    name: str
    spec: Mapping[str, Any]


def _event(body: Mapping[str, Any]) -> EventRecord | EndedEvent:
    """An open event whole (the segment's summary reads its conditions), an ended one as only
    what the passes read of it (`EndedEvent`): ended events are nearly all of a namespace's,
    and nothing reads the rest of them from memory. Validated whole either way, as the
    direct reads do."""
    record = event_record(body)
    return EndedEvent.of(record) if record.status.phase in TERMINAL else record


_PARSERS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    PLURAL.hosts: host_record,
    PLURAL.failure_events: _event,
    PLURAL.segments: lambda body: _Segment(body["metadata"]["name"], body["spec"]),
}


class CachedStore:
    """recovery.ports.HostStore (and the lists the segment and detection passes read), from
    memory where a namespace's watches serve, else from the API server."""

    def __init__(self, direct: KubeStore) -> None:
        self.direct = direct
        self._namespaces: dict[str, NamespaceCache] = {}
        self._direct_reads = asyncio.Semaphore(DIRECT_READS)

    async def _cache(self, namespace: str) -> NamespaceCache:
        cache = self._namespaces.get(namespace)
        if cache is None:
            cache = self._namespaces[namespace] = NamespaceCache(self.direct.kube, namespace)
            cache.start()
        await cache.listed(FIRST_LIST_WAIT)
        return cache

    async def close(self) -> None:
        for cache in self._namespaces.values():
            await cache.stop()

    async def _read(
        self,
        namespace: str,
        from_memory: Callable[[NamespaceCache], T],
        direct: Callable[[], Awaitable[T]],
    ) -> T:
        cache = await self._cache(namespace)
        if not cache.serving():
            async with self._direct_reads:
                if not cache.serving():  # asked again: it may have listed while this waited
                    return await direct()
        return from_memory(cache)

    async def hosts(self, namespace: str, segment: str | None = None) -> list[HostRecord]:
        return await self._read(
            namespace, lambda c: c.hosts(segment), lambda: self.direct.hosts(namespace, segment)
        )

    async def failure_events(self, namespace: str, host: str | None = None) -> list[EventView]:
        """The namespace's events, or its host's: the ended ones as `EndedEvent`s."""

        async def direct() -> list[EventView]:
            return list(await self.direct.failure_events(namespace, host))

        return await self._read(namespace, lambda c: c.failure_events(host), direct)

    async def open_events(self, namespace: str) -> list[EventRecord]:
        """The events not ended, whole."""
        return await self._read(
            namespace,
            lambda c: c.open_events(),
            lambda: self.direct.failure_events(namespace, open_only=True),
        )

    async def events_by_host(self, namespace: str) -> dict[str, list[EventView]]:
        """Every event of the namespace, by host (`ports.by_host`): from memory, without
        going through each."""

        async def direct() -> dict[str, list[EventView]]:
            return by_host(await self.direct.failure_events(namespace))

        return await self._read(namespace, lambda c: c.events_by_host(), direct)

    async def host(self, namespace: str, name: str) -> HostRecord | None:
        return await self.direct.host(namespace, name)

    async def segment(self, namespace: str, name: str) -> FailoverSegmentSpec | None:
        """From memory: the host pass read each segment of the namespace from the API server,
        100 GETs a pass (most of what an idle operator asked of it at 5,000 Hosts)."""
        return await self._read(
            namespace, lambda c: c.segment(name), lambda: self.direct.segment(namespace, name)
        )

    async def write_host_status(
        self, namespace: str, name: str, status: HostStatus, released_holds: list[str]
    ) -> None:
        await self.direct.write_host_status(namespace, name, status, released_holds)

    async def write_host_drain(self, namespace: str, name: str, drain: DrainStatus) -> None:
        await self.direct.write_host_drain(namespace, name, drain)

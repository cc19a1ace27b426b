"""The namespace as the API reads it: segments, hosts and FailureEvents in memory, indexed by
what the routes look up (uuids, Masakari ids, display names, a segment's hosts, a host's
events) and the notifications kept sorted for Masakari's list (sort keys, marker, limit).

Filled by the informers (controller/drivers/informer.py) and by the API's own writes, whose
answers are applied at once so that a client reads what it has just written. Changes are
ordered by resourceVersion: an answer or event older than what is held is dropped, so a watch
event that was in flight during a write never undoes it. resourceVersions are opaque to
clients by Kubernetes' contract; kube-apiserver on etcd gives etcd's revision, an integer that
grows with every write, and these comparisons rely on that (a version that is not an integer
is taken as newer: the change is applied, as a plain informer would).

What is held is trimmed to what the views and the writes read (`trim`): managedFields become
their newest time, annotations other than the API's own go (kopf's copy of the spec is the
largest part of an ended FailureEvent), and so do labels and the Hosts' status but their phase
and reservation. An object
being deleted (deletionTimestamp) is no longer served, as
before the cache.
"""

from __future__ import annotations

import bisect
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controller.api import views
from controller.api.faults import bad_request, not_found
from controller.api.ids import ID, UUID, object_id, object_uuid
from controller.api.listing import comparable
from controller.api.validation import date_time
from controller.drivers.kube import PLURAL
from controller.recovery.gates import OPEN_PHASES

Body = dict[str, Any]
KEPT_ANNOTATIONS = frozenset({ID, UUID, views.NAME, views.SOURCE_HOST_UUID})
KEPT_METADATA = ("name", "uid", "resourceVersion", "creationTimestamp", "deletionTimestamp")
# "segment": the report's, for events whose Host is gone.
KEPT_EVENT_STATUS = ("phase", "message", "endTime", "steps", "instances", "segment")
# What views.host reads of a Host's status: Masakari's on_maintenance and reserved.
KEPT_HOST_STATUS = ("phase", "reservation")
ROW_KEYS = (
    "id", "notification_uuid", "created_at", "updated_at", "generated_time", "type", "payload",
    "status", "source_host_uuid",
)  # fmt: skip
DEFAULT_ORDER = (("created_at", "desc"), ("id", "desc"))
OTHER_ORDERS = 4  # sort orders kept besides the default, the least recently asked dropped
TOMBSTONE_SECONDS = 600.0


def trim(plural: str, body: Body) -> Body:
    """What the views, the duplicate check and the writes read of `body`, its repeated
    strings shared: at 50,000 FailureEvents the rest (labels, kopf's annotation, the
    managedFields, the Hosts' status but what on_maintenance and reserved read) was most of
    the API's memory."""
    meta = body["metadata"]
    writes = [entry["time"] for entry in meta.get("managedFields") or [] if entry.get("time")]
    kept: Body = {key: meta[key] for key in KEPT_METADATA if key in meta}
    annotations = {
        key: value
        for key, value in (meta.get("annotations") or {}).items()
        if key in KEPT_ANNOTATIONS
    }
    if annotations:
        kept["annotations"] = annotations
    if writes:
        kept["managedFields"] = [{"time": max(writes)}]
    trimmed: Body = {"metadata": kept, "spec": body.get("spec") or {}}
    status = body.get("status") or {}
    if plural == PLURAL.failure_events and status:
        trimmed["status"] = {key: status[key] for key in KEPT_EVENT_STATUS if key in status}
    elif plural == PLURAL.hosts and status:
        trimmed["status"] = {key: status[key] for key in KEPT_HOST_STATUS if key in status}
    shared: Body = _shared(trimmed)
    return shared


def _shared(value: Any) -> Any:
    """`value` with its short strings interned: phases, types, host names and timestamps
    repeat across thousands of objects, and each JSON decode makes its own copies."""
    if isinstance(value, str):
        return sys.intern(value) if len(value) <= 64 else value
    if isinstance(value, dict):
        return {sys.intern(key): _shared(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shared(item) for item in value]
    return value


def version(body: Mapping[str, Any]) -> int | None:
    try:
        return int(body["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return None


def _older(candidate: Mapping[str, Any], held: Mapping[str, Any]) -> bool:
    new, old = version(candidate), version(held)
    return new is not None and old is not None and new < old


@dataclass(frozen=True)
class Row:
    """A notification's fields that lists sort and filter on, as its view renders them."""

    values: dict[str, Any]
    generated: datetime


class _Mixed:
    """A sort key whose keys go in different directions (a tuple cannot say that)."""

    __slots__ = ("ascending", "name", "values")

    def __init__(self, values: tuple[Any, ...], ascending: tuple[bool, ...], name: str) -> None:
        self.values, self.ascending, self.name = values, ascending, name

    def __lt__(self, other: _Mixed) -> bool:
        for mine, theirs, up in zip(self.values, other.values, self.ascending, strict=True):
            if mine != theirs:
                return bool((mine < theirs) == up)
        return self.name < other.name


class Order:
    """The notifications sorted one way, kept sorted as they change: a page is a bisection
    and a walk of `limit` items, not a sort of the namespace.

    The object name ends every key (a hidden last tiebreak) so that keys are distinct and a
    change finds its own entry; Masakari's `created_at`, `id` tiebreaks make it matter only
    for objects without an id yet."""

    def __init__(self, sort: tuple[tuple[str, str], ...]) -> None:
        self.sort = sort
        directions = {direction for _, direction in sort}
        self.plain = len(directions) == 1  # one direction: a tuple, compared in C
        self.descending = self.plain and directions == {"desc"}
        self.keys: list[Any] = []

    def key(self, row: Row, name: str) -> Any:
        values = tuple(comparable(row.values[field]) for field, _ in self.sort)
        if self.plain:
            return (*values, name)
        return _Mixed(values, tuple(d == "asc" for _, d in self.sort), name)

    def fill(self, rows: Mapping[str, Row]) -> None:
        self.keys = sorted(self.key(row, name) for name, row in rows.items())

    def add(self, row: Row, name: str) -> None:
        bisect.insort(self.keys, self.key(row, name))

    def remove(self, row: Row, name: str) -> None:
        key = self.key(row, name)
        at = bisect.bisect_left(self.keys, key)
        if at < len(self.keys) and _name(self.keys[at]) == name:
            del self.keys[at]
            return
        # Not where its row says: a bug somewhere; never leave a ghost behind.
        self.keys = [k for k in self.keys if _name(k) != name]

    def walk(self, after: Any | None) -> Iterator[str]:
        """Names in answer order, starting after the key `after`."""
        if self.descending:
            end = len(self.keys) if after is None else bisect.bisect_left(self.keys, after)
            for at in range(end - 1, -1, -1):
                yield _name(self.keys[at])
        else:
            start = 0 if after is None else bisect.bisect_right(self.keys, after)
            for at in range(start, len(self.keys)):
                yield _name(self.keys[at])


def _name(key: Any) -> str:
    return str(key.name if isinstance(key, _Mixed) else key[-1])


class Contents:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Body]] = {
            PLURAL.segments: {}, PLURAL.hosts: {}, PLURAL.failure_events: {},
        }  # fmt: skip
        self._by_uuid: dict[str, dict[str, str]] = {plural: {} for plural in self.objects}
        self._unnumbered: dict[str, set[str]] = {plural: set() for plural in self.objects}
        self._tombstones: dict[tuple[str, str], tuple[int | None, float]] = {}
        self._host_names: dict[str, set[str]] = {}  # display name -> object names
        self._hosts_in: dict[str, set[str]] = {}  # segment object name -> host object names
        self._event_ids: dict[int, str] = {}
        # The highest Masakari id seen per kind, deleted objects included: ids made outside the
        # API (an import keeps Masakari's) are never handed out again.
        self.highest_id: dict[str, int] = dict.fromkeys(self.objects, 0)
        self._events_of: dict[str, set[str]] = {}  # host object name -> event object names
        self._rows: dict[str, Row] = {}
        self._orders: OrderedDict[tuple[tuple[str, str], ...], Order] = OrderedDict()
        self._orders[DEFAULT_ORDER] = Order(DEFAULT_ORDER)
        self._bulk = False

    # --- changes ------------------------------------------------------------------------------

    def replace(self, plural: str, bodies: list[Body], listed_at: str) -> None:
        """Everything of `plural` as listed at `listed_at`, merged with what this process
        wrote after the list's snapshot (kept: newer than the list) or deleted (dropped)."""
        at = int(listed_at) if listed_at.isdigit() else None
        merged: dict[str, Body] = {}
        for body in bodies:
            if self._deleting(body) or self._buried(plural, body):
                continue
            merged[body["metadata"]["name"]] = trim(plural, body)
        for name, held in self.objects[plural].items():
            newer_than_list = at is not None and (version(held) or 0) > at
            ours = _older(merged[name], held) if name in merged else newer_than_list
            if ours:
                merged[name] = held
        for plural_, name in list(self._tombstones):
            if plural_ == plural and name not in merged:
                del self._tombstones[plural_, name]
        # In bulk, the sort orders are rebuilt once (one sort), not kept per object (an
        # insertion each: quadratic in the events).
        self._bulk = True
        try:
            for name in list(self.objects[plural]):
                self._drop(plural, name)
            for body in merged.values():
                self._put(plural, body)
        finally:
            self._bulk = False
        for order in self._orders.values():
            order.fill(self._rows)

    def apply(self, plural: str, kind: str, body: Body) -> None:
        """A watch event, or the answer to one of this process's writes."""
        name = body["metadata"]["name"]
        held = self.objects[plural].get(name)
        if held is not None and _older(body, held):
            return  # an event from before a write whose answer is already applied
        if kind == "DELETED":
            self._tombstones.pop((plural, name), None)
            self._drop(plural, name)
            return
        if self._buried(plural, body):
            return
        if self._deleting(body):
            self._drop(plural, name)
            return
        self._drop(plural, name)
        self._put(plural, trim(plural, body))

    def forget(self, plural: str, body: Body) -> None:
        """This process deleted `body`: no longer served, and no event of the version it
        was deleted at (or older) brings it back."""
        name = body["metadata"]["name"]
        now = time.monotonic()
        for key, (_, since) in list(self._tombstones.items()):
            if now - since > TOMBSTONE_SECONDS:
                del self._tombstones[key]
        self._tombstones[plural, name] = (version(body), now)
        self._drop(plural, name)

    def _buried(self, plural: str, body: Body) -> bool:
        tombstone = self._tombstones.get((plural, body["metadata"]["name"]))
        if tombstone is None:
            return False
        buried_at, new = tombstone[0], version(body)
        return buried_at is None or new is None or new <= buried_at

    @staticmethod
    def _deleting(body: Body) -> bool:
        return bool(body["metadata"].get("deletionTimestamp"))

    def _put(self, plural: str, body: Body) -> None:
        name = body["metadata"]["name"]
        self.objects[plural][name] = body
        self._by_uuid[plural][object_uuid(body)] = name
        number = object_id(body)
        if number is None:
            self._unnumbered[plural].add(name)
        else:
            self.highest_id[plural] = max(self.highest_id[plural], number)
        if plural == PLURAL.hosts:
            self._host_names.setdefault(views.display_name(body), set()).add(name)
            self._hosts_in.setdefault(body["spec"]["segment"], set()).add(name)
            self._rerow(self._events_of.get(name, set()))
        elif plural == PLURAL.failure_events:
            if number is not None:
                self._event_ids[number] = name
            self._events_of.setdefault(body["spec"]["host"], set()).add(name)
            row = self._row(body)
            self._rows[name] = row
            for order in self._sorted():
                order.add(row, name)

    def _drop(self, plural: str, name: str) -> None:
        body = self.objects[plural].pop(name, None)
        if body is None:
            return
        _discard(self._by_uuid[plural], object_uuid(body), name)
        self._unnumbered[plural].discard(name)
        if plural == PLURAL.hosts:
            _remove(self._host_names, views.display_name(body), name)
            _remove(self._hosts_in, body["spec"]["segment"], name)
            self._rerow(self._events_of.get(name, set()))
        elif plural == PLURAL.failure_events:
            if (number := object_id(body)) is not None:
                _discard(self._event_ids, number, name)
            _remove(self._events_of, body["spec"]["host"], name)
            row = self._rows.pop(name)
            for order in self._sorted():
                order.remove(row, name)

    def _row(self, body: Body) -> Row:
        view = views.notification(body, self.objects[PLURAL.hosts].get(body["spec"]["host"]), None)
        values = {key: view[key] for key in ROW_KEYS}
        return Row(values, date_time(body["spec"]["generatedTime"]))

    def _rerow(self, events: set[str]) -> None:
        """A host came or went: its events' source_host_uuid may be its uuid or none."""
        for name in list(events):
            body = self.objects[PLURAL.failure_events][name]
            old, new = self._rows[name], self._row(body)
            if old == new:
                continue
            for order in self._sorted():
                order.remove(old, name)
                order.add(new, name)
            self._rows[name] = new

    def _sorted(self) -> list[Order]:
        return [] if self._bulk else list(self._orders.values())

    # --- reads --------------------------------------------------------------------------------

    def count(self, plural: str) -> int:
        return len(self.objects[plural])

    def unnumbered(self, plural: str) -> list[Body]:
        """Objects without a Masakari id yet (made by kubectl, GitOps, the hostmonitor)."""
        return [self.objects[plural][name] for name in sorted(self._unnumbered[plural])]

    def segments(self) -> list[Body]:
        return list(self.objects[PLURAL.segments].values())

    def segment_by_uuid(self, segment_uuid: str) -> Body:
        name = self._by_uuid[PLURAL.segments].get(segment_uuid)
        if name is None:
            raise not_found(f"No failover segment with id {segment_uuid[:64]}.")
        return self.objects[PLURAL.segments][name]

    def segment_of(self, host_body: Body | None) -> Body | None:
        if host_body is None:
            return None
        return self.objects[PLURAL.segments].get(host_body["spec"]["segment"])

    def hosts(self) -> list[Body]:
        return list(self.objects[PLURAL.hosts].values())

    def hosts_of(self, segment_body: Body) -> list[Body]:
        names = sorted(self._hosts_in.get(segment_body["metadata"]["name"], ()))
        return [self.objects[PLURAL.hosts][name] for name in names]

    def host(self, object_name: str) -> Body | None:
        return self.objects[PLURAL.hosts].get(object_name)

    def host_by_uuid(self, host_uuid: str) -> Body | None:
        name = self._by_uuid[PLURAL.hosts].get(host_uuid)
        return None if name is None else self.objects[PLURAL.hosts][name]

    def host_by_name(self, display: str) -> Body | None:
        """The host Masakari calls `display` (unique when made through the API)."""
        names = self._host_names.get(display)
        return self.objects[PLURAL.hosts][min(names)] if names else None

    def events_of(self, host_object: str) -> list[Body]:
        names = sorted(self._events_of.get(host_object, ()))
        return [self.objects[PLURAL.failure_events][name] for name in names]

    def events_of_record(self, host_body: Body) -> list[Body]:
        """The events of this registration of the host (Masakari's source_host_uuid): those
        posted through the API name it by its uuid; others (kubectl, the hostmonitor) count
        when made since its Host was created, as the operator counts them
        (gates.of_registration)."""
        record = object_uuid(host_body)
        registered = date_time(host_body["metadata"]["creationTimestamp"])
        return [
            event
            for event in self.events_of(host_body["metadata"]["name"])
            if (event["metadata"].get("annotations") or {}).get(views.SOURCE_HOST_UUID, record)
            == record
            and date_time(event["metadata"]["creationTimestamp"]) >= registered
        ]

    def event_by_uuid(self, event_uuid: str) -> Body | None:
        name = self._by_uuid[PLURAL.failure_events].get(event_uuid)
        return None if name is None else self.objects[PLURAL.failure_events][name]

    def under_recovery(self, segment_body: Body) -> bool:
        """Masakari's rule: a notification of one of the segment's hosts in new/running/error."""
        return any(
            (event.get("status") or {}).get("phase") in OPEN_PHASES
            for host in self.hosts_of(segment_body)
            for event in self.events_of(host["metadata"]["name"])
        )

    def notifications(
        self,
        sort: list[tuple[str, str]],
        limit: int,
        marker: int | None,
        keep: Callable[[Row], bool],
    ) -> list[Body]:
        """A page of FailureEvents as listing.page would cut it from all rendered ones."""
        order = self._order(tuple(sort))
        after = None
        if marker is not None:
            anchor = self._event_ids.get(marker)
            if anchor is None:
                raise bad_request(f"Marker {marker} could not be found.")
            after = order.key(self._rows[anchor], anchor)
        page: list[Body] = []
        if limit <= 0:
            return page
        for name in order.walk(after):
            if keep(self._rows[name]):
                page.append(self.objects[PLURAL.failure_events][name])
                if len(page) >= limit:
                    break
        return page

    def _order(self, sort: tuple[tuple[str, str], ...]) -> Order:
        order = self._orders.get(sort)
        if order is None:
            order = Order(sort)
            order.fill(self._rows)
            self._orders[sort] = order
            if len(self._orders) > 1 + OTHER_ORDERS:
                oldest = next(key for key in self._orders if key != DEFAULT_ORDER)
                del self._orders[oldest]
        self._orders.move_to_end(sort)
        return order


def _discard(index: dict[Any, str], key: Any, name: str) -> None:
    if index.get(key) == name:
        del index[key]


def _remove(index: dict[str, set[str]], key: str, name: str) -> None:
    names = index.get(key)
    if names is not None:
        names.discard(name)
        if not names:
            del index[key]

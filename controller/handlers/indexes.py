"""The objects kept in memory from kopf's watches (`@kopf.index`), read by the Store
(controller.drivers.kube_store): kopf fills them before any handler runs, so no decision reads
the API server's lists. Each value carries the object's resourceVersion, which lets the Store
prefer its own newer writes until the watch delivers them."""

from __future__ import annotations

from typing import Any

import kopf

from controller.drivers.kube_store import event_record, host_record, version
from controller.recovery.gates import TERMINAL
from controller.recovery.ports import EventRecord, HostRecord
from controller.resources.common import GROUP, VERSION
from controller.resources.segment import FailoverSegmentSpec


@kopf.index(GROUP, VERSION, "failureevents")
def failure_events_index(
    body: kopf.Body, **_: Any
) -> dict[tuple[str, ...], tuple[int, EventRecord]]:
    record = event_record(body)
    at, host, entry = record.namespace, record.spec.host, (version(body), record)
    keys: dict[tuple[str, ...], tuple[int, EventRecord]] = {(at,): entry, (at, "host", host): entry}
    if record.status.phase not in TERMINAL:  # the few a decision counts, among the many kept
        keys[(at, "open")] = keys[(at, host, "open")] = entry
    return keys


@kopf.index(GROUP, VERSION, "hosts")
def hosts_index(
    body: kopf.Body, name: str, **_: Any
) -> dict[tuple[str, ...], tuple[int, HostRecord]]:
    record, at = host_record(body), body["metadata"]["namespace"]
    entry = (version(body), record)
    return {
        (at,): entry,
        (at, "segment", record.spec.segment): entry,
        (at, "name", name): entry,
    }


@kopf.index(GROUP, VERSION, "failoversegments")
def segments_index(
    body: kopf.Body, name: str, **_: Any
) -> dict[tuple[str, str], tuple[int, FailoverSegmentSpec]]:
    spec = FailoverSegmentSpec.model_validate(body["spec"])
    return {(body["metadata"]["namespace"], name): (version(body), spec)}

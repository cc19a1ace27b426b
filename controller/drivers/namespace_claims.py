"""Namespaces and their shard claims on the API server (controller.recovery.shards says the
rules). Blocking calls, each with a timeout: the operator runs them in a thread, `run` before
kopf starts. A claim or release is a merge patch carrying the resourceVersion it was decided
on, so the API server refuses it (409) when the Namespace changed since: two shards deciding
at once cannot both win."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from controller.recovery.shards import ANNOTATION, NamespaceState, lease_of

log = logging.getLogger("masakari.shards")


@dataclass(frozen=True)
class LeaseRecord:
    record: tuple[Any, ...] | None  # what changes on every renewal; None: no such Lease
    duration: float  # its leaseDurationSeconds, 0 when unknown


@dataclass(frozen=True)
class NamespaceClaims:
    core: Any  # kubernetes.client.CoreV1Api
    coordination: Any  # kubernetes.client.CoordinationV1Api
    timeout: float

    @classmethod
    def from_client(cls, client: kubernetes.client.ApiClient, timeout: float) -> NamespaceClaims:
        return cls(
            kubernetes.client.CoreV1Api(client),
            kubernetes.client.CoordinationV1Api(client),
            timeout,
        )

    def read(self, selector: str | None) -> list[NamespaceState]:
        """Every namespace with its claim; `selected` by `selector` (none: nothing selected).
        Two lists, not one atomic view: a write decided on a stale one is refused by its
        resourceVersion, and the next reading sees the change."""
        selected: set[str] = set()
        if selector is not None:
            listed = self.core.list_namespace(
                label_selector=selector, _request_timeout=self.timeout
            )
            selected = {item.metadata.name for item in listed.items}
        everything = self.core.list_namespace(_request_timeout=self.timeout)
        return [
            NamespaceState(
                name=item.metadata.name,
                selected=item.metadata.name in selected,
                claim=(item.metadata.annotations or {}).get(ANNOTATION) or None,
                resource_version=item.metadata.resource_version,
            )
            for item in everything.items
        ]

    def claim(self, namespace: NamespaceState, shard: str) -> bool:
        """False when someone else changed the Namespace first (or it is gone)."""
        return self._annotate(namespace, shard)

    def release(self, name: str, shard: str) -> bool:
        """Read again and remove the claim if it is still `shard`'s: a release may come a while
        after the reading that decided it (at exit), and must never remove another's claim."""
        try:
            current = self.core.read_namespace(name, _request_timeout=self.timeout)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        if (current.metadata.annotations or {}).get(ANNOTATION) != shard:
            return False
        state = NamespaceState(name, False, shard, current.metadata.resource_version)
        return self._annotate(state, None)

    def _annotate(self, namespace: NamespaceState, value: str | None) -> bool:
        body = {
            "metadata": {
                "resourceVersion": namespace.resource_version,
                "annotations": {ANNOTATION: value},
            }
        }
        try:
            self.core.patch_namespace(namespace.name, body, _request_timeout=self.timeout)
        except ApiException as error:
            if error.status in (404, 409):
                return False
            raise
        return True

    def warn(self, namespace: str, reason: str, message: str) -> None:
        """A Warning Event about the Namespace, shown by `kubectl describe namespace`. The API
        server keeps the Events of a cluster-wide object in `default`."""
        now = datetime.now(UTC)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{namespace}."},
            "involvedObject": {"apiVersion": "v1", "kind": "Namespace", "name": namespace},
            "reason": reason,
            "message": message,
            "type": "Warning",
            "source": {"component": "masakari-operator"},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self.core.create_namespaced_event("default", body, _request_timeout=self.timeout)

    def lease(self, shard: str) -> LeaseRecord:
        where = lease_of(shard)
        if where is None:
            return LeaseRecord(None, 0.0)
        try:
            lease = self.coordination.read_namespaced_lease(
                where[1], where[0], _request_timeout=self.timeout
            )
        except ApiException as error:
            if error.status == 404:
                return LeaseRecord(None, 0.0)
            raise
        spec = lease.spec
        record = (spec.holder_identity, spec.renew_time, lease.metadata.resource_version)
        return LeaseRecord(record, float(spec.lease_duration_seconds or 0))

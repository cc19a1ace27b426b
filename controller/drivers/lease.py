"""Leader election on a coordination.k8s.io Lease: one operator replica acts, others wait.

The rules client-go uses: a Lease held by someone else is taken over only once its record
has not changed for a whole lease duration on our own clock (no trust in remote clocks); the
holder renews every third of the duration and gives up (the process exits) if it could not
renew for two thirds of it, so it stops acting before anyone else may start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("masakari.leadership")


def identity() -> str:
    """Unique per process: a restarted pod is a new candidate, not the old holder."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}-{uuid.uuid4().hex[:8]}"


@dataclass
class Lease:
    api: Any  # kubernetes.client.CoordinationV1Api
    namespace: str
    name: str
    duration: float
    holder: str = field(default_factory=identity)
    on_lost: Callable[[], None] = lambda: os._exit(70)
    _observed: tuple[Any, ...] | None = None
    _observed_at: float = 0.0

    @classmethod
    def from_client(
        cls, client: kubernetes.client.ApiClient, namespace: str, name: str, duration: float
    ) -> Lease:
        return cls(kubernetes.client.CoordinationV1Api(client), namespace, name, duration)

    def _body(self, resource_version: str | None, acquired: bool) -> dict[str, Any]:
        now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        spec: dict[str, Any] = {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": max(1, round(self.duration)),
            "renewTime": now,
        }
        if acquired:
            spec["acquireTime"] = now
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if resource_version:
            metadata["resourceVersion"] = resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }

    def try_acquire(self) -> bool:
        """One attempt; True when we hold the lease afterwards."""
        try:
            current = self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as error:
            if error.status != 404:
                raise
            try:
                self.api.create_namespaced_lease(self.namespace, self._body(None, True))
                return True
            except ApiException as create_error:
                if create_error.status == 409:
                    return False
                raise
        spec = current.spec
        record = (spec.holder_identity, spec.renew_time, current.metadata.resource_version)
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
        mine = spec.holder_identity == self.holder
        expired = time.monotonic() - self._observed_at >= self.duration
        if not (mine or expired or not spec.holder_identity):
            return False
        try:
            self.api.replace_namespaced_lease(
                self.name,
                self.namespace,
                self._body(current.metadata.resource_version, acquired=not mine),
            )
        except ApiException as error:
            if error.status == 409:  # someone else wrote first
                return False
            raise
        return True

    async def acquire(self) -> None:
        """Wait until this replica leads. A standby waits for as long as the leader lives."""
        waiting_logged = False
        while True:
            try:
                if await asyncio.to_thread(self.try_acquire):
                    log.info("leading as %s (lease %s/%s)", self.holder, self.namespace, self.name)
                    return
            except Exception as error:  # a standby keeps trying whatever the API does
                log.warning("lease %s/%s: %s", self.namespace, self.name, _brief(error))
            if not waiting_logged:
                log.info(
                    "standing by: lease %s/%s is held by another replica", self.namespace, self.name
                )
                waiting_logged = True
            await asyncio.sleep(self.duration / 3)

    async def keep(self) -> None:
        """Renew until the process ends; exit when leadership cannot be kept."""
        last_renewed = time.monotonic()
        while True:
            await asyncio.sleep(self.duration / 3)
            try:
                if await asyncio.to_thread(self.try_acquire):
                    last_renewed = time.monotonic()
                    continue
                log.critical(
                    "lease %s/%s taken by another replica; stopping at once",
                    self.namespace,
                    self.name,
                )
                self.on_lost()
                return
            except Exception as error:  # any failure to renew counts against the deadline
                log.warning("renewing lease %s/%s: %s", self.namespace, self.name, _brief(error))
            if time.monotonic() - last_renewed > self.duration * 2 / 3:
                log.critical(
                    "lease %s/%s not renewed in time; stopping at once", self.namespace, self.name
                )
                self.on_lost()
                return


def _brief(error: Exception) -> str:
    if isinstance(error, ApiException):
        return f"API error {error.status}"
    return type(error).__name__

"""Leader election on a coordination.k8s.io Lease: one operator replica acts, others wait.

The rules client-go uses: a Lease held by someone else is taken over only once its record
has not changed for a whole lease duration on our own clock (no trust in remote clocks). The
holder renews every sixth of the duration and holds (`holding()`) only while its last
successful renewal started less than two thirds of the duration ago, a third before anyone
may take over. The clock is CLOCK_MONOTONIC, which keeps counting while the process is frozen
(SIGSTOP, a paused VM), so a leader that wakes up knows at once that it may no longer act.

No call can hold the deadline up: every Lease call has a request timeout of a sixth of the
duration, a renewal is abandoned after as long, and the deadline has a timer of its own that
stops the process (exit 70). The drivers ask `holding()` before every write to Kubernetes and
every call that changes Nova (see controller.handlers.startup): a leader that wakes up past
its deadline is refused everything even before its timer fires.

A leader that is told to stop (SIGTERM: a rolling update, a drain) releases the Lease once its
handlers have stopped, as client-go's ReleaseOnCancel does: the standby takes over at its next
attempt instead of a whole lease duration later. `answered_at` tells the readiness probe that
a replica, leader or standby, still reaches the API server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("masakari.leadership")


class NotLeading(Exception):
    """This replica does not hold the Lease (any more): it must not change anything."""


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
    clock: Callable[[], float] = time.monotonic  # must keep counting while the process is frozen
    _observed: tuple[Any, ...] | None = None
    _observed_at: float = 0.0
    _renewed_at: float | None = None  # when the last successful write to the Lease started
    _lost: bool = False
    answered_at: float | None = None  # when the API server last answered a Lease call
    # Threads of its own: renewals never queue behind other Kubernetes or Nova calls.
    _threads: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="lease")
    )

    @classmethod
    def from_client(
        cls, client: kubernetes.client.ApiClient, namespace: str, name: str, duration: float
    ) -> Lease:
        return cls(kubernetes.client.CoordinationV1Api(client), namespace, name, duration)

    @property
    def renew_deadline(self) -> float:
        return self.duration * 2 / 3

    @property
    def retry_period(self) -> float:
        """Between renewals, and the most one Lease call or renewal may take: a hung call still
        leaves room for two more renewals before the deadline."""
        return self.duration / 6

    def holding(self) -> bool:
        """True while this replica may act: it renewed within the renew deadline."""
        return not self._lost and self._time_left() > 0

    def answered_within(self, seconds: float) -> bool:
        return self.answered_at is not None and self.clock() - self.answered_at < seconds

    def _time_left(self) -> float:
        if self._renewed_at is None:
            return 0.0
        return self._renewed_at + self.renew_deadline - self.clock()

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
        # The write lands after this moment, so anyone else's wait starts after it too.
        started = self.clock()
        timeout = self.retry_period
        try:
            current = self.api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=timeout
            )
        except ApiException as error:
            if error.status != 404:
                raise
            self.answered_at = self.clock()
            if self._lost:
                return False
            try:
                self.api.create_namespaced_lease(
                    self.namespace, self._body(None, True), _request_timeout=timeout
                )
            except ApiException as create_error:
                if create_error.status == 409:
                    return False
                raise
            self._renewed_at = started
            return True
        self.answered_at = self.clock()
        spec = current.spec
        record = (spec.holder_identity, spec.renew_time, current.metadata.resource_version)
        if record != self._observed:
            self._observed, self._observed_at = record, self.clock()
        mine = spec.holder_identity == self.holder
        expired = self.clock() - self._observed_at >= self.duration
        # Once released or lost, never again: a renewal still in flight must not undo a release.
        if self._lost or not (mine or expired or not spec.holder_identity):
            return False
        try:
            self.api.replace_namespaced_lease(
                self.name,
                self.namespace,
                self._body(current.metadata.resource_version, acquired=not mine),
                _request_timeout=timeout,
            )
        except ApiException as error:
            if error.status == 409:  # someone else wrote first
                return False
            raise
        self._renewed_at = started
        return True

    async def _attempt(self) -> bool:
        """try_acquire off the event loop, given up after one retry period."""
        loop = asyncio.get_running_loop()
        attempt = loop.run_in_executor(self._threads, self.try_acquire)
        return await asyncio.wait_for(attempt, self.retry_period)

    async def acquire(self) -> None:
        """Wait until this replica leads. A standby waits for as long as the leader lives."""
        waiting_logged = False
        while True:
            try:
                if await self._attempt():
                    log.info("leading as %s (lease %s/%s)", self.holder, self.namespace, self.name)
                    return
            except Exception as error:  # a standby keeps trying whatever the API does
                log.warning("lease %s/%s: %s", self.namespace, self.name, brief(error))
            if not waiting_logged:
                log.info(
                    "standing by: lease %s/%s is held by another replica", self.namespace, self.name
                )
                waiting_logged = True
            await asyncio.sleep(self.duration / 3)

    async def keep(self) -> None:
        """Renew until the process ends; call on_lost (exit) once leadership is not certain.

        The deadline is watched here, apart from the renewals: a renewal stuck in a call
        cannot delay it."""
        renewing = asyncio.create_task(self._renew(), name="lease renewal")
        try:
            while self.holding() and not renewing.done():
                await asyncio.wait([renewing], timeout=self._time_left())
        finally:
            renewing.cancel()
        self._lost = True
        if renewing.done() and not renewing.cancelled():
            why = "taken by another replica"
        else:
            why = "not renewed in time"
        log.critical("lease %s/%s %s; stopping at once", self.namespace, self.name, why)
        self.on_lost()

    def release(self) -> bool:
        """Stop acting, then clear the holder if it is still us; True when it was cleared.

        The record is what client-go writes on release: no holder, a duration of one second,
        so any candidate takes the Lease at its next attempt."""
        self._lost = True
        for _ in range(2):  # a renewal that was already on the wire may bump the version once
            try:
                current = self.api.read_namespaced_lease(
                    self.name, self.namespace, _request_timeout=self.retry_period
                )
                if current.spec.holder_identity != self.holder:
                    return False
                body = self._body(current.metadata.resource_version, acquired=False)
                body["spec"].update(holderIdentity=None, leaseDurationSeconds=1)
                self.api.replace_namespaced_lease(
                    self.name, self.namespace, body, _request_timeout=self.retry_period
                )
            except ApiException as error:
                if error.status == 409:
                    continue
                log.warning("releasing lease %s/%s: %s", self.namespace, self.name, brief(error))
                return False
            except Exception as error:  # unreachable API server: the Lease expires instead
                log.warning("releasing lease %s/%s: %s", self.namespace, self.name, brief(error))
                return False
            log.info("released lease %s/%s", self.namespace, self.name)
            return True
        return False

    async def release_async(self) -> bool:
        """release off the event loop; given up (the Lease then expires) after two periods."""
        loop = asyncio.get_running_loop()
        releasing = loop.run_in_executor(self._threads, self.release)
        try:
            return await asyncio.wait_for(releasing, 2 * self.retry_period)
        except TimeoutError as error:
            log.warning("releasing lease %s/%s: %s", self.namespace, self.name, brief(error))
            return False

    async def _renew(self) -> None:
        """Renew every retry period; return once another replica holds the Lease."""
        while True:
            await asyncio.sleep(self.retry_period)
            try:
                if not await self._attempt():
                    return
            except Exception as error:  # a failed renewal only counts against the deadline
                log.warning("renewing lease %s/%s: %s", self.namespace, self.name, brief(error))


def brief(error: Exception) -> str:
    """An error in a line of a retry loop's log: an ApiException's text is its whole answer,
    headers and body, on many lines."""
    if isinstance(error, ApiException):
        return f"API error {error.status}"
    return type(error).__name__

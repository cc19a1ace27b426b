"""Turning node reports into FailureEvent objects in Kubernetes, without losing any.

Reports wait in a bounded queue and are sent by one thread, oldest first, with exponential
backoff while the API server cannot be reached. The object name is derived from the report's
episode, which every monitor of the cluster derives alike, so the first monitor's create wins
and the others get 409 AlreadyExists: that is success ("someone reported it already").
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from controller.resources.common import API_VERSION
from controller.resources.failure_event import FailureEventSpec, FailureType, Payload

from .host_failures import NodeReport, fencing_neighbours

log = logging.getLogger("masakari.hostmonitor")

NAME_LIMIT = 253
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


class Rejected(Exception):
    """The API server refused the object for good (invalid); retrying cannot help."""


class Unreachable(Exception):
    """The API server could not be reached or answered with a transient error."""


@dataclass(frozen=True)
class HostEntry:
    """A Host object as the monitor needs it: its name and its segment."""

    name: str
    segment: str


class FailureEventStore(Protocol):
    """Where reports go: Kubernetes in production, a dict in unit tests."""

    def hosts(self) -> Mapping[str, HostEntry]:
        """Host objects of the namespace, keyed by Pacemaker node name."""
        ...

    def create(self, body: dict[str, Any]) -> bool:
        """Create a FailureEvent; True if created, False if one of that name exists."""
        ...

    def taken(self, body: dict[str, Any]) -> bool:
        """Whether a FailureEvent of the body's name exists, asked without reading: a monitor
        may create FailureEvents, never read them (deploy/hostmonitor/rbac.yaml)."""
        ...


def event_name(host: str, report: NodeReport) -> str:
    """`<host>-<stopped|started>-<episode>`: the same for every monitor reporting it."""
    name = f"{host}-{report.event.lower()}-{report.episode}"
    if len(name) <= NAME_LIMIT:
        return name
    digest = hashlib.sha256(host.encode()).hexdigest()[:10]
    suffix = f"-{digest}-{report.event.lower()}-{report.episode}"
    return host[: NAME_LIMIT - len(suffix)].rstrip("-.") + suffix


def failure_event(report: NodeReport, host: HostEntry, source: str) -> dict[str, Any]:
    spec = FailureEventSpec(
        type=FailureType.COMPUTE_HOST,
        host=host.name,
        generated_time=report.generated_time,
        payload=Payload(
            event=report.event.value,
            host_status=report.host_status,
            cluster_status=report.cluster_status,
        ),
        source=source,
    )
    labels = {
        "masakari.dev/host": host.name,
        "masakari.dev/type": FailureType.COMPUTE_HOST.value,
        "masakari.dev/segment": host.segment,
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "FailureEvent",
        "metadata": {
            "name": event_name(host.name, report),
            # A label value is at most 63 characters; longer names stay in the spec only.
            "labels": {key: value for key, value in labels.items() if LABEL_VALUE.match(value)},
        },
        "spec": spec.to_wire(),
    }


class Reporter:
    """Sends node reports as FailureEvents from a bounded queue, retrying with backoff."""

    def __init__(
        self,
        store: FailureEventStore,
        source: str,
        queue_size: int = 1000,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        host_refresh: float = 30.0,
        sleep: Callable[[float], bool] | None = None,
    ) -> None:
        self.store = store
        self.source = source
        self.queue: deque[NodeReport] = deque()
        self.queue_size = queue_size
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.host_refresh = host_refresh
        self.stopping = threading.Event()
        self.wakeup = threading.Event()
        self.lock = threading.Lock()
        self._sleep = sleep or self.stopping.wait
        self._hosts: Mapping[str, HostEntry] = {}
        self._hosts_read_at: float | None = None
        # The last deliveries as (name, created): what the monitor did, for inspection.
        self.sent: deque[tuple[str, bool]] = deque(maxlen=100)
        self.thread = threading.Thread(target=self._run, name="reporter", daemon=True)

    def start(self) -> Reporter:
        self.thread.start()
        return self

    def submit(self, report: NodeReport) -> None:
        with self.lock:
            if len(self.queue) >= self.queue_size:
                # Bounded memory wins over an unbounded outage; the loss is logged loudly.
                lost = self.queue.popleft()
                log.error(
                    "report queue full (%d): dropped %s of %s",
                    self.queue_size,
                    lost.event,
                    lost.node,
                )
            self.queue.append(report)
        self.wakeup.set()

    def pending(self) -> int:
        with self.lock:
            return len(self.queue)

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        self.wakeup.set()
        if self.thread.is_alive():
            self.thread.join(timeout=timeout)
        if self.pending():
            log.warning("stopping with %d report(s) not delivered", self.pending())

    def _run(self) -> None:
        backoff = self.backoff_initial
        while not self.stopping.is_set():
            with self.lock:
                report = self.queue[0] if self.queue else None
            if report is None:
                self.wakeup.wait(timeout=1.0)
                self.wakeup.clear()
                continue
            try:
                self.deliver(report)
            except Unreachable as error:
                log.warning(
                    "API server unreachable (%s); %d report(s) waiting, retry in %.1fs",
                    error,
                    self.pending(),
                    backoff,
                )
                if self._sleep(backoff):
                    return
                backoff = min(backoff * 2, self.backoff_max)
                continue
            backoff = self.backoff_initial
            with self.lock:
                if self.queue and self.queue[0] is report:
                    self.queue.popleft()

    def deliver(self, report: NodeReport) -> None:
        """Send one report; raises Unreachable when it should be tried again."""
        host = self._host_of(report.node)
        if host is None:
            log.info("node %s has no Host object; %s not reported", report.node, report.event)
            return
        body = failure_event(report, host, self.source)
        name = body["metadata"]["name"]
        # Another monitor may have reported the same fencing stamped a second apart: its name
        # is taken as this one's. Two monitors asking at the same instant can still both
        # create; the operator then ignores the later one as the first one's duplicate.
        try:
            for episode in fencing_neighbours(report.episode):
                other = failure_event(replace(report, episode=episode), host, self.source)
                if self.store.taken(other):
                    name, created = other["metadata"]["name"], False
                    break
            else:
                created = self.store.create(body)
        except Rejected as error:
            log.error("FailureEvent %s refused by the API server: %s", name, error)
            return
        self.sent.append((name, created))
        log.info(
            "reported %s of node %s (host %s, host_status %s) as %s: %s",
            report.event,
            report.node,
            host.name,
            report.host_status,
            name,
            "created" if created else "already reported",
        )

    def _host_of(self, node: str) -> HostEntry | None:
        now = time.monotonic()
        stale = self._hosts_read_at is None or now - self._hosts_read_at > self.host_refresh
        if stale or node not in self._hosts:
            self._hosts = self.store.hosts()
            self._hosts_read_at = now
        return self._hosts.get(node)

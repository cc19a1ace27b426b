"""One Kubernetes Event, one counter and one log line per transition of a FailureEvent, and one
Event and log line per phase transition of a Host."""

from __future__ import annotations

import contextlib
import logging
from typing import cast

import kopf

from controller import metrics
from controller.recovery.bmc_check import Readiness
from controller.recovery.gates import TERMINAL
from controller.recovery.ports import EventRecord, HostRecord
from controller.resources.common import API_VERSION
from controller.resources.failure_event import EventPhase, FailureEventStatus

log = logging.getLogger("masakari.recovery")
host_log = logging.getLogger("masakari.hosts")
_WARNINGS = {EventPhase.ERROR, EventPhase.FAILED}


def reference(kind: str, namespace: str, name: str, uid: str | None) -> kopf.Body:
    """The minimal body kopf.event needs to post an Event about an object."""
    metadata = {"name": name, "namespace": namespace}
    if uid:
        metadata["uid"] = uid
    return cast(kopf.Body, {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata})


class RecoverySignals:
    def __init__(self) -> None:
        self._blocked: dict[tuple[str, str], str] = {}
        self._observed_moves: set[tuple[str, str, str, str]] = set()
        self._running: set[tuple[str, str]] = set()

    def transition(self, record: EventRecord, status: FailureEventStatus) -> None:
        kind = record.spec.type
        phase = status.phase or EventPhase.NEW
        message = f"{phase}: {status.reason}: {status.message}"
        extra = {"event": record.name, "host": record.spec.host, "namespace": record.namespace}
        log.info(message, extra=extra)
        body = reference("FailureEvent", record.namespace, record.name, record.uid)
        post = kopf.warn if phase in _WARNINGS else kopf.info
        post(body, reason=status.reason or str(phase), message=message[:1024])
        if phase in TERMINAL:
            metrics.recoveries.labels(kind, phase).inc()
            if phase == EventPhase.IGNORED:
                metrics.recoveries_ignored.labels(kind, status.reason or "").inc()
            if status.end_time is not None:
                elapsed = (status.end_time - record.created).total_seconds()
                metrics.recovery_duration.labels(kind, phase).observe(max(elapsed, 0.0))
        self._observe_moves(record, status)
        if phase in TERMINAL:
            # Nothing more comes of an ended event: what is kept of it goes, and so does its
            # share of the blocked gauge (it may end while blocked: HostNotConfirmedDown).
            self.blocked(record, None)
            ended = (record.namespace, record.name)
            self._observed_moves = {k for k in self._observed_moves if k[:2] != ended}

    def _observe_moves(self, record: EventRecord, status: FailureEventStatus) -> None:
        for move in status.instances:
            if move.start_time is None or move.end_time is None:
                continue
            key = (record.namespace, record.name, move.instance_uuid, move.end_time.isoformat())
            if key in self._observed_moves:
                continue
            self._observed_moves.add(key)
            elapsed = (move.end_time - move.start_time).total_seconds()
            metrics.evacuation_duration.labels(move.status).observe(max(elapsed, 0.0))

    def blocked(self, record: EventRecord, reason: str | None) -> None:
        key = (record.namespace, record.name)
        previous = self._blocked.pop(key, None)
        if previous is not None:
            metrics.blocked.labels(previous).dec()
        if reason is not None:
            self._blocked[key] = reason
            metrics.blocked.labels(reason).inc()

    def not_recorded(self, record: EventRecord, reason: str, message: str) -> None:
        extra = {"event": record.name, "host": record.spec.host, "namespace": record.namespace}
        log.warning(
            "progress cannot be recorded, nothing more is done until it can: %s: %s",
            reason,
            message,
            extra=extra,
        )
        metrics.api_errors.labels("kubernetes", reason).inc()
        self.blocked(record, reason)
        # Posted in the background; with etcd full it fails too, and kopf logs that.
        body = reference("FailureEvent", record.namespace, record.name, record.uid)
        kopf.warn(body, reason=reason, message=f"progress cannot be recorded: {message}"[:1024])

    def running(self, record: EventRecord, running: bool) -> None:
        """Counted once while this process runs the recovery, however it started (fresh,
        retried, or resumed after a restart) and however often it is told."""
        key = (record.namespace, record.name)
        if running and key not in self._running:
            self._running.add(key)
            metrics.in_flight.labels(record.spec.type).inc()
        elif not running and key in self._running:
            self._running.remove(key)
            metrics.in_flight.labels(record.spec.type).dec()


class HostSyncSignals:
    def transition(self, namespace: str, host: HostRecord, reason: str, message: str) -> None:
        kopf.info(reference("Host", namespace, host.name, host.uid), reason=reason, message=message)
        host_log.info(message, extra={"namespace": namespace, "host": host.name})

    def unreachable(self, system: str, error: Exception) -> None:
        if system != "nova":  # the Nova driver counts its own failed calls
            metrics.api_errors.labels(system, type(error).__name__).inc()
        host_log.warning("host sync: %s: %s", system, error)


class BMCCheckSignals:
    """The BMC check's results as metrics, and a log line when a host's result changes (a
    line per check would be 8 a second at 5,000 hosts); the Host's FencingReady condition
    says the rest."""

    def __init__(self) -> None:
        self._reasons: dict[tuple[str, str], str] = {}

    def checked(self, namespace: str, host: str, method: str, readiness: Readiness) -> None:
        metrics.bmc_fencing_ready.labels(namespace, host).set(1 if readiness.ready else 0)
        metrics.bmc_checks.labels(method, readiness.reason).inc()
        if self._reasons.get((namespace, host)) != readiness.reason:
            self._reasons[(namespace, host)] = readiness.reason
            level = logging.INFO if readiness.ready else logging.WARNING
            host_log.log(
                level,
                "BMC check: %s: %s",
                readiness.reason,
                readiness.message,
                extra={"namespace": namespace, "host": host},
            )

    def forgotten(self, namespace: str, host: str) -> None:
        self._reasons.pop((namespace, host), None)
        with contextlib.suppress(KeyError):  # never checked: no series to remove
            metrics.bmc_fencing_ready.remove(namespace, host)


class DrainSignals:
    """Maintenance drains: an Event on the Host per start, end and given-up instance."""

    def drain(self, namespace: str, host: str, reason: str, message: str, warning: bool) -> None:
        body = reference("Host", namespace, host, None)
        if warning:
            kopf.warn(body, reason=reason, message=message)
        else:
            kopf.info(body, reason=reason, message=message)
        host_log.log(
            logging.WARNING if warning else logging.INFO,
            "drain: %s: %s",
            reason,
            message,
            extra={"namespace": namespace, "host": host},
        )

    def drain_move(self, result: str, seconds: float | None) -> None:
        metrics.drain_moves.labels(result).inc()
        if seconds is not None:
            metrics.drain_migration_duration.observe(seconds)

    def running(self, delta: int) -> None:
        metrics.drains_running.inc(delta)

    def unreachable(self, system: str, error: Exception) -> None:
        if system != "nova":  # the Nova driver counts its own failed calls
            metrics.api_errors.labels(system, type(error).__name__).inc()
        host_log.warning("drain: %s: %s", system, error)

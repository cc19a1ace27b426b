"""Prometheus metrics. Labels are bounded: kinds, results, reasons and segment names, never
instance or event names. One exception, `bmc_fencing_ready`: an alert that says which host's
BMC is broken needs the host's name, and its series are as many as the Hosts whose segments
fence by BMC (one each, removed when the Host goes), not one per event."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from controller.recovery.fencing import Action
from controller.recovery.gates import TERMINAL
from controller.resources.failure_event import FailureType

REGISTRY = CollectorRegistry(auto_describe=True)

RECOVERY_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600)
EVACUATION_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 90, 180, 300)

events_received = Counter(
    "masakari_failure_events_total",
    "Failure events received, by type.",
    ["type"],
    registry=REGISTRY,
)
recoveries = Counter(
    "masakari_recoveries_total",
    "Recoveries ended, by failure type and final phase.",
    ["type", "result"],
    registry=REGISTRY,
)
recoveries_ignored = Counter(
    "masakari_recoveries_ignored_total",
    "Recoveries ended Ignored (nothing recovered), by failure type and reason; "
    "HostNotConfirmedDown: the host could not be fenced, so it was never evacuated.",
    ["type", "reason"],
    registry=REGISTRY,
)
recovery_duration = Histogram(
    "masakari_recovery_duration_seconds",
    "From the failure event's creation to the end of its recovery.",
    ["type", "result"],
    buckets=RECOVERY_BUCKETS,
    registry=REGISTRY,
)
evacuation_duration = Histogram(
    "masakari_evacuation_duration_seconds",
    "One instance's evacuation, from the evacuate call to settled on its new host.",
    ["result"],
    buckets=EVACUATION_BUCKETS,
    registry=REGISTRY,
)
in_flight = Gauge(
    "masakari_recoveries_in_flight",
    "Recoveries running now, by failure type.",
    ["type"],
    registry=REGISTRY,
)
blocked = Gauge(
    "masakari_recoveries_blocked",
    "Recoveries waiting on a gate, by reason.",
    ["reason"],
    registry=REGISTRY,
)
api_errors = Counter(
    "masakari_api_errors_total",
    "Failed calls to Nova, Kubernetes or Pacemaker, by API and error kind.",
    ["api", "error"],
    registry=REGISTRY,
)
events_deleted = Counter(
    "masakari_failure_events_deleted_total",
    "Ended failure events deleted by the retention of their segment, by reason.",
    ["reason"],
    registry=REGISTRY,
)
handler_duration = Histogram(
    "masakari_handler_duration_seconds",
    "Time spent in operator handlers, by handler.",
    ["handler"],
    registry=REGISTRY,
)
bmc_fencing_ready = Gauge(
    "masakari_bmc_fencing_ready",
    "1 when the host's BMC answered its last check (reachable, credentials accepted, power "
    "state readable), 0 when it did not; hosts of segments fencing by redfish or ipmi only.",
    ["namespace", "host"],
    registry=REGISTRY,
)
bmc_checks = Counter(
    "masakari_bmc_checks_total",
    "BMC checks done, by fencing method and result (BMCReady or the failure's reason).",
    ["method", "result"],
    registry=REGISTRY,
)
drain_moves = Counter(
    "masakari_drain_moves_total",
    "Instances of maintenance drains whose move ended (succeeded, failed, stopped, left, "
    "gone, cancelled), and failed live-migration attempts (attempt_failed).",
    ["result"],
    registry=REGISTRY,
)
drain_migration_duration = Histogram(
    "masakari_drain_live_migration_duration_seconds",
    "One instance's live migration in a drain, from the call to landed on another host "
    "(cold migrations of stopped instances are not in it).",
    buckets=EVACUATION_BUCKETS,
    registry=REGISTRY,
)
drains_running = Gauge(
    "masakari_drains_running",
    "Maintenance drains running now.",
    registry=REGISTRY,
)
segment_capacity_ready = Gauge(
    "masakari_segment_capacity_ready",
    "1 when the segment's last HA readiness check found room for every instance of its "
    "worst loss of spec.capacity.tolerateHostFailures hosts, 0 when it did not; segments "
    "with the check on only.",
    ["namespace", "segment"],
    registry=REGISTRY,
)
leader = Gauge(
    "masakari_leader",
    "1 on the replica that holds the Lease (or runs standalone) and acts, 0 on a standby. "
    "shard: in a fleet (--namespace-selector), the shard's name (its Lease, namespace/name), "
    "since the shards run side by side, each with a leader of its own; empty otherwise.",
    ["shard"],
    registry=REGISTRY,
)


def forget_segment_capacity(namespace: str, segment: str) -> None:
    """A segment deleted, unbound or with its check off has no verdict: no series to alert on."""
    with contextlib.suppress(KeyError):  # never set: the first check had not run
        segment_capacity_ready.remove(namespace, segment)


def initialise() -> None:
    """Every series an alert counts from, at 0 from the start of the process.

    A labelled series appears on its first increment, so the first failure after a start
    would appear already at 1: `increase()` sees no rise from one sample and the alert
    misses it (the rules guard against a failure before the first scrape too)."""
    for kind in FailureType:
        events_received.labels(kind)
        in_flight.labels(kind)
        recoveries_ignored.labels(kind, Action.GIVE_UP)
        for phase in TERMINAL:
            recoveries.labels(kind, phase)
    drain_moves.labels("failed")  # MasakariDrainIncomplete

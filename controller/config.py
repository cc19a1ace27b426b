"""Operator settings. Every value comes from an environment variable (the Deployment sets them;
`masakari-operator run` flags set them too), so kopf's runner and tests configure it alike.
Credentials are never here: each namespace's CloudBinding names the Secret of its cloud."""

from __future__ import annotations

import os
from dataclasses import dataclass

PREFIX = "MASAKARI_"


def _get(name: str, default: str) -> str:
    return os.environ.get(PREFIX + name, default)


@dataclass(frozen=True)
class OperatorConfig:
    # Put before Pacemaker's tools for a CloudBinding with `pacemaker: {local: {}}`, e.g.
    # `sudo -n` or an nsenter into a node: the operator's setting, never a binding's.
    pacemaker_local_prefix: tuple[str, ...]
    binding_resync_interval: float  # how often a namespace's binding and Secret are read again
    metrics_address: str
    metrics_port: int  # 0: no metrics server
    max_evacuations: int  # overall, across segments
    nova_concurrency: int
    poll_interval: float  # how often a moving instance is looked at
    recheck_interval: float  # how often a blocked event is evaluated again
    host_resync_interval: float
    segment_resync_interval: float
    # HA readiness (recovery.capacity): one Placement read and one server listing per segment
    # per interval, apart from the recoveries and the host pass.
    capacity_interval: float
    # Ended FailureEvents (recovery.retention): how often each segment's pass runs, how many
    # it deletes at most, and how long an ended event is kept at least (clients polling it).
    retention_interval: float
    retention_batch: int
    retention_settle: float
    lease_name: str  # empty: no leader election (one replica only)
    lease_namespace: str
    lease_duration: float
    # Seconds one Kubernetes call may take: ours and kopf's, watches excepted. Lease calls have
    # their own, a sixth of lease_duration (controller.drivers.lease).
    kube_timeout: float

    @classmethod
    def from_environment(cls) -> OperatorConfig:
        return cls(
            pacemaker_local_prefix=tuple(_get("PACEMAKER_LOCAL_PREFIX", "").split()),
            binding_resync_interval=float(_get("BINDING_RESYNC_INTERVAL", "10")),
            metrics_address=_get("METRICS_ADDRESS", "0.0.0.0"),
            metrics_port=int(_get("METRICS_PORT", "9100")),
            max_evacuations=int(_get("MAX_EVACUATIONS", "64")),
            nova_concurrency=int(_get("NOVA_CONCURRENCY", "16")),
            poll_interval=float(_get("POLL_INTERVAL", "1.0")),
            recheck_interval=float(_get("RECHECK_INTERVAL", "5.0")),
            host_resync_interval=float(_get("HOST_RESYNC_INTERVAL", "30")),
            segment_resync_interval=float(_get("SEGMENT_RESYNC_INTERVAL", "10")),
            capacity_interval=float(_get("CAPACITY_INTERVAL", "60")),
            retention_interval=float(_get("RETENTION_INTERVAL", "300")),
            retention_batch=int(_get("RETENTION_BATCH", "100")),
            retention_settle=float(_get("RETENTION_SETTLE", "600")),
            lease_name=_get("LEASE_NAME", ""),
            lease_namespace=_get("LEASE_NAMESPACE", os.environ.get("POD_NAMESPACE", "default")),
            lease_duration=float(_get("LEASE_DURATION", "15")),
            kube_timeout=float(_get("KUBE_TIMEOUT", "5")),
        )

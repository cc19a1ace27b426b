"""Operator settings. Every value comes from an environment variable (the Deployment sets them;
`masakari-operator run` flags set them too), so kopf's runner and tests configure it alike.
Credentials are never here: only the path of the clouds.yaml mounted from a Secret."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PREFIX = "MASAKARI_"


def _get(name: str, default: str) -> str:
    return os.environ.get(PREFIX + name, default)


@dataclass(frozen=True)
class OperatorConfig:
    clouds_yaml: Path
    cloud: str
    # "" (no Pacemaker: fencing only confirmed by monitors), "local" (this pod/machine is a
    # cluster node), "local:<prefix words>" (e.g. an nsenter into a node), "ssh:[user@]host".
    pacemaker: str
    metrics_address: str
    metrics_port: int  # 0: no metrics server
    max_evacuations: int  # overall, across segments
    nova_concurrency: int
    poll_interval: float  # how often a moving instance is looked at
    recheck_interval: float  # how often a blocked event is evaluated again
    host_resync_interval: float
    segment_resync_interval: float
    lease_name: str  # empty: no leader election (one replica only)
    lease_namespace: str
    lease_duration: float
    # Seconds one Kubernetes call may take: ours and kopf's, watches excepted. Lease calls have
    # their own, a sixth of lease_duration (controller.drivers.lease).
    kube_timeout: float

    @classmethod
    def from_environment(cls) -> OperatorConfig:
        return cls(
            clouds_yaml=Path(_get("CLOUDS_YAML", "/etc/openstack/clouds.yaml")),
            cloud=_get("CLOUD", "openstack"),
            pacemaker=_get("PACEMAKER", ""),
            metrics_address=_get("METRICS_ADDRESS", "0.0.0.0"),
            metrics_port=int(_get("METRICS_PORT", "9100")),
            max_evacuations=int(_get("MAX_EVACUATIONS", "64")),
            nova_concurrency=int(_get("NOVA_CONCURRENCY", "16")),
            poll_interval=float(_get("POLL_INTERVAL", "1.0")),
            recheck_interval=float(_get("RECHECK_INTERVAL", "5.0")),
            host_resync_interval=float(_get("HOST_RESYNC_INTERVAL", "30")),
            segment_resync_interval=float(_get("SEGMENT_RESYNC_INTERVAL", "10")),
            lease_name=_get("LEASE_NAME", ""),
            lease_namespace=_get("LEASE_NAMESPACE", os.environ.get("POD_NAMESPACE", "default")),
            lease_duration=float(_get("LEASE_DURATION", "15")),
            kube_timeout=float(_get("KUBE_TIMEOUT", "5")),
        )

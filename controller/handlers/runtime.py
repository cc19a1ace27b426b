"""Everything the handlers share, built once at startup and kept in kopf's memo."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controller.config import OperatorConfig
from controller.drivers.clouds import KubeClouds
from controller.drivers.kube import Kube
from controller.drivers.kube_cache import CachedStore
from controller.drivers.kube_store import KubeStore
from controller.handlers.signals import BMCCheckSignals, DrainSignals, HostSyncSignals
from controller.recovery.bmc_check import BMCCheck
from controller.recovery.host_drain import Drains
from controller.recovery.host_sync import HostSync
from controller.recovery.lifecycle import Lifecycle
from controller.resources.segment import CapacityStatus


@dataclass
class Runtime:
    config: OperatorConfig
    kube: Kube
    store: KubeStore  # the recoveries': read fresh from the API server
    clouds: KubeClouds  # each namespace's cloud
    lifecycle: Lifecycle
    # The passes' (host, segment, capacity, retention, detection): lists from memory; the
    # lifecycle's history of ended events too.
    cache: CachedStore
    host_sync: HostSync = field(init=False)
    # The latest readiness check of each segment, (namespace, name): every status write of the
    # segment carries it, so the resync never puts back an older one.
    capacity: dict[tuple[str, str], CapacityStatus] = field(default_factory=dict)
    closers: list[Callable[[], Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.closers.append(self.cache.close)
        # One lock per host, the recoveries' (recovery.host_sync.HostLocks).
        locks = self.lifecycle.host_locks
        check = BMCCheck(BMCCheckSignals())
        # A live migration is looked at as often as an evacuation.
        drains = Drains(self.cache, DrainSignals(), locks, poll_interval=self.config.poll_interval)
        self.host_sync = HostSync(
            self.cache, HostSyncSignals(), locks, bmc_check=check, drains=drains
        )
        self.closers.append(check.close)
        self.closers.append(drains.close)


def runtime_of(memo: Any) -> Runtime:
    runtime: Runtime = memo.runtime
    return runtime

"""Everything the handlers share, built once at startup and kept in kopf's memo."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from controller.config import OperatorConfig
from controller.drivers.kube import Kube
from controller.drivers.kube_store import KubeStore
from controller.drivers.nova.model import Nova
from controller.drivers.pacemaker.model import ClusterState, PacemakerCluster
from controller.recovery.lifecycle import Lifecycle


@dataclass
class Runtime:
    config: OperatorConfig
    kube: Kube
    store: KubeStore
    nova: Nova
    lifecycle: Lifecycle
    pacemaker: PacemakerCluster | None = None
    host_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    closers: list[Callable[[], Any]] = field(default_factory=list)

    def cluster_state(self) -> Callable[[], Awaitable[ClusterState]] | None:
        pacemaker = self.pacemaker
        if pacemaker is None:
            return None

        async def read() -> ClusterState:
            return await asyncio.to_thread(pacemaker.state)

        return read

    def host_lock(self, namespace: str, name: str) -> asyncio.Lock:
        return self.host_locks.setdefault((namespace, name), asyncio.Lock())


def runtime_of(memo: Any) -> Runtime:
    runtime: Runtime = memo.runtime
    return runtime

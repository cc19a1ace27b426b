"""Everything the handlers share, built once at startup and kept in kopf's memo."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controller.config import OperatorConfig
from controller.drivers.clouds import KubeClouds
from controller.drivers.kube import Kube
from controller.drivers.kube_store import KubeStore
from controller.recovery.lifecycle import Lifecycle


@dataclass
class Runtime:
    config: OperatorConfig
    kube: Kube
    store: KubeStore
    clouds: KubeClouds  # each namespace's cloud
    lifecycle: Lifecycle
    host_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    closers: list[Callable[[], Any]] = field(default_factory=list)

    def host_lock(self, namespace: str, name: str) -> asyncio.Lock:
        return self.host_locks.setdefault((namespace, name), asyncio.Lock())


def runtime_of(memo: Any) -> Runtime:
    runtime: Runtime = memo.runtime
    return runtime

"""What the operator tests share: a simulator cloud, the operator on it, and kubectl helpers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import openstack
import yaml

from tests.conftest import Cluster
from tests.harness.operator import Operator
from tests.harness.sim import Sim

T = TypeVar("T")


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float = 60, interval: float = 0.2
) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def wait_active(kubectl: Callable[..., str], hosts: list[str], timeout: float = 60) -> None:
    """Until the operator shows every one of `hosts` Active: it has seen them all."""

    def active(host: str) -> bool:
        return "Active" in kubectl("get", "mhost", host, "-o", "jsonpath={.status.phase}")

    wait_for("the hosts to be Active", lambda: all(active(h) for h in hosts), timeout)


@dataclass
class Cloud:
    cluster: Cluster
    namespace: str
    sim: Sim | None  # None when the cloud is real Nova
    operator: Operator

    def apply(self, *documents: dict[str, Any]) -> None:
        self.cluster.kubectl(
            "apply", "-n", self.namespace, "-f", "-", stdin=yaml.safe_dump_all(documents)
        )

    def get(self, kind: str, name: str) -> dict[str, Any]:
        result = self.cluster.kubectl("get", kind, name, "-n", self.namespace, "-o", "json")
        body: dict[str, Any] = json.loads(result.stdout)
        return body

    def status(self, kind: str, name: str) -> dict[str, Any]:
        status: dict[str, Any] = self.get(kind, name).get("status") or {}
        return status

    def wait_phase(
        self, kind: str, name: str, phases: set[str], timeout: float = 60
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            status = self.status(kind, name)
            return status if status.get("phase") in phases else None

        try:
            return wait_for(f"{kind}/{name} in {phases}", probe, timeout)
        except AssertionError:
            print(self.operator.log()[-6000:])
            raise

    def events(self, name: str) -> list[dict[str, Any]]:
        out = self.cluster.kubectl(
            "get",
            "events",
            "-n",
            self.namespace,
            "--field-selector",
            f"involvedObject.name={name}",
            "-o",
            "json",
        )
        items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
        return items

    def nova(self) -> Any:
        assert self.sim is not None, "only the simulator's cloud is reached this way"
        loader = openstack.config.OpenStackConfig(
            config_files=[str(self.sim.clouds_yaml)], vendor_files=[], load_envvars=False
        )
        region = loader.get_one(cloud=self.sim.cloud, compute_api_version="2.87")
        return openstack.connection.Connection(config=region)


def segment(
    name: str = "seg", method: str = "auto", fencing: str = "none", **spec: Any
) -> dict[str, Any]:
    """A segment; with fencing `none` by default, since the simulator's clouds have no
    Pacemaker: the reports' host_status NORMAL is what confirms a host down there."""
    return {
        "apiVersion": "masakari.dev/v1alpha1",
        "kind": "FailoverSegment",
        "metadata": {"name": name},
        "spec": {
            "recoveryMethod": method,
            "serviceType": "COMPUTE",
            "fencing": {"method": fencing},
            **spec,
        },
    }


def host(name: str, segment_name: str = "seg", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "masakari.dev/v1alpha1",
        "kind": "Host",
        "metadata": {"name": name},
        "spec": {"segment": segment_name, **spec},
    }


def host_failure(name: str, host_name: str, host_status: str = "NORMAL") -> dict[str, Any]:
    return {
        "apiVersion": "masakari.dev/v1alpha1",
        "kind": "FailureEvent",
        "metadata": {"name": name},
        "spec": {
            "type": "COMPUTE_HOST",
            "host": host_name,
            "generatedTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "payload": {
                "event": "STOPPED",
                "host_status": host_status,
                "cluster_status": "OFFLINE",
            },
        },
    }


def servers(names: list[str], host_name: str, **options: Any) -> list[dict[str, Any]]:
    return [{"name": n, "host": host_name, **options} for n in names]


def topology(
    hosts: list[dict[str, Any]],
    servers_: list[dict[str, Any]],
    aggregates: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {"hosts": hosts, "servers": servers_, "aggregates": aggregates or []}


def iter_moves(status: dict[str, Any]) -> Iterator[tuple[str, str, str | None]]:
    for move in status.get("instances", []):
        yield move["instanceName"], move["status"], move.get("destinationHost")


def log_path(tmp: Path) -> Path:
    return tmp / "operator.log"

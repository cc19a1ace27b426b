"""One `masakari-operator hostmonitor` per lab node, each running inside its node.

Each monitor is started with nsenter into its node's network, mount, UTS and PID namespaces, so
it reads its own node's crm_mon, sees its own host name, and dies with the node when the node
is killed. It reaches the API server at the address of the kubeconfig (127.0.0.1:port), which
the lab relays from inside each node's namespace to the root namespace's loopback
(`PacemakerLab.forward_into_nodes`): cutting a node's cluster network leaves its monitor able to
reach Kubernetes, so a minority that reports nothing does so because of its quorum check, not
because its reports cannot get out.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from .control_plane import _die_with_parent
from .pacemaker_lab import PacemakerLab

REPO = Path(__file__).resolve().parents[2]
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def apiserver_port(kubeconfig: Path) -> int:
    config = yaml.safe_load(kubeconfig.read_text())
    port = urlparse(config["clusters"][0]["cluster"]["server"]).port
    if port is None:
        raise ValueError(f"{kubeconfig}: the server URL has no port")
    return port


@dataclass
class HostMonitorFleet:
    lab: PacemakerLab
    kubeconfig: Path
    kubectl: Kubectl
    namespace: str
    segment: str = "pacemaker-lab"
    arguments: tuple[str, ...] = ()
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)

    def create_hosts(self) -> None:
        """A Host object for every lab node, named like the node."""
        manifests = [
            {
                "apiVersion": "masakari.dev/v1alpha1",
                "kind": "Host",
                "metadata": {"name": name, "namespace": self.namespace},
                "spec": {"segment": self.segment},
            }
            for name in self.lab.nodes
        ]
        self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(manifests))

    def start_all(self) -> None:
        self.lab.forward_into_nodes(apiserver_port(self.kubeconfig))
        for name, node in self.lab.nodes.items():
            if not node.is_remote:
                self.start(name)

    def log_path(self, name: str) -> Path:
        return self.lab.directory / f"hostmonitor-{name}-{self.restarts.get(name, 0)}.log"

    def start(self, name: str) -> None:
        """Start (or restart, after the node was restarted) the monitor of node `name`."""
        if name in self.processes:
            # A killed node takes its monitor with it; nsenter exits right after.
            self.processes[name].wait(timeout=10)
            self.restarts[name] = self.restarts.get(name, 0) + 1
        log = self.log_path(name).open("wb")
        self.processes[name] = subprocess.Popen(
            [
                *self.lab.nsenter_prefix(name, pid_namespace=True),
                sys.executable,
                "-m",
                "controller.cli",
                "hostmonitor",
                f"--kubeconfig={self.kubeconfig}",
                f"--namespace={self.namespace}",
                *self.arguments,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            preexec_fn=_die_with_parent,
        )
        log.close()

    def monitor_pid(self, name: str, timeout: float = 10.0) -> int:
        """Host PID of the monitor itself (nsenter's child in the node's PID namespace)."""
        holder = self.processes[name]
        children = Path(f"/proc/{holder.pid}/task/{holder.pid}/children")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = children.read_text().split() if children.exists() else []
            if pids:
                return int(pids[0])
            time.sleep(0.05)
        raise RuntimeError(f"no monitor process under nsenter for {name}")

    def log(self, name: str) -> str:
        path = self.log_path(name)
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_log(self, name: str, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log(name))
            if found:
                return found
            if self.processes[name].poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(
            f"monitor of {name}: no /{pattern}/ within {timeout}s; log:\n{self.log(name)[-3000:]}"
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Every monitor knows every other node's condition."""
        for name in self.processes:
            others = sorted(other for other in self.lab.nodes if other != name)
            self.wait_log(name, "watching nodes: " + re.escape(", ".join(others)), timeout)

    def events(self, host: str | None = None) -> list[dict[str, Any]]:
        selector = ["-l", f"masakari.dev/host={host}"] if host else []
        listed = self.kubectl("get", "failureevents", "-n", self.namespace, "-o", "json", *selector)
        items: list[dict[str, Any]] = json.loads(listed.stdout)["items"]
        return items

    def wait_event(
        self, host: str, event: str, exclude: set[str], timeout: float = 90.0
    ) -> dict[str, Any]:
        """The first FailureEvent for `host` with payload event `event` not named in exclude."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for item in self.events(host):
                name = item["metadata"]["name"]
                if item["spec"]["payload"]["event"] == event and name not in exclude:
                    return item
            time.sleep(0.1)
        logs = "\n".join(f"--- {n}\n{self.log(n)[-2000:]}" for n in self.processes)
        raise AssertionError(f"no {event} FailureEvent for {host} within {timeout}s\n{logs}")

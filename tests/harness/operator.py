"""`masakari-operator run` as a subprocess for tests, the way it runs in production.

A subprocess rather than kopf's in-process KopfRunner: the crash-safety tests SIGKILL the
operator mid-recovery and start a new one, and kopf registers handlers once per process.

The operator acts only on namespaces bound to a cloud, so `start` binds the test's namespace
to the given clouds.yaml first (a Secret and a CloudBinding), as a cloud operator would.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.harness.control_plane import (
    _die_with_parent,
    free_port,
    locate_binaries,
    run_kubectl,
    stop_process,
)

REPO = Path(__file__).resolve().parents[2]
STARTED = "masakari-operator started"
STANDING_BY = "standing by: lease"

FAST = {
    "MASAKARI_POLL_INTERVAL": "0.1",
    "MASAKARI_RECHECK_INTERVAL": "0.5",
    "MASAKARI_HOST_RESYNC_INTERVAL": "1",
    "MASAKARI_SEGMENT_RESYNC_INTERVAL": "1",
}

SECRET = "openstack-clouds"
BINDING = "cloud"


def bind_namespace(
    kubeconfig: Path,
    namespace: str,
    clouds_yaml: Path,
    cloud: str,
    pacemaker: dict[str, Any] | None = None,
) -> None:
    """Bind `namespace` to `cloud` of `clouds_yaml`: a Secret holding it and a CloudBinding."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET},
        "data": {"clouds.yaml": base64.b64encode(clouds_yaml.read_bytes()).decode()},
    }
    binding = {
        "apiVersion": "masakari.dev/v1alpha1",
        "kind": "CloudBinding",
        "metadata": {"name": BINDING},
        "spec": {
            "secretName": SECRET,
            "cloud": cloud,
            **({"pacemaker": pacemaker} if pacemaker else {}),
        },
    }
    documents = json.dumps({"apiVersion": "v1", "kind": "List", "items": [secret, binding]})
    kubectl = locate_binaries()["kubectl"]
    run_kubectl(kubectl, kubeconfig, "apply", "-n", namespace, "-f", "-", stdin=documents)


@dataclass
class Operator:
    kubeconfig: Path
    namespace: str
    clouds_yaml: Path
    cloud: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    standalone: bool = True  # else: elect a leader on a Lease in the test's namespace
    also_serve: tuple[str, ...] = ()  # more namespaces, bound (or not) by the test itself
    pacemaker: dict[str, Any] | None = None  # the binding's Pacemaker access
    metrics_port: int = 0
    # What it serves, when not `--namespace namespace` (and also_serve): e.g. a selector.
    scope: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self, timeout: float = 60) -> None:
        bind_namespace(
            self.kubeconfig, self.namespace, self.clouds_yaml, self.cloud, self.pacemaker
        )
        self.metrics_port = free_port()
        env = {
            **os.environ,
            **FAST,
            "KUBECONFIG": str(self.kubeconfig),
            "MASAKARI_METRICS_ADDRESS": "127.0.0.1",
            "MASAKARI_METRICS_PORT": str(self.metrics_port),
            "MASAKARI_LEASE_NAMESPACE": self.namespace,
            "MASAKARI_LEASE_DURATION": "3",
            **self.env,
        }
        self.starts += 1
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "controller.cli", "run",
                 *(self.scope or ("--namespace", self.namespace)),
                 *(arg for extra in self.also_serve for arg in ("--namespace", extra)),
                 *(["--standalone"] if self.standalone else [])],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")[offset:]
            if STARTED in text or (not self.standalone and STANDING_BY in text):
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"operator exited ({self.process.returncode}):\n{self.log()}")
            time.sleep(0.1)
        raise RuntimeError(f"operator did not start within {timeout}s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no finishing of anything, as a node failure would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as answer:
            text: str = answer.read().decode()
            return text


@contextlib.contextmanager
def running_operator(
    kubeconfig: Path,
    namespace: str,
    clouds_yaml: Path,
    cloud: str,
    workdir: Path,
    env: dict[str, str] | None = None,
    pacemaker: dict[str, Any] | None = None,
) -> Iterator[Operator]:
    operator = Operator(
        kubeconfig,
        namespace,
        clouds_yaml,
        cloud,
        workdir / "operator.log",
        env or {},
        pacemaker=pacemaker,
    )
    operator.start()
    try:
        yield operator
    finally:
        operator.stop()

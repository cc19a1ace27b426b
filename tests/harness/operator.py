"""`masakari-operator run` as a subprocess for tests, the way it runs in production.

A subprocess rather than kopf's in-process KopfRunner: the crash-safety tests SIGKILL the
operator mid-recovery and start a new one, and kopf registers handlers once per process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.control_plane import _die_with_parent, free_port, stop_process

REPO = Path(__file__).resolve().parents[2]
STARTED = "masakari-operator started"
STANDING_BY = "standing by: lease"

FAST = {
    "MASAKARI_POLL_INTERVAL": "0.1",
    "MASAKARI_RECHECK_INTERVAL": "0.5",
    "MASAKARI_HOST_RESYNC_INTERVAL": "1",
    "MASAKARI_SEGMENT_RESYNC_INTERVAL": "1",
}


@dataclass
class Operator:
    kubeconfig: Path
    namespace: str
    clouds_yaml: Path
    cloud: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    standalone: bool = True  # else: elect a leader on a Lease in the test's namespace
    metrics_port: int = 0
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self, timeout: float = 60) -> None:
        self.metrics_port = free_port()
        env = {
            **os.environ,
            **FAST,
            "KUBECONFIG": str(self.kubeconfig),
            "MASAKARI_CLOUDS_YAML": str(self.clouds_yaml),
            "MASAKARI_CLOUD": self.cloud,
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
                [sys.executable, "-m", "controller.cli", "run", "--namespace", self.namespace,
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


@contextlib.contextmanager
def running_operator(
    kubeconfig: Path,
    namespace: str,
    clouds_yaml: Path,
    cloud: str,
    workdir: Path,
    env: dict[str, str] | None = None,
) -> Iterator[Operator]:
    operator = Operator(
        kubeconfig, namespace, clouds_yaml, cloud, workdir / "operator.log", env or {}
    )
    operator.start()
    try:
        yield operator
    finally:
        operator.stop()

"""The OpenStack simulator for tests: a `masakari-operator sim` process on a free loopback port.

A subprocess rather than a thread: the simulator then runs exactly as users and the demo run
it (the CLI, its own event loop, its own interpreter), the tests' synchronous openstacksdk
calls cannot starve it, and it dies with the test process (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.harness.control_plane import _die_with_parent, stop_process

REPO = Path(__file__).resolve().parents[2]
READY_LINE = "masakari-operator sim listening on "
CLOUD = "sim"


class ControlError(Exception):
    """The control API refused a request."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status


@dataclass
class Sim:
    """A running simulator and the clouds.yaml that reaches it as admin."""

    workdir: Path
    base_url: str
    process: subprocess.Popen[bytes]
    clouds_yaml: Path
    cloud: str = CLOUD
    admin_password: str = ""

    def control(self, method: str, path: str, body: Any = None) -> Any:
        data = None
        headers = {}
        if body is not None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            f"{self.base_url}/_sim/{path}", data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            raise ControlError(error.code, error.read().decode(errors="replace")) from None

    def log(self) -> str:
        return (self.workdir / "sim.log").read_text(errors="replace")

    def write_clouds_yaml(self, path: Path, *, user: str, password: str, project: str) -> Path:
        clouds = {
            "clouds": {
                self.cloud: {
                    "auth_type": "password",
                    "auth": {
                        "auth_url": f"{self.base_url}/identity/v3",
                        "username": user,
                        "password": password,
                        "project_name": project,
                        "user_domain_name": "Default",
                        "project_domain_name": "Default",
                    },
                    "region_name": "RegionOne",
                    "identity_api_version": "3",
                }
            }
        }
        path.write_text(yaml.safe_dump(clouds))
        return path


def _wait_for_ready_line(log: Path, process: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(READY_LINE):
                return line[len(READY_LINE) :].strip()
        if process.poll() is not None:
            raise RuntimeError(f"the simulator exited ({process.returncode}):\n{log.read_text()}")
        time.sleep(0.05)
    raise RuntimeError(f"the simulator did not start within {timeout}s:\n{log.read_text()}")


@contextlib.contextmanager
def running_sim(
    topology: dict[str, Any] | None = None, *args: str, timeout: float = 30
) -> Iterator[Sim]:
    """Start a simulator with `topology` (default: compute1..3 and an admin with a random
    password) and extra CLI `args`; stop it and remove its files afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="masakari-sim-"))
    password = secrets.token_urlsafe(16)
    topology = dict(topology or {"hosts": [{"name": f"compute{i}"} for i in (1, 2, 3)]})
    topology.setdefault(
        "users",
        [
            {"name": "admin", "password": password, "project": "admin", "roles": ["admin"]},
            {"name": "demo", "password": password, "project": "demo", "roles": ["member"]},
        ],
    )
    (workdir / "topology.yaml").write_text(yaml.safe_dump(topology))
    log_path = workdir / "sim.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "controller.cli", "sim", "--port", "0",
             "--topology", str(workdir / "topology.yaml"), *args],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
    try:
        base_url = _wait_for_ready_line(log_path, process, timeout)
        sim = Sim(workdir, base_url, process, workdir / "clouds.yaml", admin_password=password)
        sim.write_clouds_yaml(sim.clouds_yaml, user="admin", password=password, project="admin")
        yield sim
    finally:
        stop_process(process, timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class SimBackend:
    """tests/contract/backend.py's NovaBackend on the simulator."""

    sim: Sim
    name: str = "sim"
    hosts: list[str] = field(default_factory=lambda: ["compute1", "compute2", "compute3"])
    boot_image: str = "sim-boot-image"

    @property
    def clouds_yaml(self) -> Path:
        return self.sim.clouds_yaml

    @property
    def cloud(self) -> str:
        return self.sim.cloud

    def boot_servers(
        self,
        host: str,
        count: int,
        *,
        metadata: dict[str, str] | None = None,
        stopped: bool = False,
        image: str | None = None,
    ) -> list[str]:
        body = {
            "host": host,
            "count": count,
            "metadata": metadata or {},
            "stopped": stopped,
            "image": image or self.boot_image,
        }
        return list(self.sim.control("POST", "servers", body)["ids"])

    def create_image(self, properties: dict[str, str], tags: list[str]) -> str:
        body = {"name": "contract", "properties": properties, "tags": tags}
        return str(self.sim.control("POST", "images", body)["id"])

    def kill_host(self, host: str) -> None:
        self.sim.control("POST", f"hosts/{host}/kill")

    def revive_host(self, host: str) -> None:
        self.sim.control("POST", f"hosts/{host}/revive")

    def evacuation_count(self, server_id: str) -> int:
        return int(self.sim.control("GET", f"servers/{server_id}/evacuations")["evacuations"])

    def reset(self) -> None:
        self.sim.control("PUT", "faults", {})
        self.sim.control("POST", "reset")
        self.sim.control("POST", "images", {"id": self.boot_image, "name": "boot"})


@contextlib.contextmanager
def running_sim_backend() -> Iterator[SimBackend]:
    # service_down_time stays short (Nova: 60 s) so "a killed host goes down" takes seconds.
    with running_sim(None, "--service-down-time", "3", "--seed", "7") as sim:
        yield SimBackend(sim)

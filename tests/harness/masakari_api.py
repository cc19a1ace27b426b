"""`masakari-operator api` as a subprocess for tests, and a simulated cloud whose Keystone
catalog lists it as the instance-ha service, so every OpenStack client finds it as it finds
Masakari."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openstack

from tests.harness.control_plane import _die_with_parent, free_port
from tests.harness.sim import Sim, running_sim

REPO = Path(__file__).resolve().parents[2]
READY_LINE = "masakari-operator api listening on "
#: The machine's own name: the monitors report it as their host, so it is a compute host too.
THIS_HOST = socket.gethostname()
#: A Nova host name Kubernetes does not accept as an object name (capitals, underscore).
ODD_HOST = "Edge_Node7.lab"


@dataclass
class Api:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextlib.contextmanager
def running_api(
    kubeconfig: Path,
    namespace: str,
    clouds_yaml: Path,
    cloud: str,
    workdir: Path,
    port: int,
    *args: str,
    timeout: float = 60,
) -> Iterator[Api]:
    log_path = workdir / "api.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "controller.cli", "api", "--namespace", namespace,
             "--kubeconfig", str(kubeconfig), "--clouds-yaml", str(clouds_yaml),
             "--cloud", cloud, "--port", str(port), *args],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
    api = Api(f"http://127.0.0.1:{port}", process, log_path)
    try:
        deadline = time.monotonic() + timeout
        while READY_LINE not in api.log():
            if process.poll() is not None:
                raise RuntimeError(f"the API exited ({process.returncode}):\n{api.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start within {timeout}s:\n{api.log()}")
            time.sleep(0.05)
        yield api
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class ApiCloud:
    """A simulated cloud with the compatible API in its catalog, serving one namespace."""

    sim: Sim
    api: Api
    namespace: str
    workdir: Path

    def connection(self, user: str = "admin", **options: Any) -> Any:
        """An openstacksdk connection as `user` (admin or demo, the simulator's users)."""
        path = self.sim.clouds_yaml
        if user != "admin":
            path = self.sim.write_clouds_yaml(
                self.workdir / f"clouds-{user}.yaml",
                user=user,
                password=self.sim.admin_password,
                project=user,
            )
        loader = openstack.config.OpenStackConfig(
            config_files=[str(path)], vendor_files=[], load_envvars=False
        )
        return openstack.connection.Connection(
            config=loader.get_one(cloud=self.sim.cloud, **options)
        )

    def token(self, user: str = "admin") -> str:
        return str(self.connection(user).auth_token)


def topology(extra_hosts: tuple[str, ...] = (), port: int = 0) -> dict[str, Any]:
    names = ["compute1", "compute2", "compute3", ODD_HOST, THIS_HOST, *extra_hosts]
    return {
        "hosts": [{"name": name} for name in dict.fromkeys(names)],
        "catalog": [
            {"type": "instance-ha", "name": "masakari", "url": f"http://127.0.0.1:{port}/v1"}
        ],
    }


@contextlib.contextmanager
def api_cloud(
    kubeconfig: Path,
    namespace: str,
    workdir: Path,
    *api_args: str,
    spec: dict[str, Any] | None = None,
) -> Iterator[ApiCloud]:
    """A simulator (compute1..3 and this machine's name as compute hosts) and the API."""
    port = free_port()
    spec = {**topology(port=port), **(spec or {})}
    with (
        running_sim(spec, "--service-down-time", "2", "--evacuation-seconds", "0.3") as sim,
        running_api(
            kubeconfig, namespace, sim.clouds_yaml, sim.cloud, workdir, port, *api_args
        ) as api,
    ):
        yield ApiCloud(sim, api, namespace, workdir)

"""A real Kubernetes control plane for tests and the demo: etcd + kube-apiserver on loopback.

Binaries come from $KUBEBUILDER_ASSETS, else from $PATH, else from the version-keyed cache that
hack/control-plane/build.sh fills from Go modules on first use. The API server runs with RBAC
and client-certificate authentication like a real cluster; every process dies with its parent
(PR_SET_PDEATHSIG) so a killed test run leaves nothing behind, and stop() removes the work dir.

    python -m tests.harness.control_plane up [--dir DIR]   # runs until interrupted
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import certs

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "control-plane" / "build.sh"
CRDS = REPO / "crds"
BINARIES = ("etcd", "kube-apiserver", "kubectl")
CRD_LABEL = "app.kubernetes.io/part-of=masakari-operator"
BUILD_TIMEOUT = 3600
READY_TIMEOUT = 120.0


class ControlPlaneError(RuntimeError):
    pass


def locate_binaries() -> dict[str, Path]:
    """Each binary from $KUBEBUILDER_ASSETS, then $PATH, then the cache (built if missing).

    kubectl is never taken from $PATH: a distribution's or a cloud SDK's kubectl of another
    minor version would make the tests depend on whatever happens to be installed.
    """
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    found: dict[str, Path] = {}
    for name in BINARIES:
        if assets and (Path(assets) / name).is_file():
            found[name] = Path(assets) / name
        elif name != "kubectl" and (on_path := shutil.which(name)):
            found[name] = Path(on_path)
    missing = [name for name in BINARIES if name not in found]
    if missing:
        built = run_install_script(BUILD_SCRIPT, BUILD_TIMEOUT)
        if built is None:
            raise ControlPlaneError(f"building {', '.join(missing)} failed; see the output above")
        found.update({name: built / name for name in missing})
    return found


def run_install_script(script: Path, timeout: float) -> Path | None:
    """Run one of hack/*'s idempotent installers, its progress on our stderr, and return the
    directory it prints last; None when it failed."""
    result = subprocess.run(
        ["bash", str(script)], stdout=subprocess.PIPE, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        return None
    return Path(result.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: SIGKILL it when the test process goes away.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    os.setpgrp()


def stop_process(process: subprocess.Popen[Any], timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`; always reaped."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def run_kubectl(
    binary: Path,
    kubeconfig: Path,
    *args: str,
    stdin: str | None = None,
    check: bool = True,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(binary), f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise ControlPlaneError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result


@dataclass
class ControlPlane:
    workdir: Path
    binaries: dict[str, Path] = field(default_factory=locate_binaries)
    owns_workdir: bool = False
    etcd_port: int = 0
    etcd_peer_port: int = 0
    api_port: int = 0
    kubeconfig: Path = Path()
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ready_seconds: float = 0.0
    # Extra etcd flags, e.g. a small --quota-backend-bytes or --max-request-bytes for the
    # storage fault rows; empty for everyone else.
    etcd_flags: tuple[str, ...] = ()
    _credentials: Any = None

    @classmethod
    def temporary(cls) -> ControlPlane:
        return cls(Path(tempfile.mkdtemp(prefix="masakari-cp-")), owns_workdir=True)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def start(self) -> ControlPlane:
        begin = time.monotonic()
        try:
            issued = certs.create(self.workdir)
            admin = issued.client(self.workdir, "admin", ["system:masters"])
            self._credentials = (issued, admin)
            self._start_etcd()
            self._start_apiserver(issued)
            self.kubeconfig = self._write_kubeconfig(issued, admin)
            self._wait_ready(issued, admin)
        except BaseException:
            self.stop()
            raise
        self.ready_seconds = time.monotonic() - begin
        return self

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            [str(self.binaries[name]), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        log.close()

    def _start_etcd(self) -> None:
        self.etcd_port, self.etcd_peer_port = (
            self.etcd_port or free_port(),
            self.etcd_peer_port or free_port(),
        )
        client_url = f"http://127.0.0.1:{self.etcd_port}"
        peer_url = f"http://127.0.0.1:{self.etcd_peer_port}"
        self._spawn(
            "etcd",
            [
                "--name=default",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync",  # a test cluster's data need not survive a power cut
                "--log-level=warn",
                *self.etcd_flags,
            ],
        )

    def etcd(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One call of etcd's v3 JSON gateway, e.g. etcd("maintenance/status"): the
        maintenance an etcd operator does with etcdctl (alarms, compaction, defrag)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.etcd_port}/v3/{method}",
            data=json.dumps(body or {}).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            result: dict[str, Any] = json.load(answer)
            return result

    def reclaim_etcd_space(self) -> None:
        """What an etcd operator does after a NOSPACE alarm: compact the history up to now,
        defragment (the file shrinks only then), and disarm the alarm."""
        revision = self.etcd("kv/range", {"key": base64.b64encode(b"/").decode()})["header"][
            "revision"
        ]
        self.etcd("kv/compaction", {"revision": revision, "physical": True})
        self.etcd("maintenance/defragment")
        for alarm in self.etcd("maintenance/alarm", {"action": "GET"}).get("alarms", []):
            self.etcd("maintenance/alarm", {"action": "DEACTIVATE", **alarm})

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver (etcd keeps every object) until start_apiserver: clients meet
        a refused port, as in an API server outage."""
        stop_process(self.processes.pop("kube-apiserver"))

    def start_apiserver(self) -> None:
        """kube-apiserver again on its port and certificates, after stop_apiserver."""
        issued, admin = self._credentials
        self._start_apiserver(issued, self.api_port)
        self._wait_ready(issued, admin)

    def restart_apiserver(self) -> None:
        """Stop kube-apiserver and start it again on its port, etcd keeping every object: what
        a client sees of an API server's crash or upgrade (watches break, versions expire)."""
        self.stop_apiserver()
        self.start_apiserver()

    def restart_etcd(self) -> None:
        """Stop etcd and start it again on its ports and data dir: every object kept, the API
        server meanwhile answering errors and its watches of etcd broken."""
        stop_process(self.processes.pop("etcd"))
        self._start_etcd()
        self._wait_ready(*self._credentials)

    def _start_apiserver(self, issued: certs.ControlPlaneCerts, port: int = 0) -> None:
        self.api_port = port or free_port()
        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={issued.serving_cert}",
                f"--tls-private-key-file={issued.serving_key}",
                f"--client-ca-file={issued.ca}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer=https://127.0.0.1:{self.api_port}",
                f"--service-account-key-file={issued.service_account_pub}",
                f"--service-account-signing-key-file={issued.service_account_key}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--disable-admission-plugins=ServiceAccount",
                "--allow-privileged=true",
                # Loopback may not be published as the kubernetes Service endpoint.
                "--endpoint-reconciler-type=none",
            ],
        )

    def _write_kubeconfig(
        self, issued: certs.ControlPlaneCerts, admin: certs.ClientCredentials
    ) -> Path:
        def data(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": data(issued.ca),
                    },
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate-data": data(admin.cert),
                        "client-key-data": data(admin.key),
                    },
                }
            ],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
            "current-context": "test",
        }
        path = self.workdir / "kubeconfig"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def _wait_ready(self, issued: certs.ControlPlaneCerts, admin: certs.ClientCredentials) -> None:
        context = ssl.create_default_context(cafile=str(issued.ca))
        context.load_cert_chain(str(admin.cert), str(admin.key))
        deadline = time.monotonic() + READY_TIMEOUT
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise ControlPlaneError(
                        f"{name} exited with {process.returncode}:\n{self.log_tail(name)}"
                    )
            try:
                with urllib.request.urlopen(
                    f"{self.server}/readyz", context=context, timeout=5
                ) as answer:
                    if answer.status == 200:
                        return
            except OSError as error:
                last_error = str(error)
            time.sleep(0.2)
        raise ControlPlaneError(
            f"kube-apiserver not ready after {READY_TIMEOUT:.0f}s ({last_error}):\n"
            f"{self.log_tail('kube-apiserver')}"
        )

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / f"{name}.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return run_kubectl(
            self.binaries["kubectl"],
            self.kubeconfig,
            *args,
            stdin=stdin,
            check=check,
            timeout=timeout,
        )

    def install_crds(self, directory: Path = CRDS) -> None:
        install_crds(self.kubectl, directory)

    def stop(self) -> None:
        # The API server first, so it does not log etcd's disappearance as an error storm.
        for name in ("kube-apiserver", "etcd"):
            process = self.processes.pop(name, None)
            if process is not None:
                stop_process(process)
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def install_crds(
    kubectl: Callable[..., subprocess.CompletedProcess[str]], directory: Path = CRDS
) -> None:
    """Apply the generated CRDs (the directory's kustomization) and wait until they are served."""
    kubectl("apply", "--server-side", "-k", str(directory))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", CRD_LABEL)


@contextlib.contextmanager
def running(install: bool = True, etcd_flags: tuple[str, ...] = ()) -> Iterator[ControlPlane]:
    plane = ControlPlane.temporary()
    plane.etcd_flags = etcd_flags
    plane.start()
    try:
        if install:
            plane.install_crds()
        yield plane
    finally:
        plane.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.control_plane")
    parser.add_argument("action", choices=["up", "build"])
    args = parser.parse_args(argv)
    if args.action == "build":
        for name, path in locate_binaries().items():
            print(f"{name}: {path}")
        return 0
    stop = False

    def interrupted(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    with running() as plane:
        print(f"control plane ready in {plane.ready_seconds:.1f}s", flush=True)
        print(f"export KUBECONFIG={plane.kubeconfig}", flush=True)
        while not stop:
            time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())

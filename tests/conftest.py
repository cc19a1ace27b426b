"""Fixtures shared by the test tiers.

The integration tier needs a Kubernetes API server. MASAKARI_TEST_CLUSTER picks it:
  apiserver (default)  etcd + kube-apiserver started here on loopback (tests/harness)
  kind                 a kind cluster through pytest-kind; needs Docker and `pip install -e .[kind]`
A provider that is asked for and cannot run fails the run; it never falls back to another.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.harness import control_plane

PROVIDER_VARIABLE = "MASAKARI_TEST_CLUSTER"


@dataclass
class Cluster:
    """A Kubernetes API server with the CRDs installed, and kubectl pointed at it."""

    provider: str
    kubeconfig: Path
    kubectl_binary: Path

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return control_plane.run_kubectl(
            self.kubectl_binary,
            self.kubeconfig,
            *args,
            stdin=stdin,
            check=check,
            timeout=timeout,
        )


def _kind_cluster(request: pytest.FixtureRequest) -> Cluster:
    try:
        import pytest_kind  # noqa: F401
    except ImportError:
        pytest.fail(
            f"{PROVIDER_VARIABLE}=kind, but pytest-kind is not installed "
            "(pip install -e '.[kind]')",
            pytrace=False,
        )
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode != 0
    ):
        pytest.fail(f"{PROVIDER_VARIABLE}=kind, but no Docker engine answers here", pytrace=False)
    kind = request.getfixturevalue("kind_cluster")
    binaries = control_plane.locate_binaries()
    return Cluster("kind", Path(kind.kubeconfig_path), binaries["kubectl"])


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    provider = os.environ.get(PROVIDER_VARIABLE, "apiserver")
    if provider == "apiserver":
        with control_plane.running(install=False) as plane:
            print(f"\ncontrol plane ready in {plane.ready_seconds:.1f}s at {plane.server}")
            ready = Cluster("apiserver", plane.kubeconfig, plane.binaries["kubectl"])
            control_plane.install_crds(ready.kubectl)
            yield ready
        return
    if provider == "kind":
        ready = _kind_cluster(request)
        control_plane.install_crds(ready.kubectl)
        yield ready
        return
    pytest.fail(f"{PROVIDER_VARIABLE}={provider!r}: use apiserver or kind", pytrace=False)


@pytest.fixture(scope="session")
def real_nova() -> Iterator[Any]:
    """Real Nova 34 on loopback (tests/harness/nova_lab), started once per session and shared by
    the contract suite and the operator's real-Nova tests. Needs root; see docs/nova-lab.md."""
    from tests.harness.nova_lab import running_nova_backend

    with running_nova_backend() as backend:
        yield backend


@pytest.fixture
def namespace(cluster: Cluster) -> str:
    """A namespace of the test's own. No controller-manager runs, so it is never deleted."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", name)
    return name

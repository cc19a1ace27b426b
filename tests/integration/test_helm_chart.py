"""The Helm chart (charts/masakari-operator, written from deploy/ by hack/helm/chart.py): it
passes `helm lint`, is current with deploy/, renders the very objects of the kustomize base
(the Namespace aside: `helm install --create-namespace`), ships the generated CRDs, and its
rendering passes a server-side dry run on the real API server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Cluster

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts/masakari-operator"


def helm_binary() -> Path:
    """Built by `make helm` (hack/helm/build.sh); never built here, never skipped."""
    script = (REPO / "hack/helm/build.sh").read_text()
    version = script.split('version="', 1)[1].split('"', 1)[0]
    cache = Path(
        os.environ.get("MASAKARI_CACHE_DIR")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "masakari-operator"
    )
    binary = cache / f"helm-{version}" / "helm"
    if not binary.is_file():
        pytest.fail(f"no Helm at {binary}: run `make helm`")
    return binary


def helm(*args: str) -> str:
    result = subprocess.run(
        [str(helm_binary()), *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def objects(text: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(text) if d}


def test_the_chart_lints_and_is_current_with_deploy() -> None:
    helm("lint", "--strict", str(CHART))
    current = subprocess.run(
        [sys.executable, str(REPO / "hack/helm/chart.py"), "--check"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert current.returncode == 0, current.stdout + current.stderr


def test_the_chart_renders_the_objects_of_the_kustomize_base(cluster: Cluster) -> None:
    rendered = helm("template", "masakari-operator", str(CHART), "-n", "masakari-system")
    chart = objects(rendered)
    base = objects(cluster.kubectl("kustomize", str(REPO / "deploy")).stdout)
    del base["Namespace", "masakari-system"]
    assert chart == base

    crds = objects(helm("show", "crds", str(CHART)))
    assert crds == objects(cluster.kubectl("kustomize", str(REPO / "crds")).stdout)

    cluster.kubectl("apply", "-f", str(REPO / "deploy/namespace.yaml"))
    cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "-n", "masakari-system", "-f", "-",
        stdin=rendered,
    )  # fmt: skip


def test_the_values_reach_the_deployment() -> None:
    rendered = helm(
        "template", "x", str(CHART), "-n", "ops",
        "--set", "image.repository=registry.example.org/masakari-operator",
        "--set", "image.tag=9.9.9", "--set", "replicas=3",
    )  # fmt: skip
    chart = objects(rendered)
    deployment = chart["Deployment", "masakari-operator"]
    assert deployment["spec"]["replicas"] == 3
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example.org/masakari-operator:9.9.9"
    subjects = chart["ClusterRoleBinding", "masakari-operator"]["subjects"]
    assert subjects[0]["namespace"] == "ops"  # the operator's identity where it is installed

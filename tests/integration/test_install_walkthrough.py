"""docs/install.md, followed as a new user would, against the real API server: its shell blocks
run in order, as written, in a copy of the repository's layout (only the placeholders a reader
fills in are replaced: the cloud's namespace, the clouds.yaml path, the API server's address and
CA). What a cluster without nodes cannot do is left out and said so (a rollout, a Lease held
by a running operator, Keystone). Then: every object is there, and the host monitor's
kubeconfig, made by the documented commands, has exactly the rights the page promises."""

from __future__ import annotations

import base64
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import Cluster
from tests.integration.test_deploy import monitoring_crds

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
#: Commands that need what a cluster without nodes, controllers or OpenStack lacks.
NOT_HERE = (
    "rollout status",  # no controller-manager makes pods
    "get lease",  # no operator runs here to hold it
    "helm install",  # tests/integration/test_helm_chart.py renders and applies the chart
    "openstack endpoint",  # no Keystone
)
#: Placeholders a reader fills in with their own, and the lines that reach beyond loopback.
STAND_INS = {
    # No Pacemaker nodes to scan: an empty known_hosts (ssh then refuses every node).
    "ssh-keyscan controller-1 controller-2 > known_hosts": ": > known_hosts",
}


def shell_blocks(markdown: str) -> list[str]:
    """The ```sh blocks, in order, each line joined with its continuations."""
    blocks = re.findall(r"^ *```sh\n(.*?)^ *```", markdown, re.MULTILINE | re.DOTALL)
    lines: list[str] = []
    for block in blocks:
        text = "\n".join(line.strip() for line in block.splitlines())
        lines += text.replace("\\\n", " ").splitlines()
    return [line for line in lines if line and not any(skip in line for skip in NOT_HERE)]


def overlay_of(markdown: str) -> str:
    """The overlays/prod kustomization the page shows."""
    found = re.search(r"```yaml\n# overlays/prod/kustomization.yaml\n(.*?)```", markdown, re.DOTALL)
    assert found, "docs/install.md no longer shows overlays/prod"
    return found.group(1)


def test_a_new_user_follows_docs_install_md(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    markdown = (REPO / "docs/install.md").read_text()
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(monitoring_crds()))
    work = tmp_path / "repo"
    work.mkdir()
    for part in ("deploy", "crds", "charts"):
        (work / part).symlink_to(REPO / part)
    (work / "overlays/prod").mkdir(parents=True)
    (work / "overlays/prod/kustomization.yaml").write_text(overlay_of(markdown))
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds: {openstack: {auth: {auth_url: 'https://keystone.invalid/v3'}}}\n")
    kubeconfig = yaml.safe_load(cluster.kubeconfig.read_text())
    server = kubeconfig["clusters"][0]["cluster"]["server"]
    ca = work / "ca.crt"
    ca.write_bytes(
        base64.b64decode(kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"])
    )

    cloud = f"{namespace}-c"  # the page creates the namespace itself
    script = "\n".join(
        STAND_INS.get(line.split("  #")[0].strip(), line)
        .replace("my-cloud", cloud)
        .replace("/path/to/clouds.yaml", str(clouds))
        .replace("https://k8s.example.org:6443", server)
        for line in shell_blocks(markdown)
    )
    assert "kubectl apply --server-side -k deploy/crds/" in script
    assert "kubectl apply -k deploy/hostmonitor/policy/" in script
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "PATH": f"{cluster.kubectl_binary.parent}:{os.environ['PATH']}",
    }
    # The same names as the other tests of this session apply: the walk must not fail on them.
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{script}\n---\n{result.stdout}\n{result.stderr}"

    for kind, name, where in [
        ("deployment", "masakari-operator", "masakari-system"),
        ("poddisruptionbudget", "masakari-operator", "masakari-system"),
        ("validatingadmissionpolicy", "masakari-operator-never-writes-spec", None),
        ("validatingadmissionpolicy", "masakari-hostmonitor-reports-its-segment", None),
        ("cloudbinding", "cloud", cloud),
        ("secret", "openstack-clouds", cloud),
        ("serviceaccount", "masakari-hostmonitor-rack-a", cloud),
        ("deployment", "masakari-api", cloud),
        ("prometheusrule", "masakari-operator", "masakari-system"),
    ]:
        cluster.kubectl("get", kind, name, *(["-n", where] if where else []))
    image = cluster.kubectl(
        "get", "deployment", "masakari-operator", "-n", "masakari-system",
        "-o", "jsonpath={.spec.template.spec.containers[0].image}",
    ).stdout  # fmt: skip
    assert image.startswith("registry.example.org/masakari-operator:"), image

    # The host monitor's kubeconfig, as the page makes it, works and grants what it says.
    def can(verb: str, resource: str) -> str:
        answer = subprocess.run(
            [str(cluster.kubectl_binary), "--kubeconfig", str(work / "kubeconfig"),
             "auth", "can-i", verb, resource],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        return answer.stdout.strip()

    assert can("create", "failureevents.masakari.dev") == "yes"
    assert can("list", "hosts.masakari.dev") == "yes"
    assert can("get", "secrets") == "no"
    assert can("delete", "failureevents.masakari.dev") == "no"

"""docs/install.md, followed as a new user would, against the real API server: its shell blocks
run in order, as written, in a copy of the repository's layout (only the placeholders a reader
fills in are replaced: the cloud's namespace, the clouds.yaml path, the API server's address and
CA). What a cluster without nodes cannot do is left out and said so (a rollout, a Lease held
by a running operator, Keystone). Then: every object is there, and the host monitor's
kubeconfig, made by the documented commands, has exactly the rights the page promises. And on a
control plane of its own, the page's uninstall after its install leaves nothing behind."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import Cluster
from tests.harness import control_plane
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


def install_part(markdown: str) -> str:
    return markdown.split("\n## Uninstall\n", 1)[0]


def uninstall_part(markdown: str) -> str:
    return markdown.split("\n## Uninstall\n", 1)[1].split("\n## ", 1)[0]


def overlay_of(markdown: str) -> str:
    """The overlays/prod kustomization the page shows."""
    found = re.search(r"```yaml\n# overlays/prod/kustomization.yaml\n(.*?)```", markdown, re.DOTALL)
    assert found, "docs/install.md no longer shows overlays/prod"
    return found.group(1)


@dataclass
class Walk:
    work: Path  # the reader's copy of the repository, with their overlays
    cloud: str  # the cloud's namespace
    env: dict[str, str]


def run_script(walk: Walk, script: str) -> None:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=walk.work, env=walk.env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{script}\n---\n{result.stdout}\n{result.stderr}"


def follow_install(cluster: Cluster, cloud: str, tmp_path: Path) -> Walk:
    """install.md's shell blocks, run in order in a copy of the repository's layout."""
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

    script = "\n".join(
        STAND_INS.get(line.split("  #")[0].strip(), line)
        .replace("my-cloud", cloud)
        .replace("/path/to/clouds.yaml", str(clouds))
        .replace("https://k8s.example.org:6443", server)
        for line in shell_blocks(install_part(markdown))
    )
    assert "kubectl apply --server-side -k deploy/crds/" in script
    assert "kubectl apply -k deploy/hostmonitor/policy/" in script
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "PATH": f"{cluster.kubectl_binary.parent}:{os.environ['PATH']}",
    }
    walk = Walk(work, cloud, env)
    # The same names as the other tests of this session apply: the walk must not fail on them.
    run_script(walk, script)
    return walk


def test_a_new_user_follows_docs_install_md(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    cloud = f"{namespace}-c"  # the page creates the namespace itself
    work = follow_install(cluster, cloud, tmp_path).work

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


#: What an install leaves in a cluster, by kind (ours: a name with "masakari", or the cloud's
#: Secret). Our own kinds are gone with their CRDs.
CLUSTER_KINDS = (
    "customresourcedefinitions", "clusterroles", "clusterrolebindings", "priorityclasses",
    "validatingadmissionpolicies", "validatingadmissionpolicybindings",
)  # fmt: skip
NAMESPACED_KINDS = (
    "deployments", "services", "serviceaccounts", "roles", "rolebindings", "secrets",
    "configmaps", "networkpolicies", "poddisruptionbudgets", "servicemonitors",
    "prometheusrules",
)  # fmt: skip


def ours(cluster: Cluster, kind: str, *where: str) -> list[str]:
    names = cluster.kubectl("get", kind, "-o", "name", *where).stdout.split()
    return [n for n in names if "masakari" in n or n.endswith("/openstack-clouds")]


def test_uninstalling_as_docs_install_md_says_leaves_nothing(tmp_path: Path) -> None:
    markdown = (REPO / "docs/install.md").read_text()
    with control_plane.running() as plane:
        cluster = Cluster("apiserver", plane.kubeconfig, plane.binaries["kubectl"])
        walk = follow_install(cluster, "cloud-u", tmp_path)
        installed = sum(len(ours(cluster, kind)) for kind in CLUSTER_KINDS)
        assert installed >= 10, "the install left too little to test an uninstall with"
        cluster.kubectl(
            "apply", "-n", walk.cloud, "-f", str(REPO / "examples/segments.yaml"),
            "-f", str(REPO / "examples/hosts.yaml"),
        )  # fmt: skip
        # No controller-manager here finishes a namespace's deletion: kubectl must not wait on
        # the operator's namespace, which the page's overlay deletes.
        script = "\n".join(
            line.replace("my-cloud", walk.cloud).replace(
                "kubectl delete", "kubectl delete --wait=false"
            )
            for line in shell_blocks(uninstall_part(markdown))
        )
        run_script(walk, script)
        # A CRD goes once the API server has deleted its objects, a moment after the command.
        deadline = time.monotonic() + 60
        while ours(cluster, "customresourcedefinitions") and time.monotonic() < deadline:
            time.sleep(0.5)
        left = [name for kind in CLUSTER_KINDS for name in ours(cluster, kind)]
        # The operator's namespace goes whole, with what the page had made in it by hand (the
        # ssh Secret): deleting, it needs only to be Terminating here.
        left += [n for kind in NAMESPACED_KINDS for n in ours(cluster, kind, "-n", walk.cloud)]
        phase = cluster.kubectl(
            "get", "namespace", "masakari-system", "-o", "jsonpath={.status.phase}",
        ).stdout  # fmt: skip
    assert not left, f"left after the uninstall: {left}"
    assert phase == "Terminating", phase
    print(f"\nuninstall: {installed} cluster-scoped objects installed, none left")

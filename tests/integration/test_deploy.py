"""deploy/ on the real API server: accepted, and its RBAC grants what the operator does and
no more (status and metadata yes, spec never; a cloud's Secrets, and creating and deleting
FailureEvents, only where deploy/cloud/ was applied). The CRDs are applied apart and survive
the application's deletion; the pods the Deployments would create are admitted (priority
class, probes, volumes); an admission policy refuses any change of spec by the operator."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.drivers.kube import load_client
from controller.monitors.kubernetes_store import KubernetesStore
from tests.conftest import Cluster

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "system:serviceaccount:masakari-system:masakari-operator"


def allowed(cluster: Cluster, account: str, verb: str, resource: str, namespace: str) -> bool:
    """kubectl auth can-i; `resource/sub` names a subresource (kubectl would read a name)."""
    resource, _, subresource = resource.partition("/")
    extra = [f"--subresource={subresource}"] if subresource else []
    result = cluster.kubectl(
        "auth", "can-i", verb, resource, *extra, "-n", namespace, f"--as={account}", check=False
    )
    return result.stdout.strip() == "yes"


def render(cluster: Cluster, directory: str) -> list[dict[str, Any]]:
    rendered = cluster.kubectl("kustomize", str(REPO / directory)).stdout
    return [d for d in yaml.safe_load_all(rendered) if d]


def apply_deploy(cluster: Cluster) -> None:
    """As docs/install.md says: the CRDs on their own, then the operator."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(REPO / "deploy/crds"))
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(REPO / "deploy"))


def test_every_kustomization_passes_a_server_side_dry_run(cluster: Cluster, namespace: str) -> None:
    # A dry run creates nothing, so the objects of a namespace it would create are refused:
    # the namespace itself is created for real first.
    cluster.kubectl("apply", "-f", str(REPO / "deploy/namespace.yaml"))
    for directory in ("deploy/crds", "deploy"):
        cluster.kubectl("apply", "--server-side", "--dry-run=server", "-k", str(REPO / directory))
    for directory in ("deploy/cloud", "deploy/api"):
        cluster.kubectl(
            "apply", "--server-side", "--dry-run=server", "-n", namespace,
            "-k", str(REPO / directory),
        )  # fmt: skip


def test_deleting_the_application_never_deletes_a_crd(cluster: Cluster) -> None:
    """Removing the operator (kubectl delete -k, an Argo CD or Flux application pruned) must not
    take the CRDs, and with them every FailureEvent, along."""
    apply_deploy(cluster)
    doomed = cluster.kubectl(
        "delete", "--dry-run=server", "-o", "name", "-k", str(REPO / "deploy")
    ).stdout.split()
    assert "deployment.apps/masakari-operator" in doomed, doomed
    assert not [name for name in doomed if name.startswith("customresourcedefinition")], doomed
    crds = render(cluster, "deploy/crds")
    assert {c["kind"] for c in crds} == {"CustomResourceDefinition"} and len(crds) == 4
    for crd in crds:
        annotations = crd["metadata"]["annotations"]
        assert "Delete=false" in annotations["argocd.argoproj.io/sync-options"], crd
        assert annotations["kustomize.toolkit.fluxcd.io/prune"] == "disabled", crd


def admit_pod_of(cluster: Cluster, deployment: dict[str, Any], namespace: str) -> None:
    """No controller-manager here makes pods: the template goes through pod admission
    (priority class resolved, security context, volumes, probes) as a dry-run Pod."""
    template = deployment["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "dry-run-", "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    }
    cluster.kubectl("create", "--dry-run=server", "-n", namespace, "-f", "-", stdin=json.dumps(pod))


def test_the_operator_pods_are_admitted_spread_and_protected_by_a_budget(
    cluster: Cluster,
) -> None:
    apply_deploy(cluster)
    objects = {(o["kind"], o["metadata"]["name"]): o for o in render(cluster, "deploy")}
    deployment = objects["Deployment", "masakari-operator"]
    admit_pod_of(cluster, deployment, "masakari-system")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    budget = cluster.kubectl(
        "get", "pdb", "masakari-operator", "-n", "masakari-system", "-o", "json"
    ).stdout
    selector = json.loads(budget)["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    spec = deployment["spec"]["template"]["spec"]
    spread = {c["topologyKey"]: c for c in spec["topologySpreadConstraints"]}
    assert spread["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"
    assert spec["priorityClassName"] == "masakari-operator"
    cluster.kubectl("get", "priorityclass", "masakari-operator")
    policies = cluster.kubectl("get", "networkpolicy", "-n", "masakari-system", "-o", "name")
    assert "networkpolicy.networking.k8s.io/masakari-operator" in policies.stdout


def test_the_api_pods_are_admitted_and_protected_by_a_budget(
    cluster: Cluster, namespace: str
) -> None:
    apply_deploy(cluster)  # the priority class
    rendered = cluster.kubectl("kustomize", str(REPO / "deploy/api")).stdout
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=rendered)
    deployment = next(d for d in yaml.safe_load_all(rendered) if d["kind"] == "Deployment")
    admit_pod_of(cluster, deployment, namespace)
    cluster.kubectl("get", "pdb", "masakari-api", "-n", namespace)
    cluster.kubectl("get", "networkpolicy", "masakari-api", "-n", namespace)


def test_the_operator_may_write_status_and_labels_but_never_a_spec(
    cluster: Cluster, namespace: str
) -> None:
    apply_deploy(cluster)
    host = {
        "apiVersion": "masakari.dev/v1alpha1",
        "kind": "Host",
        "metadata": {"name": "compute-1"},
        "spec": {"segment": "rack-a"},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(host))
    as_operator = (f"--as={ACCOUNT}", "-n", namespace)

    def patch(*args: str) -> Any:
        return cluster.kubectl("patch", "host", "compute-1", *as_operator, *args, check=False)

    # The policy reaches the API server's admission within a second or so of its creation.
    deadline = time.monotonic() + 30
    refused = patch("--type=merge", "-p", '{"spec": {"onMaintenance": true}}')
    while refused.returncode == 0 and time.monotonic() < deadline:
        patch("--type=merge", "-p", '{"spec": {"onMaintenance": false}}')
        time.sleep(0.5)
        refused = patch("--type=merge", "-p", '{"spec": {"onMaintenance": true}}')
    assert refused.returncode != 0, "the operator changed a spec"
    assert "never changes a spec" in refused.stderr, refused.stderr
    assert patch("--type=merge", "-p", '{"metadata": {"labels": {"a": "b"}}}').returncode == 0
    status = patch("--subresource=status", "--type=merge", "-p", '{"status": {"phase": "Active"}}')
    assert status.returncode == 0, status.stderr
    # Anyone else (here the cluster admin, as a GitOps pipeline would be) still may.
    cluster.kubectl(
        "patch", "host", "compute-1", "-n", namespace, "--type=merge",
        "-p", '{"spec": {"onMaintenance": true}}',
    )  # fmt: skip


def test_the_operator_may_write_its_claim_on_a_namespace_and_nothing_else(
    cluster: Cluster, namespace: str
) -> None:
    """A shard claims a namespace with an annotation; RBAC's `patch` on namespaces would let it
    relabel one too, and move it to another shard. The admission policy says no."""
    apply_deploy(cluster)
    cluster.kubectl("label", "namespace", namespace, "masakari.dev/region=eu-1")

    def patch(body: str) -> Any:
        return cluster.kubectl(
            "patch", "namespace", namespace, f"--as={ACCOUNT}", "--type=merge", "-p", body,
            check=False,
        )  # fmt: skip

    relabel = '{"metadata": {"labels": {"masakari.dev/region": "eu-2"}}}'
    deadline = time.monotonic() + 30  # until the policy reaches the API server's admission
    refused = patch(relabel)
    while refused.returncode == 0 and time.monotonic() < deadline:
        patch('{"metadata": {"labels": {"masakari.dev/region": "eu-1"}}}')
        time.sleep(0.5)
        refused = patch(relabel)
    assert refused.returncode != 0, "the operator relabelled a namespace"
    assert "only the masakari.dev/shard annotation" in refused.stderr, refused.stderr
    assert patch('{"metadata": {"annotations": {"other": "x"}}}').returncode != 0
    claim = patch('{"metadata": {"annotations": {"masakari.dev/shard": "masakari-system/eu-1"}}}')
    assert claim.returncode == 0, claim.stderr
    released = patch('{"metadata": {"annotations": {"masakari.dev/shard": null}}}')
    assert released.returncode == 0, released.stderr
    # The cluster admin (a GitOps pipeline) still moves namespaces between shards.
    cluster.kubectl("label", "namespace", namespace, "masakari.dev/region=eu-2", "--overwrite")


def test_deploy_base_is_accepted_and_rbac_is_least_privilege(cluster: Cluster) -> None:
    apply_deploy(cluster)
    cluster.kubectl("get", "deployment", "masakari-operator", "-n", "masakari-system")

    def can(verb: str, resource: str, namespace: str = "cloud-a") -> bool:
        return allowed(cluster, ACCOUNT, verb, resource, namespace)

    for verb, resource in [
        ("watch", "failureevents.masakari.dev"),
        ("patch", "failureevents.masakari.dev/status"),
        ("patch", "hosts.masakari.dev/status"),
        ("patch", "failoversegments.masakari.dev/status"),
        ("patch", "failureevents.masakari.dev"),  # labels
        ("list", "cloudbindings.masakari.dev"),
        ("patch", "cloudbindings.masakari.dev/status"),
        ("create", "events"),
        ("list", "namespaces"),
        ("patch", "namespaces"),  # a shard's claim (docs/scale.md)
    ]:
        assert can(verb, resource), f"the operator may not {verb} {resource}"
    assert can("update", "leases.coordination.k8s.io", "masakari-system")
    for verb, resource in [
        ("update", "hosts.masakari.dev"),
        ("create", "hosts.masakari.dev"),
        ("delete", "failureevents.masakari.dev"),
        ("update", "cloudbindings.masakari.dev"),
        ("get", "secrets"),
        ("delete", "namespaces"),
        ("create", "namespaces"),
    ]:
        assert not can(verb, resource), f"the operator should not {verb} {resource}"
    assert not can("update", "leases.coordination.k8s.io", "cloud-a")


def test_a_cloud_namespace_lets_the_operator_read_its_one_secret(
    cluster: Cluster, namespace: str
) -> None:
    rendered = cluster.kubectl("kustomize", str(REPO / "deploy/cloud")).stdout
    assert "kind: CloudBinding" in rendered
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=rendered)

    def can(verb: str, what: str, where: str = namespace) -> bool:
        result = cluster.kubectl(
            "auth", "can-i", verb, what, "-n", where, f"--as={ACCOUNT}", check=False
        )
        return result.stdout.strip() == "yes"

    assert can("get", "secrets/openstack-clouds")
    assert can("get", "secrets/bmc-credentials")
    assert not can("get", "secrets/another")
    assert not can("list", "secrets")  # a list would return every Secret's data
    assert not can("get", "secrets/openstack-clouds", "another-cloud")
    # Retention deletes ended FailureEvents, detection creates them: here only.
    assert can("delete", "failureevents.masakari.dev")
    assert can("create", "failureevents.masakari.dev")
    assert not can("delete", "failureevents.masakari.dev", "another-cloud")


def test_api_deployment_is_accepted_with_namespace_scoped_rights(
    cluster: Cluster, namespace: str
) -> None:
    rendered = cluster.kubectl("kustomize", str(REPO / "deploy/api")).stdout
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=rendered)
    account = f"system:serviceaccount:{namespace}:masakari-api"

    def can(verb: str, resource: str, where: str = namespace) -> bool:
        return allowed(cluster, account, verb, resource, where)

    assert can("create", "failureevents.masakari.dev")
    assert can("update", "configmaps")
    for kind in ("failoversegments", "hosts", "failureevents"):  # its reads are from watches
        assert can("watch", f"{kind}.masakari.dev")
    assert not can("patch", "failureevents.masakari.dev/status")  # status is the operator's
    assert not can("create", "failureevents.masakari.dev", "another-cloud")


def monitoring_crds() -> Path:
    """Cached by `make monitoring-crds` (hack/control-plane/monitoring-crds.sh); never fetched
    here, and never skipped: missing, the test fails and says how to get them."""
    script = (REPO / "hack/control-plane/monitoring-crds.sh").read_text()
    version = script.split('version="', 1)[1].split('"', 1)[0]
    cache = Path(
        os.environ.get("MASAKARI_CACHE_DIR")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "masakari-operator"
    )
    directory = cache / "monitoring-crds" / f"prometheus-operator-{version}"
    if not list(directory.glob("*.yaml")):
        pytest.fail(f"no Prometheus Operator CRDs in {directory}: run `make monitoring-crds`")
    return directory


def test_monitoring_is_accepted_and_selected_by_kube_prometheus_stack(cluster: Cluster) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(monitoring_crds()))
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com",
    )  # fmt: skip
    cluster.kubectl("apply", "-f", str(REPO / "deploy/namespace.yaml"))
    cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "-k", str(REPO / "deploy/monitoring")
    )
    objects = {(o["kind"], o["metadata"]["name"]): o for o in render(cluster, "deploy/monitoring")}
    rule = objects["PrometheusRule", "masakari-operator"]
    # A default kube-prometheus-stack selects ServiceMonitors and rules by this label.
    assert rule["metadata"]["labels"]["release"]
    assert objects["ServiceMonitor", "masakari-operator"]["metadata"]["labels"]["release"]
    # Each runbook_url is the configured base and the alert's section of docs/runbooks.md.
    base = objects["ConfigMap", "masakari-operator-runbooks"]["data"]["base"]
    for alert in rule["spec"]["groups"][0]["rules"]:
        assert alert["annotations"]["runbook_url"] == f"{base}#{alert['alert'].lower()}"


def hostmonitor_overlay(tmp_path: Path, segment: str) -> Path:
    """What docs/install.md says to write per segment: the base with the segment's suffix."""
    overlay = tmp_path / f"hostmonitor-{segment}"
    overlay.mkdir()
    base = os.path.relpath(REPO / "deploy/hostmonitor", overlay)  # kustomize wants it relative
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": [base], "nameSuffix": f"-{segment}"})
    )
    return overlay


def report(host: str, name: str) -> str:
    """A FailureEvent as the host monitor sends it (docs/hostmonitor.md)."""
    return json.dumps(
        {
            "apiVersion": "masakari.dev/v1alpha1",
            "kind": "FailureEvent",
            "metadata": {"name": name},
            "spec": {
                "type": "COMPUTE_HOST",
                "host": host,
                "generatedTime": "2026-12-02T10:15:00Z",
                "payload": {
                    "event": "STOPPED",
                    "cluster_status": "OFFLINE",
                    "host_status": "UNKNOWN",
                },
                "source": "hostmonitor/node1",
            },
        }
    )


def test_the_host_monitor_may_list_hosts_and_create_failure_events_and_nothing_else(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    overlay = hostmonitor_overlay(tmp_path, "rack-a")
    cluster.kubectl("apply", "-n", namespace, "-k", str(overlay))
    account = f"system:serviceaccount:{namespace}:masakari-hostmonitor-rack-a"

    def can(verb: str, resource: str, where: str = namespace) -> bool:
        return allowed(cluster, account, verb, resource, where)

    assert can("list", "hosts.masakari.dev")
    assert can("create", "failureevents.masakari.dev")
    for verb, resource in [
        ("patch", "failureevents.masakari.dev"),
        ("delete", "failureevents.masakari.dev"),
        ("patch", "failureevents.masakari.dev/status"),
        ("get", "failureevents.masakari.dev"),
        ("create", "hosts.masakari.dev"),
        ("patch", "hosts.masakari.dev"),
        ("list", "failoversegments.masakari.dev"),
        ("get", "secrets"),
        ("list", "configmaps"),
    ]:
        assert not can(verb, resource), f"the host monitor should not {verb} {resource}"
    assert not can("create", "failureevents.masakari.dev", "another-cloud")
    # What it sends is accepted from it.
    cluster.kubectl(
        "create", f"--as={account}", "-n", namespace, "-f", "-",
        stdin=report("compute-9", "compute-9-stopped-lost-20261202-101500"),
    )  # fmt: skip
    # Whether another monitor took a name is asked by a dry-run create, with no read: taken
    # for the name just created, free (and still not stored) for another.
    api = load_client(str(cluster.kubeconfig))
    api.set_default_header("Impersonate-User", account)
    store = KubernetesStore(api, namespace)
    assert store.taken(json.loads(report("compute-9", "compute-9-stopped-lost-20261202-101500")))
    free = "compute-9-stopped-lost-20261202-101600"
    assert not store.taken(json.loads(report("compute-9", free)))
    missing = cluster.kubectl("get", "failureevent", free, "-n", namespace, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr, missing.stderr


def test_a_host_monitor_reports_the_hosts_of_its_own_segment_only(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    cluster.kubectl("apply", "-k", str(REPO / "deploy/hostmonitor/policy"))
    for segment in ("rack-a", "rack-b"):
        cluster.kubectl("apply", "-n", namespace, "-k", str(hostmonitor_overlay(tmp_path, segment)))
    hosts = [
        {
            "apiVersion": "masakari.dev/v1alpha1",
            "kind": "Host",
            "metadata": {"name": name},
            "spec": {"segment": segment},
        }
        for name, segment in (("compute-a1", "rack-a"), ("compute-b1", "rack-b"))
    ]
    documents = json.dumps({"apiVersion": "v1", "kind": "List", "items": hosts})
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=documents)
    rack_a = f"--as=system:serviceaccount:{namespace}:masakari-hostmonitor-rack-a"

    def create(identity: str, host: str, name: str) -> Any:
        return cluster.kubectl(
            "create", identity, "-n", namespace, "-f", "-", stdin=report(host, name), check=False
        )

    # The policy and its parameters reach the API server's admission within a few seconds.
    deadline = time.monotonic() + 30
    attempt = 0
    refused = create(rack_a, "compute-b1", "b1-0")
    while refused.returncode == 0 and time.monotonic() < deadline:
        attempt += 1
        time.sleep(0.5)
        refused = create(rack_a, "compute-b1", f"b1-{attempt}")
    assert refused.returncode != 0, "rack-a's monitor reported a host of rack-b"
    assert "is not of segment 'rack-a'" in refused.stderr, refused.stderr
    accepted = create(rack_a, "compute-a1", "a1")
    assert accepted.returncode == 0, accepted.stderr
    # Without a segment suffix, an identity reports no existing Host at all.
    cluster.kubectl("apply", "-n", namespace, "-k", str(REPO / "deploy/hostmonitor"))
    bare = f"--as=system:serviceaccount:{namespace}:masakari-hostmonitor"
    assert create(bare, "compute-a1", "a1-bare").returncode != 0

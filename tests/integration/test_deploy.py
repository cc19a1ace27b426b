"""deploy/ on the real API server: accepted, and its RBAC grants what the operator does and
no more (status and metadata yes, spec never; a cloud's Secrets, and creating and deleting
FailureEvents, only where deploy/cloud/ was applied)."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def test_deploy_base_is_accepted_and_rbac_is_least_privilege(cluster: Cluster) -> None:
    rendered = cluster.kubectl("kustomize", str(REPO / "deploy")).stdout
    assert "kind: Deployment" in rendered and "kind: CustomResourceDefinition" in rendered
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=rendered)
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
    ]:
        assert can(verb, resource), f"the operator may not {verb} {resource}"
    assert can("update", "leases.coordination.k8s.io", "masakari-system")
    for verb, resource in [
        ("update", "hosts.masakari.dev"),
        ("create", "hosts.masakari.dev"),
        ("delete", "failureevents.masakari.dev"),
        ("update", "cloudbindings.masakari.dev"),
        ("get", "secrets"),
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
    assert not can("patch", "failureevents.masakari.dev/status")  # status is the operator's
    assert not can("create", "failureevents.masakari.dev", "another-cloud")

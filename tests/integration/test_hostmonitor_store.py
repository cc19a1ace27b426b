"""The host monitor's Kubernetes side against the real API server: hosts, creates, outages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from controller.drivers.kube import load_client
from controller.monitors.host_failures import HostEvent, NodeReport
from controller.monitors.kubernetes_store import KubernetesStore
from controller.monitors.reporting import HostEntry, Rejected, Unreachable, failure_event
from tests.conftest import Cluster
from tests.harness.control_plane import free_port

pytestmark = pytest.mark.integration

REPORT = NodeReport(
    "pcmk-3",
    HostEvent.STOPPED,
    "NORMAL",
    "OFFLINE",
    "fenced-20261126-022701",
    datetime(2026, 11, 26, 2, 27, 5, tzinfo=UTC),
)


def test_hosts_are_keyed_by_pacemaker_node(cluster: Cluster, namespace: str) -> None:
    hosts = [
        {
            "metadata": {"name": "compute-3"},
            "spec": {"segment": "rack-a", "pacemakerNode": "pcmk-3"},
        },
        {"metadata": {"name": "compute-4"}, "spec": {"segment": "rack-b"}},
    ]
    manifests = [
        {
            "apiVersion": "masakari.dev/v1alpha1",
            "kind": "Host",
            **host,
            "metadata": {**host["metadata"], "namespace": namespace},
        }
        for host in hosts
    ]
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(manifests))
    store = KubernetesStore(load_client(str(cluster.kubeconfig)), namespace)
    assert store.hosts() == {
        "pcmk-3": HostEntry("compute-3", "rack-a"),
        "compute-4": HostEntry("compute-4", "rack-b"),
    }


def test_second_create_of_a_failure_is_already_reported(cluster: Cluster, namespace: str) -> None:
    store = KubernetesStore(load_client(str(cluster.kubeconfig)), namespace)
    body = failure_event(REPORT, HostEntry("compute-3", "rack-a"), "hostmonitor/pcmk-1")
    assert store.create(body) is True
    assert store.create(body) is False
    stored = cluster.kubectl(
        "get", "fev", "-n", namespace, "-l", "masakari.dev/segment=rack-a", "-o", "name"
    ).stdout.split()
    assert stored == ["failureevent.masakari.dev/compute-3-stopped-fenced-20261126-022701"]


def test_invalid_object_is_rejected_for_good(cluster: Cluster, namespace: str) -> None:
    store = KubernetesStore(load_client(str(cluster.kubeconfig)), namespace)
    body = failure_event(REPORT, HostEntry("compute-3", "rack-a"), "hostmonitor/pcmk-1")
    body["spec"]["payload"]["process_name"] = "nova-compute"  # not allowed for COMPUTE_HOST
    with pytest.raises(Rejected, match="422"):
        store.create(body)


def test_unreachable_api_server_is_retryable(cluster: Cluster, namespace: str) -> None:
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    dead = cluster.kubeconfig.with_name("kubeconfig-nothing-listens")
    dead.write_text(yaml.safe_dump(config))
    store = KubernetesStore(load_client(str(dead)), namespace)
    with pytest.raises(Unreachable):
        store.create(failure_event(REPORT, HostEntry("compute-3", "rack-a"), "m"))

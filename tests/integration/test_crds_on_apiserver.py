"""The CRDs on a real API server: examples accepted, bad manifests refused by name of field,
status only through its subresource, and kubectl showing what an operator needs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Cluster

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SEGMENT: dict[str, Any] = {
    "apiVersion": "masakari.dev/v1alpha1",
    "kind": "FailoverSegment",
    "metadata": {"name": "seg"},
    "spec": {"recoveryMethod": "auto", "serviceType": "COMPUTE"},
}
HOST: dict[str, Any] = {
    "apiVersion": "masakari.dev/v1alpha1",
    "kind": "Host",
    "metadata": {"name": "compute-1"},
    "spec": {"segment": "seg"},
}
EVENT: dict[str, Any] = {
    "apiVersion": "masakari.dev/v1alpha1",
    "kind": "FailureEvent",
    "metadata": {"name": "ev"},
    "spec": {
        "type": "COMPUTE_HOST",
        "host": "compute-1",
        "generatedTime": "2026-11-26T02:00:00Z",
        "payload": {"event": "STOPPED", "host_status": "NORMAL", "cluster_status": "OFFLINE"},
    },
}
BINDING: dict[str, Any] = {
    "apiVersion": "masakari.dev/v1alpha1",
    "kind": "CloudBinding",
    "metadata": {"name": "cloud"},
    "spec": {"secretName": "openstack-clouds", "cloud": "openstack"},
}
VM_PAYLOAD = {
    "event": "LIFECYCLE",
    "vir_domain_event": "STOPPED_FAILED",
    "instance_uuid": "8f2a5f0e-7a38-4c8b-9d43-2f1b6c1f0a11",
}


def _with(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of base with the dotted path set to value (or removed when value is ...)."""
    body = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = body
    for key in parents:
        node = node.setdefault(key, {})
    if value is ...:
        node.pop(last, None)
    else:
        node[last] = value
    return body


def _apply(cluster: Cluster, namespace: str, body: dict[str, Any], *verb: str) -> tuple[int, str]:
    result = cluster.kubectl(
        *(verb or ("create",)), "-n", namespace, "-f", "-", stdin=json.dumps(body), check=False
    )
    return result.returncode, result.stderr


def test_examples_are_accepted(cluster: Cluster, namespace: str) -> None:
    result = cluster.kubectl("apply", "-n", namespace, "-f", str(REPO / "examples"))
    assert result.stdout.count("created") == 10, result.stdout
    segment = json.loads(
        cluster.kubectl("get", "fseg", "rack-a", "-n", namespace, "-o", "json").stdout
    )
    # Server-side defaults fill what the manifest left out.
    assert segment["spec"]["enabled"] is True
    assert segment["spec"]["hostFailure"]["haEnabledMetadataKey"] == "HA_Enabled"
    assert segment["spec"]["retry"]["maxAttempts"] == 3


INVALID = [
    # (id, manifest, text the API server's refusal must contain)
    (
        "unknown-recovery-method",
        _with(SEGMENT, "spec.recoveryMethod", "manual"),
        'spec.recoveryMethod: Unsupported value: "manual"',
    ),
    (
        "missing-service-type",
        _with(SEGMENT, "spec.serviceType", ...),
        "spec.serviceType: Required value",
    ),
    ("enabled-not-boolean", _with(SEGMENT, "spec.enabled", "maybe"), "spec.enabled: Invalid value"),
    (
        "negative-failed-host-limit",
        _with(SEGMENT, "spec.storm.maxFailedHosts", -1),
        "spec.storm.maxFailedHosts: Invalid value: -1",
    ),
    (
        "percent-over-100",
        _with(SEGMENT, "spec.storm.maxFailedHostsPercent", 150),
        "spec.storm.maxFailedHostsPercent: Invalid value: 150",
    ),
    (
        "both-storm-limits",
        _with(
            _with(SEGMENT, "spec.storm.maxFailedHosts", 2), "spec.storm.maxFailedHostsPercent", 20
        ),
        "spec.storm: Invalid value: maxFailedHosts and maxFailedHostsPercent are "
        "mutually exclusive",
    ),
    (
        "backoff-contradiction",
        _with(SEGMENT, "spec.retry.initialBackoffSeconds", 600),
        "spec.retry: Invalid value: initialBackoffSeconds must not exceed",
    ),
    (
        "zero-concurrency",
        _with(SEGMENT, "spec.hostFailure.evacuationConcurrency", 0),
        "spec.hostFailure.evacuationConcurrency: Invalid value: 0",
    ),
    (
        "description-too-long",
        _with(SEGMENT, "spec.description", "x" * 5000),
        "spec.description: Too long",
    ),
    (
        "malformed-segment-reference",
        _with(HOST, "spec.segment", "Rack_A"),
        'spec.segment: Invalid value: "Rack_A"',
    ),
    (
        "shell-in-nova-host",
        _with(HOST, "spec.novaHost", "node1;reboot"),
        'spec.novaHost: Invalid value: "node1;reboot"',
    ),
    ("host-without-segment", _with(HOST, "spec.segment", ...), "spec.segment: Required value"),
    (
        "host-type-with-space",
        _with(HOST, "spec.type", "COMPUTE NODE"),
        'spec.type: Invalid value: "COMPUTE NODE"',
    ),
    ("reserved-not-boolean", _with(HOST, "spec.reserved", "yes"), "spec.reserved: Invalid value"),
    (
        "unknown-failure-type",
        _with(EVENT, "spec.type", "NETWORK"),
        'spec.type: Unsupported value: "NETWORK"',
    ),
    (
        "host-event-not-started-or-stopped",
        _with(EVENT, "spec.payload.event", "CRASHED"),
        "spec.payload: Invalid value: a COMPUTE_HOST payload",
    ),
    (
        "unknown-host-status",
        _with(EVENT, "spec.payload.host_status", "MAYBE"),
        'spec.payload.host_status: Unsupported value: "MAYBE"',
    ),
    (
        "vm-without-instance",
        _with(
            _with(EVENT, "spec.type", "VM"),
            "spec.payload",
            {"event": "LIFECYCLE", "vir_domain_event": "STOPPED_FAILED"},
        ),
        "spec.payload: Invalid value: a VM payload",
    ),
    (
        "malformed-instance-uuid",
        _with(
            _with(EVENT, "spec.type", "VM"),
            "spec.payload",
            {**VM_PAYLOAD, "instance_uuid": "not-a-uuid"},
        ),
        'spec.payload.instance_uuid: Invalid value: "not-a-uuid"',
    ),
    (
        "process-without-name",
        _with(_with(EVENT, "spec.type", "PROCESS"), "spec.payload", {"event": "STOPPED"}),
        "spec.payload: Invalid value: a PROCESS payload",
    ),
    (
        "generated-time-not-a-time",
        _with(EVENT, "spec.generatedTime", "yesterday"),
        'spec.generatedTime: Invalid value: "yesterday"',
    ),
    ("event-without-payload", _with(EVENT, "spec.payload", ...), "spec.payload: Required value"),
    (
        "binding-without-secret",
        _with(BINDING, "spec.secretName", ...),
        "spec.secretName: Required value",
    ),
    (
        "binding-secret-not-a-name",
        _with(BINDING, "spec.secretName", "../clouds"),
        'spec.secretName: Invalid value: "../clouds"',
    ),
    (
        "binding-pacemaker-local-and-ssh",
        _with(BINDING, "spec.pacemaker", {"local": {}, "ssh": {"host": "node1"}}),
        "spec.pacemaker: Invalid value: set exactly one of local and ssh",
    ),
    (
        "binding-pacemaker-neither",
        _with(BINDING, "spec.pacemaker", {}),
        "set exactly one of local and ssh",
    ),
    (
        "binding-ssh-host-with-shell",
        _with(BINDING, "spec.pacemaker", {"ssh": {"host": "node1;reboot"}}),
        'spec.pacemaker.ssh.host: Invalid value: "node1;reboot"',
    ),
    (
        "binding-ssh-user-option",
        _with(BINDING, "spec.pacemaker", {"ssh": {"host": "node1", "user": "-oProxyCommand"}}),
        'spec.pacemaker.ssh.user: Invalid value: "-oProxyCommand"',
    ),
]


@pytest.mark.parametrize(
    ("manifest", "expected"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID]
)
def test_invalid_manifest_is_refused(
    cluster: Cluster, namespace: str, manifest: dict[str, Any], expected: str
) -> None:
    code, error = _apply(cluster, namespace, manifest)
    assert code != 0, "the API server accepted an invalid manifest"
    assert expected in error, error


def test_the_valid_bases_are_accepted(cluster: Cluster, namespace: str) -> None:
    """Guards the table above: each refusal comes from the one field it changes."""
    for body in (
        SEGMENT,
        HOST,
        EVENT,
        BINDING,
        _with(
            _with(BINDING, "metadata.name", "ssh"),
            "spec.pacemaker",
            {"ssh": {"host": "node1", "user": "hacluster"}},
        ),
        _with(_with(BINDING, "metadata.name", "local"), "spec.pacemaker", {"local": {}}),
        _with(
            _with(EVENT, "metadata.name", "vm"),
            "spec",
            {**EVENT["spec"], "type": "VM", "payload": VM_PAYLOAD},
        ),
    ):
        code, error = _apply(cluster, namespace, body)
        assert code == 0, error


def test_failure_event_spec_is_immutable(cluster: Cluster, namespace: str) -> None:
    assert _apply(cluster, namespace, EVENT)[0] == 0
    changed = _with(EVENT, "spec.payload.host_status", "UNKNOWN")
    code, error = _apply(cluster, namespace, changed, "replace")
    assert code != 0
    assert "spec: Invalid value: the spec of a FailureEvent is immutable" in error
    # Labels and annotations stay writable: the operator adds the segment label later.
    cluster.kubectl("label", "fev", "ev", "-n", namespace, "masakari.dev/segment=seg")


def _get(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout)


def test_status_is_written_only_through_its_subresource(cluster: Cluster, namespace: str) -> None:
    assert _apply(cluster, namespace, HOST)[0] == 0
    status_patch = json.dumps({"status": {"phase": "Failed"}, "spec": {"reserved": True}})
    cluster.kubectl(
        "patch", "mhost", "compute-1", "-n", namespace, "--type=merge", "-p", status_patch
    )
    host = _get(cluster, namespace, "mhost", "compute-1")
    assert "status" not in host or "phase" not in host["status"]
    assert host["spec"]["reserved"] is True

    cluster.kubectl(
        "patch",
        "mhost",
        "compute-1",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": "Failed"}, "spec": {"reserved": False}}),
    )
    host = _get(cluster, namespace, "mhost", "compute-1")
    assert host["status"]["phase"] == "Failed"
    assert host["spec"]["reserved"] is True  # spec is not writable through status

    code = cluster.kubectl(
        "patch",
        "mhost",
        "compute-1",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status": {"phase": "Exploded"}}',
        check=False,
    )
    assert code.returncode != 0 and "status.phase: Unsupported value" in code.stderr


def test_kubectl_shows_printer_columns(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", str(REPO / "examples"))
    cluster.kubectl(
        "patch",
        "fseg",
        "rack-a",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(
            {
                "status": {
                    "phase": "Ready",
                    "hosts": 3,
                    "failedHosts": 0,
                    "reservedHostsAvailable": 1,
                    "recoveriesInFlight": 0,
                }
            }
        ),
    )
    lines = cluster.kubectl("get", "fseg", "-n", namespace).stdout.splitlines()
    assert lines[0].split() == [
        "NAME",
        "METHOD",
        "ENABLED",
        "PHASE",
        "HOSTS",
        "FAILED",
        "RESERVED",
        "RECOVERING",
        "CANFAILOVER",
        "AGE",
    ]
    assert lines[1].split()[:8] == ["rack-a", "auto_priority", "true", "Ready", "3", "0", "1", "0"]

    header = cluster.kubectl("get", "mhost", "-n", namespace).stdout.splitlines()[0].split()
    assert header == [
        "NAME",
        "SEGMENT",
        "PHASE",
        "RESERVED",
        "MAINTENANCE",
        "NOVA",
        "PACEMAKER",
        "AGE",
    ]
    rows = cluster.kubectl("get", "fev", "-n", namespace).stdout.splitlines()
    assert rows[0].split() == ["NAME", "TYPE", "HOST", "EVENT", "PHASE", "REASON", "AGE"]
    assert rows[1].split()[:4] == [
        "compute-a1-stopped-20261126t020000z",
        "COMPUTE_HOST",
        "compute-a1",
        "STOPPED",
    ]

    everything = cluster.kubectl("get", "masakari", "-n", namespace, "-o", "name").stdout
    assert everything.count("failoversegment.masakari.dev/") == 2
    assert everything.count("host.masakari.dev/") == 6
    assert everything.count("failureevent.masakari.dev/") == 1


def test_kubectl_explain_documents_fields(cluster: Cluster) -> None:
    text = cluster.kubectl("explain", "failoversegment.spec.recoveryMethod").stdout
    assert "reserved_host" in text and "auto_priority" in text
    text = cluster.kubectl("explain", "mhost.spec.releaseFailure").stdout
    assert "old value never releases a new failure" in text


def test_events_are_found_by_host_type_and_segment(cluster: Cluster, namespace: str) -> None:
    reports = [
        ("a1-host", "compute-a1", "COMPUTE_HOST", EVENT["spec"]["payload"]),
        ("a1-vm", "compute-a1", "VM", VM_PAYLOAD),
        ("b1-host", "compute-b1", "COMPUTE_HOST", EVENT["spec"]["payload"]),
    ]
    for name, host, kind, payload in reports:
        body = _with(
            _with(
                EVENT,
                "metadata",
                {
                    "name": name,
                    "labels": {
                        "masakari.dev/host": host,
                        "masakari.dev/type": kind,
                        "masakari.dev/segment": "rack-a" if host.endswith("a1") else "rack-b",
                    },
                },
            ),
            "spec",
            {**EVENT["spec"], "host": host, "type": kind, "payload": payload},
        )
        code, error = _apply(cluster, namespace, body)
        assert code == 0, error

    def names(*selector: str) -> list[str]:
        out = cluster.kubectl("get", "fev", "-n", namespace, *selector, "-o", "name").stdout
        return sorted(line.split("/")[-1] for line in out.split())

    assert names("--field-selector", "spec.host=compute-a1") == ["a1-host", "a1-vm"]
    assert names("--field-selector", "spec.type=COMPUTE_HOST") == ["a1-host", "b1-host"]
    assert names("-l", "masakari.dev/segment=rack-b") == ["b1-host"]
    assert names("-l", "masakari.dev/host=compute-a1,masakari.dev/type=VM") == ["a1-vm"]
    hosts = yaml.safe_load(
        cluster.kubectl(
            "get", "mhost", "-n", namespace, "--field-selector", "spec.segment=rack-a", "-o", "yaml"
        ).stdout
    )
    assert hosts["items"] == []  # no hosts in this namespace, and the selector is accepted

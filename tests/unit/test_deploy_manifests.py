"""What the shipped manifests promise, read off the YAML: the probes hit the endpoints the
operator serves as probes (never leadership), and the NetworkPolicies let through every peer
the operator and the API need (docs/install.md, "Network policy")."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from controller.config import OperatorConfig
from controller.handlers.failure_events import GRACEFUL_EXIT
from controller.health import Probes

REPO = Path(__file__).resolve().parents[2]


def load(path: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((REPO / path).read_text())
    return document


def reaches(policy: dict[str, Any], direction: str, protocol: str, port: int) -> bool:
    """Whether some rule lets `protocol/port` through to (or from) any address: the peers
    outside the cluster have addresses only the installer knows."""
    peers = "to" if direction == "egress" else "from"
    for rule in policy["spec"].get(direction, []):
        if rule.get(peers):
            continue
        ports = rule.get("ports") or [{"protocol": protocol, "port": port}]
        if any(p.get("protocol", "TCP") == protocol and p.get("port") == port for p in ports):
            return True
    return False


def test_the_probes_are_the_operators_own_and_not_its_leadership() -> None:
    container = load("deploy/deployment.yaml")["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    served = Probes(ready=lambda: False, beat_at=0.0, clock=lambda: 1e9)
    answered: list[str] = []
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert ports[get["port"]] == OperatorConfig.from_environment().metrics_port
        answered.clear()
        body = served.app({"PATH_INFO": get["path"]}, lambda s, h: answered.append(s))
        # A stuck, unready replica fails the probe: the path is a probe, not /metrics.
        assert answered and answered[0].startswith("503"), (probe, b"".join(body)[:80])


def test_a_stopped_leader_has_the_time_to_release_its_lease() -> None:
    """SIGTERM: each recovery daemon gets GRACEFUL_EXIT to return, then 30 s once cancelled
    (handlers/failure_events.py), then the Lease is released (two Lease periods at most).
    Killed before that, the standby waits for the Lease to expire instead."""
    spec = load("deploy/deployment.yaml")["spec"]["template"]["spec"]
    duration = next(
        float(e["value"])
        for e in spec["containers"][0]["env"]
        if e["name"] == "MASAKARI_LEASE_DURATION"
    )
    needed = GRACEFUL_EXIT + 30 + 2 * duration / 6
    assert spec["terminationGracePeriodSeconds"] > needed


def test_the_operator_reaches_every_peer_it_talks_to() -> None:
    policy = load("deploy/networkpolicy.yaml")
    for protocol, port, peer in [
        ("TCP", 443, "the Kubernetes API server, TLS endpoints, Redfish BMCs"),
        ("TCP", 6443, "the Kubernetes API server behind its Service"),
        ("TCP", 5000, "Keystone"),
        ("TCP", 8774, "Nova"),
        ("TCP", 22, "Pacemaker over SSH"),
        ("UDP", 7411, "the heartbeat agents"),
        ("UDP", 623, "IPMI BMCs"),
    ]:
        assert reaches(policy, "egress", protocol, port), peer
    assert reaches(policy, "ingress", "TCP", 9100)  # Prometheus and the kubelet's probes
    assert not reaches(policy, "ingress", "TCP", 8080)


def test_the_api_is_reachable_by_the_monitors_and_reaches_keystone() -> None:
    policy = load("deploy/api/networkpolicy.yaml")
    container = load("deploy/api/deployment.yaml")["spec"]["template"]["spec"]["containers"][0]
    port = container["ports"][0]["containerPort"]
    assert reaches(policy, "ingress", "TCP", port)  # from any host: monitors run on computes
    metrics = next(p for p in container["ports"] if p["name"] == "metrics")["containerPort"]
    assert reaches(policy, "ingress", "TCP", metrics)  # Prometheus
    assert f"--metrics-port={metrics}" in " ".join(container["args"]).replace(
        "--metrics-port ", "--metrics-port="
    )
    for protocol, port in [("TCP", 443), ("TCP", 6443), ("TCP", 5000), ("TCP", 8774)]:
        assert reaches(policy, "egress", protocol, port), port


def test_the_shipped_ssh_configuration_uses_the_mounted_key_and_refuses_unknown_hosts(
    tmp_path: Path,
) -> None:
    """ssh itself reads deploy/ssh.yaml's file as the pod mounts it (`ssh -G` prints the
    settings it would use, without connecting)."""
    ssh = shutil.which("ssh")
    assert ssh, "ssh (openssh-client) is needed, as in the operator's image"
    config = load("deploy/ssh.yaml")["data"]["masakari.conf"]
    deployment = load("deploy/deployment.yaml")["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in deployment["containers"][0]["volumeMounts"]}
    assert mounts["ssh-config"] == "/etc/ssh/ssh_config.d"  # Debian's ssh_config includes it
    (tmp_path / "masakari.conf").write_text(config)
    result = subprocess.run(
        [ssh, "-G", "-F", str(tmp_path / "masakari.conf"), "-l", "hacluster", "controller-1"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    effective = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    key_dir = mounts["ssh"]
    assert effective["identityfile"] == f"{key_dir}/id_ed25519"
    assert effective["userknownhostsfile"] == f"{key_dir}/known_hosts"
    assert effective["stricthostkeychecking"] == "true"
    assert effective["batchmode"] == "yes"

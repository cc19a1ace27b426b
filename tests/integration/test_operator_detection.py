"""Detection without Pacemaker on the real API server, the simulator and real heartbeat agents on
loopback UDP: a host whose nova-compute is down and whose agent stopped becomes one FailureEvent;
one whose agent still answers, and one in a segment with detection off, become none. The API
server refuses detection in a segment that cannot fence. End to end with a BMC (the sushy-tools
Redfish emulator): the detected host is powered off and read back Off before its instances
move."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cluster
from tests.harness.bmc import credentials_secret, running_bmc_lab
from tests.harness.control_plane import ControlPlaneError, _die_with_parent, stop_process
from tests.integration.operator_env import host, segment, servers, topology, wait_for
from tests.integration.test_operator_bmc_fencing import assert_fenced_then_evacuated

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HOSTS = [{"name": name, "vcpus": 8} for name in ("lost", "alive", "unwatched")]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Agents:
    """`masakari-operator heartbeat-agent` processes, one per host, as systemd would run them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}

    def start(self, name: str) -> str:
        port = self.ports.setdefault(name, free_udp_port())
        log = (self.workdir / f"agent-{name}.log").open("ab")
        self.running[name] = subprocess.Popen(
            [sys.executable, "-m", "controller.cli", "heartbeat-agent",
             "--listen", f"127.0.0.1:{port}"],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
        wait_for(f"agent of {name}", lambda: "answering on" in self.log(name), timeout=30)
        return f"127.0.0.1:{port}"

    def stop(self, name: str) -> None:
        stop_process(self.running.pop(name), timeout=10)

    def log(self, name: str) -> str:
        return (self.workdir / f"agent-{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Agents]:
    running = Agents(tmp_path)
    try:
        yield running
    finally:
        running.stop_all()


def failure_events(cloud: Any) -> list[dict[str, Any]]:
    listed = cloud.cluster.kubectl("get", "fev", "-n", cloud.namespace, "-o", "json")
    items: list[dict[str, Any]] = json.loads(listed.stdout)["items"]
    return items


def detecting(name: str, method: str = "redfish", enabled: bool = True) -> dict[str, Any]:
    # Fencing by redfish with no BMC on the Hosts: whatever is reported is never evacuated here,
    # the fencing step refuses; this test is about the report.
    detection = {"novaServiceDown": {"enabled": enabled, "thresholdSeconds": 3}}
    return segment(name, fencing=method, detection=detection)


def test_a_host_silent_in_nova_and_to_its_agent_is_reported_once(
    cloud_factory: Any, agents: Agents
) -> None:
    cloud = cloud_factory(topology(HOSTS, []), env={"MASAKARI_DETECTION_INTERVAL": "1"})
    addresses = {name: agents.start(name) for name in ("lost", "alive")}
    cloud.apply(
        detecting("watched"),
        detecting("off", enabled=False),
        host("lost", "watched", heartbeat={"address": addresses["lost"]}),
        host("alive", "watched", heartbeat={"address": addresses["alive"]}),
        # Its agent never runs: only the segment's switch keeps it from being reported.
        host("unwatched", "off", heartbeat={"address": f"127.0.0.1:{free_udp_port()}"}),
    )
    for name in ("lost", "alive", "unwatched"):
        cloud.wait_phase("mhost", name, {"Active"}, 60)

    agents.stop("lost")
    killed = time.monotonic()
    for name in ("lost", "alive", "unwatched"):
        cloud.sim.control("POST", f"hosts/{name}/kill")

    [reported] = wait_for(
        "a FailureEvent of the lost host",
        lambda: [e for e in failure_events(cloud) if e["spec"]["host"] == "lost"],
        timeout=30,
        interval=0.1,
    )
    elapsed = time.monotonic() - killed
    print(f"\nnova-compute killed -> FailureEvent readable: {elapsed:.2f}s")
    # The simulator calls a service down 2 s after its last report; the threshold is 3 s from
    # that report, and a pass runs every second.
    assert 3.0 <= elapsed < 8.0, elapsed

    assert reported["metadata"]["name"].startswith("lost-stopped-silent-")
    assert reported["metadata"]["labels"] == {
        "masakari.dev/host": "lost",
        "masakari.dev/type": "COMPUTE_HOST",
        "masakari.dev/segment": "watched",
    }
    spec = reported["spec"]
    assert spec["type"] == "COMPUTE_HOST" and spec["source"] == "detection/nova-service-down"
    assert spec["payload"] == {
        "event": "STOPPED",
        "host_status": "UNKNOWN",
        "cluster_status": "OFFLINE",
    }

    time.sleep(5)  # five more passes: none may report again, or report the others
    hosts = sorted(e["spec"]["host"] for e in failure_events(cloud))
    assert hosts == ["lost"], hosts
    log = cloud.operator.log()
    assert "alive silent in Nova, not reported (AgentAnswered)" in log, log[-4000:]
    assert "lost reported failed" in log
    assert log.count("lost reported failed") == 1


def test_detection_is_refused_where_nothing_can_fence(cluster: Cluster, namespace: str) -> None:
    manifest = json.dumps(detecting("unsafe", method="none"))
    with pytest.raises(ControlPlaneError) as refused:
        cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=manifest)
    assert "detection.novaServiceDown.enabled needs a fencing method" in str(refused.value)
    # Off, or with a fencing method, it is accepted; turning fencing off later is refused too.
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(detecting("safe")))
    off = detecting("safe", method="none")
    with pytest.raises(ControlPlaneError):
        cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(off))
    quiet = json.dumps(detecting("quiet", method="none", enabled=False))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=quiet)


def test_a_detected_host_is_fenced_through_its_bmc_then_evacuated(
    cloud_factory: Any, agents: Agents
) -> None:
    """Nobody reports the host: the operator's detection does, its fencing step powers the
    host off through the emulated BMC and reads Off back, and only then do the instances
    move."""
    names = ["lost", "spare"]
    cloud = cloud_factory(
        topology(
            [{"name": name, "vcpus": 8} for name in names],
            servers(["vm-a", "vm-b"], "lost", metadata={"HA_Enabled": "True"}),
        ),
        env={"MASAKARI_DETECTION_INTERVAL": "1"},
    )
    with running_bmc_lab(names) as lab:
        watched = detecting("watched")
        # One request: the emulator powers a system off 1 to 11 s after it, within this.
        watched["spec"]["fencing"].update(attempts=1, attemptTimeoutSeconds=20)
        watched["spec"]["hostFailure"] = {"fencingTimeoutSeconds": 30}
        cloud.apply(
            credentials_secret("bmc-credentials", lab.secret_data),
            watched,
            *(
                host(
                    name,
                    "watched",
                    heartbeat={"address": agents.start(name)},
                    bmc=lab.bmc("redfish", name),
                )
                for name in names
            ),
        )
        for name in names:
            cloud.wait_phase("mhost", name, {"Active"}, 60)

        agents.stop("lost")
        cloud.sim.control("POST", "hosts/lost/kill")
        killed = time.monotonic()
        [reported] = wait_for(
            "a FailureEvent of the lost host",
            lambda: [e for e in failure_events(cloud) if e["spec"]["host"] == "lost"],
            timeout=30,
            interval=0.1,
        )
        detected = time.monotonic()
        name = reported["metadata"]["name"]
        assert reported["spec"]["source"] == "detection/nova-service-down"
        assert reported["spec"]["payload"]["host_status"] == "UNKNOWN"

        def fenced() -> dict[str, Any] | None:
            status = cloud.status("fev", name)
            confirmed = (status.get("fencing") or {}).get("confirmedTime")
            return status if confirmed or status.get("phase") in ("Ignored", "Failed") else None

        wait_for("the fencing confirmed", fenced, timeout=40, interval=0.1)
        confirmed = time.monotonic()
        status = cloud.wait_phase("fev", name, {"Finished", "Ignored", "Failed"}, 60)
        finished = time.monotonic()
        print(
            f"\nnova-compute and agent stopped -> FailureEvent {detected - killed:.2f}s, "
            f"-> power Off confirmed {confirmed - detected:.2f}s, "
            f"-> Finished {finished - confirmed:.2f}s; total {finished - killed:.2f}s"
        )
        fencing = assert_fenced_then_evacuated(cloud, status, moved=2)
        assert fencing["method"] == "redfish" and fencing["requests"] == 1, fencing
        assert lab.redfish_power("lost") == "Off" and lab.redfish_power("spare") == "On"
        assert lab.power_off_requests("redfish", "lost") == 1
        assert {m["destinationHost"] for m in status["instances"]} == {"spare"}
        assert lab.password not in cloud.operator.log()

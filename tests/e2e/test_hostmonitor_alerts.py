"""Pacemaker's own alerts drive the host monitor: with the alert agent installed in the real
cluster and the monitors sampling only every 30 s, a SIGKILLed node is reported within seconds
of its fencing. Polling alone would need two agreeing samples, a minute here."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import Cluster
from tests.e2e.conftest import LabFactory
from tests.harness.hostmonitor_fleet import HostMonitorFleet

pytestmark = [pytest.mark.pacemaker, pytest.mark.integration]

SOCKET = "/run/masakari-hostmonitor/alerts.sock"  # /run is each node's own
INTERVAL = 30.0


@pytest.fixture(scope="module")
def fleet(lab_factory: LabFactory, cluster: Cluster) -> Iterator[HostMonitorFleet]:
    namespace = f"alerts-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", namespace)
    with lab_factory(members=3, fence_delay=1) as lab:
        lab.install_alert_agent(SOCKET)
        monitors = HostMonitorFleet(
            lab,
            cluster.kubeconfig,
            cluster.kubectl,
            namespace,
            arguments=(f"--alert-socket={SOCKET}", f"--interval={INTERVAL:g}"),
        )
        monitors.create_hosts()
        monitors.start_all()
        monitors.wait_ready()
        yield monitors


def test_a_fenced_node_is_reported_on_the_alert_not_the_next_sample(
    fleet: HostMonitorFleet,
) -> None:
    before = {item["metadata"]["name"] for item in fleet.events("node3")}
    killed = time.monotonic()
    fleet.lab.kill("node3")
    stopped = fleet.wait_event("node3", "STOPPED", exclude=before, timeout=INTERVAL)
    seen = time.monotonic() - killed
    print(f"SIGKILL -> FailureEvent with alerts, sampling every {INTERVAL:g}s: {seen:.2f}s")
    assert stopped["spec"]["payload"]["host_status"] == "NORMAL"  # fenced, not guessed
    # Within seconds of the kill, where two agreeing 30 s samples would take at least 30 s.
    assert seen < INTERVAL / 2, seen
    logs = fleet.log("node1") + fleet.log("node2")
    assert "alert: fencing node3" in logs, logs[-3000:]

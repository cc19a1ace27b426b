"""The Pacemaker alert path: the agent Pacemaker runs sends one datagram, the host monitor's
socket receives it and samples the cluster at once, then quickly until its samples agree,
instead of at its next interval. Real processes and a real Unix socket."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from controller.drivers.pacemaker.runner import CommandResult
from controller.monitors import hostmonitor, pacemaker_alert
from controller.monitors.host_failures import FailureDetector
from controller.monitors.hostmonitor import Alerts, HostMonitor

AGENT = Path(pacemaker_alert.__file__)
HEALTHY = (Path(__file__).parent / "data" / "pacemaker" / "healthy.xml").read_text()


def alert(kind: str, recipient: str, **fields: str) -> subprocess.CompletedProcess[str]:
    """Run the agent as Pacemaker does: a fresh process, the event in CRM_alert_*."""
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CRM_alert_kind": kind,
        "CRM_alert_recipient": recipient,
        **{f"CRM_alert_{name}": value for name, value in fields.items()},
    }
    return subprocess.run(
        [sys.executable, str(AGENT)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def alerts(tmp_path: Path) -> Iterator[Alerts]:
    listening = Alerts(tmp_path / "run" / "alerts.sock", threading.Event()).start()
    yield listening
    listening.stop()


def test_only_node_and_fencing_alerts_are_sent() -> None:
    fencing = pacemaker_alert.message(
        {"CRM_alert_kind": "fencing", "CRM_alert_node": "node3", "CRM_alert_rc": "0"}
    )
    assert fencing is not None
    assert json.loads(fencing) == {"kind": "fencing", "node": "node3", "rc": "0"}
    assert pacemaker_alert.message({"CRM_alert_kind": "resource"}) is None
    assert pacemaker_alert.message({}) is None
    long = pacemaker_alert.message({"CRM_alert_kind": "node", "CRM_alert_desc": "x" * 9999})
    assert long is not None and len(long) < 512


def test_a_fencing_alert_wakes_the_monitor(alerts: Alerts) -> None:
    started = time.monotonic()
    done = alert("fencing", str(alerts.path), node="node3", rc="0", desc="Operation reboot")
    assert done.returncode == 0, done.stderr
    assert alerts.wake.wait(5)
    assert alerts.received == 1
    print(f"agent run to wake-up: {time.monotonic() - started:.3f}s")
    alerts.wake.clear()
    assert alert("resource", str(alerts.path)).returncode == 0
    assert not alerts.wake.wait(0.5)


def test_the_agent_never_fails_the_cluster(tmp_path: Path) -> None:
    """No monitor listening: Pacemaker must see success; the reason goes to its log."""
    done = alert("node", str(tmp_path / "nobody.sock"), node="node2", desc="lost")
    assert done.returncode == 0
    assert "not delivered" in done.stderr


def test_garbage_on_the_socket_is_ignored(alerts: Alerts) -> None:
    pacemaker_alert.send(b"\xff not json", str(alerts.path))
    assert not alerts.wake.wait(0.5)
    assert alerts.received == 0


class CountingRunner:
    """crm_mon of a healthy cluster, with the time of each sample."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    def run(self, argv: Sequence[str], timeout: float = 30) -> CommandResult:
        self.samples.append(time.monotonic())
        return CommandResult(tuple(argv), 0, HEALTHY, "")


class NoReports:
    def submit(self, report: object) -> None:
        raise AssertionError(f"nothing should be reported here: {report}")


def test_an_alert_brings_the_samples_forward(alerts: Alerts) -> None:
    runner = CountingRunner()
    monitor = HostMonitor(
        runner,
        FailureDetector("node1", samples=2),
        NoReports(),  # type: ignore[arg-type]
        interval=60.0,
        wake=alerts.wake,
    )
    stop = threading.Event()
    thread = threading.Thread(target=monitor.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not runner.samples and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(runner.samples) == 1  # the first sample, then a 60 s wait
        woken = time.monotonic()
        assert alert("node", str(alerts.path), node="node3", desc="lost").returncode == 0
        while len(runner.samples) < 3 and time.monotonic() < woken + 5:
            time.sleep(0.01)
        assert len(runner.samples) == 3, runner.samples
        # One sample at once, one more for agreement: both well within a second.
        assert runner.samples[2] - woken < 1.0
        time.sleep(0.3)
        assert len(runner.samples) == 3  # then back to the interval
    finally:
        stop.set()
        monitor.wake.set()
        thread.join(timeout=5)
    assert not thread.is_alive()


def test_the_cib_alerts_the_agent_writes_reach_the_socket() -> None:
    installed = pacemaker_alert.cib_alerts(str(AGENT), "/run/m/alerts.sock")
    assert hostmonitor.alerts_reach(installed, "/run/m/alerts.sock")
    assert not hostmonitor.alerts_reach(installed, "/run/other.sock")
    assert not hostmonitor.alerts_reach("<alerts/>", "/run/m/alerts.sock")
    assert not hostmonitor.alerts_reach("", "/run/m/alerts.sock")  # no alerts section at all
    resources_only = installed.replace("<select_nodes/><select_fencing/>", "<select_resources/>")
    assert not hostmonitor.alerts_reach(resources_only, "/run/m/alerts.sock")
    every_kind = installed.replace("<select><select_nodes/><select_fencing/></select>", "")
    assert hostmonitor.alerts_reach(every_kind, "/run/m/alerts.sock")


def test_a_monitor_whose_alerts_are_not_installed_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Cib:
        def __init__(self, alerts: str) -> None:
            self.alerts = alerts

        def run(self, argv: Sequence[str], timeout: float = 10) -> CommandResult:
            assert list(argv) == ["cibadmin", "--query", "--scope", "alerts"]
            return CommandResult(tuple(argv), 0, self.alerts, "")

    installed = pacemaker_alert.cib_alerts(str(AGENT), "/run/m/alerts.sock")
    hostmonitor.check_alerts(Cib(installed), "/run/m/alerts.sock", 2.0)
    assert "no Pacemaker alert" not in caplog.text
    hostmonitor.check_alerts(Cib("<alerts/>"), "/run/m/alerts.sock", 2.0)
    assert "no Pacemaker alert sends node and fencing events to /run/m/alerts.sock" in caplog.text

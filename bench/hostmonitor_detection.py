"""How fast a hard-killed node becomes a FailureEvent, and what the host monitor costs.

A real 3-node Pacemaker cluster (fence_dummy fencing), the real API server, one hostmonitor
inside each node. Each run SIGKILLs node3 (its whole PID namespace: a power cut) and measures
the time until the API server has the STOPPED FailureEvent for it, as seen by a client polling
every 50 ms; then node3 and its monitor are restarted and the STARTED event awaited. At the end
it prints the median and maximum, and node1's monitor memory (RSS) and CPU over the whole run.

    sudo flock /tmp/masakari-heavy.lock .venv/bin/python bench/hostmonitor_detection.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness import control_plane, pacemaker_lab
from tests.harness.hostmonitor_fleet import HostMonitorFleet

VICTIM = "node3"
OBSERVED = "node1"


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time of the process itself, and of its finished children (the crm_mon runs)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


ALERT_SOCKET = "/run/masakari-hostmonitor/alerts.sock"  # /run is each lab node's own
STAMP = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"


def alert_to_report(log: str) -> float | None:
    """In the monitor's log of one kill: from its first fencing alert of the victim to its
    report of it (created, or found already created by the other survivor)."""
    alert = re.search(STAMP + rf" INFO \S+: alert: fencing {VICTIM}\b", log)
    report = re.search(STAMP + rf" INFO \S+: reported STOPPED of node {VICTIM}\b", log)
    if alert is None or report is None:
        return None
    stamps = [datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f") for m in (alert, report)]
    return (stamps[1] - stamps[0]).total_seconds()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--fence-delay", type=int, default=0, help="fence_dummy delay (s)")
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument(
        "--alerts",
        action="store_true",
        help="install the Pacemaker alert agent and have the monitors listen for it; also "
        "print the time from the fencing alert to the report",
    )
    args = parser.parse_args()
    problem = pacemaker_lab.missing_prerequisites()
    if problem:
        print(f"cannot run: {problem}", file=sys.stderr)
        return 1
    detections: list[float] = []
    alert_gaps: list[float] = []
    with (
        control_plane.running() as plane,
        pacemaker_lab.running(members=3, fence_delay=args.fence_delay) as lab,
    ):
        namespace = "bench-hostmonitor"
        plane.kubectl("create", "namespace", namespace)
        arguments = [f"--samples={args.samples}", f"--interval={args.interval}"]
        if args.alerts:
            lab.install_alert_agent(ALERT_SOCKET)
            arguments.append(f"--alert-socket={ALERT_SOCKET}")
        fleet = HostMonitorFleet(
            lab, plane.kubeconfig, plane.kubectl, namespace, arguments=tuple(arguments)
        )
        fleet.create_hosts()
        fleet.start_all()
        fleet.wait_ready()
        pid = fleet.monitor_pid(OBSERVED)
        cpu_start, wall_start = cpu_seconds(pid), time.monotonic()
        rss_peak = rss_kib(pid)
        for run in range(1, args.runs + 1):
            seen = {item["metadata"]["name"] for item in fleet.events(VICTIM)}
            log_before = len(fleet.log(OBSERVED))
            began = time.monotonic()
            lab.kill(VICTIM)
            stopped = fleet.wait_event(VICTIM, "STOPPED", exclude=seen, timeout=120)
            detections.append(time.monotonic() - began)
            rss_peak = max(rss_peak, rss_kib(pid))
            after_alert = ""
            if args.alerts:
                gap = alert_to_report(fleet.log(OBSERVED)[log_before:])
                if gap is not None:
                    alert_gaps.append(gap)
                    after_alert = f", {gap:.3f}s after the fencing alert"
            print(
                f"run {run:2d}: SIGKILL -> {stopped['metadata']['name']} "
                f"({stopped['spec']['payload']['host_status']}) in {detections[-1]:.2f}s"
                f"{after_alert}",
                flush=True,
            )
            lab.start_node(VICTIM)
            fleet.start(VICTIM)
            fleet.wait_event(VICTIM, "STARTED", exclude=seen, timeout=120)
            fleet.wait_ready()
        cpu_end = cpu_seconds(pid)
        own, children = cpu_end[0] - cpu_start[0], cpu_end[1] - cpu_start[1]
        wall = time.monotonic() - wall_start
        rss_now = rss_kib(pid)
    print(
        f"\nSIGKILL -> FailureEvent over {len(detections)} runs "
        f"(fence delay {args.fence_delay}s, samples {args.samples}, interval {args.interval}s): "
        f"median {statistics.median(detections):.2f}s, max {max(detections):.2f}s, "
        f"min {min(detections):.2f}s"
    )
    if alert_gaps:
        print(
            f"fencing alert -> FailureEvent written ({OBSERVED}'s log, {len(alert_gaps)} runs): "
            f"median {statistics.median(alert_gaps):.3f}s, max {max(alert_gaps):.3f}s"
        )
    print(
        f"hostmonitor on {OBSERVED}: RSS {rss_now / 1024:.1f} MiB (peak seen "
        f"{rss_peak / 1024:.1f} MiB); CPU over {wall:.0f}s: itself {own:.2f}s "
        f"({100 * own / wall:.1f}% of one core), with its crm_mon runs {own + children:.2f}s "
        f"({100 * (own + children) / wall:.1f}%)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

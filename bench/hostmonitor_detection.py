"""How fast a hard-killed node becomes a FailureEvent, and what the host monitor costs.

A real 3-node Pacemaker cluster (fence_dummy fencing), the real API server, one hostmonitor
inside each node. Each run SIGKILLs node3 (its whole PID namespace: a power cut) and measures,
each from the kill:

- OFFLINE and fencing confirmed: the times Pacemaker itself gives its node `lost` and fencing
  (rc 0) events of node3, as node1's controller passes them to alert agents (epoch and
  microseconds); the bench installs a recording alert agent of its own for this;
- the fencing alert reaching node1's monitor (its log; only with --alerts, which installs the
  project's alert agent);
- FailureEvent: the first survivor's log line saying it created the STOPPED event, and the
  event as seen by a client polling the API server (kubectl, every 0.1 s: an upper bound);

then node3 and its monitor are restarted and the STARTED event awaited. Before the kills it
measures node1's monitor idle for --idle seconds (CPU, with its crm_mon runs); at the end it
prints medians and maxima, and writes bench/results/pacemaker_detection.{json,svg}.

    sudo flock /tmp/masakari-heavy.lock .venv/bin/python bench/hostmonitor_detection.py \
        --alerts [--runs 20]
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import results_io
from controller.monitors import hostmonitor
from tests.harness import control_plane, pacemaker_lab
from tests.harness.hostmonitor_fleet import HostMonitorFleet

VICTIM = "node3"
OBSERVED = "node1"
SURVIVORS = ("node1", "node2")


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


def logged_at(log: str, message: str) -> float | None:
    """Epoch seconds of the first line of a monitor's log (local time, ms) matching `message`."""
    found = re.search(STAMP + r" \w+ \S+: " + message, log)
    if found is None:
        return None
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


# The bench's own alert agent: one line per node or fencing event with Pacemaker's timestamp of
# it. Pacemaker's fencing history will not do: `stonith_admin --history node3` on node1 gave
# times to the second, and only the first of 20 fencings of node3 (2.1.5, 2026-12-03).
RECORDER = "bench-alert.sh"
RECORD = "bench-alerts.log"
RECORDER_SCRIPT = """#!/bin/sh
echo "$CRM_alert_timestamp_epoch $CRM_alert_timestamp_usec $CRM_alert_kind $CRM_alert_node \
rc=$CRM_alert_rc $CRM_alert_desc" >> "$CRM_alert_recipient"
"""


def install_recorder(lab: pacemaker_lab.PacemakerLab) -> None:
    """A second alert, its agent writing into /var/lib/pacemaker (Pacemaker's own, each node's)."""
    for node in lab.nodes.values():
        script = node.directory / "var-lib-pacemaker" / RECORDER
        script.write_text(RECORDER_SCRIPT)
        script.chmod(0o755)
    inside = "/var/lib/pacemaker"
    alert = (
        f'<alert id="bench-record" path="{inside}/{RECORDER}">'
        "<select><select_nodes/><select_fencing/></select>"
        f'<recipient id="bench-record-file" value="{inside}/{RECORD}"/></alert>'
    )
    added = lab.exec(
        OBSERVED, ["cibadmin", "--create", "--scope", "alerts", "--xml-text", alert], check=False
    )
    if added.returncode != 0:  # no alerts section yet (no --alerts)
        configuration = f"<configuration><alerts>{alert}</alerts></configuration>"
        lab.exec(
            OBSERVED,
            ["cibadmin", "--modify", "--scope", "configuration", "--xml-text", configuration],
        )


def recorded(lab: pacemaker_lab.PacemakerLab, kind: str, since: float) -> float | None:
    """Pacemaker's time of the first `kind` ("lost": node lost; "fenced": fencing with rc 0)
    event of the victim after `since`, as node1 was told it."""
    path = lab.nodes[OBSERVED].directory / "var-lib-pacemaker" / RECORD
    lines = path.read_text().splitlines() if path.exists() else []
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) < 5 or fields[3] != VICTIM:
            continue
        try:  # the microseconds are a number of their own, not always six digits
            when = int(fields[0]) + int(fields[1]) / 1e6
        except ValueError:
            continue
        lost = fields[2] == "node" and len(fields) == 6 and fields[5].startswith("lost")
        fenced = fields[2] == "fencing" and fields[4] == "rc=0"
        if when >= since and (lost if kind == "lost" else fenced):
            return when
    return None


def one_kill(
    lab: pacemaker_lab.PacemakerLab, fleet: HostMonitorFleet, alerts: bool, seen: set[str]
) -> dict[str, Any]:
    """Kill the victim once; every time from the kill, in seconds (None: not seen)."""
    logs_before = {name: len(fleet.log(name)) for name in SURVIVORS}
    killed = time.time()
    lab.kill(VICTIM)
    stopped = fleet.wait_event(VICTIM, "STOPPED", exclude=seen, timeout=120)
    polled = time.time() - killed
    logs = {name: fleet.log(name)[logs_before[name] :] for name in SURVIVORS}
    created = [
        logged_at(logs[name], rf"reported STOPPED of node {VICTIM}\b.*: created") for name in logs
    ]

    def since_kill(moment: float | None) -> float | None:
        return None if moment is None else round(moment - killed, 3)

    # The event may be in before node1's recording agent has written its line.
    deadline = time.monotonic() + 10
    while recorded(lab, "fenced", killed) is None and time.monotonic() < deadline:
        time.sleep(0.1)

    run = {
        "event": stopped["metadata"]["name"],
        "host_status": stopped["spec"]["payload"]["host_status"],
        "offline": since_kill(recorded(lab, "lost", killed)),
        "fenced": since_kill(recorded(lab, "fenced", killed)),
        "fencing_alert": since_kill(logged_at(logs[OBSERVED], rf"alert: fencing {VICTIM}\b"))
        if alerts
        else None,
        "event_created": since_kill(min((c for c in created if c is not None), default=None)),
        "event_polled": round(polled, 3),
    }
    if run["fenced"] is None:
        print(f"no fencing of {VICTIM} recorded after the kill", flush=True)
    return run


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and max of each time, and of the FailureEvent's lead over the fencing record
    (positive: after it; a negative value is an event created before fencing confirmed)."""
    keys = ("offline", "fenced", "fencing_alert", "event_created", "event_polled")
    summary: dict[str, Any] = {}
    for key in keys:
        values = [r[key] for r in runs if r[key] is not None]
        summary[key] = {
            "median": median(values),
            "max": max(values, default=None),
            "n": len(values),
        }
    gaps = [
        round(r["event_created"] - r["fenced"], 3)
        for r in runs
        if r["event_created"] is not None and r["fenced"] is not None
    ]
    summary["event_after_fenced"] = {
        "median": median(gaps),
        "min": min(gaps, default=None),
        "max": max(gaps, default=None),
        "n": len(gaps),
    }
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--fence-delay", type=int, default=0, help="fence_dummy delay (s)")
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument(
        "--interval", type=float, help="the monitors' --interval (default: the monitor's own)"
    )
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU measured")
    parser.add_argument(
        "--alerts",
        action="store_true",
        help="install the Pacemaker alert agent and have the monitors listen for it; also "
        "time the OFFLINE and fencing alerts",
    )
    parser.add_argument("--name", default="pacemaker_detection", help="results' file name")
    args = parser.parse_args()
    problem = pacemaker_lab.missing_prerequisites()
    if problem:
        print(f"cannot run: {problem}", file=sys.stderr)
        return 1
    interval = args.interval or (
        hostmonitor.FALLBACK_POLL_INTERVAL if args.alerts else hostmonitor.POLL_INTERVAL
    )
    runs: list[dict[str, Any]] = []
    with (
        control_plane.running() as plane,
        pacemaker_lab.running(members=3, fence_delay=args.fence_delay) as lab,
    ):
        namespace = "bench-hostmonitor"
        plane.kubectl("create", "namespace", namespace)
        arguments = [f"--samples={args.samples}"]
        if args.interval is not None:
            arguments.append(f"--interval={args.interval}")
        if args.alerts:
            lab.install_alert_agent(ALERT_SOCKET)
            arguments.append(f"--alert-socket={ALERT_SOCKET}")
        fleet = HostMonitorFleet(
            lab, plane.kubeconfig, plane.kubectl, namespace, arguments=tuple(arguments)
        )
        install_recorder(lab)
        fleet.create_hosts()
        fleet.start_all()
        fleet.wait_ready()
        pid = fleet.monitor_pid(OBSERVED)
        idle_start, idle_wall = cpu_seconds(pid), time.monotonic()
        time.sleep(args.idle)
        idle_end, idle_wall = cpu_seconds(pid), time.monotonic() - idle_wall
        idle = {
            "seconds": round(idle_wall, 1),
            "itself_percent": round(100 * (idle_end[0] - idle_start[0]) / idle_wall, 2),
            "with_crm_mon_percent": round(100 * (sum(idle_end) - sum(idle_start)) / idle_wall, 2),
        }
        print(f"idle {idle_wall:.0f}s, hostmonitor on {OBSERVED}: {idle}", flush=True)
        cpu_start, wall_start = cpu_seconds(pid), time.monotonic()
        rss_peak = rss_kib(pid)
        for number in range(1, args.runs + 1):
            seen = {item["metadata"]["name"] for item in fleet.events(VICTIM)}
            run = one_kill(lab, fleet, args.alerts, seen)
            runs.append(run)
            rss_peak = max(rss_peak, rss_kib(pid))
            shown = ", ".join(f"{k} {v}" for k, v in run.items() if k not in ("event",))
            print(f"run {number:2d}: SIGKILL -> {run['event']}: {shown}", flush=True)
            lab.start_node(VICTIM)
            fleet.start(VICTIM)
            fleet.wait_event(VICTIM, "STARTED", exclude=seen, timeout=120)
            fleet.wait_ready()
        cpu_end = cpu_seconds(pid)
        own, children = cpu_end[0] - cpu_start[0], cpu_end[1] - cpu_start[1]
        wall = time.monotonic() - wall_start
        rss_now = rss_kib(pid)
    summary = summarize(runs)
    monitor = {
        "rss_mib": round(rss_now / 1024, 1),
        "rss_peak_mib": round(rss_peak / 1024, 1),
        "idle": idle,
        "kills": {
            "seconds": round(wall),
            "itself_percent": round(100 * own / wall, 2),
            "with_crm_mon_percent": round(100 * (own + children) / wall, 2),
        },
    }
    print(
        f"\nfrom SIGKILL of {VICTIM}, {len(runs)} runs (fence delay {args.fence_delay}s, "
        f"samples {args.samples}, interval {interval:g}s, alerts {args.alerts}):"
    )
    for key, label in (
        ("offline", "OFFLINE (Pacemaker's time)"),
        ("fenced", "fencing confirmed (Pacemaker)"),
        ("fencing_alert", "fencing alert"),
        ("event_created", "FailureEvent created"),
        ("event_polled", "FailureEvent seen (poll)"),
        ("event_after_fenced", "FailureEvent - fencing"),
    ):
        print(f"  {label:<28} {summary[key]}")
    print(f"hostmonitor on {OBSERVED}: {monitor}")
    report = {
        "fencing_clock": "Pacemaker's own",
        "timing_source": "offline and fenced: Pacemaker's own times of its node-lost and "
        "fencing (rc 0) events (CRM_alert_timestamp_epoch/usec, recorded by an alert agent on "
        "node1); event_created: the creating monitor's log",
        "runs": runs,
        "summary": summary,
        "hostmonitor": monitor,
        "conditions": results_io.conditions(
            fence_delay=args.fence_delay,
            samples=args.samples,
            interval=interval,
            alerts=args.alerts,
        ),
    }
    rows = [
        (label, summary[key]["median"])
        for key, label in (
            ("offline", "OFFLINE"),
            ("fenced", "fencing confirmed"),
            ("event_created", "FailureEvent created"),
        )
        if summary[key]["median"] is not None
    ]
    chart = results_io.bar_chart(f"from SIGKILL of a Pacemaker node, median of {len(runs)}", rows)
    results_io.write(args.name, report, chart)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`masakari-operator hostmonitor`: the agent on a Pacemaker node that reports node failures.

Every interval it reads crm_mon, feeds the sample to the FailureDetector and queues what it
concludes for the Reporter, which writes FailureEvents to Kubernetes. With `--alert-socket`,
Pacemaker's own node and fencing alerts (controller/monitors/pacemaker_alert.py) wake it at
once: it samples then, and again after AGREEMENT_INTERVAL until the detector's samples agree,
so a fencing is reported within a fraction of a second, not a sample interval; polling is then
the fallback for a lost alert, and runs half as often.
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import json
import logging
import os
import signal
import socket
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from controller.drivers.pacemaker import crm_mon
from controller.drivers.pacemaker.runner import (
    CommandRunner,
    LocalRunner,
    SshRunner,
    validate_node_name,
)
from controller.recovery.pacemaker import PacemakerError

from .host_failures import FailureDetector
from .pacemaker_alert import DATAGRAM_MAX
from .reporting import FailureEventStore, Reporter

log = logging.getLogger("masakari.hostmonitor")

# Samples taken after an alert, this far apart, until the detector's samples agree.
AGREEMENT_INTERVAL = 0.05
# Pacemaker runs alert agents as hacluster, a member of haclient.
ALERT_GROUP = "haclient"
# Seconds between samples. Each crm_mon run costs about 10 ms of CPU: once a second is 1 % of a
# core. Where alerts wake the monitor, polling only covers a lost alert and may be slower.
POLL_INTERVAL = 1.0
FALLBACK_POLL_INTERVAL = 2.0


@dataclass
class Alerts:
    """The host monitor's end of the alert agent's socket: each alert wakes the monitor."""

    path: Path
    wake: threading.Event
    received: int = 0
    _sock: socket.socket | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Alerts:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a monitor that was killed
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.path))
        sock.settimeout(0.5)  # so that stop() is seen
        try:
            os.chown(self.path, -1, grp.getgrnam(ALERT_GROUP).gr_gid)
            os.chmod(self.path, 0o660)
        except (KeyError, PermissionError) as error:
            # Without the group the agent's user may not write: alerts are lost, polling stays.
            log.warning(
                "alert socket %s: cannot give it to group %s: %s", self.path, ALERT_GROUP, error
            )
        self._sock = sock
        self._thread = threading.Thread(target=self._receive, name="alerts", daemon=True)
        self._thread.start()
        log.info("listening for Pacemaker alerts on %s", self.path)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _receive(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                datagram = self._sock.recv(DATAGRAM_MAX)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                alert = json.loads(datagram)
            # Deep nesting ("[" * 4096) is RecursionError, not ValueError: the reader must
            # outlive any datagram a member of the alert group sends.
            except (ValueError, RecursionError):
                log.warning("alert socket: not an alert (%d bytes), ignored", len(datagram))
                continue
            if not isinstance(alert, dict):
                continue
            self.received += 1
            log.info(
                "alert: %s %s %s (rc %s)",
                alert.get("kind"),
                alert.get("node"),
                alert.get("desc") or alert.get("task"),
                alert.get("rc"),
            )
            self.wake.set()


@dataclass
class HostMonitor:
    runner: CommandRunner
    detector: FailureDetector
    reporter: Reporter
    interval: float = POLL_INTERVAL
    command_timeout: float = 10.0
    last_error: str | None = None
    wake: threading.Event = field(default_factory=threading.Event)  # an alert, or stopping

    def poll_once(self) -> None:
        try:
            state = crm_mon.read(
                self.runner.run(["crm_mon", "--output-as=xml"], timeout=self.command_timeout)
            )
        except PacemakerError as error:
            # A node whose stack is down or starting cannot judge the others: skip the sample.
            if str(error) != self.last_error:
                log.warning("cannot read the cluster: %s", error)
            self.last_error = str(error)
            return
        if self.last_error is not None:
            log.info("reading the cluster again")
            self.last_error = None
        was_quorate = self.detector.quorate
        watched_before = self.detector.watched()
        reports = self.detector.observe(state)
        if self.detector.watched() != watched_before:
            log.info("watching nodes: %s", ", ".join(sorted(self.detector.watched())) or "none")
        if was_quorate is not self.detector.quorate:
            if self.detector.quorate:
                log.info("partition has quorum (DC %s); watching other nodes", state.dc)
            else:
                log.warning("partition without quorum (or this node not up): reporting nothing")
        for report in reports:
            log.info("node %s %s (episode %s)", report.node, report.event, report.episode)
            self.reporter.submit(report)

    def run(self, stop: threading.Event) -> None:
        """Sample every interval, and at once on a wake-up; `stop` must also set `wake`."""
        next_poll = time.monotonic()
        agreeing = 0  # quick samples still to take after an alert
        while not stop.is_set():
            self.poll_once()
            next_poll += self.interval
            # After a slow sample, start again from now rather than firing a burst.
            next_poll = max(next_poll, time.monotonic())
            delay = AGREEMENT_INTERVAL if agreeing else max(0.0, next_poll - time.monotonic())
            agreeing = max(0, agreeing - 1)
            if self.wake.wait(delay):
                self.wake.clear()
                agreeing = self.detector.samples - 1
                next_poll = time.monotonic()


def alerts_reach(cib_alerts: str, socket_path: str) -> bool:
    """Whether the CIB's alerts section (`cibadmin --query --scope alerts`) sends node and
    fencing events to this socket: an alert with no `select` sends every kind."""
    try:
        root = ET.fromstring(cib_alerts)
    except ET.ParseError:
        return False
    for alert in root.iter("alert"):
        if not any(r.get("value") == socket_path for r in alert.iter("recipient")):
            continue
        select = alert.find("select")
        if select is None or (
            select.find("select_nodes") is not None and select.find("select_fencing") is not None
        ):
            return True
    return False


def check_alerts(runner: CommandRunner, socket_path: str, interval: float) -> None:
    """Say loudly at start when no alert reaches the socket: detection then waits for polling."""
    try:
        result = runner.run(["cibadmin", "--query", "--scope", "alerts"], timeout=10)
        installed = result.returncode == 0 and alerts_reach(result.stdout, socket_path)
    except PacemakerError as error:
        log.warning("cannot read the CIB's alerts (%s)", error)
        return
    if not installed:
        log.warning(
            "no Pacemaker alert sends node and fencing events to %s (docs/hostmonitor.md): "
            "failures are seen by polling only, every %gs",
            socket_path,
            interval,
        )


def local_node_name(runner: CommandRunner) -> str:
    """This node's Pacemaker name (crm_node -n), else the host name."""
    try:
        result = runner.run(["crm_node", "-n"], timeout=10)
        if result.returncode == 0 and result.stdout.strip():
            return validate_node_name(result.stdout.strip())
    except PacemakerError as error:
        log.warning("crm_node -n failed (%s); using the host name", error)
    return socket.gethostname()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--namespace",
        help="namespace of the Host and FailureEvent objects "
        "(default: the pod's namespace, else default)",
    )
    parser.add_argument(
        "--kubeconfig",
        help="kubeconfig file (default: $KUBECONFIG, else the in-cluster service account)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        help=f"seconds between samples (default: {POLL_INTERVAL:g}, "
        f"{FALLBACK_POLL_INTERVAL:g} with --alert-socket)",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=2,
        help="consecutive samples that must agree before a node changes state",
    )
    parser.add_argument(
        "--fencing-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for a confirmed fencing before reporting a lost "
        "node with host_status UNKNOWN",
    )
    parser.add_argument(
        "--episode-bucket",
        type=float,
        default=60.0,
        help="width in seconds of the time buckets naming failures that were "
        "not fenced (see docs/hostmonitor.md)",
    )
    parser.add_argument("--node-name", help="this node's Pacemaker name (default: crm_node -n)")
    parser.add_argument(
        "--queue-size",
        type=int,
        default=1000,
        help="reports kept while the API server is unreachable",
    )
    parser.add_argument(
        "--alert-socket",
        help="listen here for the Pacemaker alert agent (controller/monitors/pacemaker_alert.py, "
        "with this path as the alert's recipient) and sample at once on each node or fencing "
        "alert; polling goes on as the fallback",
    )
    parser.add_argument("--ssh-host", help="read crm_mon on this cluster node over SSH")
    parser.add_argument("--ssh-user", help="SSH user for --ssh-host")
    parser.add_argument("--ssh-identity", help="SSH private key for --ssh-host")
    parser.add_argument("--log-level", default="INFO")


def run(args: argparse.Namespace) -> int:
    # Imported here: the kubernetes client is heavy, and every other subcommand would pay for it.
    from controller.drivers.kube import load_client

    from .kubernetes_store import KubernetesStore, default_namespace

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.interval is None:
        args.interval = FALLBACK_POLL_INTERVAL if args.alert_socket else POLL_INTERVAL
    if args.samples < 1 or args.interval <= 0:
        raise SystemExit("--samples must be at least 1 and --interval positive")
    runner: CommandRunner = (
        SshRunner(args.ssh_host, user=args.ssh_user, identity_file=args.ssh_identity)
        if args.ssh_host
        else LocalRunner()
    )
    node = validate_node_name(args.node_name) if args.node_name else local_node_name(runner)
    namespace = args.namespace or default_namespace()
    store: FailureEventStore = KubernetesStore(load_client(args.kubeconfig), namespace)
    reporter = Reporter(store, source=f"hostmonitor/{node}", queue_size=args.queue_size).start()
    monitor = HostMonitor(
        runner,
        FailureDetector(
            node,
            samples=args.samples,
            fencing_timeout=args.fencing_timeout,
            episode_bucket=args.episode_bucket,
        ),
        reporter,
        interval=args.interval,
    )
    stop = threading.Event()

    def stopping(*_: object) -> None:
        stop.set()
        monitor.wake.set()

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    alerts = None
    if args.alert_socket:
        alerts = Alerts(Path(args.alert_socket), monitor.wake).start()
        check_alerts(runner, args.alert_socket, args.interval)
    log.info("hostmonitor on node %s, namespace %s, every %gs", node, namespace, args.interval)
    monitor.run(stop)
    if alerts is not None:
        alerts.stop()
    reporter.stop()
    return 0

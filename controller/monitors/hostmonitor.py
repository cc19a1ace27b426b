"""`masakari-operator hostmonitor`: the agent on a Pacemaker node that reports node failures.

Each second (by default) it reads crm_mon, feeds the sample to the FailureDetector and queues
what it concludes for the Reporter, which writes FailureEvents to Kubernetes.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass

from controller.drivers.pacemaker import crm_mon
from controller.drivers.pacemaker.runner import (
    CommandRunner,
    LocalRunner,
    SshRunner,
    validate_node_name,
)
from controller.recovery.pacemaker import PacemakerError

from .host_failures import FailureDetector
from .reporting import FailureEventStore, Reporter

log = logging.getLogger("masakari.hostmonitor")


@dataclass
class HostMonitor:
    runner: CommandRunner
    detector: FailureDetector
    reporter: Reporter
    interval: float = 1.0
    command_timeout: float = 10.0
    last_error: str | None = None

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
        next_poll = time.monotonic()
        while not stop.is_set():
            self.poll_once()
            next_poll += self.interval
            # After a slow sample, start again from now rather than firing a burst.
            next_poll = max(next_poll, time.monotonic())
            stop.wait(max(0.0, next_poll - time.monotonic()))


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
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
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
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("hostmonitor on node %s, namespace %s, every %gs", node, namespace, args.interval)
    monitor.run(stop)
    reporter.stop()
    return 0

"""`masakari-operator run`: the kopf operator. Flags become MASAKARI_* environment variables,
the one place handlers read their settings from (see controller.config)."""

from __future__ import annotations

import argparse
import os

from controller import logs
from controller.config import PREFIX


def add_arguments(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="namespace to serve (repeatable); each is bound to its cloud by its CloudBinding",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true")
    parser.add_argument(
        "--pacemaker-local-prefix",
        help="words put before Pacemaker's tools for bindings with `pacemaker: {local: {}}`, "
        "e.g. 'sudo -n'",
    )
    parser.add_argument("--metrics-port", type=int, help="Prometheus port, 0 for none")
    election = parser.add_mutually_exclusive_group()
    election.add_argument(
        "--standalone",
        action="store_true",
        help="no leader election: only for a single replica (tests, local use)",
    )
    election.add_argument(
        "--lease",
        default="masakari-operator",
        help="the Lease replicas elect their leader on; only the leader acts (namespace: "
        "$MASAKARI_LEASE_NAMESPACE, else $POD_NAMESPACE, else default)",
    )
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--log-format", choices=["text", "json"], default="text")


def run(args: argparse.Namespace) -> int:
    import kopf

    settings = {
        "PACEMAKER_LOCAL_PREFIX": args.pacemaker_local_prefix,
        "METRICS_PORT": args.metrics_port,
        "LEASE_NAME": "" if args.standalone else args.lease,
    }
    for variable, value in settings.items():
        if value is not None:
            os.environ[PREFIX + variable] = str(value)
    logs.configure(args.verbose, args.log_format == "json")
    import controller.handlers  # noqa: F401  (registers the handlers)

    # Leadership is our Lease (controller.drivers.lease), not kopf's peering: kopf lets two
    # replicas of equal priority both run, and a standby must never act.
    kopf.run(clusterwide=args.all_namespaces, namespaces=args.namespace, standalone=True)
    return 0

"""`masakari-operator run`: the kopf operator. Flags become MASAKARI_* environment variables,
the one place handlers read their settings from (see controller.config)."""

from __future__ import annotations

import argparse
import logging
import os
import random

from controller.config import PREFIX

# kopf's peering object: replicas see each other there, and only the highest priority acts.
PEERING = "masakari-operator"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="namespace to serve (repeatable; one namespace is one OpenStack cloud)",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true")
    parser.add_argument("--clouds-yaml", help="clouds.yaml path (mount it from a Secret)")
    parser.add_argument("--cloud", help="the cloud's name in clouds.yaml")
    parser.add_argument(
        "--pacemaker", help="local | local:<command prefix> | ssh:[user@]host (default: none)"
    )
    parser.add_argument("--metrics-port", type=int, help="Prometheus port, 0 for none")
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="no peering: only for one replica (tests, local use)",
    )
    parser.add_argument(
        "--priority",
        type=int,
        help="peering priority; the highest-priority replica acts, others wait "
        "(default: random, so two replicas never tie)",
    )
    parser.add_argument("--verbose", action="store_true")


def run(args: argparse.Namespace) -> int:
    import kopf

    for flag, variable in (
        ("clouds_yaml", "CLOUDS_YAML"),
        ("cloud", "CLOUD"),
        ("pacemaker", "PACEMAKER"),
        ("metrics_port", "METRICS_PORT"),
    ):
        value = getattr(args, flag)
        if value is not None:
            os.environ[PREFIX + variable] = str(value)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    import controller.handlers  # noqa: F401  (registers the handlers)

    priority = args.priority if args.priority is not None else random.randint(1, 2**31)
    kopf.run(
        clusterwide=args.all_namespaces,
        namespaces=args.namespace,
        standalone=args.standalone,
        priority=priority,
        # kopf treats a named peering as mandatory even when standalone.
        peering_name=None if args.standalone else PEERING,
    )
    return 0

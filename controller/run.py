"""`masakari-operator run`: the kopf operator. Flags become MASAKARI_* environment variables,
the one place handlers read their settings from (see controller.config)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from controller import logs
from controller.config import PREFIX, OperatorConfig
from controller.recovery import shards

if TYPE_CHECKING:
    from controller.drivers.namespace_claims import NamespaceClaims
    from controller.handlers.shard import Shard

log = logging.getLogger("masakari.shards")
# kopf's glob for "no namespace": an exclusive first glob implies `*` before it. An empty list
# would make kopf serve the whole cluster.
NO_NAMESPACE = "!*"
# Attempts at the start's read of the namespaces, 1, 2, 4, then 8 seconds apart: under a minute.
START_READS = 9


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
    scope.add_argument(
        "--namespace-selector",
        default=os.environ.get(PREFIX + "NAMESPACE_SELECTOR") or None,
        help="serve the namespaces with these labels (a label selector, e.g. "
        "'masakari.dev/region=eu-1'), one shard of a fleet: the leader claims each namespace "
        "for its Lease and a change of the selection restarts it (docs/scale.md); "
        "env MASAKARI_NAMESPACE_SELECTOR",
    )
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
        default=os.environ.get(PREFIX + "LEASE_NAME") or "masakari-operator",
        help="the Lease replicas elect their leader on; only the leader acts (namespace: "
        "$MASAKARI_LEASE_NAMESPACE, else $POD_NAMESPACE, else default)",
    )
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--log-format", choices=["text", "json"], default="text")


def run(args: argparse.Namespace) -> int:
    import kopf

    if args.namespace_selector and (args.namespace or args.all_namespaces):
        sys.exit("--namespace-selector (or MASAKARI_NAMESPACE_SELECTOR) excludes -n and -A")
    if args.namespace_selector and args.standalone:
        # A shard is named by its Lease, and the fleet judges by it whether the shard runs.
        sys.exit("--namespace-selector needs a Lease: it excludes --standalone")
    try:
        selector = (
            shards.parse_selector(args.namespace_selector) if args.namespace_selector else None
        )
    except shards.SelectorError as error:
        sys.exit(f"--namespace-selector: {error}")
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
    from controller.handlers.shard import RESTART

    memo = kopf.Memo()
    namespaces = _namespaces(args, selector, memo)
    shard: Shard | None = memo.get("shard")
    memo.namespaces_served = len(namespaces)  # kopf's connection bound (handlers.startup)
    # Leadership is our Lease (controller.drivers.lease), not kopf's peering: kopf lets two
    # replicas of equal priority both run, and a standby must never act.
    kopf.run(
        clusterwide=args.all_namespaces,
        namespaces=namespaces,
        standalone=True,
        memo=memo,
        stop_flag=shard.stop if shard else None,
    )
    return RESTART if shard and shard.restarting else 0


def _namespaces(args: argparse.Namespace, selector: shards.Selector | None, memo: Any) -> list[str]:
    """What kopf serves. A shard (`selector`): its selection less the namespaces other shards
    claim, put in `memo.shard` for its leader to claim. Not yet knowing whether a claiming
    shard is stale (that takes a lease duration of watching), it serves none of theirs: the
    leader takes stale claims over while it runs, then starts again with them."""
    from controller.drivers.kube import load_client
    from controller.drivers.namespace_claims import NamespaceClaims
    from controller.handlers.shard import Shard

    config = OperatorConfig.from_environment()
    claims = NamespaceClaims.from_client(load_client(), config.kube_timeout)
    if selector is None:
        # These shapes claim nothing: they must not start beside a shard that serves one of
        # their namespaces (-A is one operator for the whole cluster).
        served = None if args.all_namespaces else frozenset(args.namespace)
        claimed = shards.foreign_claims(_read_at_start(claims, None), served)
        for namespace, owner in sorted(claimed.items()):
            log.error("namespace %s is claimed by shard %s", namespace, owner)
        if claimed:
            sys.exit("refusing to serve namespaces that a shard of a fleet claims")
        return list(args.namespace)
    shard = Shard(str(selector), f"{config.lease_namespace}/{config.lease_name}", frozenset())
    shard.serving = shards.plan(
        _read_at_start(claims, str(selector)), shard.name, frozenset()
    ).serve
    memo.shard = shard
    log.info("shard %s serves [%s]", shard.name, ", ".join(sorted(shard.serving)))
    return sorted(shard.serving) or [NO_NAMESPACE]


def _read_at_start(claims: NamespaceClaims, selector: str | None) -> list[shards.NamespaceState]:
    """The namespaces and their claims, before kopf starts: an API server still starting (a
    whole cluster coming back) is waited for, a bounded while, then the process ends with the
    reason, not a traceback, for its Deployment to start it again."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    failure: Exception | None = None
    for attempt in range(START_READS):
        if failure is not None:
            log.warning("cannot list namespaces yet (%s); trying again", failure)
            time.sleep(min(2.0 ** (attempt - 1), 8.0))
        try:
            return claims.read(selector)
        except ApiException as error:
            if error.status == 403 and selector is None:
                # An operator given its namespaces may run on a namespaced Role: it goes on,
                # unable to see a shard's claim, and says so.
                log.error(
                    "cannot list namespaces (forbidden): not checking that no shard of a fleet "
                    "serves these namespaces; grant list on namespaces (deploy/rbac.yaml does)"
                )
                return []
            if error.status == 403:
                sys.exit(
                    "cannot list namespaces (forbidden): a shard reads them to select its own "
                    "and keep other shards off them; grant list, watch and patch on namespaces "
                    "(deploy/rbac.yaml does)"
                )
            if error.status < 500 and error.status != 429:
                raise
            failure = error
        except HTTPError as error:
            failure = error
    sys.exit(f"cannot list namespaces: {failure}")

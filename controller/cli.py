"""The `masakari-operator` command: one entry point, one subcommand per component."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from controller import run as operator
from controller.api import importer, report
from controller.api import main as api_main
from controller.monitors import heartbeat_agent, hostmonitor
from controller.resources import crd_files
from controller.sim import main as sim_main


def _crds(args: argparse.Namespace) -> int:
    files = crd_files.render_all()
    if args.check:
        stale = crd_files.stale_files(Path(args.output_dir), files)
        for name in stale:
            print(
                f"{args.output_dir}/{name} differs from the models; run `make crds`",
                file=sys.stderr,
            )
        return 1 if stale else 0
    if args.output_dir == "-":
        sys.stdout.write("---\n".join(files.values()))
        return 0
    crd_files.write_all(Path(args.output_dir), files)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="masakari-operator",
        description="Instance high availability for OpenStack, run as a Kubernetes operator.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    crds = commands.add_parser(
        "crds", help="write the CustomResourceDefinitions generated from the resource models"
    )
    crds.add_argument("--output-dir", default="crds", help="directory to write to, or - for stdout")
    crds.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when the directory differs from the models",
    )
    crds.set_defaults(handler=_crds)
    run = commands.add_parser("run", help="run the operator")
    operator.add_arguments(run)
    run.set_defaults(handler=operator.run)
    sim = commands.add_parser(
        "sim", help="run the OpenStack simulator (Keystone v3 and the Nova API subset we use)"
    )
    sim_main.add_arguments(sim)
    sim.set_defaults(handler=sim_main.run)
    monitor = commands.add_parser(
        "hostmonitor", help="report Pacemaker node failures as FailureEvents (runs on a node)"
    )
    hostmonitor.add_arguments(monitor)
    monitor.set_defaults(handler=hostmonitor.run)
    agent = commands.add_parser(
        "heartbeat-agent",
        help="answer the operator's heartbeat probe (runs beside nova-compute, for segments "
        "with detection.novaServiceDown)",
    )
    heartbeat_agent.add_arguments(agent)
    agent.set_defaults(handler=heartbeat_agent.run)
    api = commands.add_parser(
        "api", help="serve Masakari's v1 API (1.0-1.3) from the resources of one namespace"
    )
    api_main.add_arguments(api)
    api.set_defaults(handler=api_main.run)
    availability = commands.add_parser(
        "report",
        help="how well recovery did over a window: failures, time to recover, instances "
        "recovered and lost, per segment, host and project",
    )
    report.add_arguments(availability)
    availability.set_defaults(handler=report.run)
    migration = commands.add_parser(
        "import",
        help="read a running Masakari's segments and hosts (and, archived, its notifications) "
        "into manifests for Git",
    )
    importer.add_arguments(migration)
    migration.set_defaults(handler=importer.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())

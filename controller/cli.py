"""The `masakari-operator` command: one entry point, one subcommand per component."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from controller.resources import crd_files


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())

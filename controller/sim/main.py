"""`masakari-operator sim`: run the simulator until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
import sys
from pathlib import Path

import yaml
from pydantic import ValidationError

from controller.sim import app as sim_app
from controller.sim import cloud as sim_cloud
from controller.sim import topology as topo
from controller.sim.state import RouteFault


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=18774, help="port; 0 picks a free one")
    parser.add_argument("--topology", type=Path, help="YAML topology (default: 3 small hosts)")
    parser.add_argument("--seed", type=int, help="make ids, scheduling and faults reproducible")
    parser.add_argument(
        "--service-down-time",
        type=float,
        default=10.0,
        help="seconds without a report before a killed host's service is down (Nova: 60)",
    )
    parser.add_argument("--evacuation-seconds", type=float, default=0.5)
    parser.add_argument("--live-migration-seconds", type=float, default=0.5)
    parser.add_argument("--power-seconds", type=float, default=0.2, help="stop/start duration")
    parser.add_argument("--latency", type=float, default=0.0, help="added to every API call (s)")
    parser.add_argument(
        "--error-rate", type=float, default=0.0, help="share of API calls answered 503"
    )
    parser.add_argument(
        "--admin-token",
        help="also accept this static token as admin (auth_type admin_token clients)",
    )


def options_from(args: argparse.Namespace) -> sim_app.Options:
    faults = {}
    if args.latency or args.error_rate:
        faults["*"] = RouteFault(error_rate=args.error_rate, latency=args.latency)
    return sim_app.Options(
        seed=args.seed,
        timing=sim_cloud.Timing(
            service_down_time=args.service_down_time,
            evacuation_seconds=args.evacuation_seconds,
            power_seconds=args.power_seconds,
            live_migration_seconds=args.live_migration_seconds,
        ),
        faults=faults,
        admin_token=args.admin_token,
    )


async def _serve(args: argparse.Namespace, spec: topo.Topology) -> None:
    runner, base_url = await sim_app.serve(spec, options_from(args), args.host, args.port)
    # The cloud as loaded stays: out of the collector's generations, whose full collections
    # walked 50,000 servers for up to 0.56 s each while the benchmarks' clients waited.
    gc.freeze()
    # The harness reads this line to learn the port.
    print(f"masakari-operator sim listening on {base_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run(args: argparse.Namespace) -> int:
    try:
        spec = topo.load(args.topology) if args.topology else topo.default_topology()
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(args, spec))
    except (OSError, yaml.YAMLError, ValidationError, ValueError, sim_cloud.ApiError) as exc:
        print(f"masakari-operator sim: {exc}", file=sys.stderr)
        return 2
    print("masakari-operator sim stopped", file=sys.stderr)
    return 0

"""Request latency of `masakari-operator api` against a real kube-apiserver, by route.

Creates --segments segments with --hosts-per-segment hosts each (through the API) and
--notifications notifications, then times --requests requests of each kind with openstacksdk's
instance_ha proxy (token cached, so Keystone validation is in the first request only).
Prints p50/p95/max in milliseconds per route.

    .venv/bin/python bench/api_latency.py --segments 10 --hosts-per-segment 10 --requests 50
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.harness import control_plane  # noqa: E402
from tests.harness.masakari_api import api_cloud  # noqa: E402


def timed(requests: int, call: Callable[[int], Any]) -> list[float]:
    spent = []
    for index in range(requests):
        start = time.perf_counter()
        call(index)
        spent.append((time.perf_counter() - start) * 1000)
    return spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--hosts-per-segment", type=int, default=10)
    parser.add_argument("--notifications", type=int, default=100)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    names = [f"c{s}-{h}" for s in range(args.segments) for h in range(args.hosts_per_segment)]
    with (
        control_plane.running() as plane,
        tempfile.TemporaryDirectory() as workdir,
    ):
        plane.kubectl("create", "namespace", "bench")
        spec = {"hosts": [{"name": n} for n in names]}
        with api_cloud(plane.kubeconfig, "bench", Path(workdir), spec=spec) as cloud:
            ha = cloud.connection().instance_ha
            segments = [
                ha.create_segment(name=f"seg{s}", recovery_method="auto", service_type="C")
                for s in range(args.segments)
            ]
            for number, name in enumerate(names):
                segment = segments[number // args.hosts_per_segment]
                ha.create_host(segment.uuid, name=name, type="COMPUTE", control_attributes="")
            first = segments[0]
            host = next(iter(ha.hosts(first.uuid)))

            def notify(index: int) -> Any:
                return ha.create_notification(
                    type="PROCESS", hostname=names[index % len(names)],
                    generated_time=datetime.now(UTC).replace(tzinfo=None).isoformat(),
                    payload={"event": "STOPPED", "process_name": f"p{index}"},
                )  # fmt: skip

            timed(args.notifications, notify)
            routes: dict[str, Callable[[int], Any]] = {
                "GET /segments": lambda _: list(ha.segments()),
                "GET /segments/{id}": lambda _: ha.get_segment(first.uuid),
                "GET /segments/{id}/hosts": lambda _: list(ha.hosts(first.uuid)),
                "GET /segments/{id}/hosts/{id}": lambda _: ha.get_host(host.uuid, first.uuid),
                "GET /notifications": lambda _: list(ha.notifications()),
                "POST /notifications": lambda i: notify(args.notifications + i),
            }
            print(
                f"{args.segments} segments, {len(names)} hosts, "
                f"{args.notifications}+ notifications; {args.requests} requests per route"
            )
            print(f"{'route':32} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
            for route, call in routes.items():
                spent = sorted(timed(args.requests, call))
                p95 = spent[min(len(spent) - 1, int(len(spent) * 0.95))]
                print(f"{route:32} {statistics.median(spent):8.1f} {p95:8.1f} {spent[-1]:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time to recover a host with N instances, on the simulator, against the ideal.

The simulator makes each evacuation take a fixed latency; with evacuationConcurrency C the
ideal is latency x ceil(N / C): what a recovery with zero overhead would take. Prints the time
from just before the FailureEvent is created to the last instance settled on its new host
(the moves' end times in status), for each concurrency asked for.

    .venv/bin/python bench/host_recovery.py --instances 100 --latency 2 --concurrency 3 10 50
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.harness import control_plane  # noqa: E402
from tests.harness.operator import running_operator  # noqa: E402
from tests.harness.sim import running_sim  # noqa: E402
from tests.integration.operator_env import host_failure, wait_active  # noqa: E402


def topology(instances: int) -> dict[str, Any]:
    hosts = [
        {"name": f"compute{i}", "vcpus": 4 * instances, "memory_mb": 8192 * instances}
        for i in range(1, 5)
    ]
    servers = [
        {
            "name": f"vm-{i:03d}",
            "host": "compute1",
            "flavor": "m1.tiny",
            "metadata": {"HA_Enabled": "True"},
        }
        for i in range(instances)
    ]
    return {"hosts": hosts, "servers": servers}


def run_once(
    plane: control_plane.ControlPlane,
    instances: int,
    latency: float,
    concurrency: int,
    workdir: Path,
) -> dict[str, float]:
    namespace = f"bench-{concurrency}-{int(time.time())}"
    plane.kubectl("create", "namespace", namespace)

    def kubectl(*args: str, stdin: str | None = None) -> str:
        return plane.kubectl(*args, "-n", namespace, stdin=stdin).stdout

    with contextlib.ExitStack() as stack:
        sim = stack.enter_context(
            running_sim(
                topology(instances),
                "--evacuation-seconds",
                str(latency),
                "--service-down-time",
                "10",
            )
        )
        stack.enter_context(
            running_operator(
                plane.kubeconfig,
                namespace,
                sim.clouds_yaml,
                sim.cloud,
                workdir,
                {"MASAKARI_POLL_INTERVAL": "0.1"},
            )
        )
        documents = [
            {
                "apiVersion": "masakari.dev/v1alpha1",
                "kind": "FailoverSegment",
                "metadata": {"name": "seg"},
                "spec": {
                    "recoveryMethod": "auto",
                    "serviceType": "COMPUTE",
                    "fencing": {"method": "none"},  # the simulator has no Pacemaker
                    "hostFailure": {
                        "evacuationConcurrency": concurrency,
                        "evacuationTimeoutSeconds": 600,
                    },
                },
            },
            *(
                {
                    "apiVersion": "masakari.dev/v1alpha1",
                    "kind": "Host",
                    "metadata": {"name": f"compute{i}"},
                    "spec": {"segment": "seg"},
                }
                for i in range(1, 5)
            ),
        ]
        kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(documents))
        wait_active(kubectl, [f"compute{i}" for i in range(1, 5)])
        sim.control("POST", "hosts/compute1/kill")
        begin = datetime.now().astimezone()
        kubectl("create", "-f", "-", stdin=yaml.safe_dump(host_failure("c1", "compute1")))
        ideal = latency * math.ceil(instances / concurrency)
        deadline = time.monotonic() + 10 * ideal + 120
        while True:
            status = json.loads(kubectl("get", "fev", "c1", "-o", "json")).get("status") or {}
            if status.get("phase") in ("Finished", "Failed", "Ignored"):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"recovery did not end: {status.get('phase')}")
            time.sleep(0.2)
        if status["phase"] != "Finished":
            raise SystemExit(f"recovery ended {status['phase']}: {status.get('message')}")
        moves = status["instances"]

        def at(value: str) -> float:
            return (datetime.fromisoformat(value.replace("Z", "+00:00")) - begin).total_seconds()

        first_call = min(at(m["startTime"]) for m in moves)
        last_settled = max(at(m["endTime"]) for m in moves)
        counts = sim.control("GET", "evacuations")["evacuations"]
        assert sorted(set(counts.values())) == [1], counts
        return {"ideal": ideal, "first_evacuation": first_call, "total": last_settled}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--latency", type=float, default=2.0, help="seconds per evacuation")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[3, 10, 50])
    args = parser.parse_args()
    with control_plane.running() as plane:
        print(f"{args.instances} instances, {args.latency}s per evacuation (simulator)")
        print(
            f"{'concurrency':>11} {'ideal':>8} {'first evacuate':>15} {'total':>8} {'overhead':>9}"
        )
        for concurrency in args.concurrency:
            result = run_once(plane, args.instances, args.latency, concurrency, plane.workdir)
            print(
                f"{concurrency:>11} {result['ideal']:>7.1f}s {result['first_evacuation']:>14.2f}s"
                f" {result['total']:>7.2f}s {result['total'] - result['ideal']:>8.2f}s",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Planning time: a failed host's instances placed on a segment's hosts (issue 13's figure).

A host of 200 instances (a mix of flavors, a quarter in anti-affinity groups, priorities 0-3)
against a segment of 100 hosts half full, from Placement-shaped inputs to the plan; each
strategy, the median and the worst of `--runs` runs. Goal: <= 50 ms. Then N+1 readiness of
the same segment with `--per-host` instances on each host (every host's loss planned in turn).

    .venv/bin/python bench/placement.py --runs 50
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from controller.recovery.nova import (  # noqa: E402
    DISK_GB,
    MEMORY_MB,
    VCPU,
    HostResources,
    Inventory,
)
from controller.recovery.placement import (  # noqa: E402
    Candidate,
    Instance,
    SegmentHost,
    plan,
    readiness,
)
from controller.resources.segment import PlacementStrategy  # noqa: E402

GOAL_MS = 50.0
FLAVORS = [(1, 2048, 20), (2, 4096, 40), (4, 8192, 80), (8, 16384, 160)]


def segment(hosts: int, rng: random.Random) -> list[Candidate]:
    """Hosts of 64 cores (ratio 4.0), 256 GiB (512 MiB reserved), 4 TB, about half used."""
    candidates = []
    for index in range(hosts):
        used = rng.uniform(0.3, 0.7)
        resources = HostResources(
            f"compute{index}",
            f"rp-{index}",
            {
                VCPU: Inventory(64, allocation_ratio=4.0, max_unit=64),
                MEMORY_MB: Inventory(262144, reserved=512, max_unit=262144),
                DISK_GB: Inventory(4000, max_unit=4000),
            },
            {VCPU: int(256 * used), MEMORY_MB: int(261632 * used), DISK_GB: int(4000 * used)},
        )
        holds = {f"group{rng.randrange(20)}"} if rng.random() < 0.2 else set()
        candidates.append(Candidate.of(resources, holds))
    return candidates


def failed_host(instances: int, rng: random.Random) -> list[Instance]:
    result = []
    for index in range(instances):
        vcpus, ram, disk = rng.choice(FLAVORS)
        groups = (f"group{rng.randrange(20)}",) if rng.random() < 0.25 else ()
        result.append(
            Instance(
                f"uuid-{index}",
                f"vm{index}",
                {VCPU: vcpus, MEMORY_MB: ram, DISK_GB: disk},
                priority=rng.randrange(4),
                anti_affinity=groups,
            )
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--per-host", type=int, default=50)
    args = parser.parse_args()
    rng = random.Random(13)
    print(f"{args.instances} instances onto {args.hosts} hosts, {args.runs} runs")
    print(f"{'strategy':<8} {'median ms':>10} {'max ms':>8} {'placed':>7} {'unplaced':>9}  goal")
    for strategy in PlacementStrategy:
        times = []
        placed = unplaced = 0
        for _ in range(args.runs):
            instances, hosts = failed_host(args.instances, rng), segment(args.hosts, rng)
            start = time.perf_counter()
            result = plan(instances, hosts, strategy)
            times.append((time.perf_counter() - start) * 1000)
            placed, unplaced = len(result.targets), len(result.unplaced)
        median, worst = statistics.median(times), max(times)
        verdict = "ok" if worst <= GOAL_MS else f"OVER {GOAL_MS:.0f} ms"
        print(f"{strategy:<8} {median:>10.1f} {worst:>8.1f} {placed:>7} {unplaced:>9}  {verdict}")
    hosts = segment(args.hosts, rng)
    snapshot = {c.host: SegmentHost(c, tuple(failed_host(args.per_host, rng))) for c in hosts}
    start = time.perf_counter()
    verdict_n1 = readiness(snapshot)
    took = (time.perf_counter() - start) * 1000
    print(
        f"N+1 readiness of {args.hosts} hosts x {args.per_host} instances: {took:.0f} ms "
        f"(ready: {verdict_n1.ready}, worst loss {verdict_n1.lost})"
    )


if __name__ == "__main__":
    main()

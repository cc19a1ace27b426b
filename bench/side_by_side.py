"""Host recovery on real Nova 34, side by side: the operator, real Masakari 22, the raw calls.

One lab, one run, the sides interleaved (each round runs the three in a rotated order, so a
slow minute of the shared machine does not fall on one side only). Every side starts from
the same state, N servers on a compute whose nova-compute was just SIGKILLed, and is timed by
the same observer outside it (bench/real_nova_recovery.wait_settled, polling Nova) from the
kill to every server settled on another host:

- operator: a FailureEvent created as the host monitor would (its store, on a client
  connected before the kill), the operator at its defaults (fencing none: the lab has no
  Pacemaker), so up to 32 evacuations at a time (Masakari's own default is 3);
- operator_all: the same with the segment's `evacuationConcurrency` at N, every evacuation at
  once as the raw calls do (only where N is above the default): the operator's own overhead,
  apart from the pace its default sets;
- masakari: masakari-api + masakari-engine 22.0.0, a COMPUTE_HOST notification posted to the
  API as masakari-hostmonitor posts it, the engine's host-failure flow with the waits printed;
- raw: force down, disable, every evacuate call at once (the physical floor of this lab).

The API server is warmed first (`bench/host_recovery.warm_up`), as a cloud's long-serving one
is: the first FailureEvent a fresh one stored reached the operator 0.42 s after the kill, the
next ones 0.04-0.05 s (traced, N = 3).

    .venv/bin/python bench/side_by_side.py --servers 3 30 --runs 5     (root; `make bench`)

Prints a table, writes bench/results/side_by_side.json and an SVG chart beside it (`--name`
for another file, e.g. a run at Masakari's default waits).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import results_io  # noqa: E402
from bench.host_recovery import warm_up  # noqa: E402
from bench.real_nova_recovery import operator, raw_sdk, wait_settled  # noqa: E402
from controller.resources.segment import HostFailurePolicy  # noqa: E402
from tests.harness import control_plane  # noqa: E402
from tests.harness.nova_lab import running_nova_backend  # noqa: E402
from tests.harness.nova_lab.lab import RPC_RESPONSE_TIMEOUT, SERVICE_DOWN_TIME, TOKEN  # noqa: E402
from tests.harness.nova_lab.masakari import EngineWaits, RealMasakari, running_masakari  # noqa: E402

#: The segment's evacuationConcurrency when the spec leaves it out.
DEFAULT_CONCURRENCY = HostFailurePolicy().evacuation_concurrency
#: Beyond Masakari's own waits: the F14 hang (rpc_response_timeout) and the evacuations.
MASAKARI_SLACK = 300


def _masakari_call(masakari: RealMasakari, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        masakari.url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        # noauth2: the token is the user, "admin" an admin; loopback only, not a secret.
        headers={"X-Auth-Token": TOKEN, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        text = answer.read()
    return json.loads(text) if text else None


def _fresh_segment(masakari: RealMasakari, hosts: list[str]) -> None:
    """One segment of the lab's hosts, none on maintenance: the previous run's engine left its
    failed host on maintenance, and Masakari ignores a notification from such a host."""
    for segment in _masakari_call(masakari, "GET", "/segments")["segments"]:
        path = f"/segments/{segment['uuid']}/hosts"
        for host in _masakari_call(masakari, "GET", path)["hosts"]:
            _masakari_call(masakari, "DELETE", f"{path}/{host['uuid']}")
        _masakari_call(masakari, "DELETE", f"/segments/{segment['uuid']}")
    segment = _masakari_call(
        masakari,
        "POST",
        "/segments",
        {"segment": {"name": "bench", "recovery_method": "auto", "service_type": "COMPUTE"}},
    )["segment"]
    for host in hosts:
        _masakari_call(
            masakari,
            "POST",
            f"/segments/{segment['uuid']}/hosts",
            {"host": {"name": host, "type": "COMPUTE", "control_attributes": "SSH"}},
        )


class MasakariFailed(Exception):
    """A run Masakari itself failed: recorded with its reason, and the bench goes on. The
    operator's and the raw calls' failures stop the bench: they are ours to fix."""


def masakari_side(backend: Any, masakari: RealMasakari, servers: int) -> float:
    backend.reset()
    failed = backend.hosts[0]
    ids = backend.boot_servers(failed, servers, metadata={"HA_Enabled": "True"})
    _fresh_segment(masakari, backend.hosts)
    backend.kill_host(failed)
    begin = time.monotonic()
    # What masakari-hostmonitor posts when Pacemaker reports the node offline.
    notification = _masakari_call(
        masakari,
        "POST",
        "/notifications",
        {
            "notification": {
                "type": "COMPUTE_HOST",
                "hostname": failed,
                "generated_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "payload": {
                    "event": "STOPPED",
                    "host_status": "NORMAL",
                    "cluster_status": "OFFLINE",
                },
            }
        },
    )["notification"]
    assert masakari.engine_waits is not None
    timeout = masakari.engine_waits.wait_period_after_service_update + MASAKARI_SLACK
    try:
        seconds = wait_settled(backend.compute, ids, failed, begin, timeout, "Masakari")
    except SystemExit as timed_out:
        raise MasakariFailed(str(timed_out)) from None
    # Its own verdict too: a run it calls failed is not a recovery, however the servers look.
    deadline = time.monotonic() + 120
    while True:
        path = f"/notifications/{notification['notification_uuid']}"
        status = _masakari_call(masakari, "GET", path)["notification"]["status"]
        if status in ("finished", "failed", "ignored", "error"):
            break
        if time.monotonic() > deadline:
            raise MasakariFailed(f"its notification still {status} after the servers settled")
        time.sleep(0.5)
    if status != "finished":
        raise MasakariFailed(f"its notification ended {status}")
    return seconds


def summary(times: list[float], failures: list[str], floor: float) -> dict[str, Any]:
    if not times:
        return {"runs": [], "failed": failures, "median": None, "x_raw": None}
    median = statistics.median(times)
    return {
        "runs": [round(t, 2) for t in times],
        "failed": failures,
        "median": round(median, 2),
        "min": round(min(times), 2),
        "max": round(max(times), 2),
        "x_raw": round(median / floor, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", type=int, nargs="+", default=[3, 30])
    # Five, not three: the raw calls alone took 0.78-1.77 s at N = 3 over one morning's runs
    # (2026-12-06), and a median of three could not tell 1.15x from 1.5x.
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--wait-period-after-service-update",
        type=int,
        default=0,
        help="masakari-engine's sleep after disabling the host (Masakari's default: 180)",
    )
    parser.add_argument(
        "--name", default="side_by_side", help="the results' file name, without .json/.svg"
    )
    args = parser.parse_args()
    waits = EngineWaits(wait_period_after_service_update=args.wait_period_after_service_update)
    times: dict[int, dict[str, list[float]]] = {n: {} for n in args.servers}
    failures: dict[int, dict[str, list[str]]] = {n: {} for n in args.servers}
    with contextlib.ExitStack() as stack:
        backend = stack.enter_context(running_nova_backend())
        plane = stack.enter_context(control_plane.running())
        masakari = stack.enter_context(
            running_masakari(backend.lab, backend.lab.workdir / "masakari", engine=waits)
        )
        print(f"masakari-api + engine ready in {masakari.ready_seconds:.1f}s", flush=True)
        warm_up(plane)
        counter = iter(range(10**6))
        every_side: list[tuple[str, Callable[[int], float]]] = [
            ("operator", lambda n: operator(backend, plane, next(counter), n)),
            ("operator_all", lambda n: operator(backend, plane, next(counter), n, concurrency=n)),
            ("masakari", lambda n: masakari_side(backend, masakari, n)),
            ("raw", lambda n: raw_sdk(backend, n)),
        ]
        for servers in args.servers:
            sides = [
                side
                for side in every_side
                if side[0] != "operator_all" or servers > DEFAULT_CONCURRENCY
            ]
            for run in range(args.runs):
                for offset in range(len(sides)):
                    name, side = sides[(run + offset) % len(sides)]
                    times[servers].setdefault(name, [])
                    failures[servers].setdefault(name, [])
                    try:
                        seconds = side(servers)
                    except MasakariFailed as failure:
                        failures[servers][name].append(str(failure))
                        print(f"N={servers} run {run + 1} {name}: FAILED, {failure}", flush=True)
                        continue
                    times[servers][name].append(seconds)
                    print(f"N={servers} run {run + 1} {name}: {seconds:.2f}s", flush=True)
        if any(f for by_side in failures.values() for f in by_side.values()):
            print(f"Masakari's logs: {masakari.log_path.parent}", flush=True)
    results = {
        str(n): {
            name: summary(t, failures[n][name], statistics.median(by_side["raw"]))
            for name, t in by_side.items()
        }
        for n, by_side in times.items()
    }
    print(f"\nreal Nova 34, {args.runs} runs per side, interleaved; from the kill to every server")
    print("settled elsewhere, polled by one observer outside each side (median, min-max, x raw):")
    for n, by_side in results.items():
        for name, r in by_side.items():
            failed = f", {len(r['failed'])} failed" if r["failed"] else ""
            if r["median"] is None:
                print(f"  N={n:>3} {name:<12} every run failed: {'; '.join(r['failed'])}")
                continue
            print(
                f"  N={n:>3} {name:<12} {r['median']:7.2f}s ({r['min']:.2f}-{r['max']:.2f})"
                f"  {r['x_raw']:.2f}x{failed}"
            )
    conditions = results_io.conditions(
        operator={"evacuationConcurrency": DEFAULT_CONCURRENCY},
        masakari_engine=waits.as_dict(),
        nova={"rpc_response_timeout": RPC_RESPONSE_TIMEOUT, "service_down_time": SERVICE_DOWN_TIME},
    )
    print(f"conditions: {json.dumps(conditions)}")
    rows = [
        (f"N={n} {side}", r["median"])
        for n, sides in results.items()
        for side, r in sides.items()
        if r["median"] is not None
    ]
    chart = results_io.bar_chart(
        "kill to every server settled elsewhere, median (real Nova 34)", rows
    )
    results_io.write(args.name, {"results": results, "conditions": conditions}, chart)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A maintenance drain of 30 servers on real Nova 34: the operator against the raw calls.

Both start from the same state (30 active servers on compute1, the lab's fake virt driver,
which completes live migrations) and end when every server is settled on another host, as one
observer outside both sees it: a thread listing the servers every 0.2 s (one Nova call a poll,
so that watching does not load Nova more on one side than the other), not the operator's own
end time. The raw path is the least a script could do: live-migrate them with at most N calls
in flight, polling each every 0.1 s until it has landed. The operator's path is a Host put on
maintenance in a segment with `maintenance.drain: LiveMigrate` and concurrency N (per host and
per segment), timed from the Host's PATCH (MASAKARI_POLL_INTERVAL 0.1 s, as the raw poll).
Issue 14's target: the operator within 1.2x of the raw calls. Each size runs --runs times, the
two sides interleaved; the medians are compared. For the operator it also prints where the
time went, from the moves in the Host's status: the mean move (its write-ahead to its end)
and the mean gap between a move's end and the next start in the same slot.

    .venv/bin/python bench/real_nova_drain.py --concurrency 3 10 --runs 3   (root; the lab once)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.scale import Kube  # noqa: E402
from controller.drivers.kube import PLURAL  # noqa: E402
from controller.resources.common import GROUP, VERSION  # noqa: E402
from tests.harness import control_plane  # noqa: E402
from tests.harness.nova_lab import running_nova_backend  # noqa: E402
from tests.harness.operator import running_operator  # noqa: E402
from tests.integration.operator_env import wait_active  # noqa: E402

SERVERS = 30
OBSERVER_INTERVAL = 0.2


class Observer:
    """From `begin` until every server is settled off `source`, seen by listing Nova's servers."""

    def __init__(self, compute: Any, ids: list[str], source: str) -> None:
        self.compute, self.ids, self.source = compute, set(ids), source
        self.begin = time.monotonic()
        self.seconds: float | None = None
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _settled(self) -> bool:
        servers = [
            s for s in self.compute.servers(details=True, all_projects=True) if s.id in self.ids
        ]
        return len(servers) == len(self.ids) and all(
            s.compute_host != self.source and not s.task_state and s.status == "ACTIVE"
            for s in servers
        )

    def _watch(self) -> None:
        deadline = self.begin + 600
        while time.monotonic() < deadline:
            if self._settled():
                self.seconds = time.monotonic() - self.begin
                return
            time.sleep(OBSERVER_INTERVAL)

    def result(self, who: str) -> float:
        self._thread.join(timeout=620)
        if self.seconds is None:
            raise SystemExit(f"{who}: the servers did not settle within 600s")
        return self.seconds


def landed(compute: Any, server_id: str, source: str) -> bool:
    server = compute.get_server(server_id)
    return server.compute_host != source and not server.task_state and server.status == "ACTIVE"


def raw_sdk(backend: Any, concurrency: int) -> float:
    backend.reset()
    source = backend.hosts[0]
    ids = backend.boot_servers(source, SERVERS)
    compute = backend.compute
    observer = Observer(compute, ids, source)

    def move(server_id: str) -> None:
        compute.live_migrate_server(server_id, host=None, force=False, block_migration="auto")
        deadline = time.monotonic() + 300
        while not landed(compute, server_id, source):
            if time.monotonic() > deadline:
                raise SystemExit(f"raw live migration of {server_id} did not land")
            time.sleep(0.1)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(move, ids))
    return observer.result("raw calls")


def breakdown(moves: list[dict[str, Any]], concurrency: int) -> tuple[float, float]:
    """The mean move (start to end) and the mean gap from one move's end to the next start,
    with the moves laid in `concurrency` slots by start time."""
    times = sorted(
        (datetime.fromisoformat(m["startTime"]), datetime.fromisoformat(m["endTime"]))
        for m in moves
    )
    slots: list[datetime] = []
    gaps = []
    for start, end in times:
        free = min(range(len(slots)), key=lambda i: slots[i], default=None)
        if len(slots) < concurrency or free is None:
            slots.append(end)
            continue
        gaps.append((start - slots[free]).total_seconds())
        slots[free] = end
    durations = [(end - start).total_seconds() for start, end in times]
    return statistics.mean(durations), statistics.mean(gaps) if gaps else 0.0


def operator(
    backend: Any, plane: control_plane.ControlPlane, concurrency: int, logs: Path | None
) -> tuple[float, float, float]:
    backend.reset()
    source = backend.hosts[0]
    ids = backend.boot_servers(source, SERVERS)
    namespace = f"bench-drain-{concurrency}-{int(time.time())}"
    plane.kubectl("create", "namespace", namespace)

    def kubectl(*args: str, stdin: str | None = None) -> str:
        return plane.kubectl(*args, "-n", namespace, stdin=stdin).stdout

    def host(name: str, maintenance: bool = False) -> dict[str, Any]:
        return {
            "apiVersion": "masakari.dev/v1alpha1",
            "kind": "Host",
            "metadata": {"name": name},
            "spec": {"segment": "seg", "onMaintenance": maintenance},
        }

    with running_operator(
        plane.kubeconfig,
        namespace,
        backend.clouds_yaml,
        backend.cloud,
        plane.workdir,
        {"MASAKARI_POLL_INTERVAL": "0.1"},
    ) as process:
        segment = {
            "apiVersion": "masakari.dev/v1alpha1",
            "kind": "FailoverSegment",
            "metadata": {"name": "seg"},
            "spec": {
                "recoveryMethod": "auto",
                "serviceType": "COMPUTE",
                "fencing": {"method": "none"},  # the lab's Nova has no Pacemaker
                "maintenance": {
                    "drain": "LiveMigrate",
                    "concurrencyPerHost": concurrency,
                    "concurrencyPerSegment": concurrency,
                },
            },
        }
        kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all([segment, *map(host, backend.hosts)]))
        wait_active(kubectl, backend.hosts)
        # One PATCH straight to the API server: kubectl's own start is not the operator's time.
        custom = Kube(plane.kubeconfig).custom
        observer = Observer(backend.compute, ids, source)
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL.hosts, source, {"spec": {"onMaintenance": True}}
        )
        deadline = time.monotonic() + 600
        while True:
            status = json.loads(kubectl("get", "mhost", source, "-o", "json")).get("status") or {}
            drain = status.get("drain") or {}
            if drain.get("phase") in ("Drained", "Incomplete"):
                break
            if time.monotonic() > deadline:
                raise SystemExit("the operator's drain did not end")
            time.sleep(0.2)
        if drain["phase"] != "Drained":
            raise SystemExit(f"drain ended {drain['phase']}: {drain['instances']}")
        seconds = observer.result("the operator")
        if logs is not None:
            logs.mkdir(parents=True, exist_ok=True)
            (logs / f"{namespace}.log").write_text(process.log())
        return (seconds, *breakdown(drain["instances"], concurrency))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--logs", type=Path, help="keep the operator's logs here")
    args = parser.parse_args()
    print(f"real Nova 34 (fake virt driver), drain of {SERVERS} servers by live migration")
    print(
        "  concurrency  run   raw openstacksdk   masakari-operator   ratio   mean move   mean gap"
    )
    rows = []
    with contextlib.ExitStack() as stack:
        backend = stack.enter_context(running_nova_backend())
        plane = stack.enter_context(control_plane.running())
        for concurrency in args.concurrency:
            raws, ours = [], []
            for run in range(1, args.runs + 1):
                raw = raw_sdk(backend, concurrency)
                seconds, move, gap = operator(backend, plane, concurrency, args.logs)
                raws.append(raw)
                ours.append(seconds)
                print(
                    f"  {concurrency:>11}  {run:>3}   {raw:>15.2f}s   {seconds:>16.2f}s"
                    f"   {seconds / raw:>5.2f}x   {move:>8.2f}s   {gap:>7.2f}s",
                    flush=True,
                )
            rows.append((concurrency, statistics.median(raws), statistics.median(ours)))
    print("medians:")
    for concurrency, raw, seconds in rows:
        print(
            f"  concurrency {concurrency:>2}: raw {raw:.2f}s, operator {seconds:.2f}s, "
            f"{seconds / raw:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

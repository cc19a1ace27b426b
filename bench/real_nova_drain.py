"""A maintenance drain of 30 servers on real Nova 34: the operator against the raw calls.

Both start from the same state (30 active servers on compute1, the lab's fake virt driver,
which completes live migrations) and end when every server is settled on another host. The
raw path is the least a script could do: live-migrate them with at most N calls in flight,
polling every 0.1 s until each has landed. The operator's path is a Host put on maintenance in
a segment with `maintenance.drain: LiveMigrate` and concurrency N (per host and per segment),
measured from the apply to the drain's end time in status (MASAKARI_POLL_INTERVAL 0.1 s, as the
raw poll). Issue 14's target: the operator within 1.2x of the raw calls.

    .venv/bin/python bench/real_nova_drain.py --concurrency 3 10      (root; the lab once)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.harness import control_plane  # noqa: E402
from tests.harness.nova_lab import running_nova_backend  # noqa: E402
from tests.harness.operator import running_operator  # noqa: E402
from tests.integration.operator_env import wait_active  # noqa: E402

SERVERS = 30


def landed(compute: Any, server_id: str, source: str) -> bool:
    server = compute.get_server(server_id)
    return server.compute_host != source and not server.task_state and server.status == "ACTIVE"


def raw_sdk(backend: Any, concurrency: int) -> float:
    backend.reset()
    source = backend.hosts[0]
    ids = backend.boot_servers(source, SERVERS)
    compute = backend.compute

    def move(server_id: str) -> None:
        compute.live_migrate_server(server_id, host=None, force=False, block_migration="auto")
        deadline = time.monotonic() + 300
        while not landed(compute, server_id, source):
            if time.monotonic() > deadline:
                raise SystemExit(f"raw live migration of {server_id} did not land")
            time.sleep(0.1)

    begin = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(move, ids))
    return time.monotonic() - begin


def operator(backend: Any, plane: control_plane.ControlPlane, concurrency: int) -> float:
    backend.reset()
    source = backend.hosts[0]
    backend.boot_servers(source, SERVERS)
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
    ):
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
        begin = datetime.now().astimezone()
        kubectl("apply", "-f", "-", stdin=yaml.safe_dump(host(source, True)))
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
        end = datetime.fromisoformat(drain["endTime"].replace("Z", "+00:00"))
        return (end - begin).total_seconds()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[3, 10])
    args = parser.parse_args()
    rows = []
    with contextlib.ExitStack() as stack:
        backend = stack.enter_context(running_nova_backend())
        plane = stack.enter_context(control_plane.running())
        for concurrency in args.concurrency:
            raw = raw_sdk(backend, concurrency)
            ours = operator(backend, plane, concurrency)
            rows.append((concurrency, raw, ours))
    print(f"real Nova 34 (fake virt driver), drain of {SERVERS} servers by live migration:")
    print("  concurrency   raw openstacksdk   masakari-operator   ratio")
    for concurrency, raw, ours in rows:
        print(f"  {concurrency:>11}   {raw:>15.2f}s   {ours:>16.2f}s   {ours / raw:>5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

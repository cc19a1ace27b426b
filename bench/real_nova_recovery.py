"""Recovery of a host with 3 servers on real Nova 34: the operator against the raw calls.

Both start from the same state (3 servers on a compute whose nova-compute was just killed)
and end when every server is settled on another host, as one observer outside both sees it
polling Nova (`wait_settled`), not at the operator's own end times. The raw path is the least
a script could do: force the service down, disable it, evacuate the three at once.
bench/side_by_side.py adds real Masakari 22 to the same runs.

    .venv/bin/python bench/real_nova_recovery.py --runs 3       (root; installs the lab once)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.host_recovery import warm_up  # noqa: E402
from bench.scale import production_env  # noqa: E402
from controller.monitors.kubernetes_store import KubernetesStore  # noqa: E402
from tests.harness import control_plane  # noqa: E402
from tests.harness.nova_lab import running_nova_backend  # noqa: E402
from tests.harness.operator import running_operator  # noqa: E402
from tests.integration.operator_env import host_failure, wait_active  # noqa: E402

SERVERS = 3
#: The observer's poll: each poll reads every server once (30 GETs at N = 30).
OBSERVER_INTERVAL = 0.1


def settled_elsewhere(compute: Any, ids: list[str], source: str) -> bool:
    for server_id in ids:
        server = compute.get_server(server_id)
        if (
            server.compute_host == source
            or server.task_state
            or server.status not in ("ACTIVE", "SHUTOFF")
        ):
            return False
    return True


def wait_settled(
    compute: Any, ids: list[str], source: str, begin: float, timeout: float, who: str
) -> float:
    """Seconds from `begin` until every server is settled off `source`, polling Nova."""
    deadline = begin + timeout
    while not settled_elsewhere(compute, ids, source):
        if time.monotonic() > deadline:
            raise SystemExit(f"{who}: the servers did not settle within {timeout:.0f}s")
        time.sleep(OBSERVER_INTERVAL)
    return time.monotonic() - begin


def raw_sdk(backend: Any, servers: int = SERVERS) -> float:
    backend.reset()
    failed = backend.hosts[0]
    ids = backend.boot_servers(failed, servers)
    compute = backend.compute
    backend.kill_host(failed)
    begin = time.monotonic()
    service = next(iter(compute.services(host=failed, binary="nova-compute")))
    compute.update_service_forced_down(service, forced=True)
    compute.disable_service(service, disabled_reason="bench")
    with ThreadPoolExecutor(servers) as pool:
        list(pool.map(compute.evacuate_server, ids))
    return wait_settled(compute, ids, failed, begin, 300, "raw calls")


def operator(
    backend: Any,
    plane: control_plane.ControlPlane,
    run: int,
    servers: int = SERVERS,
    concurrency: int | None = None,
) -> float:
    """The operator at its defaults, or with the segment's evacuationConcurrency set."""
    backend.reset()
    failed = backend.hosts[0]
    ids = backend.boot_servers(failed, servers, metadata={"HA_Enabled": "True"})
    namespace = f"bench-real-{run}-{int(time.time())}"
    plane.kubectl("create", "namespace", namespace)

    def kubectl(*args: str, stdin: str | None = None) -> str:
        return plane.kubectl(*args, "-n", namespace, stdin=stdin).stdout

    with running_operator(
        plane.kubeconfig,
        namespace,
        backend.clouds_yaml,
        backend.cloud,
        plane.workdir,
        # Its production timing, not the tests' quick polls: at N=30 the tests' 0.1 s poll of
        # every moving instance loaded the lab's one nova-api more than the evacuations did.
        production_env(),
    ):
        documents = [
            {
                "apiVersion": "masakari.dev/v1alpha1",
                "kind": "FailoverSegment",
                "metadata": {"name": "seg"},
                "spec": {
                    "recoveryMethod": "auto",
                    "serviceType": "COMPUTE",
                    "fencing": {"method": "none"},  # the lab's Nova has no Pacemaker
                    **(
                        {"hostFailure": {"evacuationConcurrency": concurrency}}
                        if concurrency
                        else {}
                    ),
                },
            },
            *(
                {
                    "apiVersion": "masakari.dev/v1alpha1",
                    "kind": "Host",
                    "metadata": {"name": h},
                    "spec": {"segment": "seg"},
                }
                for h in backend.hosts
            ),
        ]
        kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(documents))
        wait_active(kubectl, backend.hosts)
        # Reported as the host monitor reports, through its store on a client connected long
        # before the failure: `kubectl create` took 47-49 ms (a process started per event),
        # the store 3-4 ms, on a warm API server.
        with kubernetes.config.new_client_from_config(str(plane.kubeconfig)) as client:
            monitor = KubernetesStore(client, namespace)
            monitor.hosts()
            backend.kill_host(failed)
            begin = time.monotonic()
            monitor.create(host_failure("real", failed))
        seconds = wait_settled(backend.compute, ids, failed, begin, 300, "the operator")
        # Settled is not enough: the operator must also have ended the event as Finished.
        deadline = time.monotonic() + 60
        while True:
            status = json.loads(kubectl("get", "fev", "real", "-o", "json")).get("status") or {}
            if status.get("phase") in ("Finished", "Failed", "Ignored"):
                break
            if time.monotonic() > deadline:
                raise SystemExit("the operator's recovery did not end")
            time.sleep(0.2)
        if status["phase"] != "Finished":
            raise SystemExit(f"recovery ended {status['phase']}: {status.get('message')}")
        return seconds


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        backend = stack.enter_context(running_nova_backend())
        plane = stack.enter_context(control_plane.running())
        warm_up(plane)
        raw = [raw_sdk(backend) for _ in range(args.runs)]
        ours = [operator(backend, plane, run) for run in range(args.runs)]
    print(f"real Nova 34, {SERVERS} servers, {args.runs} runs each (median, min-max):")
    print(
        f"  raw openstacksdk calls: {statistics.median(raw):.2f}s ({min(raw):.2f}-{max(raw):.2f})"
    )
    print(
        f"  masakari-operator:      {statistics.median(ours):.2f}s "
        f"({min(ours):.2f}-{max(ours):.2f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

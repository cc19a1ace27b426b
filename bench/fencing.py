"""Time from a FailureEvent to its host's fencing confirmed, per fencing method, and its share of
the whole recovery (issue 10's figure).

Each run: a fresh namespace, simulator and operator; the failed host's instances on the
simulated Nova; the host made to fail (its nova-compute silent, and per method below); the
FailureEvent created. Measured from just before the event is created to
`status.fencing.confirmedTime` (the operator's record that the host is off, written before any
Nova call) and to the last instance settled on its new host.

- pacemaker: the real lab cluster (root; fence_dummy as the device, `--fence-delay` its delay).
  `--scenario clean-stop` (default): node3's stack stopped by hand, which Pacemaker never
  fences by itself, so the fencing is the operator's `stonith_admin --fence`; `power-cut`:
  node3 powered off, Pacemaker fencing it by itself and the operator confirming the record.
- redfish, ipmi: each host's BMC on loopback (tests/harness/bmc.py), the failed host's still
  On; the operator powers it off and reads Off back.

    sudo .venv/bin/python bench/fencing.py --runs 10
    sudo .venv/bin/python bench/fencing.py --runs 10 --scenario power-cut --fence-delay 2
    .venv/bin/python bench/fencing.py --runs 10 --method redfish ipmi
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.harness import bmc, control_plane, pacemaker_lab  # noqa: E402
from tests.harness.operator import running_operator  # noqa: E402
from tests.harness.sim import Sim, running_sim  # noqa: E402
from tests.integration.operator_env import host_failure  # noqa: E402

NODES = ("node1", "node2", "node3")
FAILED = "node3"
TERMINAL = {"Finished", "Failed", "Ignored"}


@dataclass(frozen=True)
class Run:
    fencing: float  # seconds from just before the event's creation to confirmedTime
    request: float | None  # to the (last) fencing request sent; None: none was needed
    total: float  # to the last instance settled
    requests: int
    step: str  # FenceHostTask's end state: SUCCESS (fenced on request) or SKIPPED
    details: tuple[str, ...]  # the step's progress messages, shown when it took more than one


@dataclass
class Failure:
    """One run's failed host: what its Hosts need, how it fails, when the operator is ready."""

    documents: list[dict[str, Any]]  # beside the segment and the Hosts (BMC Secrets)
    host_spec: dict[str, dict[str, Any]]  # more spec per Host (its BMC)
    fail: Callable[[], None]
    ready: Callable[[Callable[[str, str], dict[str, Any]]], bool]


@dataclass
class Method:
    """One fencing method's cloud. `run` gives each run its Failure; leaving it makes the
    failed host whole again."""

    segment: dict[str, Any]
    operator_env: dict[str, str]
    operator_pacemaker: dict[str, Any] | None
    run: Callable[[], contextlib.AbstractContextManager[Failure]]


Opener = Callable[[argparse.Namespace], contextlib.AbstractContextManager[Method]]


def host_active(status: Callable[[str, str], dict[str, Any]]) -> bool:
    return status("mhost", FAILED).get("phase") == "Active"


@contextlib.contextmanager
def pacemaker_method(args: argparse.Namespace) -> Iterator[Method]:
    """node3's stack stopped by hand (clean-stop), which Pacemaker never fences by itself, so
    every fencing is the operator's stonith_admin --fence; or node3 powered off (power-cut),
    which Pacemaker fences by itself, the operator confirming its record. Between runs node3
    is powered off and on again, as a real fence would leave it."""
    problem = pacemaker_lab.missing_prerequisites()
    if problem:
        raise SystemExit(f"pacemaker: {problem}")
    with pacemaker_lab.running(members=3, fence_delay=args.fence_delay) as lab:

        def fail() -> None:
            if args.scenario == "clean-stop":
                lab.stop_stack(FAILED, observer="node1")
            else:
                lab.kill(FAILED)
                # As a monitor would, report once the cluster has seen the node lost: a report
                # that overtakes corosync's detection finds the node still up and ends
                # HostRecovered at once.
                lab.wait_node(FAILED, "node1", online="false")

        def ready(status: Callable[[str, str], dict[str, Any]]) -> bool:
            # The operator has seen node3 (re)join: only a fencing newer than that counts.
            return bool((status("mhost", FAILED).get("pacemaker") or {}).get("onlineSince"))

        @contextlib.contextmanager
        def run() -> Iterator[Failure]:
            try:
                yield Failure([], {}, fail, ready)
            finally:
                lab.kill(FAILED)
                lab.start_node(FAILED)
                lab.wait_online([FAILED], observer="node1", timeout=120)

        yield Method(
            segment={"method": "pacemaker"},
            operator_env={"MASAKARI_PACEMAKER_LOCAL_PREFIX": " ".join(lab.nsenter_prefix("node1"))},
            operator_pacemaker={"local": {}},
            run=run,
        )


def bmc_method(method: str) -> Opener:
    """Each host's BMC on loopback (tests/harness/bmc.py: sushy-tools' Redfish emulator, whose
    fake driver settles a power action 1 to 11 s later at random; pyghmi's IPMI peers). The host
    fails as Nova sees it, its BMC still On; each run has fresh BMCs, all On."""

    @contextlib.contextmanager
    def open_method(args: argparse.Namespace) -> Iterator[Method]:
        del args

        @contextlib.contextmanager
        def run() -> Iterator[Failure]:
            with bmc.running_bmc_lab(list(NODES)) as lab:
                secret = {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": "bmc-credentials"},
                    "data": lab.secret_data,
                }
                host_spec = {
                    name: {
                        "bmc": {"address": lab.redfish_url, "system": lab.systems[name]}
                        if method == "redfish"
                        else {"address": lab.ipmi[name]}
                    }
                    for name in NODES
                }
                for spec in host_spec.values():
                    spec["bmc"]["credentialsSecret"] = "bmc-credentials"
                yield Failure([secret], host_spec, lambda: None, host_active)

        yield Method(segment={"method": method}, operator_env={}, operator_pacemaker=None, run=run)

    return open_method


METHODS: dict[str, Opener] = {
    "pacemaker": pacemaker_method,
    "redfish": bmc_method("redfish"),
    "ipmi": bmc_method("ipmi"),
}


def documents(fencing: dict[str, Any], failure: Failure) -> list[dict[str, Any]]:
    return [
        *failure.documents,
        {
            "apiVersion": "masakari.dev/v1alpha1",
            "kind": "FailoverSegment",
            "metadata": {"name": "seg"},
            "spec": {
                "recoveryMethod": "auto",
                "serviceType": "COMPUTE",
                "fencing": fencing,
                "hostFailure": {"fencingTimeoutSeconds": 120, "evacuationTimeoutSeconds": 120},
            },
        },
        *(
            {
                "apiVersion": "masakari.dev/v1alpha1",
                "kind": "Host",
                "metadata": {"name": name},
                "spec": {"segment": "seg", **failure.host_spec.get(name, {})},
            }
            for name in NODES
        ),
    ]


def run_once(
    plane: control_plane.ControlPlane,
    method: Method,
    failure: Failure,
    args: argparse.Namespace,
    index: int,
) -> Run:
    namespace = f"bench-fencing-{index}-{uuid.uuid4().hex[:6]}"
    plane.kubectl("create", "namespace", namespace)
    workdir = plane.workdir / namespace
    workdir.mkdir()

    def kubectl(*argv: str, stdin: str | None = None) -> str:
        return plane.kubectl(*argv, "-n", namespace, stdin=stdin).stdout

    def status(kind: str, name: str) -> dict[str, Any]:
        found = json.loads(kubectl("get", kind, name, "-o", "json"))
        return dict(found.get("status") or {})

    topology = {
        "hosts": [{"name": name, "vcpus": 4 * args.instances} for name in NODES],
        "servers": [
            {"name": f"vm-{i}", "host": FAILED, "metadata": {"HA_Enabled": "True"}}
            for i in range(args.instances)
        ],
    }
    with contextlib.ExitStack() as stack:
        sim: Sim = stack.enter_context(
            running_sim(
                topology,
                "--evacuation-seconds",
                str(args.evacuation_seconds),
                "--service-down-time",
                "2",
            )
        )
        stack.enter_context(
            running_operator(
                plane.kubeconfig,
                namespace,
                sim.clouds_yaml,
                sim.cloud,
                workdir,
                method.operator_env,
                pacemaker=method.operator_pacemaker,
            )
        )
        kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(documents(method.segment, failure)))
        wait("the operator to see the hosts", lambda: failure.ready(status), 90)
        failure.fail()
        sim.control("POST", f"hosts/{FAILED}/kill")  # nova-compute silent too
        begin = datetime.now().astimezone()
        kubectl("create", "-f", "-", stdin=yaml.safe_dump(host_failure("failed", FAILED)))
        ended = wait(
            "the recovery to end",
            lambda: (s := status("fev", "failed")).get("phase") in TERMINAL and s,
            300,
        )
        if ended["phase"] != "Finished":
            raise SystemExit(f"run {index}: {ended['phase']} {ended.get('message')}")
        counts = sim.control("GET", "evacuations")["evacuations"]
        if sorted(counts.values()) != [1] * args.instances:
            raise SystemExit(f"run {index}: evacuations {counts}")

    def since(value: str) -> float:
        return (datetime.fromisoformat(value) - begin).total_seconds()

    fencing = ended["fencing"]
    step = next(s for s in ended["steps"] if s["name"] == "FenceHostTask")
    last_request = fencing.get("lastRequestTime")
    return Run(
        fencing=since(fencing["confirmedTime"]),
        request=since(last_request) if last_request else None,
        total=max(since(move["endTime"]) for move in ended["instances"]),
        requests=int(fencing.get("requests", 0)),
        step=step["state"],
        details=tuple(
            f"{since(d['timestamp']):7.2f}s {d['message']}" for d in step.get("progressDetails", [])
        ),
    )


def wait(what: str, probe: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.1)
    raise SystemExit(f"timed out after {timeout}s waiting for {what}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--method", choices=sorted(METHODS), nargs="+", default=["pacemaker"])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--scenario", choices=["clean-stop", "power-cut"], default="clean-stop")
    parser.add_argument("--fence-delay", type=int, default=0, help="fence_dummy's delay (s)")
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--evacuation-seconds", type=float, default=1.0)
    args = parser.parse_args()
    with control_plane.running() as plane:
        for name in args.method:
            with METHODS[name](args) as method:
                setting = (
                    f"{args.scenario}, fence_dummy delay {args.fence_delay}s"
                    if name == "pacemaker"
                    else "BMCs on loopback"
                )
                print(
                    f"{name} ({setting}), {args.instances} instances at "
                    f"{args.evacuation_seconds:g}s each on the simulator"
                )
                print(f"{'run':>4} {'request':>8} {'fenced':>8} {'total':>8} {'share':>6}  step")
                runs: list[Run] = []
                for index in range(1, args.runs + 1):
                    with method.run() as failure:
                        run = run_once(plane, method, failure, args, index)
                    runs.append(run)
                    request = f"{run.request:7.2f}s" if run.request is not None else "       -"
                    print(
                        f"{index:>4} {request} {run.fencing:7.2f}s {run.total:7.2f}s "
                        f"{run.fencing / run.total:6.0%}  {run.step} ({run.requests} request)",
                        flush=True,
                    )
                    if run.requests > 1:
                        print("\n".join(f"      {line}" for line in run.details), flush=True)
                fenced = [run.fencing for run in runs]
                shares = [run.fencing / run.total for run in runs]
                print(
                    f"{name}: fencing confirmed median {statistics.median(fenced):.2f}s, "
                    f"max {max(fenced):.2f}s over {len(runs)} runs; whole recovery median "
                    f"{statistics.median(run.total for run in runs):.2f}s; fencing's share "
                    f"median {statistics.median(shares):.0%}, max {max(shares):.0%}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The fault matrix (docs/reliability.md): a host recovery on real parts (kube-apiserver and
etcd, the operator as a process, the simulator over HTTP) while something it depends on fails
mid-recovery. Each row asserts what must hold (no server evacuated twice, none from a host
still running, every recovery ended with a reason) and prints one line of figures, a row of
the table in docs/reliability.md; timings are figures, never asserted.

`make test` runs a short sample; `make faults` (MASAKARI_FAULTS=full) runs more recoveries per
row and the full outage periods.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import signal
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cluster
from tests.harness import control_plane
from tests.harness.bmc import running_bmc_lab
from tests.harness.operator import STARTED, Operator, running_operator
from tests.harness.sim import Sim, running_sim
from tests.integration.operator_env import (
    Cloud,
    host,
    host_failure,
    segment,
    servers,
    topology,
    wait_for,
)
from tests.integration.test_operator_leadership import start_replicas

FULL = os.environ.get("MASAKARI_FAULTS") == "full"
RUNS = 3 if FULL else 1
# Each run waits for its own bounds; the first test also pays for the baseline's runs.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600 * RUNS)]
# The sample keeps each period long enough to span several of the operator's retries.
APISERVER_OUTAGE = 60.0 if FULL else 10.0
NOVA_OUTAGE = 60.0 if FULL else 10.0
NETWORK_CUT = 30.0 if FULL else 10.0

HOSTS = [{"name": f"compute{i}", "vcpus": 16} for i in (1, 2, 3)]
NAMES = [f"vm-{i}" for i in range(6)]
TOPOLOGY = topology(HOSTS, servers(NAMES, "compute1", metadata={"HA_Enabled": "True"}))
# Rebuilds long enough, two at a time, that a fault lands between the first and the last.
SIM_ARGS = ("--service-down-time", "2", "--evacuation-seconds", "1.5")
SEGMENT = segment(
    # Moves and retries bounded well below the shipped 90 s and 10 s backoff: the rows that
    # exhaust them then end within a sample's budget.
    hostFailure={"evacuationConcurrency": 2, "evacuationTimeoutSeconds": 10},
    retry={"maxAttempts": 3, "initialBackoffSeconds": 5, "maxBackoffSeconds": 10},
)
ENDED = {"Finished", "Failed", "Ignored"}
EVENT = "c1"

# Applied once the first evacuation runs; returns when the fault has been dealt (a stopped
# component started again, or a timed outage handed to the simulator).
Fault = Callable[[Cloud], None]
# Starts the operator (or its replicas) of a run, on the stack that stops it; returns the one
# that acts first.
Starter = Callable[[contextlib.ExitStack, Cluster, str, Sim, Path], Operator]


@dataclass
class Run:
    seconds: float
    status: dict[str, Any]
    evacuations: dict[str, int]
    unfenced: dict[str, int]

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.evacuations.values() if n > 1)


@dataclass
class Row:
    """One line of the table: its recoveries and the figures printed for them."""

    name: str
    runs: list[Run] = field(default_factory=list)

    def report(self, baseline: list[float]) -> None:
        seconds = [run.seconds for run in self.runs] or [0.0]
        reference = statistics.median(baseline or seconds)
        extra = [s - reference for s in seconds]
        ends: dict[str, int] = {}
        for run in self.runs:
            end = f"{run.status.get('phase')}/{run.status.get('reason')}"
            ends[end] = ends.get(end, 0) + 1
        print(
            f"\nFAULT-MATRIX | {self.name} | {len(self.runs)} "
            f"| {sum(bool(r.status.get('attempts')) for r in self.runs)} "
            f"| {sum(r.status.get('phase') == 'Finished' for r in self.runs)} "
            f"| {sum(r.duplicates for r in self.runs)} "
            f"| {sum(sum(r.unfenced.values()) for r in self.runs)} "
            f"| {statistics.median(seconds):.1f} s "
            f"| {statistics.median(extra):+.1f} s | {max(extra):+.1f} s "
            f"| {', '.join(f'{k} x{n}' for k, n in sorted(ends.items()))} |",
            flush=True,
        )


def _status_or_none(cloud: Cloud) -> dict[str, Any] | None:
    try:
        return cloud.status("fev", EVENT)
    except (control_plane.ControlPlaneError, subprocess.TimeoutExpired):
        return None  # the API server is down or cannot reach etcd: the fault under test


def standalone(
    stack: contextlib.ExitStack, cluster: Cluster, namespace: str, sim: Sim, workdir: Path
) -> Operator:
    return stack.enter_context(
        running_operator(cluster.kubeconfig, namespace, sim.clouds_yaml, sim.cloud, workdir)
    )


def first_evacuation(cloud: Cloud) -> None:
    def moving() -> bool:
        status = cloud.status("fev", EVENT)
        assert status.get("phase") not in ENDED, f"ended before the fault: {status}"
        return any(m["status"] == "ongoing" for m in status.get("instances", []))

    wait_for("the first evacuation", moving, 60, 0.05)


def recover(
    cluster: Cluster,
    workdir: Path,
    fault: Fault | None,
    timeout: float,
    prepare: Callable[[Cloud], None] = lambda _cloud: None,
    *,
    spec: dict[str, Any] = TOPOLOGY,
    start: Starter = standalone,
    after: Callable[[Cloud], None] = lambda _cloud: None,
    strike_when: Callable[[Cloud], None] = first_evacuation,
) -> Run:
    """compute1 dies with six HA servers; `fault` strikes once `strike_when` returns (by
    default at the first evacuation); `after` looks at the cloud before it goes. Each run in a
    namespace, simulator and operator of its own, so no run inherits another's state."""
    workdir.mkdir(parents=True)
    namespace = f"f-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", namespace)
    with contextlib.ExitStack() as stack:
        sim: Sim = stack.enter_context(running_sim(spec, *SIM_ARGS))
        operator = start(stack, cluster, namespace, sim, workdir)
        cloud = Cloud(cluster, namespace, sim, operator)
        cloud.apply(SEGMENT, *(host(h["name"]) for h in HOSTS))
        prepare(cloud)
        sim.control("POST", "hosts/compute1/kill")
        began = time.monotonic()
        cloud.apply(host_failure(EVENT, "compute1"))
        if fault is not None:
            strike_when(cloud)
            fault(cloud)

        def ended() -> dict[str, Any] | None:
            status = _status_or_none(cloud)
            return status if status and status.get("phase") in ENDED else None

        try:
            status = wait_for(f"fev/{EVENT} to end", ended, timeout, 0.2)
        except AssertionError:
            print(cloud.operator.log()[-8000:])
            raise
        seconds = time.monotonic() - began
        counts = sim.control("GET", "evacuations")
        after(cloud)
        return Run(seconds, status, counts["evacuations"], counts["unfenced"])


def assert_recovered_once(run: Run) -> None:
    assert run.status["phase"] == "Finished", run.status
    assert sorted(run.evacuations.values()) == [1] * len(NAMES), run.evacuations
    assert not run.unfenced, run.unfenced


def assert_bounded_and_reported(run: Run) -> None:
    """Ended, with a reason a cloud operator can act on; nothing moved twice or unfenced."""
    assert run.status["phase"] in {"Finished", "Failed"}, run.status
    assert run.status.get("reason") and run.status.get("message"), run.status
    assert all(n == 1 for n in run.evacuations.values()), run.evacuations
    assert not run.unfenced, run.unfenced


@pytest.fixture(scope="module")
def baseline(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> list[float]:
    """Fault-free recoveries of the same scenario: what the rows' extra time is against."""
    row = Row("none (baseline)")
    for i in range(RUNS):
        run = recover(cluster, tmp_path_factory.mktemp("baseline") / str(i), None, 90)
        assert_recovered_once(run)
        row.runs.append(run)
    row.report([run.seconds for run in row.runs])
    return [run.seconds for run in row.runs]


@dataclass
class OwnPlane:
    plane: control_plane.ControlPlane
    cluster: Cluster


@pytest.fixture(scope="module")
def own_plane() -> Iterator[OwnPlane]:
    """A control plane of these tests' own, on other ports: the session's stays up for the
    tests that share it while this one is restarted and stopped."""
    with control_plane.running() as plane:
        yield OwnPlane(plane, Cluster("apiserver", plane.kubeconfig, plane.binaries["kubectl"]))


def matrix_row(
    name: str,
    cluster: Cluster,
    tmp_path: Path,
    baseline: list[float],
    fault: Fault | None,
    *,
    timeout: float,
    check: Callable[[Run], None] = assert_recovered_once,
    prepare: Callable[[Cloud], None] = lambda _cloud: None,
    **options: Any,
) -> None:
    """RUNS recoveries under `fault`, each checked; the figures printed whatever happened."""
    row = Row(name)
    try:
        for i in range(RUNS):
            run = recover(cluster, tmp_path / str(i), fault, timeout, prepare, **options)
            row.runs.append(run)
            check(run)
    finally:
        row.report(baseline)


def test_kube_apiserver_restarted_mid_recovery(
    own_plane: OwnPlane, tmp_path: Path, baseline: list[float]
) -> None:
    matrix_row(
        "kube-apiserver restarted",
        own_plane.cluster,
        tmp_path,
        baseline,
        lambda _cloud: own_plane.plane.restart_apiserver(),
        timeout=120,
    )


def test_etcd_restarted_mid_recovery(
    own_plane: OwnPlane, tmp_path: Path, baseline: list[float]
) -> None:
    matrix_row(
        "etcd restarted",
        own_plane.cluster,
        tmp_path,
        baseline,
        lambda _cloud: own_plane.plane.restart_etcd(),
        timeout=120,
    )


def test_kube_apiserver_unreachable_mid_recovery(
    own_plane: OwnPlane, tmp_path: Path, baseline: list[float]
) -> None:
    def outage(_cloud: Cloud) -> None:
        own_plane.plane.stop_apiserver()
        time.sleep(APISERVER_OUTAGE)  # the fault itself: the port stays closed this long
        own_plane.plane.start_apiserver()

    matrix_row(
        f"kube-apiserver unreachable {APISERVER_OUTAGE:.0f} s",
        own_plane.cluster,
        tmp_path,
        baseline,
        outage,
        timeout=120 + APISERVER_OUTAGE,
    )


def nova_outage(mode: str, seconds: float) -> Fault:
    def strike(cloud: Cloud) -> None:
        assert cloud.sim is not None
        cloud.sim.control("PUT", "faults", {"outage": {"mode": mode, "seconds": seconds}})

    return strike


def test_nova_answering_errors_slowly(
    cluster: Cluster, tmp_path: Path, baseline: list[float]
) -> None:
    def degrade(cloud: Cloud) -> None:
        assert cloud.sim is not None
        fault = {"error_rate": 0.2, "latency": 0.5, "status": 500}
        cloud.sim.control("PUT", "faults", {"routes": {"*": fault}})

    # From before the failure: every call of the recovery meets it, Keystone's included.
    matrix_row(
        "Nova 20 % HTTP 500, +500 ms",
        cluster,
        tmp_path,
        baseline,
        None,
        timeout=180,
        prepare=degrade,
    )


def test_nova_unreachable_mid_evacuation(
    cluster: Cluster, tmp_path: Path, baseline: list[float]
) -> None:
    matrix_row(
        f"Nova unreachable {NOVA_OUTAGE:.0f} s (refused)",
        cluster,
        tmp_path,
        baseline,
        nova_outage("refuse", NOVA_OUTAGE),
        timeout=150 + NOVA_OUTAGE,
        check=assert_bounded_and_reported,
    )


def test_rebuild_that_never_finishes(
    cluster: Cluster, tmp_path: Path, baseline: list[float]
) -> None:
    def stall_first(cloud: Cloud) -> None:
        assert cloud.sim is not None
        ids = {s.name: s.id for s in cloud.nova().compute.servers(all_projects=True)}
        cloud.sim.control("PUT", "faults", {"stall_evacuation": [ids[NAMES[0]]]})
        # This row's time is its policy's bound (move timeout, backoff, attempts), not the
        # operator's speed: the smallest bounds the schema allows keep it short.
        policy = {**SEGMENT["spec"]["hostFailure"], "evacuationTimeoutSeconds": 5}
        retry = {"maxAttempts": 2, "initialBackoffSeconds": 1, "maxBackoffSeconds": 1}
        cloud.apply(segment(hostFailure=policy, retry=retry))

    def stalled_once(run: Run) -> None:
        assert_bounded_and_reported(run)
        assert run.status["phase"] == "Failed", run.status
        # The stalled one is never evacuated again, whatever the retries: its rebuild runs.
        assert sorted(run.evacuations.values()) == [1] * len(NAMES), run.evacuations
        moves = {m["instanceName"]: m["status"] for m in run.status["instances"]}
        assert moves.pop(NAMES[0]) != "succeeded", run.status
        assert set(moves.values()) == {"succeeded"}, run.status

    matrix_row(
        "Nova rebuild never finishing",
        cluster,
        tmp_path,
        baseline,
        None,
        timeout=180,
        check=stalled_once,
        prepare=stall_first,
    )


def test_network_to_nova_cut(cluster: Cluster, tmp_path: Path, baseline: list[float]) -> None:
    matrix_row(
        f"network to Nova cut {NETWORK_CUT:.0f} s (hang)",
        cluster,
        tmp_path,
        baseline,
        nova_outage("hang", NETWORK_CUT),
        timeout=150 + NETWORK_CUT,
        check=assert_bounded_and_reported,
    )


def test_leader_frozen_past_its_lease(
    cluster: Cluster, tmp_path: Path, baseline: list[float]
) -> None:
    replicas: list[Operator] = []

    def two_replicas(
        stack: contextlib.ExitStack, cluster: Cluster, namespace: str, sim: Sim, workdir: Path
    ) -> Operator:
        replicas[:] = start_replicas(stack, cluster, namespace, sim, workdir)
        return replicas[0]

    def freeze(cloud: Cloud) -> None:
        leader, standby = replicas
        frozen = leader.process
        assert frozen is not None
        os.kill(frozen.pid, signal.SIGSTOP)
        try:
            wait_for("the standby to lead", lambda: STARTED in standby.log(), 30)
        finally:
            # Woken while the new leader recovers: the harshest moment, two that think
            # they lead. It must stop before it changes anything (exit 70).
            os.kill(frozen.pid, signal.SIGCONT)
        wait_for("the woken leader to exit", lambda: frozen.poll() is not None, 15)
        assert frozen.returncode == 70, leader.log()[-4000:]
        cloud.operator = standby

    matrix_row(
        "leader frozen past its Lease, resumed",
        cluster,
        tmp_path,
        baseline,
        freeze,
        timeout=120,
        start=two_replicas,
    )


CANARY_PASSWORD = f"canary-password-{secrets.token_hex(8)}"


def test_no_credential_shows_through_the_faults(
    cluster: Cluster, tmp_path: Path, baseline: list[float]
) -> None:
    """The clouds Secret's password, the Keystone tokens issued on it and the BMC Secret's
    credentials appear in no log line, Event, status or metric, while Nova errs, is cut off
    and a host is fenced through its BMC (every credential in use, every error path taken)."""
    spec = {
        **TOPOLOGY,
        "users": [
            {"name": "admin", "password": CANARY_PASSWORD, "project": "admin", "roles": ["admin"]}
        ],
    }

    def with_canary(
        stack: contextlib.ExitStack, cluster: Cluster, namespace: str, sim: Sim, workdir: Path
    ) -> Operator:
        sim.write_clouds_yaml(
            sim.clouds_yaml, user="admin", password=CANARY_PASSWORD, project="admin"
        )
        return standalone(stack, cluster, namespace, sim, workdir)

    def fenced_by_bmc_on_a_degraded_nova(cloud: Cloud) -> None:
        fenced = segment(**{k: v for k, v in SEGMENT["spec"].items() if k != "fencing"})
        fenced["spec"]["fencing"] = {
            "method": "redfish",
            # The emulator powers a system off 1 to 11 s after the request.
            "attempts": 2,
            "attemptTimeoutSeconds": 15,
        }
        bmc = {
            "address": lab.redfish_url,
            "system": lab.systems["compute1"],
            "credentialsSecret": "bmc-credentials",
        }
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "bmc-credentials"},
            "data": lab.secret_data,
        }
        cloud.apply(secret, fenced, host("compute1", bmc=bmc))
        assert cloud.sim is not None
        fault = {"error_rate": 0.2, "latency": 0.5, "status": 500}
        cloud.sim.control("PUT", "faults", {"routes": {"*": fault}})

    def nothing_shows(cloud: Cloud) -> None:
        assert cloud.sim is not None
        tokens = cloud.sim.control("GET", "tokens")["tokens"]
        assert tokens, "the operator never authenticated"
        assert lab.redfish_power("compute1") == "Off", "the BMC credentials were never used"
        canaries = [CANARY_PASSWORD, lab.password, lab.username, *tokens]
        canaries += [base64.b64encode(c.encode()).decode() for c in canaries]
        kubectl = cloud.cluster.kubectl
        shown = {
            "operator log": cloud.operator.log(),
            "Events": kubectl("get", "events", "-n", cloud.namespace, "-o", "json").stdout,
            "objects": kubectl("get", "masakari", "-n", cloud.namespace, "-o", "json").stdout,
            "metrics": cloud.operator.metrics(),
        }
        for where, text in shown.items():
            leaked = [c for c in canaries if c in text]
            assert not leaked, f"{len(leaked)} credential(s) in the {where}"

    with running_bmc_lab(["compute1"]) as lab:
        matrix_row(
            "credentials canary (BMC fencing, Nova 20 % 500, cut 10 s)",
            cluster,
            tmp_path,
            baseline,
            nova_outage("hang", min(NETWORK_CUT, 10.0)),
            timeout=240,
            check=assert_bounded_and_reported,
            prepare=fenced_by_bmc_on_a_degraded_nova,
            spec=spec,
            start=with_canary,
            after=nothing_shows,
        )

"""The fault matrix's storage rows (docs/reliability.md): etcd out of space mid-recovery, and
a FailureEvent's status past the size etcd takes. On a control plane of its own, whose etcd
has a small --quota-backend-bytes and --max-request-bytes (the defaults are 2 GiB and 1.5 MiB;
the behaviour is the same, the test only fills less).

What must hold: nothing is done that is not recorded first (no evacuation while writes are
refused, none twice), the operator says why it is stuck (a log line naming the cause, the
masakari_recoveries_blocked gauge by reason, the Blocked condition where a small write still
goes through) and does not crash, and the recovery resumes once an etcd operator has
reclaimed space (compaction, defragmentation, alarm disarmed). Prints a line of figures per
row, as tests/integration/test_faults.py does.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cluster
from tests.harness import control_plane
from tests.harness.operator import running_operator
from tests.harness.sim import running_sim
from tests.integration.operator_env import (
    Cloud,
    host,
    host_failure,
    segment,
    servers,
    topology,
    wait_for,
)
from tests.integration.test_faults import (
    EVENT,
    HOSTS,
    NAMES,
    SEGMENT,
    SIM_ARGS,
    OwnPlane,
    Row,
    assert_recovered_once,
    recover,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

QUOTA = 16 * 1024 * 1024
MAX_REQUEST = 128 * 1024
FILLER = "x" * (96 * 1024)  # under MAX_REQUEST: each fills, none is refused for its size
# Enough servers on the failed host that its status with their moves is past MAX_REQUEST.
CROWD = [f"crowd-{i:03d}" for i in range(600)]


@pytest.fixture(scope="module")
def small_etcd() -> Iterator[OwnPlane]:
    flags = (f"--quota-backend-bytes={QUOTA}", f"--max-request-bytes={MAX_REQUEST}")
    with control_plane.running(etcd_flags=flags) as plane:
        yield OwnPlane(plane, Cluster("apiserver", plane.kubeconfig, plane.binaries["kubectl"]))


def fill_etcd(
    plane: control_plane.ControlPlane, cluster: Cluster, namespace: str, room: int
) -> int:
    """ConfigMaps until etcd's database has less than `room` bytes left under its quota, or
    (room 0) until etcd raises its NOSPACE alarm; returns how many it took."""
    for i in range(QUOTA // len(FILLER) + 50):
        if room and int(plane.etcd("maintenance/status")["dbSize"]) > QUOTA - room:
            return i
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "filler-"}}
        document = json.dumps({**body, "data": {"x": FILLER}})
        result = cluster.kubectl("create", "-n", namespace, "-f", "-", stdin=document, check=False)
        if result.returncode:
            assert "database space exceeded" in result.stderr, result.stderr
            return i
    raise AssertionError("etcd took more than its quota")


def blocked_gauge(cloud: Cloud, reason: str) -> float:
    for line in cloud.operator.metrics().splitlines():
        if line.startswith(f'masakari_recoveries_blocked{{reason="{reason}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_etcd_out_of_space_mid_recovery(small_etcd: OwnPlane, tmp_path: Path) -> None:
    plane, cluster = small_etcd.plane, small_etcd.cluster
    baseline = recover(cluster, tmp_path / "baseline", None, 90)
    assert_recovered_once(baseline)
    Row("none (baseline, small etcd)", [baseline]).report([baseline.seconds])
    figures: dict[str, float] = {}

    def nearly_full(cloud: Cloud) -> None:
        # One move at a time, so that the fault lands with moves left to start; etcd filled
        # beforehand to a megabyte short of its quota, so that the rest fills in a second.
        policy = {**SEGMENT["spec"]["hostFailure"], "evacuationConcurrency": 1}
        cloud.apply(segment(hostFailure=policy, retry=SEGMENT["spec"]["retry"]))
        cluster.kubectl("create", "namespace", f"{cloud.namespace}-filler")
        figures["fillers"] = fill_etcd(plane, cluster, f"{cloud.namespace}-filler", 2**20)

    def out_of_space(cloud: Cloud) -> None:
        assert cloud.sim is not None
        filler_namespace = f"{cloud.namespace}-filler"
        figures["fillers"] += fill_etcd(plane, cluster, filler_namespace, 0)
        began = time.monotonic()
        wait_for(
            "the operator to say etcd is full",
            lambda: "EtcdSpaceExceeded" in cloud.operator.log(),
            60,
        )
        figures["said after"] = time.monotonic() - began
        wait_for("the blocked gauge", lambda: blocked_gauge(cloud, "EtcdSpaceExceeded") == 1, 30)
        before = cloud.sim.control("GET", "evacuations")["evacuations"]
        # Long enough for every move in flight to end and the operator to try again.
        time.sleep(10)
        after = cloud.sim.control("GET", "evacuations")["evacuations"]
        assert after == before, "an evacuation started while its move could not be recorded"
        assert cloud.operator.process is not None and cloud.operator.process.poll() is None
        # What an etcd operator does: free space (here the fillers), compact, defragment,
        # disarm the alarm.
        cluster.kubectl("delete", "configmap", "--all", "-n", filler_namespace)
        plane.reclaim_etcd_space()
        figures["reclaimed"] = time.monotonic()
        cluster.kubectl("delete", "namespace", filler_namespace, "--wait=false")
        figures["evacuations while full"] = sum(after.values()) - sum(before.values())

    row = Row("etcd out of space (NOSPACE alarm) mid-recovery")
    try:
        run = recover(cluster, tmp_path / "full", out_of_space, 180, nearly_full)
        # The end is seen by a poll every 0.2 s: this is a little over the real figure.
        figures["ended after"] = time.monotonic() - figures["reclaimed"]
        row.runs.append(run)
        assert_recovered_once(run)
        blocked = [c for c in run.status["conditions"] if c["type"] == "Blocked"]
        assert blocked and blocked[0]["status"] == "False", run.status
    finally:
        row.report([baseline.seconds])
        print(
            f"STORAGE | etcd filled with {figures.get('fillers', 0):.0f} ConfigMaps of 96 KiB "
            f"| refusal said after {figures.get('said after', -1):.1f} s "
            f"| evacuations started while full {figures.get('evacuations while full', -1):.0f} "
            f"| ended {figures.get('ended after', -1):.1f} s after space was reclaimed |",
            flush=True,
        )


def test_status_past_etcd_request_size(small_etcd: OwnPlane, tmp_path: Path) -> None:
    """compute1 dies with 606 servers: the status with their moves is past etcd's request
    size, so no move can be recorded and none may start. The operator says so on the object
    (the admission, already stored, is small), in the log and the gauge, and stays up."""
    cluster = small_etcd.cluster
    big = [{**h, "vcpus": 1024, "memory_mb": 524288, "disk_gb": 8000} for h in HOSTS]
    spec = topology(
        big,
        servers(NAMES, "compute1", metadata={"HA_Enabled": "True"})
        + servers(CROWD, "compute1", flavor="m1.tiny", metadata={"HA_Enabled": "True"}),
    )
    namespace = f"f-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", namespace)
    began = time.monotonic()
    with (
        running_sim(spec, *SIM_ARGS) as sim,
        running_operator(
            cluster.kubeconfig, namespace, sim.clouds_yaml, sim.cloud, tmp_path
        ) as operator,
    ):
        cloud = Cloud(cluster, namespace, sim, operator)
        cloud.apply(SEGMENT, *(host(h["name"]) for h in HOSTS))
        sim.control("POST", "hosts/compute1/kill")
        cloud.apply(host_failure(EVENT, "compute1"))

        def condition() -> dict[str, str] | None:
            status = cloud.status("fev", EVENT)
            blocked = [c for c in status.get("conditions", []) if c["type"] == "Blocked"]
            return blocked[0] if blocked and blocked[0]["reason"] == "StatusTooLarge" else None

        try:
            blocked = wait_for("the Blocked condition", condition, 90)
            said = time.monotonic() - began
            wait_for("the blocked gauge", lambda: blocked_gauge(cloud, "StatusTooLarge") == 1, 30)
            time.sleep(5)  # a few more of the operator's tries
            evacuations = sim.control("GET", "evacuations")["evacuations"]
            status = cloud.status("fev", EVENT)
            assert status["phase"] == "Running", status
            assert "too large" in blocked["message"], blocked
            assert not evacuations, "an evacuation started whose move was never recorded"
            assert "StatusTooLarge" in operator.log()
            assert operator.process is not None and operator.process.poll() is None
        except AssertionError:
            print(operator.log()[-8000:])
            raise
    print(
        f"STORAGE | status past etcd's {MAX_REQUEST // 1024} KiB request limit "
        f"({len(NAMES) + len(CROWD)} servers) | said on the object after {said:.1f} s "
        f"| evacuations {sum(evacuations.values())} | operator up |",
        flush=True,
    )

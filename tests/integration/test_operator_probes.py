"""Two operator replicas electing a leader on the real API server, as the Deployment runs them:
the standby answers its probes and is scraped (a rolling update and a PodDisruptionBudget can
count it), `masakari_leader` says which one leads, and a leader stopped with SIGTERM hands the
Lease over at once instead of leaving it to expire."""

from __future__ import annotations

import contextlib
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import Cluster
from tests.harness.operator import STARTED, Operator
from tests.harness.sim import Sim, running_sim
from tests.integration.operator_env import wait_for

pytestmark = pytest.mark.integration


def replicas(
    stack: contextlib.ExitStack,
    cluster: Cluster,
    namespace: str,
    sim: Sim,
    tmp_path: Path,
    env: dict[str, str] | None = None,
) -> tuple[Operator, Operator]:
    started = []
    for i in (1, 2):
        replica = Operator(
            cluster.kubeconfig,
            namespace,
            sim.clouds_yaml,
            sim.cloud,
            tmp_path / f"replica-{i}.log",
            env or {},
            standalone=False,
        )
        stack.callback(replica.stop)
        replica.start()
        started.append(replica)
    leader, standby = started
    assert STARTED in leader.log() and STARTED not in standby.log()
    return leader, standby


def get(operator: Operator, path: str) -> tuple[int, str]:
    url = f"http://127.0.0.1:{operator.metrics_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def leader_gauge(operator: Operator) -> float:
    _, text = get(operator, "/metrics")
    values = [line.split()[1] for line in text.splitlines() if line.startswith("masakari_leader{")]
    assert values, text
    return float(values[0])


def lease_holder(cluster: Cluster, namespace: str) -> str:
    return cluster.kubectl(
        "get", "lease", "masakari-operator", "-n", namespace,
        "-o", "jsonpath={.spec.holderIdentity}",
    ).stdout  # fmt: skip


def test_a_standby_is_ready_and_scraped_and_the_leader_gauge_says_which_leads(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    with contextlib.ExitStack() as stack:
        sim = stack.enter_context(running_sim())
        leader, standby = replicas(stack, cluster, namespace, sim, tmp_path)
        assert get(leader, "/healthz")[0] == 200 and get(standby, "/healthz")[0] == 200
        # Within a lease duration (3 s here) of its start, the standby has been answered.
        wait_for("the leader ready", lambda: get(leader, "/readyz")[0] == 200, 10)
        wait_for("the standby ready", lambda: get(standby, "/readyz")[0] == 200, 10)
        assert leader_gauge(leader) == 1
        assert leader_gauge(standby) == 0
        assert STARTED not in standby.log()  # Ready, and still acting on nothing


def test_a_leader_stopped_with_sigterm_releases_the_lease_at_once(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    # A long Lease: a standby that took over by expiry would need 30 s at least.
    duration = 30.0
    with contextlib.ExitStack() as stack:
        sim = stack.enter_context(running_sim())
        env = {"MASAKARI_LEASE_DURATION": str(duration)}
        leader, standby = replicas(stack, cluster, namespace, sim, tmp_path, env)
        assert lease_holder(cluster, namespace)

        leader.stop()  # SIGTERM, as the kubelet sends on a rolling update or a drain
        stopped = time.monotonic()
        assert leader.process is not None and leader.process.returncode == 0, leader.log()
        assert lease_holder(cluster, namespace) == "", "the Lease still names the stopped leader"
        assert "released lease" in leader.log()

        # The standby tries every third of the duration: it leads at its next attempt.
        wait_for("the standby to lead", lambda: STARTED in standby.log(), duration / 3 + 5)
        assert time.monotonic() - stopped < duration
        wait_for("the new leader's gauge", lambda: leader_gauge(standby) == 1, 10)
        assert lease_holder(cluster, namespace) in standby.log()

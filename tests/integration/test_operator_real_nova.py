"""The host-failure recovery against real Nova 34 (fake virt driver): same operator, same
FailureEvent, real nova-api, conductor, scheduler and computes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cluster
from tests.harness.operator import running_operator
from tests.integration.operator_env import Cloud, host, host_failure, iter_moves, segment

pytestmark = [pytest.mark.integration, pytest.mark.real_nova]


def test_host_failure_recovered_on_real_nova(
    cluster: Cluster, namespace: str, real_nova: Any, tmp_path: Path
) -> None:
    real_nova.reset()
    failed, *others = real_nova.hosts
    active = real_nova.boot_servers(failed, 2, metadata={"HA_Enabled": "True"})
    stopped = real_nova.boot_servers(failed, 1, stopped=True)
    with running_operator(
        cluster.kubeconfig, namespace, real_nova.clouds_yaml, real_nova.cloud, tmp_path
    ) as operator:
        cloud = Cloud(cluster, namespace, None, operator)
        cloud.apply(segment(), *(host(h) for h in real_nova.hosts))
        for name in real_nova.hosts:
            cloud.wait_phase("mhost", name, {"Active"}, 60)
        real_nova.kill_host(failed)
        begin = time.monotonic()
        cloud.apply(host_failure("real-1", failed))
        status = cloud.wait_phase("fev", "real-1", {"Finished", "Failed", "Ignored"}, 300)
        elapsed = time.monotonic() - begin
        assert status["phase"] == "Finished", status
        print(f"\nreal Nova: 3 servers recovered in {elapsed:.1f}s (polling included)")

    moves = {name: (state, dest) for name, state, dest in iter_moves(status)}
    assert all(state == "succeeded" and dest in others for state, dest in moves.values()), moves
    compute = real_nova.compute
    for server_id in active + stopped:
        server = compute.get_server(server_id)
        assert server.compute_host in others
        assert server.status == ("SHUTOFF" if server_id in stopped else "ACTIVE")
        assert not server.is_locked
        assert real_nova.evacuation_count(server_id) == 1

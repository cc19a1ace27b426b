"""The placement plan against real Nova 34 and its Placement: the plan's targets are where the
servers land, and a host of another segment gets none of them, though Nova's scheduler would
spread onto it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cluster
from tests.harness.operator import running_operator
from tests.integration.operator_env import Cloud, host, host_failure, segment

pytestmark = [pytest.mark.integration, pytest.mark.real_nova]


def test_servers_land_where_the_plan_put_them_inside_the_segment(
    cluster: Cluster, namespace: str, real_nova: Any, tmp_path: Path
) -> None:
    real_nova.reset()
    failed, inside, outside = real_nova.hosts
    booted = real_nova.boot_servers(failed, 3)
    with running_operator(
        cluster.kubeconfig, namespace, real_nova.clouds_yaml, real_nova.cloud, tmp_path
    ) as operator:
        cloud = Cloud(cluster, namespace, None, operator)
        cloud.apply(
            segment("rack-a"),
            segment("rack-b"),
            host(failed, "rack-a"),
            host(inside, "rack-a"),
            host(outside, "rack-b"),
        )
        for name in real_nova.hosts:
            cloud.wait_phase("mhost", name, {"Active"}, 60)
        real_nova.kill_host(failed)
        cloud.apply(host_failure("real-plan", failed))
        status = cloud.wait_phase("fev", "real-plan", {"Finished", "Failed", "Ignored"}, 300)
    assert (status["phase"], status["reason"]) == ("Finished", "Recovered"), status
    assert status["placement"]["candidateHosts"] == 1
    for move in status["instances"]:
        assert move["targetHost"] == move["destinationHost"] == inside, move
        server = real_nova.compute.get_server(move["instanceUuid"])
        assert server.compute_host == inside and server.status == "ACTIVE"
    assert sorted(m["instanceUuid"] for m in status["instances"]) == sorted(booted)
    assert all(real_nova.evacuation_count(s) == 1 for s in booted)

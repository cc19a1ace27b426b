"""A real Prometheus scrapes the running operator and evaluates the shipped rules while a
recovery fails: the first failure after the operator's start raises MasakariRecoveryFailed.

Prometheus scrapes the fresh operator before anything fails, as it would after a rollout. A
series that first appeared at 1 (the failure's own increment) would show no increase, and the
alert would stay silent: the operator exports the series at 0 from its start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.harness.prometheus import JOB, running_prometheus
from tests.integration.operator_env import host, host_failure, segment, topology, wait_for

pytestmark = pytest.mark.integration

COMPUTES = [{"name": f"compute{i}", "vcpus": 8} for i in (1, 2, 3)]


def test_the_first_failed_recovery_after_a_start_raises_the_alert(
    cloud_factory: Any, tmp_path: Path
) -> None:
    spec = topology(
        COMPUTES,
        [{"name": "b", "host": "compute1", "id": "bbbb", "metadata": {"HA_Enabled": "True"}}],
    )
    cloud = cloud_factory(spec)
    target = f"127.0.0.1:{cloud.operator.metrics_port}"
    with running_prometheus([target], tmp_path / "prometheus") as prometheus:
        scraped = f'count_over_time(up{{job="{JOB}"}}[1m]) >= 3'
        wait_for("three scrapes of the operator", lambda: prometheus.query(scraped), 30)
        assert prometheus.query(f'masakari_leader{{job="{JOB}"}} == 1')

        cloud.apply(
            segment(retry={"maxAttempts": 1, "initialBackoffSeconds": 1}),
            *(host(h["name"]) for h in COMPUTES),
        )
        cloud.sim.control("PUT", "faults", {"fail_evacuation": ["bbbb"]})
        cloud.sim.control("POST", "hosts/compute1/kill")
        cloud.apply(host_failure("c1", "compute1"))
        status = cloud.wait_phase("fev", "c1", {"Finished", "Failed", "Ignored"})
        assert status["phase"] == "Failed", status

        wait_for(
            "MasakariRecoveryFailed to fire",
            lambda: "MasakariRecoveryFailed" in prometheus.firing(),
            30,
        )
        assert not {"MasakariNoLeader", "MasakariOperatorAbsent"} & prometheus.firing()

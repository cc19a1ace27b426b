"""Fixtures of the operator tests: a simulator cloud and the operator on it, per test."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cluster
from tests.harness.masakari_api import ApiCloud, api_cloud
from tests.harness.operator import running_operator
from tests.harness.sim import running_sim
from tests.integration.operator_env import Cloud


@pytest.fixture
def cloud_factory(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[Any]:
    """make(topology, env=..., sim_args=...) -> Cloud: a simulator with that topology and an
    operator serving this test's namespace; both stopped after the test."""
    with contextlib.ExitStack() as stack:

        def make(
            spec: dict[str, Any],
            env: dict[str, str] | None = None,
            sim_args: tuple[str, ...] = ("--evacuation-seconds", "0.3"),
        ) -> Cloud:
            sim = stack.enter_context(running_sim(spec, "--service-down-time", "2", *sim_args))
            operator = stack.enter_context(
                running_operator(
                    cluster.kubeconfig, namespace, sim.clouds_yaml, sim.cloud, tmp_path, env
                )
            )
            return Cloud(cluster, namespace, sim, operator)

        yield make
        # pytest shows this only when the test failed.
        print((tmp_path / "operator.log").read_text(errors="replace")[-8000:])


@pytest.fixture
def api_env(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[ApiCloud]:
    """A simulator whose catalog lists `masakari-operator api` (serving this test's
    namespace) as instance-ha, and that API; both stopped after the test."""
    with api_cloud(cluster.kubeconfig, namespace, tmp_path) as ready:
        try:
            yield ready
        finally:
            print(ready.api.log()[-6000:])

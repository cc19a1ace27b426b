"""Selection by image against real Nova 34 and real Glance 33: an instance booted from an image
tagged `amphora` stays on the failed host, its neighbours from another image are evacuated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cluster
from tests.harness.operator import running_operator
from tests.integration.operator_env import Cloud, host, host_failure, segment

pytestmark = [pytest.mark.integration, pytest.mark.real_nova]


def test_an_amphora_stays_where_it_is_and_the_others_are_evacuated(
    cluster: Cluster, namespace: str, real_nova: Any, tmp_path: Path
) -> None:
    real_nova.reset()
    failed, inside, outside = real_nova.hosts
    amphora_image = real_nova.create_image({"role": "amphora"}, ["amphora"])
    [amphora] = real_nova.boot_servers(failed, 1, image=amphora_image)
    others = real_nova.boot_servers(failed, 2)
    with running_operator(
        cluster.kubeconfig, namespace, real_nova.clouds_yaml, real_nova.cloud, tmp_path
    ) as operator:
        cloud = Cloud(cluster, namespace, None, operator)
        cloud.apply(
            segment("rack-a", hostFailure={"excludeImageTags": ["amphora"]}),
            segment("rack-b"),
            host(failed, "rack-a"),
            host(inside, "rack-a"),
            host(outside, "rack-b"),
        )
        for name in real_nova.hosts:
            cloud.wait_phase("mhost", name, {"Active"}, 60)
        real_nova.kill_host(failed)
        cloud.apply(host_failure("real-image", failed))
        status = cloud.wait_phase("fev", "real-image", {"Finished", "Failed", "Ignored"}, 300)
    assert (status["phase"], status["reason"]) == ("Finished", "Recovered"), status
    moves = {m["instanceUuid"]: m for m in status["instances"]}
    print({k: (m["status"], m.get("destinationHost"), m.get("message")) for k, m in moves.items()})
    assert moves[amphora]["status"] == "ignored"
    assert moves[amphora]["message"] == (
        f"image {amphora_image} has tag amphora (excludeImageTags)"
    )
    assert real_nova.evacuation_count(amphora) == 0
    assert real_nova.compute.get_server(amphora).compute_host == failed
    for server_id in others:
        assert moves[server_id]["destinationHost"] == inside, moves[server_id]
        assert real_nova.compute.get_server(server_id).compute_host == inside

"""The placement plan against real Nova 34, its Placement and Glance 33: the plan's targets are
where the servers land, and a host of another segment gets none of them, though Nova's
scheduler would spread onto it; an instance booted from an image tagged `amphora` stays on the
failed host while its neighbours from another image are evacuated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cluster
from tests.harness.operator import running_operator
from tests.integration.operator_env import Cloud, host, host_failure, segment

pytestmark = [pytest.mark.integration, pytest.mark.real_nova]


def recover_in_rack_a(
    cluster: Cluster,
    namespace: str,
    real_nova: Any,
    tmp_path: Path,
    event: str,
    **rack_a: Any,
) -> dict[str, Any]:
    """The lab's first host fails; it and the second are rack-a (`rack_a`: its spec), the
    third is rack-b. The event's status once it ended."""
    failed, inside, outside = real_nova.hosts
    with running_operator(
        cluster.kubeconfig, namespace, real_nova.clouds_yaml, real_nova.cloud, tmp_path
    ) as operator:
        cloud = Cloud(cluster, namespace, None, operator)
        cloud.apply(
            segment("rack-a", **rack_a),
            segment("rack-b"),
            host(failed, "rack-a"),
            host(inside, "rack-a"),
            host(outside, "rack-b"),
        )
        for name in real_nova.hosts:
            cloud.wait_phase("mhost", name, {"Active"}, 60)
        real_nova.kill_host(failed)
        cloud.apply(host_failure(event, failed))
        return cloud.wait_phase("fev", event, {"Finished", "Failed", "Ignored"}, 300)


def test_servers_land_where_the_plan_put_them_inside_the_segment(
    cluster: Cluster, namespace: str, real_nova: Any, tmp_path: Path
) -> None:
    real_nova.reset()
    failed, inside, _ = real_nova.hosts
    booted = real_nova.boot_servers(failed, 3)
    status = recover_in_rack_a(cluster, namespace, real_nova, tmp_path, "real-plan")
    assert (status["phase"], status["reason"]) == ("Finished", "Recovered"), status
    assert status["placement"]["candidateHosts"] == 1
    for move in status["instances"]:
        assert move["targetHost"] == move["destinationHost"] == inside, move
        server = real_nova.compute.get_server(move["instanceUuid"])
        assert server.compute_host == inside and server.status == "ACTIVE"
    assert sorted(m["instanceUuid"] for m in status["instances"]) == sorted(booted)
    assert all(real_nova.evacuation_count(s) == 1 for s in booted)


def test_an_amphora_stays_where_it_is_and_the_others_are_evacuated(
    cluster: Cluster, namespace: str, real_nova: Any, tmp_path: Path
) -> None:
    real_nova.reset()
    failed, inside, _ = real_nova.hosts
    amphora_image = real_nova.create_image({"role": "amphora"}, ["amphora"])
    [amphora] = real_nova.boot_servers(failed, 1, image=amphora_image)
    others = real_nova.boot_servers(failed, 2)
    status = recover_in_rack_a(
        cluster,
        namespace,
        real_nova,
        tmp_path,
        "real-image",
        hostFailure={"excludeImageTags": ["amphora"]},
    )
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

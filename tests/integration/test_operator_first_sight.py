"""Ended FailureEvents the operator first sees already ended (restored from a backup, made by
a migration, left by an earlier installation) are history: it never writes them. Patching
each once on sight was a storm at scale (docs/scale.md, "first sight": 5,000 concurrent
PATCHes, 29,000 retries, 1.9 GB)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Cluster
from tests.integration.operator_env import host, segment, topology
from tests.integration.test_operator_retention import HOSTS, process_failure

pytestmark = pytest.mark.integration
ENDED = 30  # over three hosts: under retention's keepPerHost, so none is deleted meanwhile


def versions(cluster: Cluster, namespace: str) -> dict[str, str]:
    out = cluster.kubectl("get", "fev", "-n", namespace, "-o", "json").stdout
    return {
        i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in json.loads(out)["items"]
    }


def test_events_first_seen_ended_are_never_written(
    cluster: Cluster, namespace: str, cloud_factory: Any
) -> None:
    ended = [
        process_failure(f"old-{i}", f"compute{1 + i % 3}", hours_ago=1 + i / 10)
        for i in range(ENDED)
    ]
    cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": ended}),
    )
    finished = json.dumps({"status": {"phase": "Finished", "reason": "Recovered"}})
    for event in ended:
        cluster.kubectl(
            "patch", "fev", event["metadata"]["name"], "-n", namespace, "--subresource=status",
            "--type=merge", "-p", finished,
        )  # fmt: skip
    before = versions(cluster, namespace)

    cloud = cloud_factory(topology(HOSTS, []))
    cloud.apply(segment(), *(host(h["name"]) for h in HOSTS))
    # A report made now is handled as ever: once it ends, the operator has seen the others.
    cloud.apply(process_failure("new", "compute1", hours_ago=0))
    cloud.wait_phase("fev", "new", {"Finished"}, 60)
    labels = cloud.get("fev", "new")["metadata"].get("labels", {})
    assert labels.get("masakari.dev/host") == "compute1", labels

    after = versions(cluster, namespace)
    written = sorted(name for name, version in before.items() if after.get(name) != version)
    assert not written, f"{len(written)} of {ENDED} ended events written: {written[:5]}"

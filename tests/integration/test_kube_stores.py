"""The two stores on a real kube-apiserver: the recoveries' (KubeStore, fresh reads, the open
events selected by status.phase at the server) and the passes' (CachedStore, from watches):
the same answers, and the cache following changes made around it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from controller.drivers.kube import Kube, load_client
from controller.drivers.kube_cache import CachedStore
from controller.drivers.kube_store import KubeStore
from tests.conftest import Cluster
from tests.integration.operator_env import host, host_failure
from tests.integration.test_crds_on_apiserver import VM_PAYLOAD

pytestmark = pytest.mark.integration
INSTANCE_A, INSTANCE_B = "a" * 32, "b" * 32
VM_EVENTS = {"vm-a1": INSTANCE_A, "vm-a2": INSTANCE_A, "vm-b": INSTANCE_B}
PHASES = {"e-new": None, "e-run": "Running", "e-err": "Error", "e-fin": "Finished",
          "e-ign": "Ignored", "e-fail": "Failed"}  # fmt: skip


def _seed(cluster: Cluster, namespace: str) -> None:
    documents = [host("c1"), host("c2", "other")]
    for name in PHASES:
        documents.append(host_failure(name, "c1"))
    documents.append(host_failure("e-c2", "c2"))
    for name, instance in VM_EVENTS.items():
        document = host_failure(name, "c1")
        document["spec"].update(type="VM", payload={**VM_PAYLOAD, "instance_uuid": instance})
        documents.append(document)
    for document in documents:
        cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(document))
    for name, phase in PHASES.items():
        if phase is not None:
            _set_phase(cluster, namespace, name, phase)


def _set_phase(cluster: Cluster, namespace: str, name: str, phase: str) -> None:
    cluster.kubectl(
        "patch", "failureevent", name, "-n", namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps({"status": {"phase": phase}}),
    )  # fmt: skip


async def _until(what: str, probe: Callable[[], Awaitable[bool]], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not await probe():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {seconds:.0f}s")
        await asyncio.sleep(0.05)


def test_both_stores_answer_alike_and_the_cache_follows(cluster: Cluster, namespace: str) -> None:
    _seed(cluster, namespace)

    async def scenario() -> dict[str, Any]:
        kube = Kube(load_client(str(cluster.kubeconfig)))
        direct = KubeStore(kube)
        cached = CachedStore(direct)
        try:

            async def names(store: Any, **query: Any) -> set[str]:
                return {e.name for e in await store.failure_events(namespace, **query)}

            async def open_in_memory() -> set[str]:
                return {e.name for e in await cached.open_events(namespace)}

            opened = await names(direct, open_only=True)
            of_c1 = await names(direct, host="c1", open_only=True)
            of_a = await names(direct, instance=INSTANCE_A)
            await names(cached)  # the first read starts the watches, waits for their lists
            cache = cached._namespaces[namespace]

            async def serving() -> bool:
                return cache.serving()

            await _until("the cache serving", serving)
            same = {
                "open": await open_in_memory() == opened,
                "c1": await names(cached, host="c1") == await names(direct, host="c1"),
                "all": await names(cached) == await names(direct),
                "segment": [h.name for h in await cached.hosts(namespace, "other")] == ["c2"],
            }
            _set_phase(cluster, namespace, "e-run", "Finished")

            async def seen() -> bool:
                return "e-run" not in await open_in_memory()

            await _until("a status change reaching the cache", seen)
            cluster.kubectl("delete", "failureevent", "e-new", "-n", namespace)

            async def gone() -> bool:
                return "e-new" not in await names(cached)

            await _until("a deletion reaching the cache", gone)
            return {"opened": opened, "of_c1": of_c1, "of_a": of_a, "same": same}
        finally:
            await cached.close()

    found = asyncio.run(scenario())
    assert found["opened"] == {"e-new", "e-run", "e-err", "e-c2", *VM_EVENTS}
    assert found["of_c1"] == {"e-new", "e-run", "e-err", *VM_EVENTS}
    assert found["of_a"] == {"vm-a1", "vm-a2"}
    assert all(found["same"].values()), found["same"]


def test_hosts_are_listed_no_older_than_this_process_wrote_them(
    cluster: Cluster, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Host list after this process wrote a Host is a snapshot at that write or newer (not a
    quorum read, which waits for the watch cache) and holds the write: the storm gate counts
    the service holds it reads there. Paged, and in a namespace not written, a quorum read."""
    for name in ("c1", "c2", "c3"):
        cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(host(name)))
    monkeypatch.setattr("controller.drivers.kube.LIST_PAGE", 2)

    async def scenario() -> dict[str, Any]:
        kube = Kube(load_client(str(cluster.kubeconfig)))
        sent: list[dict[str, Any]] = []
        listing = kube._objects.list_namespaced_custom_object

        def recorded(*args: Any, **kwargs: Any) -> Any:
            sent.append(kwargs)
            return listing(*args, **kwargs)

        kube._objects.list_namespaced_custom_object = recorded  # type: ignore[method-assign]
        store = KubeStore(kube)
        before = await store.hosts(namespace, "seg")
        unwritten = list(sent)
        sent.clear()
        await store.hold_host_service(namespace, "c3", "e1")
        written = (await kube.get("hosts", namespace, "c3"))["metadata"]["resourceVersion"]
        after = await store.hosts(namespace, "seg")
        return {
            "before": [h.name for h in before],
            "unwritten": unwritten,
            "after": {h.name: sorted(h.status.service_holds) for h in after},
            "sent": sent,
            "written": written,
        }

    found = asyncio.run(scenario())
    assert found["before"] == ["c1", "c2", "c3"]
    assert all("resource_version" not in call for call in found["unwritten"])
    assert found["after"] == {"c1": [], "c2": [], "c3": ["e1"]}
    first, second = found["sent"]
    assert first["resource_version"] == found["written"]
    assert first["resource_version_match"] == "NotOlderThan"
    assert "resource_version" not in second and second["_continue"]

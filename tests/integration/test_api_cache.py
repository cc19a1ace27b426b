"""The API's reads from memory on a real kube-apiserver: its own writes read back at once,
changes made around it (kubectl) seen within seconds, and recovery after the API server
restarts (its watches broken, their resourceVersions possibly expired)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controller.api.contents import Contents
from controller.api.faults import ApiFault
from controller.api.store import Store
from controller.drivers import informer
from controller.drivers.kube import PLURAL, Kube, load_client
from tests.conftest import Cluster
from tests.harness import control_plane
from tests.harness.masakari_api import ApiCloud, api_cloud
from tests.integration.api_env import call
from tests.integration.operator_env import host_failure, segment
from tests.integration.test_api_errors import notification, setup_segment

pytestmark = pytest.mark.integration
#: A change made around the API reaches it through a watch: milliseconds when all is well.
#: After an API server restart, the informer's backoff (at most 30 s) comes on top.
SEEN_WITHIN = 10.0
RECOVERED_WITHIN = 90.0


def eventually(what: str, probe: Callable[[], Any], seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {seconds:.0f}s")
        time.sleep(0.1)


def listed(cloud: ApiCloud, token: str) -> dict[str, dict[str, Any]]:
    status, _, body = call(cloud, "GET", "/v1/notifications?limit=1000", token=token)
    assert status == 200, body
    return {item["notification_uuid"]: item for item in body["notifications"]}


def ready(cloud: ApiCloud) -> dict[str, Any]:
    status, _, body = call(cloud, "GET", "/readyz")
    assert status in (200, 503), body
    return dict(body) if status == 200 else {}


def test_own_writes_are_read_back_at_once(api_env: ApiCloud) -> None:
    token = api_env.token()
    seg = setup_segment(api_env, token, "compute1", "compute2")
    assert eventually("readiness", lambda: ready(api_env), SEEN_WITHIN)["ready"]
    # No waiting between a write and the reads that follow it (the segment is free to change
    # until the first notification).
    hosts = f"/v1/segments/{seg['uuid']}/hosts"
    [second] = [h for h in call(api_env, "GET", hosts, token=token)[2]["hosts"]
                if h["name"] == "compute2"]  # fmt: skip
    status, _, updated = call(
        api_env, "PUT", f"{hosts}/{second['uuid']}", {"host": {"reserved": True}}, token=token
    )
    assert status == 200, updated
    shown = call(api_env, "GET", f"{hosts}/{second['uuid']}", token=token)[2]["host"]
    assert shown["reserved"] is True
    assert call(api_env, "DELETE", f"{hosts}/{second['uuid']}", token=token)[0] == 204
    assert call(api_env, "GET", f"{hosts}/{second['uuid']}", token=token)[0] == 404
    for number in range(5):
        body = notification("compute1", event="STOPPED", process_name=f"p{number}")
        status, _, answer = call(api_env, "POST", "/v1/notifications", body, token=token)
        assert status == 202, answer
        made = answer["notification"]
        status, _, page = call(api_env, "GET", "/v1/notifications?limit=1", token=token)
        assert [n["notification_uuid"] for n in page["notifications"]] == [
            made["notification_uuid"]
        ]
        status, _, shown = call(
            api_env, "GET", f"/v1/notifications/{made['notification_uuid']}", token=token
        )
        assert status == 200 and shown["notification"]["id"] == made["id"], shown
        # The duplicate check reads the same memory: the report just made is its duplicate.
        status, _, again = call(api_env, "POST", "/v1/notifications", body, token=token)
        assert status == 409, again


def test_changes_made_around_the_api_are_seen_within_seconds(
    cluster: Cluster, api_env: ApiCloud
) -> None:
    token = api_env.token()
    seg = setup_segment(api_env, token, "compute1")
    namespace = api_env.namespace
    report = host_failure("from-kubectl", "compute1")
    made = json.loads(
        cluster.kubectl(
            "create", "-n", namespace, "-o", "json", "-f", "-", stdin=json.dumps(report)
        ).stdout
    )
    uid = made["metadata"]["uid"]
    found = eventually("an event made by kubectl", lambda: listed(api_env, token).get(uid), 10)
    assert isinstance(found["id"], int) and found["status"] == "new"
    cluster.kubectl(
        "patch", "fev", "from-kubectl", "-n", namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps({"status": {"phase": "Running"}}),
    )  # fmt: skip
    eventually(
        "its status changed by kubectl",
        lambda: (
            call(api_env, "GET", f"/v1/notifications/{uid}", token=token)[2]
            .get("notification", {})
            .get("status")
            == "running"
        ),
        SEEN_WITHIN,
    )
    # The segment is under recovery now: the API refuses to change it, as Masakari does.
    status, _, refused = call(
        api_env, "PUT", f"/v1/segments/{seg['uuid']}", {"segment": {"description": "x"}},
        token=token,
    )  # fmt: skip
    assert status == 409, refused
    cluster.kubectl("patch", "mhost", "compute1", "-n", namespace, "--type=merge",
                    "-p", json.dumps({"spec": {"onMaintenance": True}}))  # fmt: skip
    hosts = f"/v1/segments/{seg['uuid']}/hosts"
    eventually(
        "maintenance set by kubectl",
        lambda: call(api_env, "GET", hosts, token=token)[2]["hosts"][0]["on_maintenance"],
        SEEN_WITHIN,
    )
    cluster.kubectl("delete", "fev", "from-kubectl", "-n", namespace)
    eventually(
        "the event deleted by kubectl gone",
        lambda: call(api_env, "GET", f"/v1/notifications/{uid}", token=token)[0] == 404,
        SEEN_WITHIN,
    )
    assert uid not in listed(api_env, token)


def test_the_cache_recovers_after_the_api_server_restarts(tmp_path: Path) -> None:
    with control_plane.running() as plane:
        plane.kubectl("create", "namespace", "restarted")
        with api_cloud(plane.kubeconfig, "restarted", tmp_path) as cloud:
            try:
                recover_after_restart(plane, cloud)
            finally:
                # pytest shows this only when the test failed.
                print(cloud.api.log()[-6000:])
                print(plane.log_tail("kube-apiserver"))


def recover_after_restart(plane: control_plane.ControlPlane, cloud: ApiCloud) -> None:
    token = cloud.token()
    setup_segment(cloud, token, "compute1")
    eventually("readiness", lambda: ready(cloud), SEEN_WITHIN)
    before = set(listed(cloud, token))
    plane.restart_apiserver()
    report = host_failure("after-restart", "compute1")
    made = json.loads(
        plane.kubectl(
            "create", "-n", "restarted", "-o", "json", "-f", "-",
            stdin=json.dumps(report),
        ).stdout
    )  # fmt: skip
    uid = made["metadata"]["uid"]
    eventually(
        "an event made after the restart",
        lambda: uid in listed(cloud, token),
        RECOVERED_WITHIN,
    )
    body = notification("compute1", event="STOPPED", process_name="nova-compute")
    status, _, answer = call(cloud, "POST", "/v1/notifications", body, token=token)
    assert status == 202, answer
    after = set(listed(cloud, token))
    assert after == before | {uid, answer["notification"]["notification_uuid"]}
    state = ready(cloud)
    assert state["ready"], state
    print("readiness after the restart:", state)


def test_watches_the_api_server_ends_resume_from_their_version_losing_nothing(
    cluster: Cluster, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Watches of 2 s instead of 4-5 minutes: the test's changes span several of them.
    monkeypatch.setattr(informer, "WATCH_SECONDS", (2, 2))
    kube = Kube(load_client(str(cluster.kubeconfig)))

    async def scenario() -> tuple[set[str], int, bool]:
        contents = Contents()
        watcher = informer.Informer(kube, namespace, PLURAL.failure_events, contents)
        watcher.start()
        await asyncio.wait_for(watcher.synced.wait(), SEEN_WITHIN)
        listed_at = int(watcher.version)
        for number in range(6):
            await kube.create(
                PLURAL.failure_events, namespace, host_failure(f"ev{number}", "compute1")
            )
            await asyncio.sleep(1)
        await kube.delete(PLURAL.failure_events, namespace, "ev0")
        wanted = {f"ev{number}" for number in range(1, 6)}
        for _ in range(int(SEEN_WITHIN * 10)):
            if set(contents.objects[PLURAL.failure_events]) == wanted:
                break
            await asyncio.sleep(0.1)
        # A watch ended by the server and opened again from a later version than the list's.
        resumed = int(watcher.version) > listed_at
        await watcher.stop()
        return set(contents.objects[PLURAL.failure_events]), watcher.lists, resumed

    held, lists, resumed = asyncio.run(scenario())
    assert resumed
    assert held == {f"ev{number}" for number in range(1, 6)}
    assert lists == 1  # every watch resumed where the last ended: no list again


def test_a_put_applies_over_status_writes_but_not_over_spec_changes(
    cluster: Cluster, namespace: str
) -> None:
    """The request read the segment from memory; the operator wrote its status since (what
    made Masakari's own `test_update_with_host` fail with a 409 once in CI)."""
    kube = Kube(load_client(str(cluster.kubeconfig)))
    store = Store(kube, namespace)

    def kubectl_patch(what: str, *extra: str) -> None:
        cluster.kubectl(
            "patch", "failoversegment", "seg", "-n", namespace, "--type=merge", "-p", what, *extra
        )  # fmt: skip

    async def scenario() -> tuple[dict[str, Any], int, str]:
        read = await store.create(PLURAL.segments, "seg", "seg", segment())
        kubectl_patch('{"status": {"hosts": 2}}', "--subresource=status")
        updated = await store.patch(PLURAL.segments, read, {"spec": {"description": "mine"}})
        kubectl_patch('{"spec": {"description": "theirs"}}')
        with pytest.raises(ApiFault) as refused:
            await store.patch(PLURAL.segments, updated, {"spec": {"description": "late"}})
        now = await kube.get(PLURAL.segments, namespace, "seg")
        return updated, refused.value.code, now["spec"]["description"]

    updated, refused, description = asyncio.run(scenario())
    assert updated["spec"]["description"] == "mine"
    assert refused == 409
    assert description == "theirs"

"""Where Masakari's own functional suite (test_masakari_functional.py) found the API behaving
unlike Masakari: each difference as a fast test, on the simulator, no operator."""

from __future__ import annotations

import json
from typing import Any

import pytest

from controller.api.ids import object_uuid
from tests.conftest import Cluster
from tests.harness.masakari_api import ApiCloud
from tests.integration.api_env import call, objects
from tests.integration.test_api_cache import SEEN_WITHIN, eventually
from tests.integration.test_api_errors import fault, notification, setup_segment

pytestmark = pytest.mark.integration


def finish(cluster: Cluster, api_env: ApiCloud, token: str, notification: dict[str, Any]) -> None:
    """End the notification's event Finished, as the operator would (none runs here), and
    wait until the API has seen it."""
    uuid = notification["notification_uuid"]
    [event] = [e for e in objects(cluster, "fev", api_env.namespace) if object_uuid(e) == uuid]
    cluster.kubectl(
        "patch", "fev", event["metadata"]["name"], "-n", api_env.namespace,
        "--subresource=status", "--type=merge", "-p",
        json.dumps({"status": {"phase": "Finished"}}),
    )  # fmt: skip
    path = f"/v1/notifications/{uuid}"
    eventually(
        "the finished notification",
        lambda: call(api_env, "GET", path, token=token)[2]["notification"]["status"] == "finished",
        SEEN_WITHIN,
    )


def test_a_host_registered_again_is_a_new_host_record_for_duplicates(
    cluster: Cluster, api_env: ApiCloud
) -> None:
    """Masakari keys its 180 s duplicate rule on the host record (source_host_uuid): a host
    deleted and registered again reports afresh, as the suite does when each test registers
    the same hypervisor in a new segment."""
    token = api_env.token()
    stopped = notification("compute1", event="STOPPED", process_name="nova-compute")
    seg = setup_segment(api_env, token, "compute1")
    first = call(api_env, "POST", "/v1/notifications", stopped, token=token)
    assert first[0] == 202, first[2]
    finish(cluster, api_env, token, first[2]["notification"])
    assert call(api_env, "DELETE", f"/v1/segments/{seg['uuid']}", token=token)[0] == 204

    setup_segment(api_env, token, "compute1")
    again = call(api_env, "POST", "/v1/notifications", stopped, token=token)
    assert again[0] == 202, again[2]
    records = {answer[2]["notification"]["source_host_uuid"] for answer in (first, again)}
    assert len(records) == 2, records
    # Within one host record the rule holds as before.
    third = call(api_env, "POST", "/v1/notifications", stopped, token=token)
    assert "duplicate" in fault(third, 409, "conflictingRequest")


def test_nova_compute_stopped_shows_the_host_on_maintenance(
    cluster: Cluster, api_env: ApiCloud
) -> None:
    """Masakari puts a host on maintenance once it acts on its nova-compute STOPPED; the
    operator takes only the compute service out, and the API shows the host as Masakari would
    until a nova-compute STARTED is acted on."""
    token = api_env.token()
    seg = setup_segment(api_env, token, "compute1")
    hosts = f"/v1/segments/{seg['uuid']}/hosts"

    def on_maintenance() -> bool:
        [host] = call(api_env, "GET", hosts, token=token)[2]["hosts"]
        return bool(host["on_maintenance"])

    for event, expected in (("STOPPED", True), ("STARTED", False)):
        body = notification("compute1", event=event, process_name="nova-compute")
        posted = call(api_env, "POST", "/v1/notifications", body, token=token)
        assert posted[0] == 202, posted[2]
        assert on_maintenance() is not expected  # not acted on yet
        finish(cluster, api_env, token, posted[2]["notification"])
        assert on_maintenance() is expected
        status = call(api_env, "GET", f"{hosts}?on_maintenance={expected}", token=token)
        assert len(status[2]["hosts"]) == 1, status

"""The API's refusals: bodies, hosts, conflicts, tokens, microversions, markers; and ids."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cluster
from tests.harness.masakari_api import ApiCloud, api_cloud
from tests.integration.api_env import call, objects

pytestmark = pytest.mark.integration
SEGMENT = {"name": "seg", "recovery_method": "auto", "service_type": "COMPUTE"}


def fault(answer: tuple[int, dict[str, str], Any], code: int, name: str) -> str:
    """The message of a Masakari fault body, after checking its shape."""
    status, headers, body = answer
    assert status == code, body
    assert list(body) == [name] and body[name]["code"] == code, body
    assert headers["OpenStack-API-Version"].startswith("instance-ha ")
    message: str = body[name]["message"]
    assert "Traceback" not in message and "kubernetes" not in message.lower()
    return message


def now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat()


def notification(hostname: str, **payload: str) -> dict[str, Any]:
    body = payload or {"event": "STOPPED", "host_status": "NORMAL", "cluster_status": "OFFLINE"}
    kind = "COMPUTE_HOST" if "event" not in payload or "host_status" in payload else "PROCESS"
    return {"notification": {"type": kind, "hostname": hostname, "generated_time": now(),
                             "payload": body}}  # fmt: skip


def setup_segment(api_env: ApiCloud, token: str, *hosts: str) -> dict[str, Any]:
    status, _, body = call(api_env, "POST", "/v1/segments", {"segment": SEGMENT}, token=token)
    assert status == 201, body
    seg: dict[str, Any] = body["segment"]
    for host in hosts:
        status, _, created = call(
            api_env, "POST", f"/v1/segments/{seg['uuid']}/hosts",
            {"host": {"name": host, "type": "COMPUTE", "control_attributes": "SSH"}},
            token=token,
        )  # fmt: skip
        assert status == 201, created
    return seg


def test_bad_bodies_get_fault_bodies_naming_the_problem(api_env: ApiCloud) -> None:
    token = api_env.token()
    cases: list[tuple[Any, str]] = [
        ({"segment": {"recovery_method": "auto", "service_type": "C"}}, "'name' is a required"),
        ({"segment": {**SEGMENT, "colour": "red"}}, "'colour' was unexpected"),
        ({"segment": {**SEGMENT, "recovery_method": "fast"}}, "recovery_method"),
        ({"segment": {**SEGMENT, "name": " padded"}}, "whitespace"),
        ({"segment": {**SEGMENT, "name": "x" * 256}}, "too long"),
        ({"segment": {**SEGMENT, "description": 5}}, "not of type 'string'"),
        ({"segments": SEGMENT}, "single key 'segment'"),
        ([SEGMENT], "single key 'segment'"),
    ]
    for body, expected in cases:
        answer = call(api_env, "POST", "/v1/segments", body, token=token)
        assert expected in fault(answer, 400, "badRequest"), body
    answer = call(api_env, "POST", "/v1/segments", token=token, raw=b"{not json")
    assert "not JSON" in fault(answer, 400, "badRequest")
    seg = setup_segment(api_env, token, "compute1")
    answer = call(api_env, "PUT", f"/v1/segments/{seg['uuid']}", {"segment": {}}, token=token)
    assert "At least one" in fault(answer, 400, "badRequest")
    answer = call(api_env, "POST", f"/v1/segments/{seg['uuid']}/hosts",
                  {"host": {"name": "compute2", "type": "COM PUTE", "control_attributes": ""}},
                  token=token)  # fmt: skip
    assert "type" in fault(answer, 400, "badRequest")

    payloads = [
        ({"type": "COMPUTE_HOST", "payload": {"event": "DEAD"}}, "event"),
        ({"type": "COMPUTE_HOST", "payload": {"event": "STOPPED", "extra": "x"}}, "'extra'"),
        ({"type": "PROCESS", "payload": {"event": "STOPPED"}}, "'process_name' is a required"),
        (
            {
                "type": "VM",
                "payload": {
                    "instance_uuid": "nope",
                    "vir_domain_event": "STOPPED_FAILED",
                    "event": "LIFECYCLE",
                },
            },
            "uuid",
        ),
        ({"type": "DISK", "payload": {}}, "type"),
        ({"generated_time": "yesterday"}, "date-time"),
        ({"hostname": "bad host!"}, "hostname"),
    ]
    for change, expected in payloads:
        body = notification("compute1")
        body["notification"].update(change)
        answer = call(api_env, "POST", "/v1/notifications", body, token=token)
        assert expected in fault(answer, 400, "badRequest"), change


def test_notification_rules(api_env: ApiCloud) -> None:
    token = api_env.token()
    seg = setup_segment(api_env, token, "compute1", "compute2")
    answer = call(api_env, "POST", "/v1/notifications", notification("compute9"), token=token)
    assert "compute9 could not be found" in fault(answer, 400, "badRequest")

    first = call(api_env, "POST", "/v1/notifications", notification("compute1"), token=token)
    assert first[0] == 202 and first[2]["notification"]["status"] == "new"
    again = call(api_env, "POST", "/v1/notifications", notification("compute1"), token=token)
    assert "duplicate" in fault(again, 409, "conflictingRequest")
    process = notification("compute1", event="STOPPED", process_name="nova-compute")
    assert call(api_env, "POST", "/v1/notifications", process, token=token)[0] == 202

    # compute1's notifications are new: the segment is under recovery.
    update = call(api_env, "PUT", f"/v1/segments/{seg['uuid']}",
                  {"segment": {"description": "x"}}, token=token)  # fmt: skip
    assert "in-use" in fault(update, 409, "conflictingRequest")
    assert call(api_env, "DELETE", f"/v1/segments/{seg['uuid']}", token=token)[0] == 409

    # Maintenance is set directly on the Host object here (the segment is under recovery).
    other = setup_segment_named(api_env, token, "other", "compute3")
    hosts = call(api_env, "GET", f"/v1/segments/{other['uuid']}/hosts", token=token)[2]["hosts"]
    status, _, _ = call(api_env, "PUT", f"/v1/segments/{other['uuid']}/hosts/{hosts[0]['uuid']}",
                        {"host": {"on_maintenance": "yes"}}, token=token)  # fmt: skip
    assert status == 200
    answer = call(api_env, "POST", "/v1/notifications", notification("compute3"), token=token)
    assert "under maintenance" in fault(answer, 409, "conflictingRequest")

    uuid = first[2]["notification"]["notification_uuid"]
    for method in ("PUT", "DELETE"):
        answer = call(api_env, method, f"/v1/notifications/{uuid}", {"notification": {}},
                      token=token)  # fmt: skip
        fault(answer, 405, "badMethod")
    # A host failure has vmoves (none yet: no operator runs here); a process failure has none.
    answer = call(api_env, "GET", f"/v1/notifications/{uuid}/vmoves", token=token)
    assert answer[:1] == (200,) and answer[2] == {"vmoves": []}
    listed = call(api_env, "GET", "/v1/notifications?type=PROCESS", token=token)[2]
    process_uuid = listed["notifications"][0]["notification_uuid"]
    answer = call(api_env, "GET", f"/v1/notifications/{process_uuid}/vmoves", token=token)
    assert "no vmoves" in fault(answer, 400, "badRequest")
    since = call(api_env, "GET", "/v1/notifications?generated-since=2999-01-01T00:00:00",
                 token=token)[2]  # fmt: skip
    assert since["notifications"] == []
    answer = call(api_env, "GET", "/v1/notifications?generated-since=soon", token=token)
    fault(answer, 400, "badRequest")
    assert len(call(api_env, "GET", "/v1/notifications?status=new", token=token)[2][
        "notifications"]) == 2  # fmt: skip


def setup_segment_named(api_env: ApiCloud, token: str, name: str, host: str) -> dict[str, Any]:
    body = {"segment": {**SEGMENT, "name": name}}
    seg: dict[str, Any] = call(api_env, "POST", "/v1/segments", body, token=token)[2]["segment"]
    created = call(api_env, "POST", f"/v1/segments/{seg['uuid']}/hosts",
                   {"host": {"name": host, "type": "COMPUTE", "control_attributes": ""}},
                   token=token)  # fmt: skip
    assert created[0] == 201
    return seg


def test_tokens_and_policy(api_env: ApiCloud) -> None:
    fault(call(api_env, "GET", "/v1/segments"), 401, "unauthorized")
    fault(call(api_env, "GET", "/v1/segments", token="not-a-token"), 401, "unauthorized")
    message = fault(call(api_env, "GET", "/v1/segments", token=api_env.token("demo")), 403,
                    "forbidden")  # fmt: skip
    assert "os_masakari_api:segments:index" in message
    assert call(api_env, "GET", "/v1/segments", token=api_env.token())[0] == 200
    # Version documents need no token (keystoneauth discovers before it authenticates).
    for path in ("/", "/v1", "/v1/"):
        status, _, body = call(api_env, "GET", path)
        assert status == 200
        document = body["versions"][0] if path == "/" else body["version"]
        assert (document["min_version"], document["version"]) == ("1.0", "1.3")
    assert "not-a-token" not in api_env.api.log()


def test_microversions(api_env: ApiCloud) -> None:
    token = api_env.token()
    assert call(api_env, "GET", "/v1/segments", token=token)[1]["OpenStack-API-Version"] == (
        "instance-ha 1.0"
    )
    latest = call(api_env, "GET", "/v1/segments", token=token, version="latest")
    assert latest[1]["OpenStack-API-Version"] == "instance-ha 1.3"
    assert "not supported" in fault(
        call(api_env, "GET", "/v1/segments", token=token, version="1.9"), 406, "notAcceptable"
    )
    fault(call(api_env, "GET", "/v1/segments", token=token, version="one"), 400, "badRequest")
    fault(call(api_env, "GET", "/v1/segments", token=token, version="2.0"), 406, "notAcceptable")
    # Routes under a project id answer the same (the id scopes nothing, as in Masakari).
    setup_segment(api_env, token)
    project = call(api_env, "GET", "/v1/0123456789abcdef/segments", token=token)[2]
    assert [s["name"] for s in project["segments"]] == ["seg"]
    fault(call(api_env, "GET", "/v1/nothing-here", token=token), 404, "itemNotFound")


def test_listing_parameters(api_env: ApiCloud) -> None:
    token = api_env.token()
    setup_segment(api_env, token)
    for query, expected in [
        ("marker=999999", "Marker 999999 could not be found"),
        ("marker=abc", "could not be found"),
        ("limit=-1", "limit"),
        ("limit=x", "limit"),
        ("sort_key=colour", "Sort key"),
        ("sort_key=name&sort_dir=up", "sort direction"),
        ("sort_key=name&sort_dir=asc&sort_dir=asc", "exceeds"),
        ("enabled=maybe", "enabled"),
    ]:
        answer = call(api_env, "GET", f"/v1/segments?{query}", token=token)
        assert expected in fault(answer, 400, "badRequest"), query


def test_kubectl_objects_get_ids_and_concurrent_creates_get_distinct_ids(
    cluster: Cluster, api_env: ApiCloud
) -> None:
    manifest = {
        "apiVersion": "masakari.dev/v1alpha1",
        "kind": "FailoverSegment",
        "metadata": {"name": "from-git"},
        "spec": {"recoveryMethod": "auto", "serviceType": "COMPUTE"},
    }
    cluster.kubectl("apply", "-n", api_env.namespace, "-f", "-", stdin=json.dumps(manifest))
    token = api_env.token()

    def create(index: int) -> int:
        body = {"segment": {**SEGMENT, "name": f"seg-{index}"}}
        status, _, answer = call(api_env, "POST", "/v1/segments", body, token=token)
        assert status == 201, answer
        return int(answer["segment"]["id"])

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(create, range(16)))
    assert len(set(ids)) == 16
    listed = call(api_env, "GET", "/v1/segments", token=token)[2]["segments"]
    [from_git] = [s for s in listed if s["name"] == "from-git"]
    assert isinstance(from_git["id"], int) and from_git["id"] not in ids
    stored = {s["metadata"]["name"]: s for s in objects(cluster, "fseg", api_env.namespace)}
    git_meta = stored["from-git"]["metadata"]
    assert from_git["uuid"] == git_meta["uid"]
    assert git_meta["annotations"]["masakari.dev/id"] == str(from_git["id"])
    # Stable: listed again, the same id.
    again = call(api_env, "GET", "/v1/segments", token=token)[2]["segments"]
    assert [s["id"] for s in again if s["name"] == "from-git"] == [from_git["id"]]


def test_insecure_no_auth_warns_and_serves_without_token(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    with api_cloud(cluster.kubeconfig, namespace, tmp_path, "--insecure-no-auth") as api_env:
        status, _, body = call(api_env, "GET", "/v1/segments")
        assert (status, body) == (200, {"segments": []})
        assert "--insecure-no-auth" in api_env.api.log() and "WARNING" in api_env.api.log()

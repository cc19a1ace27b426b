"""openstacksdk's instance_ha proxy, as monitors and scripts use it, against the API."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from openstack import exceptions

from tests.conftest import Cluster
from tests.harness.masakari_api import ODD_HOST, ApiCloud
from tests.harness.operator import running_operator
from tests.integration.api_env import call, objects
from tests.integration.operator_env import wait_for

pytestmark = pytest.mark.integration


def test_segments_crud_maps_to_failover_segments(cluster: Cluster, api_env: ApiCloud) -> None:
    ha = api_env.connection().instance_ha
    created = ha.create_segment(
        name="Rack A / row 1", recovery_method="reserved_host", service_type="COMPUTE",
        description="first rack",
    )  # fmt: skip
    assert isinstance(created.id, int)
    assert created.name == "Rack A / row 1" and created.recovery_method == "reserved_host"
    [stored] = objects(cluster, "failoversegments", api_env.namespace)
    # Not a valid Kubernetes name: the object has a derived name and keeps the display name.
    assert stored["metadata"]["name"] != "Rack A / row 1"
    assert stored["metadata"]["annotations"]["masakari.dev/name"] == "Rack A / row 1"
    assert stored["spec"]["recoveryMethod"] == "reserved_host"

    shown = ha.get_segment(created.uuid)
    assert (shown.id, shown.uuid, shown.description) == (created.id, created.uuid, "first rack")
    updated = ha.update_segment(created.uuid, description="second rack", recovery_method="auto")
    assert updated.description == "second rack"
    [stored] = objects(cluster, "failoversegments", api_env.namespace)
    assert stored["spec"]["recoveryMethod"] == "auto"

    with pytest.raises(exceptions.ConflictException):
        ha.create_segment(name="Rack A / row 1", recovery_method="auto", service_type="COMPUTE")

    ha.delete_segment(created.uuid)
    with pytest.raises(exceptions.NotFoundException):
        ha.get_segment(created.uuid)
    assert objects(cluster, "failoversegments", api_env.namespace) == []


def test_microversion_1_2_enabled(cluster: Cluster, api_env: ApiCloud) -> None:
    ha = api_env.connection().instance_ha
    off = ha.create_segment(
        name="off", recovery_method="auto", service_type="COMPUTE", is_enabled=False
    )
    on = ha.create_segment(name="on", recovery_method="auto", service_type="COMPUTE")
    assert (off.is_enabled, on.is_enabled) == (False, True)
    by_name = {s["metadata"]["name"]: s for s in objects(cluster, "fseg", api_env.namespace)}
    assert by_name["off"]["spec"]["enabled"] is False
    assert [s.name for s in ha.segments(is_enabled=False)] == ["off"]
    assert ha.update_segment(off.uuid, is_enabled=True).is_enabled is True
    # At 1.0 `enabled` is not part of the body schema.
    status, _, body = call(
        api_env, "POST", "/v1/segments", {"segment": {"name": "x", "recovery_method": "auto",
        "service_type": "COMPUTE", "enabled": False}}, token=api_env.token(), version="1.0",
    )  # fmt: skip
    assert status == 400 and "enabled" in body["badRequest"]["message"]


def test_pagination_with_integer_markers(api_env: ApiCloud) -> None:
    ha = api_env.connection().instance_ha
    made = [
        ha.create_segment(name=f"seg{i}", recovery_method="auto", service_type="COMPUTE")
        for i in range(7)
    ]
    # The sdk pages by itself: limit per request, marker = the last item's integer id.
    listed = list(ha.segments(limit=3, sort_key="name", sort_dir="asc"))
    assert [s.name for s in listed] == [f"seg{i}" for i in range(7)]
    assert len({s.id for s in made}) == 7
    token = api_env.token()
    _, _, first = call(api_env, "GET", "/v1/segments?limit=3&sort_key=name&sort_dir=asc",
                       token=token)  # fmt: skip
    names = [s["name"] for s in first["segments"]]
    assert names == ["seg0", "seg1", "seg2"]
    marker = first["segments"][-1]["id"]
    _, _, second = call(api_env, "GET", f"/v1/segments?limit=3&sort_key=name&sort_dir=asc"
                        f"&marker={marker}", token=token)  # fmt: skip
    assert [s["name"] for s in second["segments"]] == ["seg3", "seg4", "seg5"]
    # Default order: created_at desc, then id desc.
    _, _, default = call(api_env, "GET", "/v1/segments", token=token)
    assert [s["id"] for s in default["segments"]] == sorted((s.id for s in made), reverse=True)


def test_hosts_crud_and_nova_check(cluster: Cluster, api_env: ApiCloud) -> None:
    ha = api_env.connection().instance_ha
    seg = ha.create_segment(name="seg", recovery_method="auto", service_type="COMPUTE")
    other = ha.create_segment(name="other", recovery_method="auto", service_type="COMPUTE")
    host = ha.create_host(seg.uuid, name="compute1", type="COMPUTE", control_attributes="SSH")
    assert host.failover_segment_id == seg.uuid and host.on_maintenance is False
    reserved = ha.create_host(
        seg.uuid, name="compute2", type="COMPUTE", control_attributes="SSH", reserved=True
    )
    [stored] = [h for h in objects(cluster, "mhost", api_env.namespace)
                if h["metadata"]["name"] == "compute2"]  # fmt: skip
    assert stored["spec"]["segment"] == "seg" and stored["spec"]["reserved"] is True

    assert {h.name for h in ha.hosts(seg.uuid)} == {"compute1", "compute2"}
    assert [h.name for h in ha.hosts(seg.uuid, reserved=True)] == ["compute2"]
    assert ha.get_host(host.uuid, seg.uuid).control_attributes == "SSH"
    with pytest.raises(exceptions.NotFoundException):
        ha.get_host(host.uuid, other.uuid)  # not under that segment

    # Host names are global: the same name in another segment is a conflict.
    with pytest.raises(exceptions.ConflictException):
        ha.create_host(other.uuid, name="compute1", type="COMPUTE", control_attributes="")
    # Not a nova-compute service host of the api_env.
    with pytest.raises(exceptions.BadRequestException, match="could not be found"):
        ha.create_host(seg.uuid, name="compute9", type="COMPUTE", control_attributes="")

    updated = ha.update_host(host.uuid, seg.uuid, on_maintenance=True)
    assert updated.on_maintenance is True
    [stored] = [h for h in objects(cluster, "mhost", api_env.namespace)
                if h["metadata"]["name"] == "compute1"]  # fmt: skip
    assert stored["spec"]["onMaintenance"] is True

    ha.delete_host(reserved.uuid, seg.uuid)
    with pytest.raises(exceptions.NotFoundException):
        ha.get_host(reserved.uuid, seg.uuid)
    # Deleting a segment deletes its hosts, as in Masakari.
    ha.delete_segment(seg.uuid)
    assert objects(cluster, "mhost", api_env.namespace) == []


def test_notification_recovered_with_vmoves_and_workflow_details(
    cluster: Cluster, api_env: ApiCloud, tmp_path: Path
) -> None:
    ha = api_env.connection().instance_ha
    seg = ha.create_segment(name="seg", recovery_method="auto", service_type="COMPUTE")
    for name in ("compute1", "compute2"):
        ha.create_host(seg.uuid, name=name, type="COMPUTE", control_attributes="SSH")
    # Masakari's API has no fencing field: a segment made through it confirms by Pacemaker,
    # which the simulator lacks. Opting out is the cloud operator's explicit act, on the object.
    cluster.kubectl(
        "patch", "fseg", "seg", "-n", api_env.namespace, "--type=merge",
        "-p", '{"spec":{"fencing":{"method":"none"}}}',
    )  # fmt: skip
    servers = api_env.sim.control("POST", "servers", {"host": "compute1", "count": 2})["ids"]
    api_env.sim.control("POST", "hosts/compute1/kill")

    with running_operator(cluster.kubeconfig, api_env.namespace, api_env.sim.clouds_yaml,
                          api_env.sim.cloud, tmp_path):  # fmt: skip
        sent = ha.create_notification(
            type="COMPUTE_HOST", hostname="compute1",
            generated_time=datetime.now(UTC).replace(tzinfo=None).isoformat(),
            payload={"event": "STOPPED", "host_status": "NORMAL", "cluster_status": "OFFLINE"},
        )  # fmt: skip
        assert sent.status == "new" and isinstance(sent.id, int)
        [event] = objects(cluster, "fev", api_env.namespace)
        assert event["spec"]["host"] == "compute1"
        assert event["metadata"]["labels"]["masakari.dev/segment"] == "seg"

        def finished() -> object:
            shown = ha.get_notification(sent.notification_uuid)
            return shown if shown.status in ("finished", "error", "failed") else None

        done = wait_for("the notification to finish", finished, timeout=90)
        assert done.status == "finished"
        assert done.source_host_uuid == ha.hosts(seg.uuid, sort_key="name",
                                                  sort_dir="asc").__next__().uuid  # fmt: skip

    moves = list(ha.vmoves(sent.notification_uuid))
    assert sorted(m.server_id for m in moves) == sorted(servers)
    assert {m.status for m in moves} == {"succeeded"}
    assert {m.source_host for m in moves} == {"compute1"}
    one = ha.get_vmove(moves[0].uuid, sent.notification_uuid)
    assert one.server_id == moves[0].server_id and one.dest_host not in (None, "compute1")
    assert [m.uuid for m in ha.vmoves(sent.notification_uuid, status="failed")] == []

    token = api_env.token()
    path = f"/v1/notifications/{sent.notification_uuid}"
    _, headers, old = call(api_env, "GET", path, token=token)
    assert "recovery_workflow_details" not in old["notification"]
    assert headers["OpenStack-API-Version"] == "instance-ha 1.0"
    _, headers, new = call(api_env, "GET", path, token=token, version="1.1")
    assert headers["OpenStack-API-Version"] == "instance-ha 1.1"
    steps = new["notification"]["recovery_workflow_details"]
    assert steps and all(s["state"] == "SUCCESS" for s in steps if s["state"] != "SKIPPED")
    assert any(s["progress_details"] for s in steps)


def test_host_names_kubernetes_refuses_still_work(cluster: Cluster, api_env: ApiCloud) -> None:
    ha = api_env.connection().instance_ha
    seg = ha.create_segment(name="edge", recovery_method="auto", service_type="COMPUTE")
    host = ha.create_host(seg.uuid, name=ODD_HOST, type="COMPUTE", control_attributes="")
    assert host.name == ODD_HOST
    [stored] = objects(cluster, "mhost", api_env.namespace)
    assert stored["metadata"]["name"] != ODD_HOST
    # The operator finds the host in Nova and Pacemaker under its real name.
    assert stored["spec"]["novaHost"] == stored["spec"]["pacemakerNode"] == ODD_HOST
    assert [h.name for h in ha.hosts(seg.uuid)] == [ODD_HOST]
    sent = ha.create_notification(
        type="PROCESS", hostname=ODD_HOST, generated_time=datetime.now(UTC).isoformat(),
        payload={"event": "STOPPED", "process_name": "nova-compute"},
    )  # fmt: skip
    assert sent.source_host_uuid == host.uuid
    [event] = objects(cluster, "fev", api_env.namespace)
    assert event["spec"]["host"] == stored["metadata"]["name"]

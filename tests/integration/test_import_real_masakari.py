"""`masakari-operator import` read from real Masakari 22 (masakari-api beside the lab's real Nova),
its manifests applied to a fresh namespace: the compatible API then answers what Masakari did,
segment by segment and host by host, less the times.

The records are made through openstacksdk the way an operator made them: a segment name that
cannot be a Kubernetes object name, a disabled segment, a deleted one (so the ids to keep are not
1, 2, 3), reserved and on-maintenance hosts named after the lab's Nova compute hosts (Masakari
looks each up in Nova), and a notification for the archive. Masakari cuts its pages to
osapi_max_limit whatever the client asks; set to 2, every list here is longer than a page.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import openstack
import pytest
import yaml

from controller.api.views import object_name
from tests.conftest import Cluster
from tests.harness.control_plane import REPO, free_port
from tests.harness.masakari_api import running_api
from tests.harness.nova_lab.masakari import running_masakari

pytestmark = [pytest.mark.integration, pytest.mark.real_nova]
PAGE = 2
SEGMENT_FIELDS = (
    "name", "uuid", "id", "recovery_method", "service_type", "enabled", "description",
)  # fmt: skip
HOST_FIELDS = (
    "name", "uuid", "id", "type", "control_attributes", "reserved", "on_maintenance",
    "failover_segment_id",
)  # fmt: skip


def _get(url: str) -> Any:
    # Masakari's noauth2 takes the token as the user: "admin" is an admin.
    request = urllib.request.Request(
        url, headers={"X-Auth-Token": "admin", "OpenStack-API-Version": "instance-ha 1.3"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


def _listed(url: str, key: str) -> list[dict[str, Any]]:
    """Every record of a list, page after page by the marker, until an empty page."""
    records: list[dict[str, Any]] = []
    for _ in range(20):
        page = _get(url + (f"?marker={records[-1]['id']}" if records else ""))[key]
        if not page:
            return sorted(records, key=lambda record: record["id"])
        records += page
    raise AssertionError(f"{url}: still more after 20 pages")


def _answers(v1: str) -> dict[str, Any]:
    """Segments and each one's hosts, in the fields both APIs must agree on."""
    segments = _listed(f"{v1}/segments", "segments")
    return {
        "segments": [{k: s.get(k) for k in SEGMENT_FIELDS} for s in segments],
        "hosts": {
            s["uuid"]: [
                {k: h.get(k) for k in HOST_FIELDS}
                for h in _listed(f"{v1}/segments/{s['uuid']}/hosts", "hosts")
            ]
            for s in segments
        },
    }


def test_import_from_real_masakari(
    cluster: Cluster, namespace: str, real_nova: Any, tmp_path: Path
) -> None:
    begin = time.monotonic()
    with running_masakari(real_nova.lab, tmp_path / "masakari", max_limit=PAGE) as masakari:
        loader = openstack.config.OpenStackConfig(
            config_files=[str(real_nova.clouds_yaml)], vendor_files=[], load_envvars=False
        )
        ha = openstack.connection.Connection(
            config=loader.get_one(cloud=real_nova.cloud, instance_ha_endpoint_override=masakari.url)
        ).instance_ha
        gone = ha.create_segment(name="short-lived", recovery_method="auto", service_type="COMPUTE")
        ha.delete_segment(gone.uuid)
        rack = ha.create_segment(
            name="Rack A/1", recovery_method="reserved_host", service_type="COMPUTE",
            description="the first rack",
        )  # fmt: skip
        other = ha.create_segment(
            name="rack-b", recovery_method="auto", service_type="COMPUTE", is_enabled=False
        )
        ha.create_segment(name="rack-c", recovery_method="rh_priority", service_type="COMPUTE")
        ha.create_host(rack.uuid, name="compute1", type="COMPUTE", control_attributes="SSH")
        ha.create_host(
            rack.uuid, name="compute2", type="COMPUTE", control_attributes="SSH", reserved=True
        )
        ha.create_host(
            other.uuid, name="compute3", type="COMPUTE", control_attributes="IPMI",
            on_maintenance=True,
        )  # fmt: skip
        ha.create_notification(
            type="VM", hostname="compute1", generated_time="2026-12-01T10:00:00",
            payload={"event": "LIFECYCLE", "instance_uuid": str(uuid.uuid4()),
                     "vir_domain_event": "STOPPED_FAILED"},
        )  # fmt: skip
        masakaris = _answers(masakari.url)
        assert len(masakaris["segments"]) == 3 and len(masakaris["hosts"][rack.uuid]) == 2

        output = tmp_path / "imported"
        imported = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "controller.cli", "import", "--clouds-yaml",
             str(real_nova.clouds_yaml), "--cloud", real_nova.cloud, "--endpoint", masakari.url,
             "--output", str(output), "--history"],
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        imported = time.monotonic() - imported
        masakari_ready = masakari.ready_seconds
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("3 segment(s), 3 host(s), 1 notification(s) archived"), done
    segments = list(yaml.safe_load_all((output / "segments.yaml").read_text()))
    assert {s["metadata"]["name"] for s in segments} == {
        "rack-b",
        "rack-c",
        object_name("Rack A/1"),
    }
    archived = json.loads((output / "notifications.json").read_text())
    assert [(n["type"], n["source_host_uuid"]) for n in archived] == [
        ("VM", masakaris["hosts"][rack.uuid][0]["uuid"])
    ]

    cluster.kubectl("apply", "-n", namespace, "-k", str(output))
    port = free_port()
    (tmp_path / "ours").mkdir()
    with running_api(
        cluster.kubeconfig, namespace, real_nova.clouds_yaml, real_nova.cloud,
        tmp_path / "ours", port, "--insecure-no-auth",
    ) as api:  # fmt: skip
        ours = _answers(f"{api.url}/v1")
    print(
        f"\nreal masakari-api ready in {masakari_ready:.1f}s, import {imported:.1f}s, "
        f"whole test {time.monotonic() - begin:.1f}s"
    )
    assert ours == masakaris

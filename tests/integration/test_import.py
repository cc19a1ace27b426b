"""`masakari-operator import` read from a Masakari API (here the compatible one, serving a first
namespace through openstacksdk over real HTTP), its manifests applied to a second namespace:
the second API answers the same names, uuids and ids, and hands out new ids above them."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.api.views import object_name
from tests.conftest import Cluster
from tests.harness.control_plane import REPO, free_port
from tests.harness.masakari_api import ApiCloud, running_api
from tests.integration.api_env import call

pytestmark = pytest.mark.integration
TIMES = ("created_at", "updated_at")


def _import(cloud: ApiCloud, output: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller.cli", "import", "--clouds-yaml",
         str(cloud.sim.clouds_yaml), "--cloud", cloud.sim.cloud, "--output", str(output), *extra],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _answers(url: str, token: str | None, cloud: ApiCloud) -> dict[str, Any]:
    """Segments and each one's hosts as the API at `url` shows them, less the times."""
    api = type(cloud.api)(url, cloud.api.process, cloud.api.log_path)
    there = ApiCloud(cloud.sim, api, cloud.namespace, cloud.workdir)

    def get(path: str) -> list[dict[str, Any]]:
        status, _, body = call(there, "GET", path, token=token, version="1.3")
        assert status == 200, body
        key = path.rsplit("/", 1)[-1].split("?")[0]
        return [{k: v for k, v in item.items() if k not in TIMES} for item in body[key]]

    segments = get("/v1/segments")
    return {
        "segments": segments,
        "hosts": {s["uuid"]: get(f"/v1/segments/{s['uuid']}/hosts") for s in segments},
    }


def _strip_segment_times(answers: dict[str, Any]) -> dict[str, Any]:
    for hosts in answers["hosts"].values():
        for host in hosts:
            host["failover_segment"] = {
                k: v for k, v in host["failover_segment"].items() if k not in TIMES
            }
    return answers


def test_import_round_trip(api_env: ApiCloud, cluster: Cluster, tmp_path: Path) -> None:
    ha = api_env.connection().instance_ha
    gone = ha.create_segment(name="short-lived", recovery_method="auto", service_type="COMPUTE")
    ha.delete_segment(gone.uuid)  # the ids to keep are not 1, 2, 3
    rack = ha.create_segment(
        name="Rack A/1", recovery_method="reserved_host", service_type="COMPUTE",
        description="the first rack", is_enabled=False,
    )  # fmt: skip
    other = ha.create_segment(name="rack-b", recovery_method="auto", service_type="COMPUTE")
    ha.create_host(rack.uuid, name="compute1", type="COMPUTE", control_attributes="SSH")
    ha.create_host(
        rack.uuid, name="compute2", type="COMPUTE", control_attributes="SSH", reserved=True
    )
    ha.create_host(
        other.uuid, name="compute3", type="COMPUTE", control_attributes="", on_maintenance=True
    )
    ha.create_notification(
        type="VM", hostname="compute1", generated_time="2026-12-01T10:00:00",
        payload={"event": "LIFECYCLE", "instance_uuid": str(uuid.uuid4()),
                 "vir_domain_event": "STOPPED_FAILED"},
    )  # fmt: skip
    token = api_env.token()
    before = _strip_segment_times(_answers(api_env.api.url, token, api_env))

    output = tmp_path / "imported"
    done = _import(api_env, output, "--history")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("2 segment(s), 3 host(s), 1 notification(s) archived")
    segments = list(yaml.safe_load_all((output / "segments.yaml").read_text()))
    assert {s["metadata"]["name"] for s in segments} == {"rack-b", object_name("Rack A/1")}
    archived = json.loads((output / "notifications.json").read_text())
    assert [n["type"] for n in archived] == ["VM"]

    second = f"t-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", second)
    cluster.kubectl("apply", "-n", second, "-k", str(output))
    assert cluster.kubectl("get", "failureevents", "-n", second, "-o", "name").stdout == "", (
        "history is archived, never applied: it would ask for recoveries again"
    )
    port = free_port()
    (tmp_path / "second").mkdir()
    with running_api(
        cluster.kubeconfig, second, api_env.sim.clouds_yaml, api_env.sim.cloud,
        tmp_path / "second", port,
    ) as api:  # fmt: skip
        after = _strip_segment_times(_answers(api.url, token, api_env))
        assert after == before

        there = ApiCloud(api_env.sim, api, second, tmp_path)
        status, _, body = call(
            there, "POST", "/v1/segments", token=token,
            body={"segment": {"name": "new", "recovery_method": "auto", "service_type": "C"}},
        )  # fmt: skip
        assert status == 201, body
        assert body["segment"]["id"] > max(s["id"] for s in before["segments"])


def test_an_unreachable_masakari_is_one_clear_line(api_env: ApiCloud, tmp_path: Path) -> None:
    output = tmp_path / "nothing"
    done = subprocess.run(
        [sys.executable, "-m", "controller.cli", "import", "--clouds-yaml",
         str(api_env.sim.clouds_yaml), "--cloud", api_env.sim.cloud, "--output", str(output),
         "--endpoint", f"http://127.0.0.1:{free_port()}/v1"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done
    assert done.stderr.startswith("masakari-operator import: ") and "Traceback" not in done.stderr
    assert not output.exists()

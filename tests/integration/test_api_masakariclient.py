"""python-masakariclient's `openstack segment|notification ...` commands against the API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cluster
from tests.harness.masakari_api import ApiCloud
from tests.integration.api_env import objects, require

pytestmark = pytest.mark.integration
OPENSTACK = Path(sys.executable).with_name("openstack")


def openstack(api_env: ApiCloud, *args: str, check: bool = True) -> Any:
    """Run the `openstack` CLI with the simulator's clouds.yaml; `-f json` output decoded."""
    require(OPENSTACK)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env |= {"OS_CLIENT_CONFIG_FILE": str(api_env.sim.clouds_yaml), "OS_CLOUD": api_env.sim.cloud}
    result = subprocess.run(
        [str(OPENSTACK), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if not check:
        return result
    assert result.returncode == 0, f"openstack {' '.join(args)}: {result.stderr[-3000:]}"
    return json.loads(result.stdout) if "json" in args else result.stdout


def test_segment_and_host_commands(cluster: Cluster, api_env: ApiCloud) -> None:
    seg = openstack(api_env, "segment", "create", "--description", "rack one", "-f", "json",
                    "rack-1", "auto", "COMPUTE")  # fmt: skip
    assert seg["name"] == "rack-1" and seg["recovery_method"] == "auto"
    openstack(api_env, "segment", "create", "--is_enabled", "False", "-f", "json",
              "rack-2", "rh_priority", "COMPUTE")  # fmt: skip
    listed = openstack(api_env, "segment", "list", "-f", "json")
    assert {s["name"] for s in listed} == {"rack-1", "rack-2"}
    # The client resolves names to uuids by listing, as with Masakari.
    shown = openstack(api_env, "segment", "show", "rack-1", "-f", "json")
    assert shown["uuid"] == seg["uuid"] and shown["description"] == "rack one"
    updated = openstack(api_env, "segment", "update", "--recovery_method", "reserved_host",
                        "--description", "moved", "rack-1", "-f", "json")  # fmt: skip
    assert updated["recovery_method"] == "reserved_host"
    stored = {s["metadata"]["name"]: s for s in objects(cluster, "fseg", api_env.namespace)}
    assert stored["rack-1"]["spec"]["recoveryMethod"] == "reserved_host"
    assert stored["rack-2"]["spec"]["enabled"] is False

    host = openstack(api_env, "segment", "host", "create", "--reserved", "True", "-f", "json",
                     "compute1", "COMPUTE", "SSH", seg["uuid"])  # fmt: skip
    assert host["name"] == "compute1" and host["reserved"] is True
    hosts = openstack(api_env, "segment", "host", "list", seg["uuid"], "-f", "json")
    assert [h["name"] for h in hosts] == ["compute1"]
    openstack(api_env, "segment", "host", "update", "--on_maintenance", "True", seg["uuid"],
              host["uuid"], "-f", "json")  # fmt: skip
    shown_host = openstack(api_env, "segment", "host", "show", seg["uuid"], host["uuid"],
                           "-f", "json")  # fmt: skip
    assert shown_host["on_maintenance"] is True
    [stored_host] = objects(cluster, "mhost", api_env.namespace)
    assert stored_host["spec"]["onMaintenance"] is True and stored_host["spec"]["reserved"]

    refused = openstack(api_env, "segment", "host", "create", "compute7", "COMPUTE", "SSH",
                        seg["uuid"], check=False)  # fmt: skip
    assert refused.returncode != 0 and "could not be found" in refused.stderr

    openstack(api_env, "segment", "host", "delete", seg["uuid"], host["uuid"])
    assert openstack(api_env, "segment", "host", "list", seg["uuid"], "-f", "json") == []
    openstack(api_env, "segment", "delete", "rack-1", "rack-2")
    assert openstack(api_env, "segment", "list", "-f", "json") == []


def test_notification_commands(cluster: Cluster, api_env: ApiCloud) -> None:
    seg = openstack(api_env, "segment", "create", "-f", "json", "seg", "auto", "COMPUTE")
    openstack(api_env, "segment", "host", "create", "compute2", "COMPUTE", "SSH", seg["uuid"])
    now = datetime.now(UTC).replace(tzinfo=None).isoformat()
    payload = json.dumps({"event": "STOPPED", "process_name": "nova-compute"})
    sent = openstack(api_env, "notification", "create", "-f", "json",
                     "PROCESS", "compute2", now, payload)  # fmt: skip
    assert sent["status"] == "new" and sent["type"] == "PROCESS"
    [event] = objects(cluster, "fev", api_env.namespace)
    assert event["spec"]["payload"] == {"event": "STOPPED", "process_name": "nova-compute"}
    assert event["metadata"]["annotations"]["masakari.dev/uuid"] == sent["notification_uuid"]

    again = openstack(api_env, "notification", "create", "PROCESS", "compute2", now, payload,
                      check=False)  # fmt: skip
    assert again.returncode != 0 and "duplicate" in again.stderr

    listed = openstack(api_env, "notification", "list", "-f", "json")
    assert [n["notification_uuid"] for n in listed] == [sent["notification_uuid"]]
    filtered = openstack(api_env, "notification", "list", "--filters", "type=VM", "-f", "json")
    assert filtered == []
    shown = openstack(api_env, "notification", "show", sent["notification_uuid"], "-f", "json")
    assert shown["source_host_uuid"] == sent["source_host_uuid"]
    # The client asks for microversion 1.3, so the workflow details are part of the answer.
    assert "recovery_workflow_details" in shown

"""A real masakari-processmonitor reports a killed process through the API."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import Cluster
from tests.harness.control_plane import _die_with_parent
from tests.harness.masakari_api import THIS_HOST, ApiCloud
from tests.integration.api_env import objects, require
from tests.integration.operator_env import wait_for

pytestmark = pytest.mark.integration
PROCESSMONITOR = Path(sys.executable).with_name("masakari-processmonitor")


def _monitor_config(api_env: ApiCloud, workdir: Path, watched: Path) -> Path:
    process_list = workdir / "process_list.yaml"
    # The restart command fails, so the monitor gives up at once and reports the process.
    entry = {
        "process_name": str(watched),
        "start_command": "true",
        "pre_start_command": "",
        "post_start_command": "",
        "restart_command": "false",
        "pre_restart_command": "",
        "post_restart_command": "",
        "run_as_root": False,
    }
    process_list.write_text(yaml.safe_dump([entry]))
    config = workdir / "masakarimonitors.conf"
    config.write_text(
        "[DEFAULT]\ndebug = true\n"
        "[api]\nregion = RegionOne\napi_interface = public\nauth_type = password\n"
        f"auth_url = {api_env.sim.base_url}/identity/v3\nusername = admin\n"
        f"password = {api_env.sim.admin_password}\nproject_name = admin\n"
        "user_domain_name = Default\nproject_domain_name = Default\n"
        "[process]\ncheck_interval = 1\nrestart_retries = 0\nrestart_interval = 1\n"
        f"api_retry_max = 3\napi_retry_interval = 1\nprocess_list_path = {process_list}\n"
    )
    return config


def test_processmonitor_notification_becomes_a_failure_event(
    cluster: Cluster, api_env: ApiCloud, tmp_path: Path
) -> None:
    require(PROCESSMONITOR)
    if shutil.which("ps") is None:
        pytest.fail("masakari-processmonitor runs `ps -ef`: apt-get install procps", pytrace=False)
    ha = api_env.connection().instance_ha
    seg = ha.create_segment(name="seg", recovery_method="auto", service_type="COMPUTE")
    # The monitor reports socket.gethostname(), which must be a registered host.
    ha.create_host(seg.uuid, name=THIS_HOST, type="COMPUTE", control_attributes="SSH")

    watched = tmp_path / f"masakari-watched-{secrets.token_hex(4)}"
    watched.write_text("#!/bin/sh\nwhile true; do sleep 1; done\n")
    watched.chmod(0o755)
    dummy = subprocess.Popen([str(watched)], preexec_fn=_die_with_parent)
    # ps cuts its lines at $COLUMNS when that is set (pytest's terminal may set it).
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    log_path = tmp_path / "processmonitor.log"
    config = _monitor_config(api_env, tmp_path, watched)
    with log_path.open("wb") as log:
        monitor = subprocess.Popen(
            [str(PROCESSMONITOR), "--config-file", str(config)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
    try:
        assert dummy.poll() is None, "the watched process did not start"
        wait_for(
            "the processmonitor to see the watched process",
            lambda: f"Process '{watched}' is found" in log_path.read_text(errors="replace"),
            timeout=60,
        )
        assert objects(cluster, "fev", api_env.namespace) == []
        killed_at = time.time()
        dummy.kill()
        dummy.wait(timeout=10)

        [event] = wait_for(
            "the monitor's notification as a FailureEvent",
            lambda: objects(cluster, "fev", api_env.namespace),
            timeout=60,
        )
        print(f"kill to FailureEvent: {time.time() - killed_at:.1f}s")
        assert event["spec"]["type"] == "PROCESS"
        assert event["spec"]["payload"] == {"event": "STOPPED", "process_name": watched.name}
        assert event["spec"]["source"] == "masakari-api/admin"
        [notification] = list(ha.notifications())
        assert (
            notification.notification_uuid == event["metadata"]["annotations"]["masakari.dev/uuid"]
        )
        assert notification.status == "new"
    finally:
        for process in (monitor, dummy):
            process.kill()
            process.wait(timeout=10)
        print(log_path.read_text(errors="replace")[-6000:])

"""The availability report of a real recovery (the operator on the simulator): from the command
line, from the API, and its page rendered by headless Chromium, whose screenshot the test
leaves in its output."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cluster
from tests.harness.control_plane import REPO, free_port
from tests.harness.masakari_api import running_api
from tests.integration.api_env import call
from tests.integration.operator_env import host, host_failure, segment, topology

pytestmark = pytest.mark.integration

HOSTS = [{"name": f"compute{i}", "vcpus": 64, "memory_mb": 65536} for i in (1, 2, 3)]
SERVERS = [
    {"name": f"vm{n}", "host": "compute1", "project_id": project}
    for n, project in enumerate(["shop", "shop", "billing"])
]
PNG = b"\x89PNG\r\n\x1a\n"


def _report(cluster: Cluster, namespace: str, form: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "controller.cli", "report", "-n", namespace,
         "--kubeconfig", str(cluster.kubeconfig), "--window", "1h", "--format", form],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def _get(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return answer.headers.get_content_type(), answer.read().decode()


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("chromium is missing: run hack/chromium/install.sh (make test does)")
    return found


def test_the_report_of_a_recovery(cloud_factory: Any, cluster: Cluster, tmp_path: Path) -> None:
    cloud = cloud_factory(topology(HOSTS, SERVERS))
    assert cloud.sim is not None
    cloud.apply(segment(), *(host(h["name"]) for h in HOSTS))
    cloud.wait_phase("mhost", "compute1", {"Active"})
    cloud.sim.control("POST", "hosts/compute1/kill")
    cloud.apply(host_failure("c1", "compute1"))
    cloud.wait_phase("fev", "c1", {"Finished"}, 60)

    figures = json.loads(_report(cluster, cloud.namespace, "json"))
    total = figures["total"]
    assert (total["failures"], total["recovered"], total["instancesRecovered"]) == (1, 1, 3)
    assert total["instancesLost"] == 0 and total["p95SecondsToRecover"] is not None
    assert {p: r["instancesRecovered"] for p, r in figures["projects"].items()} == {
        "shop": 2,
        "billing": 1,
    }
    hosts = {row["host"]: row["failures"] for row in figures["hosts"]}
    assert hosts == {"compute1": 1, "compute2": 0, "compute3": 0}
    table = _report(cluster, cloud.namespace, "table")
    assert "seg/compute1" in table and "billing" in table

    port = free_port()
    with running_api(
        cluster.kubeconfig, cloud.namespace, cloud.sim.clouds_yaml, cloud.sim.cloud,
        tmp_path, port, "--insecure-no-auth",
    ) as api:  # fmt: skip
        kind, body = _get(api.url + "/report?format=json&window=1h")
        assert kind == "application/json"
        served = json.loads(body)
        assert served["total"] == total and served["projects"] == figures["projects"]
        kind, page = _get(api.url + "/report")
        assert kind == "text/html" and page.count("<svg") == 3

        chromium = _chromium()
        # As root Chromium needs --no-sandbox; the page is our own, with no script.
        browse = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
        dom = subprocess.run(
            [*browse, "--dump-dom", api.url + "/report"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert "Availability report" in dom.stdout, dom.stderr[-2000:]
        assert dom.stdout.count("<rect") >= 3, "the charts have bars"
        shot = tmp_path / "availability-report.png"
        subprocess.run(
            [*browse, f"--screenshot={shot}", "--window-size=1000,1400", api.url + "/report"],
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip
    assert shot.exists() and shot.read_bytes()[:8] == PNG, "no screenshot"
    assert shot.stat().st_size > 20_000, "a blank page"
    print(f"screenshot of the report page: {shot}")


def test_the_report_needs_an_admin_and_a_window_it_can_read(api_env: Any) -> None:
    assert call(api_env, "GET", "/report")[0] == 401
    assert call(api_env, "GET", "/report", token=api_env.token("demo"))[0] == 403
    admin = api_env.token()
    status, _, body = call(api_env, "GET", "/report?format=json&window=2h", token=admin)
    assert status == 200 and body["total"]["failures"] == 0
    for query in ("window=2w", "since=yesterday", "format=pdf"):
        status, _, body = call(api_env, "GET", "/report?" + query, token=admin)
        assert status == 400 and body["badRequest"]["message"].startswith("Invalid input"), body

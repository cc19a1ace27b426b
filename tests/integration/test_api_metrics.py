"""The API's request metrics on their own port: every answer counted by route pattern and the
status the client got (refusals and unknown paths included), never an id or a name."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import Cluster
from tests.harness.control_plane import free_port
from tests.harness.masakari_api import api_cloud

pytestmark = pytest.mark.integration

SEGMENT = "6f1d2c44-0000-4000-8000-00000000abcd"


def status_of(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"X-Auth-Token": token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_requests_are_counted_by_route_and_status(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    port = free_port()
    with api_cloud(cluster.kubeconfig, namespace, tmp_path, "--metrics-port", str(port)) as cloud:
        base = cloud.api.url
        assert status_of(f"{base}/") == 200
        assert status_of(f"{base}/v1/segments") == 401  # no token
        assert status_of(f"{base}/v1/segments/{SEGMENT}", cloud.token()) == 404
        assert status_of(f"{base}/nowhere") == 404
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            text = answer.read().decode()

    def count(method: str, route: str, status: int) -> float:
        prefix = (
            f'masakari_api_requests_total{{method="{method}",route="{route}",status="{status}"}} '
        )
        values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix)]
        return sum(values)

    assert count("GET", "/", 200) == 1
    assert count("GET", "/v1/segments", 401) == 1
    assert count("GET", "/v1/segments/{segment_id}", 404) == 1
    assert count("GET", "unmatched", 404) == 1
    assert SEGMENT not in text and "nowhere" not in text  # patterns only, bounded
    assert "masakari_api_request_duration_seconds_bucket" in text

"""What the API tests share: the cloud fixture's body, kubectl readers and raw HTTP calls."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cluster
from tests.harness.masakari_api import ApiCloud


def require(script: Path) -> None:
    """A console script of the `test` extra; its absence fails the test (never skips it)."""
    if not script.exists():
        pytest.fail(f"{script} is missing: pip install -e '.[test]'", pytrace=False)


def objects(cluster: Cluster, kind: str, namespace: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", kind, "-n", namespace, "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def call(
    cloud: ApiCloud,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    version: str | None = None,
    raw: bytes | None = None,
    content_type: str = "application/json",
) -> tuple[int, dict[str, str], Any]:
    """One HTTP request to the API: (status, headers, decoded JSON body or None)."""
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["X-Auth-Token"] = token
    if version is not None:
        headers["OpenStack-API-Version"] = f"instance-ha {version}"
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(
        cloud.api.url + path, data=data, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            status, got, text = answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        status, got, text = error.code, dict(error.headers), error.read()
    return status, got, json.loads(text) if text else None

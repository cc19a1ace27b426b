"""No credential shows through the Masakari API: its service password (the clouds.yaml it
validates tokens and checks compute hosts with), the Keystone tokens clients send it and the
ones it is issued, in no answer (bodies and headers), no line of its log and no metric, on every
route, in its refusals, and while Nova and Keystone answer errors or hang.

The simulator's admin password is random per run: a canary that appears nowhere by chance."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cluster
from tests.harness.control_plane import free_port
from tests.harness.masakari_api import ApiCloud, api_cloud
from tests.integration.api_env import call
from tests.integration.test_api_errors import notification, setup_segment

pytestmark = pytest.mark.integration


def _requests(seg: str, host: str, event: str) -> Iterator[tuple[str, str, Any]]:
    """Every route once, and each refusal the API makes."""
    yield "GET", "/", None
    yield "GET", "/v1", None
    yield "GET", "/openapi.json", None
    yield "GET", "/readyz", None
    yield "GET", "/v1/segments", None
    yield "GET", f"/v1/segments/{seg}", None
    yield "PUT", f"/v1/segments/{seg}", {"segment": {"description": "canary run"}}
    yield "GET", f"/v1/segments/{seg}/hosts", None
    yield "GET", f"/v1/segments/{seg}/hosts/{host}", None
    yield "PUT", f"/v1/segments/{seg}/hosts/{host}", {"host": {"reserved": False}}
    yield "GET", "/v1/notifications", None
    yield "GET", f"/v1/notifications/{event}", None
    yield "GET", f"/v1/notifications/{event}/vmoves", None
    yield "GET", "/report?format=json", None
    yield "GET", "/report?format=html", None
    # Refusals: unknown objects, a bad body, a bad query, a taken name.
    yield "GET", "/v1/segments/00000000-0000-0000-0000-000000000000", None
    yield "POST", "/v1/segments", {"segment": {"name": 7}}
    yield "GET", "/v1/notifications?limit=-1", None
    yield "GET", "/report?window=yesterday", None
    yield (
        "POST",
        f"/v1/segments/{seg}/hosts",
        {"host": {"name": "no-such-compute", "type": "COMPUTE", "control_attributes": "-"}},
    )


def _answer(cloud: ApiCloud, method: str, path: str, body: Any, token: str) -> tuple[int, str]:
    """The answer as sent: status, headers and body undecoded (the report is HTML)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "X-Auth-Token": token}
    request = urllib.request.Request(cloud.api.url + path, data, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, f"{dict(answer.headers)} {answer.read().decode()}"
    except urllib.error.HTTPError as error:
        return error.code, f"{dict(error.headers)} {error.read().decode()}"


def _answers(cloud: ApiCloud, token: str, seg: str, host: str, event: str) -> list[str]:
    texts = []
    for method, path, body in _requests(seg, host, event):
        status, text = _answer(cloud, method, path, body, token)
        assert status < 500 or status == 503, (method, path, status, text)
        texts.append(f"{method} {path} {status} {text}")
    return texts


def test_no_credential_shows_through_the_apis_answers_log_and_metrics(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    port = free_port()
    with api_cloud(cluster.kubeconfig, namespace, tmp_path, "--metrics-port", str(port)) as cloud:
        admin, demo = cloud.token(), cloud.token("demo")
        seg = setup_segment(cloud, admin, "compute1")["uuid"]
        [listed] = call(cloud, "GET", f"/v1/segments/{seg}/hosts", token=admin)[2]["hosts"]
        host = listed["uuid"]
        status, _, made = call(cloud, "POST", "/v1/notifications", notification("compute1"),
                               token=admin)  # fmt: skip
        assert status == 202, made
        event = made["notification"]["notification_uuid"]

        texts = _answers(cloud, admin, seg, host, event)
        texts += _answers(cloud, demo, seg, host, event)  # a member: 403s
        texts += _answers(cloud, "gAAAA-not-a-token", seg, host, event)  # 401s
        # Keystone and Nova answer errors, then do not answer at all: the API's own calls
        # (validating a token it has not seen, the compute check) fail, and it says so.
        unseen = [cloud.token(), cloud.token()]
        cloud.sim.control("PUT", "faults", {"routes": {"*": {"error_rate": 1.0, "status": 500}}})
        texts += _answers(cloud, unseen[0], seg, host, event)
        texts += _answers(cloud, admin, seg, host, event)
        cloud.sim.control("PUT", "faults", {"routes": {}})
        cloud.sim.control("PUT", "faults", {"outage": {"mode": "hang", "seconds": 5}})
        texts += _answers(cloud, unseen[1], seg, host, event)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            texts.append(answer.read().decode())
        issued = cloud.sim.control("GET", "tokens")["tokens"]
        log = cloud.api.log()

    assert set(issued) - {admin, demo}, "the API never authenticated with its own credential"
    statuses = Counter(int(text.split(" ", 3)[2]) for text in texts[:-1])
    assert {200, 400, 401, 403, 404, 503} <= set(statuses), statuses
    canaries = [cloud.sim.admin_password, admin, demo, *unseen, *issued]
    canaries += [base64.b64encode(c.encode()).decode() for c in canaries]
    shown = {"answers": "\n".join(texts), "log": log}
    for where, text in shown.items():
        leaked = [c for c in canaries if c in text]
        assert not leaked, f"{len(leaked)} credential(s) in the API's {where}"
    print(f"\nAPI canary: {sum(statuses.values())} answers {dict(sorted(statuses.items()))}, "
          f"{len(log.splitlines())} log lines, {len(canaries)} canaries, 0 shown")  # fmt: skip

"""Request latency and memory of `masakari-operator api` on a big namespace (issue 11).

Seeds a namespace of a real kube-apiserver directly (not through the API: minutes instead of
hours) with --segments segments, --hosts Hosts and --events ended FailureEvents (half PROCESS,
half VM failures, made as bench/scale.py makes them, with their Masakari ids already given as
the API gives them), starts the API on it, and prints:

- the time from the API's start until /readyz says every kind is in memory, and its RSS then;
- p50, p99 and max of --requests requests of each route, one at a time over HTTP with a
  Keystone token (the first request, which validates the token, is left out);
- the API's RSS at the end.

    .venv/bin/python bench/api_latency.py --hosts 500 --events 5000
    .venv/bin/python bench/api_latency.py --hosts 5000 --segments 100 --events 50000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from kubernetes import client  # noqa: E402
from scale import Kube, event_documents, in_parallel, nova, percentile, rss_mib  # noqa: E402

from controller.api.ids import COUNTER, ID, UUID  # noqa: E402
from tests.harness import control_plane  # noqa: E402
from tests.harness.masakari_api import ApiCloud, api_cloud  # noqa: E402
from tests.integration.operator_env import host, segment  # noqa: E402

NAMESPACE = "bench"


def numbered(body: dict[str, Any], number: int) -> dict[str, Any]:
    annotations = body["metadata"].setdefault("annotations", {})
    annotations.update({ID: str(number), UUID: f"00000000-0000-4000-8000-{number:012d}"})
    return body


def seed(kube: Kube, args: argparse.Namespace, hosts: list[str]) -> None:
    segments = [f"seg{s:03d}" for s in range(args.segments)]
    segment_of = {name: segments[n % len(segments)] for n, name in enumerate(hosts)}
    in_parallel(
        lambda n=n, s=s: kube.create(NAMESPACE, "failoversegments", numbered(segment(s), n + 1))
        for n, s in enumerate(segments)
    )
    in_parallel(
        lambda n=n, h=h: kube.create(NAMESPACE, "hosts", numbered(host(h, segment_of[h]), n + 1))
        for n, h in enumerate(hosts)
    )

    def event(number: int, body: dict[str, Any], status: dict[str, Any]) -> None:
        kube.create(NAMESPACE, "failureevents", numbered(body, number))
        kube.patch_status(NAMESPACE, "failureevents", body["metadata"]["name"], status)

    in_parallel(
        lambda n=n, b=b, s=s: event(n + 1, b, s)
        for n, (b, s) in enumerate(event_documents(hosts, segment_of, args.events))
    )
    counter = {"segments": len(segments), "hosts": len(hosts), "notifications": args.events}
    client.CoreV1Api(kube.api).create_namespaced_config_map(
        NAMESPACE, {"metadata": {"name": COUNTER}, "data": {k: str(v) for k, v in counter.items()}}
    )


class Api:
    def __init__(self, cloud: ApiCloud) -> None:
        self.url = cloud.api.url
        self.headers = {
            "X-Auth-Token": nova(cloud.sim).auth_token,
            "Content-Type": "application/json",
        }

    def call(self, method: str, path: str, body: Any = None, timeout: float = 600) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers=self.headers
        )
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return json.loads(answer.read() or b"null")


def timed(requests: int, call: Callable[[int], Any]) -> list[float]:
    spent = []
    for index in range(requests):
        begin = time.perf_counter()
        call(index)
        spent.append((time.perf_counter() - begin) * 1000)
    return spent


def wait_ready(api: Api, seconds: float) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        try:
            state: dict[str, Any] = api.call("GET", "/readyz", timeout=10)
            return state
        except urllib.error.HTTPError as error:
            if error.code == 404:  # an API from before its cache: it reads the API server
                return {"kinds": "no /readyz"}
            if error.code != 503 or time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=100, help="per route")
    args = parser.parse_args()
    hosts = [f"h{n:05d}" for n in range(args.hosts)]
    with control_plane.running() as plane, tempfile.TemporaryDirectory() as workdir:
        plane.kubectl("create", "namespace", NAMESPACE)
        kube = Kube(plane.kubeconfig)
        begin = time.monotonic()
        seed(kube, args, hosts)
        print(
            f"{args.segments} segments, {args.hosts} hosts, {args.events} ended events "
            f"created in {time.monotonic() - begin:.0f} s",
            flush=True,
        )
        started = time.monotonic()
        with api_cloud(plane.kubeconfig, NAMESPACE, Path(workdir)) as cloud:
            api = Api(cloud)
            state = wait_ready(api, 1800)
            print(f"API ready (every kind in memory) {time.monotonic() - started:.1f} s after "
                  f"its start: {json.dumps(state['kinds'])}")  # fmt: skip
            pid = cloud.api.process.pid
            print(f"API RSS when ready: {rss_mib(pid):.0f} MiB", flush=True)
            figures = routes(api, args, hosts)
            print(f"API RSS at the end: {rss_mib(pid):.0f} MiB")
    print(f"\n{args.requests} requests per route, ms")
    print(f"{'route':48} {'p50':>7} {'p99':>7} {'max':>7}")
    for route, spent in figures.items():
        print(
            f"{route:48} {statistics.median(spent):7.1f} {percentile(spent, 0.99):7.1f} "
            f"{max(spent):7.1f}"
        )
    return 0


def routes(api: Api, args: argparse.Namespace, hosts: list[str]) -> dict[str, list[float]]:
    api.call("GET", "/v1/notifications?limit=1")  # validates the token
    segments = api.call("GET", "/v1/segments")["segments"]
    first = segments[0]["uuid"]
    a_host = api.call("GET", f"/v1/segments/{first}/hosts?limit=1")["hosts"][0]["uuid"]
    page = api.call("GET", "/v1/notifications?limit=100")["notifications"]
    marker, an_event = page[-1]["id"], page[0]["notification_uuid"]

    def notify(n: int) -> Any:
        body = {
            "notification": {
                "type": "PROCESS",
                "hostname": hosts[n % len(hosts)],
                "generated_time": datetime.now(UTC).replace(tzinfo=None).isoformat(),
                "payload": {"event": "STOPPED", "process_name": f"bench{n}"},
            }
        }
        return api.call("POST", "/v1/notifications", body)

    calls: dict[str, Callable[[int], Any]] = {
        "GET /v1/notifications?limit=100": lambda _: api.call("GET", "/v1/notifications?limit=100"),
        "GET /v1/notifications?limit=100&marker=<100th>": lambda _: api.call(
            "GET", f"/v1/notifications?limit=100&marker={marker}"
        ),
        "GET /v1/notifications?limit=100&sort_key=type": lambda _: api.call(
            "GET", "/v1/notifications?limit=100&sort_key=type&sort_dir=asc"
        ),
        "GET /v1/notifications/{uuid}": lambda _: api.call("GET", f"/v1/notifications/{an_event}"),
        "POST /v1/notifications": notify,
        "GET /v1/segments": lambda _: api.call("GET", "/v1/segments"),
        "GET /v1/segments/{uuid}/hosts": lambda _: api.call("GET", f"/v1/segments/{first}/hosts"),
        "GET /v1/segments/{uuid}/hosts/{uuid}": lambda _: api.call(
            "GET", f"/v1/segments/{first}/hosts/{a_host}"
        ),
    }
    return {route: timed(args.requests, call) for route, call in calls.items()}


if __name__ == "__main__":
    sys.exit(main())

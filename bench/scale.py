"""One operator on a big namespace: memory, start, spec changes, idle load, recovery, the API.

On the simulator and a real kube-apiserver (tests/harness), builds a namespace of --hosts Hosts
in --segments segments, --servers servers in the simulator and --events ended FailureEvents
(created directly with their final status), then starts `masakari-operator run` on it with the
production intervals (the defaults of controller/config.py) and prints:

- the operator's RSS once every Host has status, and at the end of the run;
- the time from the operator's start until every Host has status (seen on a watch);
- --changes Host spec changes (maintenance on, then off, on different hosts), each from the
  patch to the status phase that reflects it (seen on the watch): p50, p99, max;
- requests per second the API server serves while nothing changes: the deltas of the API
  server's own `apiserver_request_total` over --idle seconds with only the operator running,
  minus the same over --baseline seconds before it started (the API server's own loopback
  traffic), by verb and resource;
- --recoveries host recoveries (20 servers each) in that namespace and as many in a namespace
  of 4 hosts served by a second operator, taking turns in the same run, each victim revived
  and released before the next: the time from the report to all 20 servers ACTIVE on other
  hosts, read from the simulator's Nova (not from the operator's status); their medians;
- the Masakari API (`masakari-operator api` on the big namespace): the time until its
  /readyz says every kind is in memory, the first request (which waits for the objects'
  Masakari ids), then GET /v1/notifications?limit=100 and POST /v1/notifications, p50 and
  p99;
- with --soak-speedup K (0: skip): a fresh operator with every resync interval divided by K
  runs 3600/K seconds from its first host pass (an hour of resyncs, if it keeps up: the host
  passes done are counted at the simulator); its RSS at the first pass and after.

The events are PROCESS and VM failures, so the hosts stay Active, and carry the operator's
diff-base annotation as if it had seen them before (an operator restarted on a namespace with
history); the Hosts are new to it, so the start time includes every Host's first sync.

    .venv/bin/python bench/scale.py --hosts 500 --segments 10 --servers 5000 --events 5000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import kopf  # noqa: E402
import openstack  # noqa: E402
from kubernetes import client, config, watch  # noqa: E402

from controller.config import OperatorConfig  # noqa: E402
from controller.drivers.kube_store import OPEN_EVENTS  # noqa: E402
from tests.harness import control_plane  # noqa: E402
from tests.harness.control_plane import free_port  # noqa: E402
from tests.harness.masakari_api import running_api  # noqa: E402
from tests.harness.operator import Operator  # noqa: E402
from tests.harness.sim import Sim, running_sim  # noqa: E402
from tests.integration.operator_env import host, host_failure, segment  # noqa: E402

GROUP, VERSION = "masakari.dev", "v1alpha1"
#: Where the operator's kopf keeps what it last handled (controller/handlers/startup.py).
DIFFBASE = kopf.AnnotationsDiffBaseStorage(prefix="masakari.dev", key="last-handled-configuration")
BIG, SMALL = "scale-big", "scale-small"
VICTIM_SERVERS = 20
SMALL_HOSTS = [f"small{i}" for i in range(1, 5)]
REQUEST = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="([^"]*)"')


def production_env(divide: float = 1.0) -> dict[str, str]:
    """The defaults of controller/config.py for what tests/harness/operator.py's FAST changes,
    resync intervals divided by `divide`."""
    defaults = OperatorConfig.from_environment()
    env = {
        "MASAKARI_POLL_INTERVAL": str(defaults.poll_interval),
        "MASAKARI_RECHECK_INTERVAL": str(defaults.recheck_interval),
    }
    for name in (
        "host_resync_interval",
        "segment_resync_interval",
        "binding_resync_interval",
        "retention_interval",
    ):
        if hasattr(defaults, name):
            env[f"MASAKARI_{name.upper()}"] = str(getattr(defaults, name) / divide)
    return env


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


def topology(
    hosts: list[str], servers: int, rounds: int
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Hosts of both namespaces, VICTIM_SERVERS on each of the first `rounds` hosts of each,
    the rest of `servers` spread over the other big hosts. Returns the topology and the
    victims' ids."""
    every = [*hosts, *SMALL_HOSTS]
    victims = {
        name: [str(uuid.uuid4()) for _ in range(VICTIM_SERVERS)]
        for name in (*hosts[:rounds], *SMALL_HOSTS[:rounds])
    }
    listed: list[dict[str, Any]] = [
        {"name": f"{name}-ha{n}", "host": name, "id": ident, "metadata": {"HA_Enabled": "True"}}
        for name, ids in victims.items()
        for n, ident in enumerate(ids)
    ]
    others = hosts[rounds:] or hosts
    listed += [
        {"name": f"vm{n}", "host": others[n % len(others)]}
        for n in range(max(0, servers - VICTIM_SERVERS))
    ]
    spec = {
        "hosts": [{"name": name, "vcpus": 1024, "memory_mb": 1 << 20} for name in every],
        "servers": listed,
    }
    return spec, victims


class Kube:
    """The kubernetes client on the control plane's kubeconfig, for bulk work and /metrics."""

    def __init__(self, kubeconfig: Path) -> None:
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        configuration.connection_pool_maxsize = 16
        self.configuration = configuration
        self.api = client.ApiClient(configuration)
        self.custom = client.CustomObjectsApi(self.api)

    def create(self, namespace: str, plural: str, body: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)

    def patch_status(self, namespace: str, plural: str, name: str, status: Any) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, plural, name, {"status": status}
        )

    def patch_spec(self, namespace: str, plural: str, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, name, {"spec": spec}
        )

    def open_events(self, namespace: str) -> int:
        """FailureEvents of the namespace not ended yet (as the operator's kopf selects them)."""
        listed = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, "failureevents", field_selector=",".join(OPEN_EVENTS)
        )
        return len(cast(dict[str, Any], listed)["items"])

    def requests(self) -> Counter[tuple[str, str]]:
        """apiserver_request_total by (verb, resource[/subresource]); resource requests only."""
        answer = self.api.rest_client.pool_manager.request(
            "GET", f"{self.configuration.host}/metrics"
        )
        counts: Counter[tuple[str, str]] = Counter()
        for line in answer.data.decode().splitlines():
            if match := REQUEST.match(line):
                labels = dict(LABEL.findall(match["labels"]))
                if not labels.get("resource"):
                    continue  # /metrics, /readyz, discovery
                resource = labels["resource"]
                if labels.get("subresource"):
                    resource += "/" + labels["subresource"]
                counts[labels["verb"], resource] += int(float(match["value"]))
        return counts


def in_parallel(work: Iterable[Callable[[], object]], threads: int = 8) -> None:
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(job) for job in work]:
            future.result()


class HostWatch:
    """Every Host of a namespace on one watch: when it first had status, its phase now."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube, self.namespace = kube, namespace
        self.changed = threading.Condition()
        self.first_status: dict[str, float] = {}
        self.phase: dict[str, str | None] = {}
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped:
            stream = watch.Watch().stream(
                self.kube.custom.list_namespaced_custom_object,
                GROUP, VERSION, self.namespace, "hosts", timeout_seconds=3600,
            )  # fmt: skip
            with contextlib.suppress(Exception):
                for event in stream:
                    body = event["object"]
                    status = body.get("status") or {}
                    name = body["metadata"]["name"]
                    with self.changed:
                        if status and name not in self.first_status:
                            self.first_status[name] = time.monotonic()
                        self.phase[name] = status.get("phase")
                        self.changed.notify_all()

    def wait(self, what: str, done: Callable[[], bool], timeout: float) -> float:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
                self.changed.wait(min(left, 1.0))
        return time.monotonic()


def seen(body: dict[str, Any]) -> dict[str, str]:
    """The annotation kopf writes once it has handled `body`: an operator restarted on the
    namespace finds the events as it left them, not as new ones to handle (and patch) again."""
    wrapped = kopf.Body(body)
    essence = json.dumps(DIFFBASE.build(body=wrapped), separators=(",", ":")) + "\n"
    return dict.fromkeys(DIFFBASE.make_keys(DIFFBASE.key, body=wrapped), essence)


def event_documents(hosts: list[str], segment_of: dict[str, str], count: int) -> Iterator[Any]:
    """(object, status) of `count` ended PROCESS and VM failures spread over the hosts."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for n in range(count):
        name = hosts[n % len(hosts)]
        if n % 2:
            kind = "PROCESS"
            payload: dict[str, str] = {"event": "STOPPED", "process_name": "libvirtd"}
        else:
            kind = "VM"
            payload = {
                "event": "LIFECYCLE",
                "instance_uuid": str(uuid.UUID(int=n)),
                "vir_domain_event": "STOPPED_FAILED",
            }
        spec = {"type": kind, "host": name, "generatedTime": now, "payload": payload}
        labels = {
            "masakari.dev/host": name,
            "masakari.dev/type": kind,
            "masakari.dev/segment": segment_of[name],
        }
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "FailureEvent",
            "metadata": {
                "name": f"ev{n:06d}",
                "labels": labels,
            },
            "spec": spec,
        }
        body["metadata"]["annotations"] = seen(body)
        status = {
            "phase": "Finished",
            "reason": "Recovered",
            "message": "created by bench/scale.py",
            "segment": segment_of[name],
            "startTime": now,
            "endTime": now,
            "observedGeneration": 1,
        }
        yield body, status


def build(kube: Kube, args: argparse.Namespace, hosts: list[str]) -> dict[str, str]:
    segments = [f"seg{s:03d}" for s in range(args.segments)]
    segment_of = {name: segments[n % len(segments)] for n, name in enumerate(hosts)}
    in_parallel(lambda s=s: kube.create(BIG, "failoversegments", segment(s)) for s in segments)
    in_parallel(lambda h=h: kube.create(BIG, "hosts", host(h, segment_of[h])) for h in hosts)

    def event(body: dict[str, Any], status: dict[str, Any]) -> None:
        kube.create(BIG, "failureevents", body)
        kube.patch_status(BIG, "failureevents", body["metadata"]["name"], status)

    in_parallel(
        lambda b=b, s=s: event(b, s) for b, s in event_documents(hosts, segment_of, args.events)
    )
    return segment_of


def nova(sim: Sim) -> Any:
    loader = openstack.config.OpenStackConfig(
        config_files=[str(sim.clouds_yaml)], vendor_files=[], load_envvars=False
    )
    return openstack.connection.Connection(
        config=loader.get_one(cloud=sim.cloud, compute_api_version="2.87")
    )


def recover(kube: Kube, sim: Sim, conn: Any, namespace: str, victim: str, ids: list[str]) -> float:
    """Kill `victim`, report it, and time until all its servers are ACTIVE elsewhere (Nova)."""
    sim.control("POST", f"hosts/{victim}/kill")
    report = host_failure(f"fail-{victim}", victim)
    begin = time.monotonic()
    kube.create(namespace, "failureevents", report)
    deadline = begin + 600
    left = set(ids)
    while left:
        for ident in sorted(left):
            server = conn.compute.get_server(ident)
            if server.compute_host != victim and server.status == "ACTIVE":
                left.discard(ident)
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(left)} servers of {victim} still not moved after 600s")
        if left:
            time.sleep(0.1)
    return time.monotonic() - begin


def release(kube: Kube, sim: Sim, seen: HostWatch, namespace: str, victim: str) -> None:
    """Bring `victim` back, release its failure, and wait until it is Active and its
    namespace's events have ended: the next recovery starts from a quiet namespace."""
    sim.control("POST", f"hosts/{victim}/revive")
    kube.patch_spec(namespace, "hosts", victim, {"releaseFailure": f"fail-{victim}"})
    seen.wait(f"{victim} Active again", lambda: seen.phase.get(victim) == "Active", 300)
    seen.wait(f"the events of {namespace} to end", lambda: not kube.open_events(namespace), 300)


def api_latency(sim: Sim, url: str, hosts: list[str], requests: int) -> dict[str, list[float]]:
    token = nova(sim).auth_token
    headers = {"X-Auth-Token": token, "Content-Type": "application/json"}

    def call(method: str, path: str, body: Any = None, timeout: float = 60) -> float:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url + path, data=data, method=method, headers=headers)
        begin = time.perf_counter()
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read()
        return (time.perf_counter() - begin) * 1000

    def notification(n: int) -> dict[str, Any]:
        return {
            "notification": {
                "type": "PROCESS",
                "hostname": hosts[n % len(hosts)],
                "generated_time": datetime.now(UTC).replace(tzinfo=None).isoformat(),
                "payload": {"event": "STOPPED", "process_name": f"bench{n}"},
            }
        }

    # Until every kind is in the API's memory, its reads go to the API server (as before it
    # had a cache): time that apart.
    begin = time.perf_counter()
    while True:
        try:
            call("GET", "/readyz", timeout=10)
            break
        except urllib.error.HTTPError as error:
            if error.code != 503 or time.perf_counter() - begin > 1800:
                raise
            time.sleep(0.1)
    ready = (time.perf_counter() - begin) * 1000
    # The first request validates the token and waits for every object created around the
    # API (all of them, here) to have its Masakari id: one PATCH each.
    first = call("GET", "/v1/notifications?limit=100", timeout=3600)
    return {
        "in memory (/readyz) after": [ready],
        "first GET /v1/notifications?limit=100": [first],
        "GET /v1/notifications?limit=100": [
            call("GET", "/v1/notifications?limit=100") for _ in range(requests)
        ],
        "POST /v1/notifications": [
            call("POST", "/v1/notifications", notification(n)) for n in range(requests)
        ],
    }


def idle_rate(kube: Kube, seconds: float) -> tuple[float, Counter[tuple[str, str]]]:
    before = kube.requests()
    time.sleep(seconds)
    after = kube.requests()
    after.subtract(before)
    delta = +after
    return sum(delta.values()) / seconds, delta


def show_requests(delta: Counter[tuple[str, str]], seconds: float, unit: str = "/s") -> None:
    for (verb, resource), count in delta.most_common(8):
        print(f"    {verb:>7} {resource:<32} {count / seconds:9.3f}{unit}")


def profile(pid: int, path: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling the operator from the outside (its start-up: it began a moment ago),
    without pausing it, until it is sent SIGINT."""
    # The venv's py-spy first: the bench runs as .venv/bin/python, often without the venv on PATH.
    spy = shutil.which(
        "py-spy", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )
    if spy is None:
        raise SystemExit("--profile needs py-spy (pip install py-spy)")
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "50",
         "--nonblocking", "--gil", "--output", str(path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=5000)
    parser.add_argument("--segments", type=int, default=100)
    parser.add_argument("--servers", type=int, default=50000)
    parser.add_argument("--events", type=int, default=50000)
    parser.add_argument("--changes", type=int, default=40, help="spec changes (even)")
    parser.add_argument("--baseline", type=float, default=60, help="seconds, no operator")
    parser.add_argument("--start-timeout", type=float, default=1200, help="seconds")
    parser.add_argument("--idle", type=float, default=120, help="seconds, operator idle")
    parser.add_argument("--requests", type=int, default=100, help="per Masakari API route")
    parser.add_argument("--evacuation-seconds", type=float, default=1.0)
    parser.add_argument(
        "--recoveries", type=int, default=3, help="host recoveries per namespace (median)"
    )
    parser.add_argument("--soak-speedup", type=float, default=12, help="0: no soak")
    parser.add_argument("--logs", type=Path, help="keep the operators' logs here")
    parser.add_argument("--start-only", action="store_true", help="stop once every Host has status")
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy's samples of the operator's start, as collapsed stacks (py-spy on PATH)",
    )
    args = parser.parse_args()
    hosts = [f"h{n:05d}" for n in range(args.hosts)]
    workdir = args.logs or Path(tempfile.mkdtemp(prefix="masakari-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = production_env()
    figures: list[tuple[str, str, str]] = []

    def figure(name: str, value: str, goal: str = "") -> None:
        figures.append((name, value, goal))
        print(f"  {name}: {value}" + (f"  (goal {goal})" if goal else ""), flush=True)

    print(
        f"{args.hosts} hosts in {args.segments} segments, {args.servers} servers, "
        f"{args.events} ended events; operator env {env}",
        flush=True,
    )
    if not 1 <= args.recoveries < len(SMALL_HOSTS) or args.recoveries >= args.hosts:
        parser.error(f"--recoveries: 1 to {len(SMALL_HOSTS) - 1}, fewer than --hosts")
    spec, victims = topology(hosts, args.servers, args.recoveries)
    with contextlib.ExitStack() as stack:
        if args.logs is None:  # last, once the operators have stopped writing their logs
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        # Once the API server has stopped, and with it the watches: a thread still reading one
        # as the interpreter exits aborted the bench (exit status 134) after its figures.
        watches: list[HostWatch] = []
        stack.callback(lambda: [w.thread.join(30) for w in watches])
        plane = stack.enter_context(control_plane.running())
        sim = stack.enter_context(
            running_sim(
                spec,
                "--evacuation-seconds", str(args.evacuation_seconds),
                "--service-down-time", "10",
                timeout=600,
            )
        )  # fmt: skip
        kube = Kube(plane.kubeconfig)
        for namespace in (BIG, SMALL):
            plane.kubectl("create", "namespace", namespace)
        begin = time.monotonic()
        build(kube, args, hosts)
        print(f"created in {time.monotonic() - begin:.0f}s", flush=True)
        hosts_watch = HostWatch(kube, BIG)
        watches.append(hosts_watch)
        stack.callback(setattr, hosts_watch, "stopped", True)  # before the API server stops
        hosts_watch.wait(
            "the watch's first list", lambda: len(hosts_watch.phase) == len(hosts), 300
        )
        base_rate, base = idle_rate(kube, args.baseline)
        print(f"API server alone: {base_rate:.2f} requests/s over {args.baseline:.0f}s")
        show_requests(base, args.baseline)

        big = Operator(plane.kubeconfig, BIG, sim.clouds_yaml, sim.cloud, workdir / "big.log", env)
        before = kube.requests()
        started = time.monotonic()
        big.start(timeout=600)
        print(f"operator started in {time.monotonic() - started:.1f}s (its log line)", flush=True)
        stack.callback(big.stop)
        assert big.process is not None
        pid = big.process.pid
        profiler = profile(pid, args.profile) if args.profile else None
        try:
            done = hosts_watch.wait(
                "every Host to have status",
                lambda: len(hosts_watch.first_status) == len(hosts),
                args.start_timeout,
            )
        except SystemExit as timeout:
            print(f"  {timeout}: {len(hosts_watch.first_status)} of {len(hosts)} have status")
            print(f"  operator RSS {rss_mib(pid):.0f} MiB, CPU {cpu_seconds(pid):.0f} s")
            raise
        finally:
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)  # py-spy writes its samples and ends
                profiler.wait(60)
        during = kube.requests()
        during.subtract(before)
        print("  requests served while starting:")
        show_requests(+during, 1.0, "")
        figure("time until every Host has status", f"{done - started:.1f} s", "<= 60 s")
        figure("operator RSS, every Host synced", f"{rss_mib(pid):.0f} MiB", "<= 500 MB")
        print(f"  operator CPU so far: {cpu_seconds(pid):.0f} s", flush=True)
        if args.start_only:
            return 0

        time.sleep(min(60.0, float(env.get("MASAKARI_HOST_RESYNC_INTERVAL", 30))))
        cpu = cpu_seconds(pid)
        rate, delta = idle_rate(kube, args.idle)
        cpu = (cpu_seconds(pid) - cpu) / args.idle
        figure(
            "API server requests/s, operator idle",
            f"{max(0.0, rate - base_rate):.2f} ({rate:.2f} - {base_rate:.2f} alone)",
            "<= 5",
        )
        show_requests(delta, args.idle)
        print(f"  operator CPU while idle: {100 * cpu:.0f}% of a core", flush=True)

        latencies = []
        for n in range(args.changes // 2):
            name = hosts[
                1 + (n * max(1, (len(hosts) - 1) // max(1, args.changes // 2))) % (len(hosts) - 1)
            ]
            for on in (True, False):
                begin = time.monotonic()
                kube.patch_spec(BIG, "hosts", name, {"onMaintenance": on})
                end = hosts_watch.wait(
                    f"{name} maintenance {on}",
                    lambda name=name, on=on: (hosts_watch.phase.get(name) == "Maintenance") == on,
                    120,
                )
                latencies.append(end - begin)
        figure(
            f"spec change to status, {len(latencies)} changes",
            f"p50 {statistics.median(latencies):.2f} s, p99 {percentile(latencies, 0.99):.2f} s,"
            f" max {max(latencies):.2f} s",
            "p99 <= 1 s",
        )

        port = free_port()
        api = stack.enter_context(
            running_api(plane.kubeconfig, BIG, sim.clouds_yaml, sim.cloud, workdir, port)
        )
        bystanders = hosts[args.recoveries :]  # the recoveries' victims are not reported
        for route, spent in api_latency(sim, api.url, bystanders, args.requests).items():
            if len(spent) == 1:
                figure(f"Masakari API {route}", f"{spent[0] / 1000:.1f} s")
                continue
            figure(
                f"Masakari API {route}",
                f"p50 {statistics.median(spent):.0f} ms, p99 {percentile(spent, 0.99):.0f} ms",
                "p99 <= 100 ms",
            )
        print(f"  API RSS: {rss_mib(api.process.pid):.0f} MiB", flush=True)

        small = Operator(
            plane.kubeconfig, SMALL, sim.clouds_yaml, sim.cloud, workdir / "small.log", env
        )
        small.start(timeout=120)
        stack.callback(small.stop)
        kube.create(SMALL, "failoversegments", segment("seg"))
        for name in SMALL_HOSTS:
            kube.create(SMALL, "hosts", host(name, "seg"))
        small_watch = HostWatch(kube, SMALL)
        watches.append(small_watch)
        stack.callback(setattr, small_watch, "stopped", True)
        small_watch.wait(
            "the small namespace's Hosts",
            lambda: len(small_watch.first_status) == len(SMALL_HOSTS),
            120,
        )
        conn = nova(sim)
        # The API part's notifications are recoveries of their own: timed among them, the
        # host failure waited 27 s for admission at 5,000 Hosts (docs/scale.md).
        quiet = time.monotonic()
        while kube.open_events(BIG) and time.monotonic() - quiet < 600:
            time.sleep(1)
        print(f"  the API part's notifications ended after {time.monotonic() - quiet:.0f} s")
        # One recovery is one sample: a second's pause in the big operator is 10-20% of it
        # (docs/scale.md). The namespaces take turns, each victim released before the next.
        in_big: list[float] = []
        in_small: list[float] = []
        for victim, small_victim in zip(hosts[: args.recoveries], SMALL_HOSTS, strict=False):
            for namespace, name, spent, seen in (
                (BIG, victim, in_big, hosts_watch),
                (SMALL, small_victim, in_small, small_watch),
            ):
                spent.append(recover(kube, sim, conn, namespace, name, victims[name]))
                release(kube, sim, seen, namespace, name)
        big_median, small_median = statistics.median(in_big), statistics.median(in_small)
        figure(
            f"host recovery ({VICTIM_SERVERS} servers, {args.evacuation_seconds:g} s each), "
            f"median of {args.recoveries}",
            f"{big_median:.1f} s here ({', '.join(f'{t:.1f}' for t in in_big)}), "
            f"{small_median:.1f} s with 4 hosts ({', '.join(f'{t:.1f}' for t in in_small)}): "
            f"{big_median / small_median:.2f}x",
            "<= 1.1x",
        )
        figure("operator RSS, end of run", f"{rss_mib(pid):.0f} MiB", "<= 500 MB")
        print(f"  operator CPU in all: {cpu_seconds(pid):.0f} s", flush=True)
        big.stop()
        small.stop()

        if args.soak_speedup > 0:
            soak_env = production_env(args.soak_speedup)
            soak = Operator(
                plane.kubeconfig, BIG, sim.clouds_yaml, sim.cloud, workdir / "soak.log", soak_env
            )
            sim.control("DELETE", "stats")
            soak.start(timeout=600)
            stack.callback(soak.stop)
            assert soak.process is not None
            seconds = 3600 / args.soak_speedup
            begin = time.monotonic()
            while not sim.control("GET", "stats")["requests"].get("services"):
                time.sleep(1)  # the first pass: after kopf has every object of the namespace
            print(f"  soak operator's first host pass after {time.monotonic() - begin:.0f} s")
            first = rss_mib(soak.process.pid)
            peak = first
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                time.sleep(10)
                peak = max(peak, rss_mib(soak.process.pid))
            stats = sim.control("GET", "stats")["requests"]
            figure(
                f"operator RSS, {seconds / 60:.1f} min at 1/{args.soak_speedup:g} intervals "
                f"({stats.get('services', 0)} host passes; an hour is 120)",
                f"{first:.0f} MiB at the first pass, {rss_mib(soak.process.pid):.0f} MiB after "
                f"(peak {peak:.0f})",
                "<= 500 MB",
            )
            print(f"  Nova requests during the soak: {stats}", flush=True)
            print(f"  soak operator CPU: {cpu_seconds(soak.process.pid):.0f} s", flush=True)
            soak.stop()

    print("\n| figure | measured | goal |\n|---|---|---|")
    for name, value, goal in figures:
        print(f"| {name} | {value} | {goal} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How the simulator holds a big cloud: 5,000 hosts and 50,000 servers by default.

Starts `masakari-operator sim` with that topology, then prints its resident memory and the
latency (p50/p95/max) of the requests recovery makes: the servers on one host, one server, the
nova-compute services (all of them, and one host's), over keep-alive HTTP with a Keystone token,
one request at a time and then 16 at a time. Also times the same reads through the driver
(openstacksdk in a worker thread), which is what the operator actually pays.

    .venv/bin/python -m bench.sim_load [--hosts 5000] [--servers-per-host 10] [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from controller.drivers.nova.openstack import OpenStackNova
from tests.harness.sim import Sim, running_sim


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _summary(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    return (
        f"{name:<44} n={len(ms):<4} p50={statistics.median(ms):7.1f} ms  "
        f"p95={p95:7.1f} ms  max={ms[-1]:7.1f} ms"
    )


async def _timed(calls: list[Callable[[], Awaitable[object]]], concurrency: int) -> list[float]:
    slots = asyncio.Semaphore(concurrency)
    seconds: list[float] = []

    async def one(call: Callable[[], Awaitable[object]]) -> None:
        async with slots:
            started = time.perf_counter()
            await call()
            seconds.append(time.perf_counter() - started)

    await asyncio.gather(*(one(c) for c in calls))
    return seconds


async def _http_bench(sim: Sim, hosts: int, requests: int, seed: int) -> None:
    rng = random.Random(seed)
    compute = f"{sim.base_url}/compute/v2.1"
    async with aiohttp.ClientSession() as session:
        auth = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {"user": {"name": "admin", "password": sim.admin_password}},
                },
                "scope": {"project": {"name": "admin"}},
            }
        }
        async with session.post(f"{sim.base_url}/identity/v3/auth/tokens", json=auth) as r:
            token = r.headers["X-Subject-Token"]
        headers = {"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.87"}

        async def get(url: str) -> object:
            async with session.get(url, headers=headers) as response:
                assert response.status == 200, await response.text()
                return await response.read()

        some_hosts = [f"compute{rng.randint(1, hosts)}" for _ in range(requests)]
        listing = await get(f"{compute}/servers/detail?all_tenants=1&host=compute1")
        assert listing
        server_ids = []
        for host in some_hosts[:50]:
            async with session.get(
                f"{compute}/servers?all_tenants=1&host={host}", headers=headers
            ) as response:
                server_ids += [s["id"] for s in (await response.json())["servers"]]

        def per_host(host: str) -> Callable[[], Awaitable[object]]:
            return lambda: get(f"{compute}/servers/detail?all_tenants=1&host={host}")

        def one_server(sid: str) -> Callable[[], Awaitable[object]]:
            return lambda: get(f"{compute}/servers/{sid}")

        def service_of(host: str) -> Callable[[], Awaitable[object]]:
            return lambda: get(f"{compute}/os-services?binary=nova-compute&host={host}")

        every_service = [lambda: get(f"{compute}/os-services")] * max(10, requests // 10)
        for concurrency in (1, 16):
            print(f"-- raw HTTP, {concurrency} at a time")
            servers = [one_server(rng.choice(server_ids)) for _ in range(requests)]
            for name, calls in (
                ("GET /servers/detail?host=X (10 servers)", [per_host(h) for h in some_hosts]),
                ("GET /servers/{id}", servers),
                ("GET /os-services?host=X", [service_of(h) for h in some_hosts]),
                (f"GET /os-services (all {hosts})", every_service),
            ):
                print(_summary(name, await _timed(calls, concurrency)))


async def _driver_bench(sim: Sim, hosts: int, requests: int, seed: int) -> None:
    rng = random.Random(seed)
    nova = OpenStackNova.from_clouds_yaml(sim.clouds_yaml, sim.cloud)
    ids = [s.id for s in await nova.servers_on_host("compute1")]
    some_hosts = [f"compute{rng.randint(1, hosts)}" for _ in range(requests)]
    print("-- through the driver (openstacksdk in worker threads), 1 at a time")
    for name, calls in (
        ("servers_on_host(X)", [lambda h=h: nova.servers_on_host(h) for h in some_hosts]),
        ("server(id)", [lambda: nova.server(rng.choice(ids))] * requests),
        ("compute_service(X)", [lambda h=h: nova.compute_service(h) for h in some_hosts]),
        ("host_capacity(X)", [lambda h=h: nova.host_capacity(h) for h in some_hosts]),
    ):
        print(_summary(name, await _timed(calls, 1)))
    nova.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=5000)
    parser.add_argument("--servers-per-host", type=int, default=10)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    topology = {
        "host_groups": [
            {
                "prefix": "compute",
                "count": args.hosts,
                "servers_per_host": args.servers_per_host,
                "metadata": {"HA_Enabled": "True"},
            }
        ]
    }
    started = time.monotonic()
    with running_sim(topology, "--seed", str(args.seed), timeout=300) as sim:
        loaded = time.monotonic() - started
        health = sim.control("GET", "health")
        print(
            f"simulator: {health['hosts']} hosts, {health['servers']} servers, "
            f"started and loaded in {loaded:.1f} s, RSS {_rss_mib(sim.process.pid):.0f} MiB"
        )
        asyncio.run(_http_bench(sim, args.hosts, args.requests, args.seed))
        asyncio.run(_driver_bench(sim, args.hosts, args.requests, args.seed))
        print(f"simulator RSS after the runs: {_rss_mib(sim.process.pid):.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

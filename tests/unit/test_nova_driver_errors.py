"""The driver's error mapping, retries, concurrency bound and secrecy, over real HTTP against
the simulator and its fault injection (no mocks of openstacksdk)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.drivers.lease import NotLeading
from controller.drivers.nova.openstack import OpenStackNova, RetryPolicy
from controller.recovery.nova import Conflict, NotFound, NovaError, Unavailable
from tests.harness import control_plane
from tests.harness.sim import Sim, running_sim

ADMIN_TOKEN = "static-admin-token-for-tests"
FAST = RetryPolicy(attempts=3, deadline=30, base_delay=0.01, max_delay=0.05)


@pytest.fixture(scope="module")
def sim() -> Iterator[Sim]:
    with running_sim(None, "--seed", "3", "--admin-token", ADMIN_TOKEN) as running:
        yield running


@pytest.fixture
def clean(sim: Sim) -> Sim:
    sim.control("PUT", "faults", {})
    sim.control("POST", "reset")
    sim.control("DELETE", "stats")
    return sim


def _driver(sim: Sim, **kwargs: Any) -> OpenStackNova:
    return OpenStackNova.from_clouds_yaml(sim.clouds_yaml, sim.cloud, **kwargs)


def _requests(sim: Sim, route_class: str) -> int:
    return int(sim.control("GET", "stats")["requests"].get(route_class, 0))


def _fault(sim: Sim, route_class: str, **fault: float) -> None:
    sim.control("PUT", "faults", {"routes": {route_class: fault}})


def test_5xx_is_retried_up_to_the_attempt_bound(clean: Sim) -> None:
    _fault(clean, "services", error_rate=1.0, status=503)
    with pytest.raises(Unavailable, match=r"HTTP 503.*gave up after 3 attempts"):
        asyncio.run(_driver(clean, retry=FAST).compute_services())
    assert _requests(clean, "services") == 3


def test_retries_stop_at_the_deadline(clean: Sim) -> None:
    _fault(clean, "services", error_rate=1.0, status=500)
    policy = RetryPolicy(attempts=1000, deadline=1.0, base_delay=0.2, max_delay=0.2)
    started = time.monotonic()
    with pytest.raises(Unavailable):
        asyncio.run(_driver(clean, retry=policy).compute_services())
    assert time.monotonic() - started < 5
    assert 1 < _requests(clean, "services") < 20


def test_transient_errors_are_ridden_out(clean: Sim) -> None:
    _fault(clean, "services", error_rate=0.5, status=502)
    policy = RetryPolicy(attempts=30, deadline=30, base_delay=0.01, max_delay=0.02)
    services = asyncio.run(_driver(clean, retry=policy).compute_services())
    assert {s.host for s in services} == {"compute1", "compute2", "compute3"}


def test_timeouts_are_retried(clean: Sim) -> None:
    _fault(clean, "servers", latency=2.0)
    nova = OpenStackNova.from_clouds_yaml(
        clean.clouds_yaml, clean.cloud, retry=FAST, api_timeout=0.3
    )
    with pytest.raises(Unavailable, match="gave up after 3 attempts"):
        asyncio.run(nova.servers_on_host("compute1"))
    assert _requests(clean, "servers") == 3


def test_connection_refused_is_unavailable(tmp_path: Path, sim: Sim) -> None:
    closed = f"http://127.0.0.1:{control_plane.free_port()}"
    clouds = yaml.safe_load(sim.clouds_yaml.read_text())
    clouds["clouds"]["sim"]["auth"]["auth_url"] = f"{closed}/identity/v3"
    (tmp_path / "clouds.yaml").write_text(yaml.safe_dump(clouds))
    nova = OpenStackNova.from_clouds_yaml(tmp_path / "clouds.yaml", "sim", retry=FAST)
    with pytest.raises(Unavailable, match="gave up after 3 attempts"):
        asyncio.run(nova.compute_services())


def test_client_errors_are_mapped_and_never_retried(clean: Sim) -> None:
    nova = _driver(clean, retry=FAST)
    (sid,) = clean.control("POST", "servers", {"host": "compute1", "count": 1})["ids"]

    async def scenario() -> None:
        with pytest.raises(NotFound, match="HTTP 404"):
            await nova.server("0c6f2b4e-5d3a-4f8e-9d1c-000000000000")
        with pytest.raises(Conflict, match="still in use"):  # Nova's 400 for a live source
            await nova.reset_and_evacuate(sid, None, reset=False)
        with pytest.raises(NovaError, match="HTTP 400") as bad:
            await nova.reset_state(sid, "bogus")
        assert type(bad.value) is NovaError
        await nova.stop_server(sid)
        with pytest.raises(Conflict, match="HTTP 409"):
            await nova.stop_server(sid)

    asyncio.run(scenario())
    stats = clean.control("GET", "stats")["requests"]
    assert stats["servers"] == 1 and stats["actions"] == 4


def test_forbidden_is_an_error_not_a_retry(clean: Sim, tmp_path: Path) -> None:
    demo = clean.write_clouds_yaml(
        tmp_path / "clouds.yaml", user="demo", password=clean.admin_password, project="demo"
    )
    (sid,) = clean.control("POST", "servers", {"host": "compute1", "count": 1})["ids"]
    clean.control("POST", "hosts/compute1/kill")
    nova = OpenStackNova.from_clouds_yaml(demo, clean.cloud, retry=FAST)
    with pytest.raises(NovaError, match="HTTP 403"):
        asyncio.run(nova.reset_and_evacuate(sid, None, reset=False))
    assert _requests(clean, "actions") == 1


def test_wrong_password_never_shows_the_password(
    clean: Sim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "Wr0ng-" + clean.admin_password[::-1]
    clouds = clean.write_clouds_yaml(
        tmp_path / "clouds.yaml", user="admin", password=wrong, project="admin"
    )
    caplog.set_level(logging.DEBUG)
    nova = OpenStackNova.from_clouds_yaml(clouds, clean.cloud, retry=FAST)
    with pytest.raises(NovaError) as failure:
        asyncio.run(nova.compute_services())
    assert not isinstance(failure.value, Unavailable)
    assert "401" in str(failure.value)
    text = f"{failure.value!s} {failure.value!r} {failure.value.__cause__!r} {caplog.text}"
    assert wrong not in text and clean.admin_password not in text
    assert _requests(clean, "identity") == 1


def test_admin_token_with_compute_endpoint_override(clean: Sim, tmp_path: Path) -> None:
    """How the real-Nova lab is reached: no Keystone, a static token, the endpoint given."""
    endpoint = f"{clean.base_url}/compute/v2.1"

    def clouds(token: str) -> Path:
        path = tmp_path / f"clouds-{len(token)}.yaml"
        cloud = {
            "auth_type": "admin_token",
            "auth": {"endpoint": endpoint, "token": token},
            "compute_endpoint_override": endpoint,
            "region_name": "RegionOne",
        }
        path.write_text(yaml.safe_dump({"clouds": {"lab": cloud}}))
        return path

    services = asyncio.run(
        OpenStackNova.from_clouds_yaml(clouds(ADMIN_TOKEN), "lab").compute_services()
    )
    assert len(services) == 3
    wrong = "not-the-token-" + ADMIN_TOKEN
    with pytest.raises(NovaError) as failure:
        asyncio.run(
            OpenStackNova.from_clouds_yaml(clouds(wrong), "lab", retry=FAST).compute_services()
        )
    assert "401" in str(failure.value) and wrong not in str(failure.value)


def test_missing_cloud_is_reported_without_its_contents(tmp_path: Path, sim: Sim) -> None:
    with pytest.raises(NovaError, match="'elsewhere'") as failure:
        OpenStackNova.from_clouds_yaml(sim.clouds_yaml, "elsewhere")
    assert sim.admin_password not in str(failure.value)


def test_concurrency_is_bounded_and_the_loop_stays_free(clean: Sim) -> None:
    (sid,) = clean.control("POST", "servers", {"host": "compute1", "count": 1})["ids"]
    nova = _driver(clean, max_concurrency=2)
    asyncio.run(nova.server(sid))  # authenticate outside the measurement
    _fault(clean, "servers", latency=0.3)

    async def scenario() -> tuple[float, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        clock = asyncio.create_task(ticker())
        started = time.monotonic()
        await asyncio.gather(*(nova.server(sid) for _ in range(6)))
        elapsed = time.monotonic() - started
        clock.cancel()
        return elapsed, ticks

    elapsed, ticks = asyncio.run(scenario())
    # Six calls of at least 0.3 s, two at a time, cannot take less than three rounds.
    assert elapsed >= 0.9
    assert ticks >= 10, "the event loop was blocked while openstacksdk worked"


def test_a_change_is_refused_once_the_replica_stops_leading_even_between_retries(
    clean: Sim,
) -> None:
    """The Lease is asked before every try of a change, not only the first: a leader frozen
    in the backoff wakes with the retry due at once, maybe before its keeper stops it."""
    server = clean.control("POST", "servers", {"host": "compute1", "count": 1})["ids"][0]
    clean.control("POST", "hosts/compute1/kill")
    answers = iter([True])  # leads for the first try only

    def leading() -> bool:
        return next(answers, False)

    _fault(clean, "actions", error_rate=1.0, status=503)
    nova = _driver(clean, retry=FAST, leading=leading)
    with pytest.raises(NotLeading, match="evacuate"):
        asyncio.run(nova.reset_and_evacuate(server, None, reset=False))
    assert _requests(clean, "actions") == 1
    assert asyncio.run(nova.server(server)).host == "compute1"  # reads go on


def test_reset_and_evacuate_sends_the_evacuate_only_after_the_reset_succeeded(
    clean: Sim,
) -> None:
    """The unit a recovery's move sends: a reset that fails stops the evacuate (Nova evacuates
    only settled instances), and an evacuate that Nova refuses says so, the reset done."""
    (sid,) = clean.control("POST", "servers", {"host": "compute1", "count": 1})["ids"]
    nova = _driver(clean, retry=FAST)
    _fault(clean, "actions", error_rate=1.0, status=503)
    with pytest.raises(Unavailable, match=rf"reset state \(error\) of server {sid}: HTTP 503"):
        asyncio.run(nova.reset_and_evacuate(sid, None, reset=True))
    assert _requests(clean, "actions") == 3  # the reset, tried three times; no evacuate
    _fault(clean, "actions")  # none
    with pytest.raises(Conflict, match=rf"evacuate server {sid}: HTTP 400.*still in use"):
        asyncio.run(nova.reset_and_evacuate(sid, None, reset=True))
    assert _requests(clean, "actions") == 5
    assert asyncio.run(nova.server(sid)).vm_state == "error"
    assert clean.control("GET", f"servers/{sid}/evacuations")["evacuations"] == 0


def test_a_retry_of_reset_and_evacuate_resumes_at_the_call_that_failed(clean: Sim) -> None:
    """A transient failure of the evacuate retries the evacuate alone: sending the reset
    again could clear the task of a rebuild the failed-looking call did start."""
    (sid,) = clean.control("POST", "servers", {"host": "compute1", "count": 1})["ids"]
    clean.control("POST", "hosts/compute1/kill")
    sent: list[str] = []

    class FirstEvacuateFails(OpenStackNova):
        def _post_action(self, server_id: str, body: Any) -> None:
            (action,) = body
            sent.append(action)
            first = action == "evacuate" and sent.count("evacuate") == 1
            if first:
                _fault(clean, "actions", error_rate=1.0, status=503)
            try:
                super()._post_action(server_id, body)
            finally:
                if first:
                    _fault(clean, "actions")

    nova = FirstEvacuateFails.from_clouds_yaml(clean.clouds_yaml, clean.cloud, retry=FAST)
    asyncio.run(nova.force_down("compute1", True))
    asyncio.run(nova.reset_and_evacuate(sid, "compute2", reset=True))
    assert sent == ["os-resetState", "evacuate", "evacuate"]
    server = asyncio.run(nova.server(sid))
    assert server.task_state in ("rebuilding", None)
    assert clean.control("GET", f"servers/{sid}/evacuations")["evacuations"] == 1


def test_a_change_waiting_for_a_slot_goes_before_the_reads_waiting(clean: Sim) -> None:
    """Issue 12: with fifty moves starting at once, the first moves' evacuate calls
    waited behind the reads of all the others. One slot, four slow reads asked first, then a
    change: the change is sent as soon as the read in flight ends."""
    (sid,) = clean.control("POST", "servers", {"host": "compute1", "count": 1})["ids"]
    nova = _driver(clean, max_concurrency=1)
    asyncio.run(nova.compute_services())  # authenticated, and the service's id known
    _fault(clean, "servers", latency=0.2)
    ended: list[str] = []

    async def scenario() -> None:
        async def read(n: int) -> None:
            await nova.server(sid)
            ended.append(f"read {n}")

        async def change() -> None:
            await asyncio.sleep(0.05)  # the reads are queued by now
            await nova.force_down("compute1", True)
            ended.append("change")

        await asyncio.gather(*(read(n) for n in range(4)), change())

    asyncio.run(scenario())
    print(f"order of the calls' ends: {ended}")
    assert ended == ["read 0", "change", "read 1", "read 2", "read 3"], ended


def test_a_lock_or_an_unlock_waiting_for_a_slot_goes_after_the_changes_and_reads_waiting(
    clean: Sim,
) -> None:
    """Issue 12: when fifty instances landed at once, the next fifty moves' reads and evacuate
    calls waited behind the fifty unlocks, which no move waits on; and fifty moves starting at
    once sent their locks among their evacuate calls. One slot, a slow read under way, then an
    unlock, a lock, a read and a change asked in that order: the lock and the unlock go last."""
    (sid,) = clean.control("POST", "servers", {"host": "compute1", "count": 1})["ids"]
    nova = _driver(clean, max_concurrency=1)
    asyncio.run(nova.compute_services())
    _fault(clean, "servers", latency=0.2)
    ended: list[str] = []

    async def scenario() -> None:
        async def after(delay: float, name: str, call: Awaitable[object]) -> None:
            await asyncio.sleep(delay)
            await call
            ended.append(name)

        await asyncio.gather(
            after(0, "read under way", nova.server(sid)),
            after(0.05, "unlock", nova.unlock_server(sid)),
            after(0.055, "lock", nova.lock_server(sid, "evacuation (e1)")),
            after(0.06, "read", nova.server(sid)),
            after(0.07, "change", nova.force_down("compute1", True)),
        )

    asyncio.run(scenario())
    print(f"order of the calls' ends: {ended}")
    assert ended == ["read under way", "change", "read", "unlock", "lock"], ended


def test_a_siblings_reads_never_hold_back_the_drivers_own(clean: Sim) -> None:
    """The readiness checks' reads (a sibling) and the recovery's (the driver): with every
    listing of servers slow and the sibling's slots all taken, the recovery's read is answered
    at once. Through one driver it would wait for a slot: a listing's latency at least."""
    latency = 2.0
    clean.control("PUT", "faults", {"routes": {"servers": {"latency": latency}}})
    nova = OpenStackNova.from_clouds_yaml(clean.clouds_yaml, clean.cloud, max_concurrency=2)
    readiness = nova.sibling(2)

    async def scenario() -> tuple[float, int]:
        checks = asyncio.gather(*(readiness.all_servers() for _ in range(4)))
        await asyncio.sleep(0.5)  # two listings under way, two waiting for a slot
        begin = asyncio.get_running_loop().time()
        services = await nova.compute_services()
        spent = asyncio.get_running_loop().time() - begin
        assert not checks.done()
        await checks
        return spent, len(services)

    try:
        spent, found = asyncio.run(scenario())
    finally:
        clean.control("PUT", "faults", {})
        readiness.close()
        nova.close()
    assert found == 3 and spent < latency / 2

"""The Nova driver's contract: what recovery relies on, checked on every backend.

Each test reaches Nova only through the driver (openstacksdk over HTTP); the backend fixture
adds what Nova's API cannot do (boot onto a host, kill a host). Waits poll observed state with
deadlines generous enough for real Nova; nothing depends on the simulator's timings.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from controller.drivers.nova.openstack import OpenStackNova, connect
from controller.recovery.nova import (
    ComputeService,
    Conflict,
    NotFound,
    NovaError,
    NoValidHost,
    Server,
)
from tests.contract.backend import NovaBackend

T = TypeVar("T")
DEADLINE = 120.0  # real Nova: service_down_time, a conductor round trip, a compute restart


class Driver:
    """The driver under test, and an event loop to run its coroutines from sync tests."""

    def __init__(self, backend: NovaBackend) -> None:
        self.runner = asyncio.Runner()
        self.nova = self.runner.run(self._build(backend))

    @staticmethod
    async def _build(backend: NovaBackend) -> OpenStackNova:
        return OpenStackNova.from_clouds_yaml(backend.clouds_yaml, backend.cloud)

    def __call__(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coroutine)

    def wait_for(
        self,
        fetch: Callable[[], Awaitable[T]],
        ready: Callable[[T], bool],
        what: str,
        timeout: float = DEADLINE,
    ) -> T:
        deadline = time.monotonic() + timeout
        while True:
            value = self(fetch())  # type: ignore[arg-type]
            if ready(value):
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"after {timeout}s still not {what}: {value}")
            time.sleep(0.5)

    def settled(self, server_id: str, what: str, ready: Callable[[Server], bool]) -> Server:
        """The server once no task runs on it and `ready` holds."""
        return self.wait_for(
            lambda: self.nova.server(server_id),
            lambda s: s.task_state is None and ready(s),
            what,
        )

    def close(self) -> None:
        self.nova.close()
        self.runner.close()


@pytest.fixture
def driver(nova_backend: NovaBackend) -> Iterator[Driver]:
    ready = Driver(nova_backend)
    yield ready
    ready.close()


def _fail_host(driver: Driver, backend: NovaBackend, host: str) -> None:
    """What recovery does once a host is fenced: it is dead, and Nova is told so."""
    backend.kill_host(host)
    service = driver(driver.nova.force_down(host, True))
    assert service.forced_down and service.state == "down"


# --- services ---------------------------------------------------------------------------------


def test_compute_services_report_state_status_and_heartbeat(
    driver: Driver, nova_backend: NovaBackend
) -> None:
    services = driver(driver.nova.compute_services())
    by_host = {s.host: s for s in services}
    assert set(nova_backend.hosts) <= set(by_host)
    for host in nova_backend.hosts:
        service = by_host[host]
        assert (service.state, service.status, service.forced_down) == ("up", "enabled", False)
        assert service.updated_at is not None and service.id
    one = driver(driver.nova.compute_service(nova_backend.hosts[0]))
    assert (one.id, one.host) == (by_host[one.host].id, nova_backend.hosts[0])
    assert [s.host for s in driver(driver.nova.compute_services(nova_backend.hosts[1]))] == [
        nova_backend.hosts[1]
    ]
    with pytest.raises(NotFound):
        driver(driver.nova.compute_service(f"no-such-host-{uuid.uuid4().hex[:6]}"))


def test_disable_with_reason_then_enable(driver: Driver, nova_backend: NovaBackend) -> None:
    host = nova_backend.hosts[2]
    disabled = driver(driver.nova.disable_service(host, "masakari: host failed"))
    assert (disabled.status, disabled.disabled_reason) == ("disabled", "masakari: host failed")
    assert driver(driver.nova.compute_service(host)).disabled_reason == "masakari: host failed"
    enabled = driver(driver.nova.enable_service(host))
    assert enabled.status == "enabled" and not enabled.disabled_reason


def test_force_down_then_up(driver: Driver, nova_backend: NovaBackend) -> None:
    host = nova_backend.hosts[2]
    down = driver(driver.nova.force_down(host, True))
    assert (down.forced_down, down.state) == (True, "down")
    up = driver(driver.nova.force_down(host, False))
    assert up.forced_down is False
    driver.wait_for(lambda: driver.nova.compute_service(host), ComputeService.is_up.fget, "up")  # type: ignore[arg-type]


def test_a_host_just_killed_is_taken_out_in_one_update_without_waiting_on_it(
    driver: Driver, nova_backend: NovaBackend
) -> None:
    """Nova still counts the compute up (its heartbeat is recent), where a disable alone waits
    on an RPC to the dead compute (real Nova: rpc_response_timeout, F14); forced down in the
    same update, it is down before Nova would call it."""
    host = nova_backend.hosts[2]
    nova_backend.kill_host(host)
    started = time.monotonic()
    service = driver(driver.nova.take_out(host, "masakari: host failed"))
    took = time.monotonic() - started
    assert (service.forced_down, service.state) == (True, "down")
    assert (service.status, service.disabled_reason) == ("disabled", "masakari: host failed")
    assert driver(driver.nova.compute_service(host)).disabled_reason == "masakari: host failed"
    # The lab's rpc_response_timeout is 15 s: a call made to the dead compute would last it.
    assert took < 7.5, f"the take-out waited {took:.1f}s"


def test_killed_host_goes_down_after_service_down_time(
    driver: Driver, nova_backend: NovaBackend
) -> None:
    host = nova_backend.hosts[0]
    nova_backend.kill_host(host)
    down = driver.wait_for(
        lambda: driver.nova.compute_service(host), lambda s: s.state == "down", "down"
    )
    assert down.forced_down is False, "nobody forced it: its heartbeat stopped"
    others = {s.host: s.state for s in driver(driver.nova.compute_services())}
    assert all(others[h] == "up" for h in nova_backend.hosts[1:])


# --- servers ----------------------------------------------------------------------------------


def test_servers_on_host_carry_metadata_flavor_and_state(
    driver: Driver, nova_backend: NovaBackend
) -> None:
    host, other = nova_backend.hosts[1], nova_backend.hosts[2]
    ha = nova_backend.boot_servers(host, 2, metadata={"HA_Enabled": "True"})
    plain = nova_backend.boot_servers(host, 1, stopped=True)
    servers = {s.id: s for s in driver(driver.nova.servers_on_host(host))}
    assert set(servers) == set(ha + plain)
    for sid in ha:
        assert servers[sid].metadata.get("HA_Enabled") == "True"
        assert (servers[sid].status, servers[sid].vm_state) == ("ACTIVE", "active")
    assert "HA_Enabled" not in servers[plain[0]].metadata
    assert (servers[plain[0]].status, servers[plain[0]].vm_state) == ("SHUTOFF", "stopped")
    for server in servers.values():
        assert server.host == host and server.project_id and server.locked is False
        assert server.flavor.name and server.flavor.vcpus > 0 and server.flavor.ram_mb > 0
        assert server.power_state in (1, 4)
    assert not {s.id for s in driver(driver.nova.servers_on_host(other))} & set(servers)
    assert driver(driver.nova.server(ha[0])) == servers[ha[0]]
    with pytest.raises(NotFound):
        driver(driver.nova.server(str(uuid.uuid4())))


def test_servers_changed_since_lists_the_recent_changes_as_a_get_shows_them(
    driver: Driver, nova_backend: NovaBackend
) -> None:
    """What the moves waiting to land read together (recovery.instance_reads)."""
    host = nova_backend.hosts[1]
    before = datetime.now(UTC) - timedelta(seconds=2)
    booted = nova_backend.boot_servers(host, 2)
    changed = {s.id: s for s in driver(driver.nova.servers_changed_since(before))}
    assert set(booted) <= set(changed)
    for sid in booted:
        assert changed[sid] == driver(driver.nova.server(sid))
        assert changed[sid].host == host and changed[sid].vm_state == "active"
    later = datetime.now(UTC) + timedelta(hours=1)
    assert not {s.id for s in driver(driver.nova.servers_changed_since(later))} & set(booted)


def test_stop_then_start(driver: Driver, nova_backend: NovaBackend) -> None:
    (sid,) = nova_backend.boot_servers(nova_backend.hosts[1], 1)
    driver(driver.nova.stop_server(sid))
    stopped = driver.settled(sid, "stopped", lambda s: s.vm_state == "stopped")
    assert (stopped.status, stopped.power_state) == ("SHUTOFF", 4)
    with pytest.raises(Conflict):
        driver(driver.nova.stop_server(sid))  # Nova: stop needs active or error
    driver(driver.nova.start_server(sid))
    started = driver.settled(sid, "active", lambda s: s.vm_state == "active")
    assert (started.status, started.power_state) == ("ACTIVE", 1)


def test_evacuate_lock_unlock_and_admin_may_act_on_locked_server(
    driver: Driver, nova_backend: NovaBackend
) -> None:
    source = nova_backend.hosts[0]
    (sid,) = nova_backend.boot_servers(source, 1)
    _fail_host(driver, nova_backend, source)
    driver(driver.nova.reset_and_evacuate(sid, None, reset=False))
    driver(driver.nova.lock_server(sid, "masakari: evacuating"))  # the rebuild under way
    moved = driver.settled(sid, "moved", lambda s: s.host != source)
    assert moved.locked is True
    assert nova_backend.evacuation_count(sid) == 1
    # Nova's check_instance_lock lets admins through; recovery runs as admin.
    driver(driver.nova.stop_server(sid))
    assert driver.settled(sid, "stopped", lambda s: s.vm_state == "stopped").locked is True
    driver(driver.nova.unlock_server(sid))
    assert driver(driver.nova.server(sid)).locked is False


def test_reset_state(driver: Driver, nova_backend: NovaBackend) -> None:
    (sid,) = nova_backend.boot_servers(nova_backend.hosts[1], 1)
    driver(driver.nova.reset_state(sid, "error"))
    broken = driver(driver.nova.server(sid))
    assert (broken.vm_state, broken.status, broken.task_state) == ("error", "ERROR", None)
    driver(driver.nova.reset_state(sid, "active"))
    healed = driver(driver.nova.server(sid))
    assert (healed.vm_state, healed.status) == ("active", "ACTIVE")


# --- evacuation -------------------------------------------------------------------------------


def test_evacuate_refused_while_source_service_is_up(
    driver: Driver, nova_backend: NovaBackend
) -> None:
    source = nova_backend.hosts[0]
    (sid,) = nova_backend.boot_servers(source, 1)
    with pytest.raises(Conflict, match="still in use"):
        driver(driver.nova.reset_and_evacuate(sid, None, reset=False))
    server = driver(driver.nova.server(sid))
    assert (server.host, server.vm_state, server.task_state) == (source, "active", None)
    assert nova_backend.evacuation_count(sid) == 0


def test_evacuate_after_force_down_keeps_active_server_active(
    driver: Driver, nova_backend: NovaBackend
) -> None:
    source = nova_backend.hosts[0]
    (sid,) = nova_backend.boot_servers(source, 1, metadata={"HA_Enabled": "True"})
    _fail_host(driver, nova_backend, source)
    driver(driver.nova.reset_and_evacuate(sid, None, reset=False))
    moved = driver.settled(sid, "moved", lambda s: s.host != source)
    assert moved.host in nova_backend.hosts[1:]
    assert (moved.status, moved.vm_state) == ("ACTIVE", "active")
    assert moved.metadata.get("HA_Enabled") == "True"
    assert nova_backend.evacuation_count(sid) == 1


def test_evacuated_stopped_server_stays_stopped(driver: Driver, nova_backend: NovaBackend) -> None:
    source = nova_backend.hosts[0]
    (sid,) = nova_backend.boot_servers(source, 1, stopped=True)
    _fail_host(driver, nova_backend, source)
    driver(driver.nova.reset_and_evacuate(sid, None, reset=False))
    moved = driver.settled(sid, "moved", lambda s: s.host != source)
    assert (moved.status, moved.vm_state) == ("SHUTOFF", "stopped")


def test_evacuated_server_in_error_comes_back_active(
    driver: Driver, nova_backend: NovaBackend
) -> None:
    """Nova's rebuild powers an evacuated ERROR server on; recovery resets it if it must."""
    source = nova_backend.hosts[0]
    (sid,) = nova_backend.boot_servers(source, 1)
    driver(driver.nova.reset_state(sid, "error"))
    _fail_host(driver, nova_backend, source)
    driver(driver.nova.reset_and_evacuate(sid, None, reset=False))
    moved = driver.settled(sid, "moved", lambda s: s.host != source)
    assert (moved.status, moved.vm_state) == ("ACTIVE", "active")


def test_evacuate_to_explicit_target_host(driver: Driver, nova_backend: NovaBackend) -> None:
    source, target = nova_backend.hosts[0], nova_backend.hosts[2]
    servers = nova_backend.boot_servers(source, 2)
    _fail_host(driver, nova_backend, source)
    for sid in servers:
        driver(driver.nova.reset_and_evacuate(sid, target, reset=False))
    for sid in servers:
        moved = driver.settled(sid, "moved", lambda s: s.host != source)
        assert (moved.host, moved.vm_state) == (target, "active")
    assert not driver(driver.nova.servers_on_host(source))


def test_evacuate_with_no_valid_host_fails_the_server_on_its_source(
    driver: Driver, nova_backend: NovaBackend
) -> None:
    """Nova accepts the evacuation, the scheduler finds nothing: the server goes to ERROR on
    its source host with a "No valid host" fault and the migration record to "error"."""
    source = nova_backend.hosts[0]
    (sid,) = nova_backend.boot_servers(source, 1)
    for host in nova_backend.hosts[1:]:
        driver(driver.nova.disable_service(host, "contract test: nothing may take the server"))
    _fail_host(driver, nova_backend, source)
    try:
        driver(driver.nova.reset_and_evacuate(sid, None, reset=False))
    except NoValidHost:
        return  # a Nova that refuses synchronously is also within the contract
    failed = driver.settled(sid, "failed", lambda s: s.vm_state == "error")
    assert (failed.host, failed.status) == (source, "ERROR")
    assert failed.fault is not None and "No valid host" in failed.fault
    records = driver.wait_for(
        lambda: driver.nova.migrations(sid),
        lambda ms: bool(ms) and ms[0].status == "error",
        "a failed migration record",
    )
    assert (records[0].migration_type, records[0].source_host) == ("evacuation", source)


def test_migration_record_of_an_evacuation(driver: Driver, nova_backend: NovaBackend) -> None:
    source = nova_backend.hosts[0]
    (sid,) = nova_backend.boot_servers(source, 1)
    (bystander,) = nova_backend.boot_servers(nova_backend.hosts[1], 1)
    assert driver(driver.nova.migrations(sid)) == []
    _fail_host(driver, nova_backend, source)
    driver(driver.nova.reset_and_evacuate(sid, None, reset=False))
    moved = driver.settled(sid, "moved", lambda s: s.host != source)
    records = driver.wait_for(
        lambda: driver.nova.migrations(sid),
        lambda ms: bool(ms) and ms[0].status in ("done", "completed"),
        "a finished migration record",
    )
    assert len(records) == 1
    record = records[0]
    assert (record.server_id, record.migration_type) == (sid, "evacuation")
    assert (record.source_host, record.dest_host) == (source, moved.host)
    assert record.created_at is not None
    assert driver(driver.nova.migrations(bystander)) == []


def test_failed_host_can_be_unforced_only_after_it_cleaned_up_its_evacuations(
    driver: Driver, nova_backend: NovaBackend
) -> None:
    source = nova_backend.hosts[0]
    (sid,) = nova_backend.boot_servers(source, 1)
    _fail_host(driver, nova_backend, source)
    driver(driver.nova.reset_and_evacuate(sid, None, reset=False))
    driver.settled(sid, "moved", lambda s: s.host != source)
    with pytest.raises(NovaError):
        driver(driver.nova.force_down(source, False))
    nova_backend.revive_host(source)

    async def unforce() -> bool:
        try:
            await driver.nova.force_down(source, False)
        except NovaError:
            return False
        return True

    driver.wait_for(unforce, bool, "un-forced once the host cleaned up")
    records = driver(driver.nova.migrations(sid))
    assert [r.status for r in records] == ["completed"]


# --- aggregates and capacity ------------------------------------------------------------------


@pytest.fixture
def aggregate(nova_backend: NovaBackend) -> Iterator[str]:
    """An aggregate of the test's own, made with openstacksdk: the driver only joins hosts."""
    conn, _ = connect(nova_backend.clouds_yaml, nova_backend.cloud)
    created = conn.compute.create_aggregate(name=f"contract-{uuid.uuid4().hex[:8]}")
    try:
        yield str(created.id)
    finally:
        current = conn.compute.get_aggregate(created.id)
        for host in current.hosts or ():
            conn.compute.remove_host_from_aggregate(created.id, host)
        conn.compute.delete_aggregate(created.id)
        conn.close()


def test_add_host_to_aggregate_is_idempotent(
    driver: Driver, nova_backend: NovaBackend, aggregate: str
) -> None:
    host = nova_backend.hosts[1]
    driver(driver.nova.add_host_to_aggregate(aggregate, host))
    driver(driver.nova.add_host_to_aggregate(aggregate, host))
    (found,) = [a for a in driver(driver.nova.aggregates()) if a.id == aggregate]
    assert found.hosts == (host,)
    with pytest.raises(NotFound):
        driver(driver.nova.add_host_to_aggregate(aggregate, f"no-such-host-{uuid.uuid4().hex}"))


def test_host_capacity_counts_the_servers_on_it(driver: Driver, nova_backend: NovaBackend) -> None:
    host = nova_backend.hosts[2]
    before = driver(driver.nova.host_capacity(host))
    assert before.host == host and before.vcpus > 0 and before.memory_mb > 0
    booted = nova_backend.boot_servers(host, 2)
    # Only the new servers: earlier tests' evacuations may have left servers on this host,
    # which `before` counts already.
    flavors = [s.flavor for s in driver(driver.nova.servers_on_host(host)) if s.id in booted]
    assert len(flavors) == 2
    after = driver.wait_for(
        lambda: driver.nova.host_capacity(host),
        lambda c: c.vcpus_used >= before.vcpus_used + sum(f.vcpus for f in flavors),
        "showing the new servers",
    )
    assert after.memory_mb_used >= before.memory_mb_used + sum(f.ram_mb for f in flavors)
    assert after.vcpus == before.vcpus and after.memory_mb == before.memory_mb
    with pytest.raises(NotFound):
        driver(driver.nova.host_capacity(f"no-such-host-{uuid.uuid4().hex[:6]}"))

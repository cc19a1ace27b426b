"""The live-migration part of the Nova driver's contract, which a maintenance drain relies on:
a live migration lands the server active on another host and leaves a record that says so; a
refused one leaves the server where it was, untouched; a stopped server is refused; and what
Nova checks later (a target that is disabled) ends in an "error" record, never in a move.
"""

from __future__ import annotations

import pytest

from controller.recovery.nova import Conflict, Migration, NoValidHost
from tests.contract.backend import NovaBackend
from tests.contract.test_nova_driver import Driver, driver  # noqa: F401 (fixture)


def _live(records: list[Migration]) -> list[Migration]:
    return [m for m in records if m.migration_type == "live-migration"]


def test_live_migration_lands_the_server_active_elsewhere(
    driver: Driver,  # noqa: F811
    nova_backend: NovaBackend,
) -> None:
    source = nova_backend.hosts[0]
    (sid,) = nova_backend.boot_servers(source, 1, metadata={"HA_Enabled": "True"})
    driver(driver.nova.live_migrate(sid))
    moved = driver.settled(sid, "live-migrated", lambda s: s.host != source)
    assert moved.host in nova_backend.hosts[1:]
    assert (moved.status, moved.vm_state) == ("ACTIVE", "active")
    assert moved.metadata.get("HA_Enabled") == "True"
    records = driver.wait_for(
        lambda: driver.nova.migrations(sid),
        lambda ms: bool(_live(ms)) and _live(ms)[0].status == "completed",
        "a completed live-migration record",
    )
    (record,) = _live(records)
    assert (record.source_host, record.dest_host) == (source, moved.host)
    assert record.created_at is not None
    assert nova_backend.evacuation_count(sid) == 0


def test_live_migration_to_a_named_host(
    driver: Driver,  # noqa: F811
    nova_backend: NovaBackend,
) -> None:
    source, target = nova_backend.hosts[0], nova_backend.hosts[2]
    (sid,) = nova_backend.boot_servers(source, 1)
    driver(driver.nova.live_migrate(sid, target))
    moved = driver.settled(sid, "live-migrated", lambda s: s.host != source)
    assert (moved.host, moved.vm_state) == (target, "active")


def test_live_migration_of_a_stopped_server_is_refused(
    driver: Driver,  # noqa: F811
    nova_backend: NovaBackend,
) -> None:
    source = nova_backend.hosts[0]
    (sid,) = nova_backend.boot_servers(source, 1, stopped=True)
    with pytest.raises(Conflict):
        driver(driver.nova.live_migrate(sid))
    server = driver(driver.nova.server(sid))
    assert (server.host, server.vm_state, server.task_state) == (source, "stopped", None)
    assert _live(driver(driver.nova.migrations(sid))) == []


def test_live_migration_off_a_dead_host_is_refused(
    driver: Driver,  # noqa: F811
    nova_backend: NovaBackend,
) -> None:
    """A source whose nova-compute is down cannot take part: Nova refuses at once."""
    source = nova_backend.hosts[0]
    (sid,) = nova_backend.boot_servers(source, 1)
    nova_backend.kill_host(source)
    driver(driver.nova.force_down(source, True))
    with pytest.raises(Conflict):
        driver(driver.nova.live_migrate(sid))
    server = driver(driver.nova.server(sid))
    assert (server.host, server.task_state) == (source, None)


def test_live_migration_to_a_disabled_host_is_refused(
    driver: Driver,  # noqa: F811
    nova_backend: NovaBackend,
) -> None:
    """Nova 34 checks a named destination before answering: no valid host, nothing moves."""
    source, target = nova_backend.hosts[0], nova_backend.hosts[1]
    (sid,) = nova_backend.boot_servers(source, 1)
    driver(driver.nova.disable_service(target, "contract test: not a destination"))
    with pytest.raises(NoValidHost):
        driver(driver.nova.live_migrate(sid, target))
    server = driver.settled(sid, "settled", lambda s: True)
    assert (server.host, server.vm_state) == (source, "active")
    assert not [m for m in _live(driver(driver.nova.migrations(sid))) if m.status == "completed"]


def test_live_migration_with_no_host_to_take_it_ends_in_error_and_stays(
    driver: Driver,  # noqa: F811
    nova_backend: NovaBackend,
) -> None:
    """When the scheduler is to pick and nothing fits, the call may be accepted and fail
    later (the record ends in "error") or be refused at once; either way the server stays
    active where it was."""
    source = nova_backend.hosts[0]
    (sid,) = nova_backend.boot_servers(source, 1)
    for host in nova_backend.hosts[1:]:
        driver(driver.nova.disable_service(host, "contract test: not a destination"))
    try:
        driver(driver.nova.live_migrate(sid))
    except NoValidHost:
        server = driver(driver.nova.server(sid))
        assert (server.host, server.vm_state) == (source, "active")
        return
    records = driver.wait_for(
        lambda: driver.nova.migrations(sid),
        lambda ms: bool(_live(ms)) and _live(ms)[0].status in ("error", "failed"),
        "a failed live-migration record",
    )
    assert _live(records)[0].source_host == source
    server = driver.settled(sid, "settled", lambda s: True)
    assert (server.host, server.vm_state) == (source, "active")

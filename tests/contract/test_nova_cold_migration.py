"""The cold-migration part of the Nova driver's contract, which a drain with stoppedInstances
ColdMigrate relies on: a stopped server cold-migrated lands on another host in VERIFY_RESIZE
with a "finished" record of type "migration" (what the drain's crash safety reads), still
stopped; a confirmation ends the record "confirmed" and the server stopped there; a second
confirmation is refused; and what Nova refuses (a dead source at once; no other host to take
it at once or, as Nova 34 does, by ending the record in "error") leaves the server where it
was, untouched.
"""

from __future__ import annotations

import contextlib

import pytest

from controller.recovery.nova import Conflict, Migration, NovaError, NoValidHost
from tests.contract.backend import NovaBackend
from tests.contract.test_nova_driver import Driver, driver  # noqa: F401 (fixture)


def _cold(driver: Driver, server_id: str) -> list[Migration]:  # noqa: F811
    """The server's cold-migration records (Nova's type "migration"), newest first."""
    return [m for m in driver(driver.nova.migrations(server_id)) if m.migration_type == "migration"]


def test_a_cold_migration_lands_the_server_stopped_elsewhere_until_confirmed(
    driver: Driver,  # noqa: F811
    nova_backend: NovaBackend,
) -> None:
    source = nova_backend.hosts[0]
    (sid,) = nova_backend.boot_servers(source, 1, stopped=True, metadata={"HA_Enabled": "True"})
    driver(driver.nova.cold_migrate(sid))
    landed = driver.settled(sid, "in VERIFY_RESIZE", lambda s: s.vm_state == "resized")
    assert landed.host in nova_backend.hosts[1:]
    assert landed.status == "VERIFY_RESIZE"
    (record,) = _cold(driver, sid)
    assert (record.source_host, record.dest_host, record.status) == (
        source,
        landed.host,
        "finished",
    )
    assert record.created_at is not None
    driver(driver.nova.confirm_resize(sid))
    confirmed = driver.settled(sid, "confirmed", lambda s: s.vm_state != "resized")
    assert (confirmed.host, confirmed.vm_state, confirmed.status) == (
        landed.host,
        "stopped",
        "SHUTOFF",
    )
    assert confirmed.metadata.get("HA_Enabled") == "True"
    records = driver.wait_for(
        lambda: driver.nova.migrations(sid),
        lambda ms: [m.status for m in ms if m.migration_type == "migration"] == ["confirmed"],
        "a confirmed migration record",
    )
    assert [m.id for m in records if m.migration_type == "migration"] == [record.id]
    # Confirmed once: Nova refuses a second confirmation, whatever its words.
    with pytest.raises(NovaError):
        driver(driver.nova.confirm_resize(sid))
    assert nova_backend.evacuation_count(sid) == 0


@pytest.mark.parametrize("why", ["no other host", "its source dead"])
def test_a_refused_cold_migration_leaves_the_server_where_it_was(
    driver: Driver,  # noqa: F811
    nova_backend: NovaBackend,
    why: str,
) -> None:
    """The source's nova-compute down (killed and forced down): refused at once. No host for
    the scheduler (the others disabled): Nova 34 accepts the call and its conductor ends the
    record in "error" (an answer of 400 No valid host is taken too)."""
    source = nova_backend.hosts[0]
    (sid,) = nova_backend.boot_servers(source, 1, stopped=True)
    if why == "no other host":
        for host in nova_backend.hosts[1:]:
            driver(driver.nova.disable_service(host, "contract test: not a destination"))
    else:
        nova_backend.kill_host(source)
        driver(driver.nova.force_down(source, True))
    if why == "its source dead":
        with pytest.raises(Conflict):
            driver(driver.nova.cold_migrate(sid))
    else:
        with contextlib.suppress(NoValidHost):
            driver(driver.nova.cold_migrate(sid))
            driver.wait_for(
                lambda: driver.nova.migrations(sid),
                lambda ms: [m.status for m in ms if m.migration_type == "migration"] == ["error"],
                "a failed migration record",
            )
    server = driver.settled(sid, "settled", lambda s: True)
    assert (server.host, server.vm_state, server.task_state) == (source, "stopped", None)
    assert not [m for m in _cold(driver, sid) if m.status in ("finished", "confirmed")]


def test_a_server_not_resized_cannot_be_confirmed(
    driver: Driver,  # noqa: F811
    nova_backend: NovaBackend,
) -> None:
    (sid,) = nova_backend.boot_servers(nova_backend.hosts[0], 1, stopped=True)
    with pytest.raises(NovaError):
        driver(driver.nova.confirm_resize(sid))

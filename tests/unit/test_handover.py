"""A host that failed mid-drain: the decisions of controller.recovery.handover, table-tested,
the recovery acting on them against an in-memory Nova, and the gate that admits the failure
of a host on maintenance whose drain is unfinished (controller.recovery.drain.unfinished)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from controller.recovery import drain, handover
from controller.recovery.gates import Verdict, admit
from controller.recovery.handover import Learned
from controller.recovery.host_failure import Timing
from controller.recovery.nova import Flavor, Migration, Server
from controller.recovery.outcome import Outcome
from controller.recovery.progress import Progress
from controller.resources.failure_event import FencingRecord
from controller.resources.host import DrainMove, DrainMoveStatus, DrainPhase, DrainStatus
from controller.resources.segment import DrainMode, MaintenancePolicy, PlacementPolicy
from tests.unit.fake_cluster import Clock
from tests.unit.fake_nova import FakeNova
from tests.unit.test_gates import HEALTHY, HOST, report, segment
from tests.unit.test_host_failure import Store, cloud, moves, recovery, to_the_end

NOW = datetime(2026, 12, 2, 21, 0, tzinfo=UTC)


def _server(host: str = "h1", task: str | None = "migrating") -> Server:
    return Server("i1", "vm", "ACTIVE", "active", task, 1, host, False, Flavor("m1", 1, 512, 1))


def _live(status: str, source: str = "h1", age: float = 5, mid: str = "2") -> Migration:
    created = NOW - timedelta(seconds=age)
    return Migration(mid, "i1", source, "h2", status, "live-migration", created)


def _cold(status: str, source: str = "h1") -> Migration:
    return Migration("2", "i1", source, "h2", status, "migration", NOW - timedelta(seconds=5))


def _stopped(host: str = "h1", task: str | None = "resize_migrating") -> Server:
    vm_state = "resized" if host == "h2" and task is None else "stopped"
    return Server("i1", "vm", "SHUTOFF", vm_state, task, 4, host, False, Flavor("m1", 1, 512, 1))


@pytest.mark.parametrize(
    ("server", "record", "expired", "host_off", "learned"),
    [
        # Before the source handed it over, the guest runs nowhere: evacuated at once off a
        # fenced host, after Nova's bounded wait otherwise; never UNSURE.
        (_stopped(task="resize_prep"), _cold("pre-migrating"), False, True, Learned.EVACUATE),
        (_stopped(), _cold("migrating"), False, True, Learned.EVACUATE),
        (_stopped(), _cold("post-migrating"), False, True, Learned.EVACUATE),
        (_stopped(), _cold("migrating"), False, False, Learned.WAIT),
        (_stopped(), _cold("post-migrating"), True, False, Learned.EVACUATE),
        # Handed over: on its destination, finishing, landed or confirmed: the drain's.
        (_stopped("h2", "resize_finish"), _cold("post-migrating"), False, True, Learned.LANDED),
        (_stopped("h2", None), _cold("finished"), False, False, Learned.LANDED),
        (_stopped("h2", None), _cold("confirming"), True, True, Learned.LANDED),
        # Rolled back, reverted, or moved on by someone else: evacuated as usual.
        (_stopped(task=None), _cold("error"), False, True, Learned.NOTHING),
        (_stopped(task=None), _cold("reverted"), False, True, Learned.NOTHING),
        (_stopped("h3", None), _cold("finished"), False, True, Learned.NOTHING),
        (_stopped(task=None), _cold("confirmed"), False, True, Learned.NOTHING),
        (_stopped(), _cold("migrating", source="h3"), True, True, Learned.NOTHING),
    ],
)
def test_what_the_recovery_learns_from_a_cold_migration(
    server: Server, record: Migration, expired: bool, host_off: bool, learned: Learned
) -> None:
    found = handover.learn(server, "h1", [record], expired, host_off=host_off)
    assert found.learned == learned, found


@pytest.mark.parametrize(
    ("server", "records", "expired", "learned"),
    [
        (_server(task=None), [], False, Learned.NOTHING),
        (_server(), [_live("running", source="h3")], True, Learned.NOTHING),
        (_server("h2", None), [_live("completed")], False, Learned.LANDED),
        # The destination took it; its dead source never marked the record completed.
        (_server("h2", None), [_live("running")], False, Learned.LANDED),
        # Elsewhere, but not where the migration went: someone else moved it.
        (_server("h3", None), [_live("running")], False, Learned.NOTHING),
        # Completed long ago, back on the failed host since: that move is not this one.
        (_server(task=None), [_live("completed")], False, Learned.NOTHING),
        (_server(task=None), [_live("error")], False, Learned.NOTHING),
        (_server(), [_live("queued")], False, Learned.WAIT),
        (_server(), [_live("running")], False, Learned.WAIT),
        (_server(), [_live("running (post-copy)")], False, Learned.WAIT),
        (_server(), [_live("queued")], True, Learned.EVACUATE),
        (_server(), [_live("preparing")], True, Learned.EVACUATE),
        # libvirt's job under way: the guest may have resumed on the destination already,
        # the record `running` until the source's bookkeeping ends (Nova 34).
        (_server(), [_live("running")], True, Learned.UNSURE),
        (_server(), [_live("running (post-copy)")], True, Learned.UNSURE),
        # Only the newest counts: an earlier attempt's failure, then one still running.
        (_server(), [_live("error", age=60, mid="1"), _live("running")], False, Learned.WAIT),
        # Evacuation records are the recovery's own business (its in-flight check).
        (
            _server(),
            [Migration("3", "i1", "h1", "h3", "done", "evacuation", NOW)],
            False,
            Learned.NOTHING,
        ),
    ],
)
def test_what_the_recovery_learns_from_the_newest_live_migration(
    server: Server, records: list[Migration], expired: bool, learned: Learned
) -> None:
    assert handover.learn(server, "h1", records, expired, host_off=False).learned == learned


@pytest.mark.parametrize(
    ("server", "status", "learned", "past_the_wait"),
    [
        # Only the source writes these, before any guest on the destination: off, it never
        # will; nothing to wait for.
        (_server(), "queued", Learned.EVACUATE, Learned.EVACUATE),
        (_server(), "preparing", Learned.EVACUATE, Learned.EVACUATE),
        # The conductor's check may still fail it; the destination may still land it.
        (_server(), "accepted", Learned.WAIT, Learned.EVACUATE),
        # The guest may run on the destination, which may still land it: never evacuated.
        (_server(), "running", Learned.WAIT, Learned.UNSURE),
        (_server(), "running (post-copy)", Learned.WAIT, Learned.UNSURE),
        # What Nova already did stays decided.
        (_server("h2", None), "running", Learned.LANDED, Learned.LANDED),
        (_server(task=None), "completed", Learned.NOTHING, Learned.NOTHING),
        (_server(task=None), "error", Learned.NOTHING, Learned.NOTHING),
    ],
)
def test_a_fenced_source_ends_no_migration_before_its_switch_over(
    server: Server, status: str, learned: Learned, past_the_wait: Learned
) -> None:
    found = handover.learn(server, "h1", [_live(status)], expired=False, host_off=True)
    assert found.learned == learned
    if learned == Learned.EVACUATE:
        assert "can never end" in found.message
    late = handover.learn(server, "h1", [_live(status)], expired=True, host_off=True)
    assert late.learned == past_the_wait


def _fencing(method: str, confirmed: bool = True) -> FencingRecord:
    return FencingRecord(
        method=method,
        started_time=NOW - timedelta(seconds=40),
        requests=1 if method == "pacemaker" else 0,
        confirmed_time=NOW - timedelta(seconds=10) if confirmed else None,
        proof="h1 offline and fenced" if confirmed else None,
    )


def test_only_a_fencing_confirms_the_hosts_memory_is_gone() -> None:
    assert handover.confirmed_off(_fencing("pacemaker"))
    assert handover.confirmed_off(_fencing("redfish"))  # found Off already: no request
    assert not handover.confirmed_off(_fencing("pacemaker", confirmed=False))
    assert not handover.confirmed_off(_fencing("none"))  # the monitor's word
    assert not handover.confirmed_off(None)


def test_the_wait_is_nova_s_own_within_the_drains_bound_from_the_migrations_start() -> None:
    assert handover.patience(_live("running", age=100), 600, NOW) == handover.NOVA_ENDS_WITHIN
    assert handover.patience(_live("running", age=590), 600, NOW) == 10
    assert handover.patience(_live("running", age=10), 30, NOW) == 20
    assert handover.patience(_live("running", age=900), 600, NOW) == 0
    # The cloud's clock ahead, or the start unknown: never taken for long ago.
    assert handover.patience(_live("running", age=-30), 30, NOW) == 30
    assert handover.patience(None, 600, NOW) == handover.NOVA_ENDS_WITHIN
    unknown = Migration("1", "i1", "h1", "h2", "running", "live-migration", None)
    assert handover.patience(unknown, 30, NOW) == 30


def test_only_an_open_live_migration_off_the_failed_host_keeps_the_plan_off_its_destination() -> (
    None
):
    assert handover.open_destination([_live("running")], "h1") == "h2"
    assert handover.open_destination([_live("post-migrating")], "h1") == "h2"
    assert handover.open_destination([_live("error")], "h1") is None
    assert handover.open_destination([_live("completed")], "h1") is None
    assert handover.open_destination([_live("running", source="h3")], "h1") is None


# --- the gate -----------------------------------------------------------------------------

LIVE = MaintenancePolicy(drain=DrainMode.LIVE_MIGRATE)
ENTERED = NOW - timedelta(hours=1)


def _drain(phase: DrainPhase, ended: datetime | None = None) -> DrainStatus:
    move = DrainMove(instance_uuid="i1", status=DrainMoveStatus.PENDING)
    return DrainStatus(
        phase=phase, mode="LiveMigrate", start_time=ENTERED, end_time=ended, instances=[move]
    )


@pytest.mark.parametrize(
    ("policy", "status", "unfinished"),
    [
        (LIVE, _drain(DrainPhase.DRAINING), True),
        (LIVE, _drain(DrainPhase.HANDED_OVER, NOW), True),
        (LIVE, _drain(DrainPhase.INCOMPLETE, NOW), True),
        (LIVE, _drain(DrainPhase.DRAINED, NOW), False),  # what stays was left on purpose
        (LIVE, None, True),  # wanted, not begun: nothing moved yet
        # An earlier maintenance's drain is not this one's: this one has not begun.
        (LIVE, _drain(DrainPhase.DRAINED, ENTERED - timedelta(days=1)), True),
        (MaintenancePolicy(), None, False),  # Masakari's maintenance: the instances stay
        (None, None, False),
        (MaintenancePolicy(), _drain(DrainPhase.HANDED_OVER, ENTERED - timedelta(days=1)), False),
        # A drain keeps running under the policy it started with, edited since or not.
        (MaintenancePolicy(), _drain(DrainPhase.DRAINING), True),
    ],
)
def test_a_drain_owes_the_host_a_move_until_it_is_drained(
    policy: MaintenancePolicy | None, status: DrainStatus | None, unfinished: bool
) -> None:
    assert drain.unfinished(policy, status, ENTERED) == unfinished


def test_the_failure_of_a_host_on_maintenance_is_recovered_only_while_its_drain_is_owed() -> None:
    on_maintenance = HOST.model_copy(update={"on_maintenance": True})
    owed = admit(report(), on_maintenance, segment(), [], HEALTHY, drain_unfinished=True)
    assert owed.verdict == Verdict.PROCEED
    done = admit(report(), on_maintenance, segment(), [], HEALTHY, drain_unfinished=False)
    assert (done.verdict, done.reason) == (Verdict.IGNORE, "HostOnMaintenance")
    uuid = "8f2a5f0e-7a38-4c8b-9d43-2f1b6c1f0a11"
    vm_payload = {"event": "LIFECYCLE", "vir_domain_event": "STOPPED_FAILED", "instance_uuid": uuid}
    vm = report(kind="VM", payload=vm_payload)
    instance = admit(vm, on_maintenance, segment(), [], HEALTHY, drain_unfinished=True)
    assert (instance.verdict, instance.reason) == (Verdict.IGNORE, "HostOnMaintenance")


# --- the recovery of a host that failed mid-drain -----------------------------------------


def _cloud(*names: str) -> tuple[FakeNova, Clock]:
    """h1 dead with `names` on it; one clock for the cloud and the operator."""
    nova = cloud(*((name, {}) for name in names))
    clock = Clock()
    nova.clock = clock
    return nova, clock


def _recover(
    nova: FakeNova,
    clock: Clock,
    store: Store,
    timeout: float = 60,
    placement: PlacementPolicy | None = None,
) -> tuple[Outcome, float]:
    """The recovery, and how long it waited (virtual seconds)."""
    start = clock.monotonic()

    async def attempt() -> Outcome:
        host_failure = recovery(nova, store)
        host_failure.progress = Progress(store.status.model_copy(deep=True), store.persist, clock)
        host_failure.timing = Timing(poll_interval=1, clock=clock.monotonic, sleep=clock.sleep)
        host_failure.live_migration_timeout = timeout
        host_failure.placement = placement
        host_failure.segment_hosts = ["h2", "h3"]
        return await to_the_end(host_failure)

    outcome = asyncio.run(attempt())
    return outcome, clock.monotonic() - start


def test_a_live_migration_left_preparing_is_waited_for_then_evacuated_off_its_destination() -> None:
    nova, clock = _cloud("a", "b", "c")
    for name in ("a", "b"):
        nova.live_migration(f"uuid-{name}", "h2", status="preparing")
    store = Store()
    outcome, waited = _recover(nova, clock, store, timeout=60, placement=PlacementPolicy())
    assert (outcome.phase, outcome.reason) == ("Finished", "Recovered")
    assert 60 <= waited < 70  # the drain's bound, once, for both: they wait side by side
    result = moves(store)
    assert result["a"] == result["b"] == ("succeeded", "h3")  # never onto the copy's host
    assert nova.evacuations == {"uuid-a": 1, "uuid-b": 1, "uuid-c": 1}
    assert not nova.live_moves


def test_a_live_migration_nova_ends_while_waited_for_decides_the_move() -> None:
    """The destination takes the instance (the record stays open: its dead source never marks
    it completed); the conductor fails the other."""
    nova, clock = _cloud("landed", "rolled-back")
    nova.live_migration("uuid-landed", "h2")
    nova.live_migration("uuid-rolled-back", "h3")
    soon = clock() + timedelta(seconds=5)
    nova.live_endings = {"uuid-landed": (soon, "completed"), "uuid-rolled-back": (soon, "error")}
    store = Store()
    outcome, waited = _recover(nova, clock, store)
    assert outcome.phase == "Finished", outcome
    assert outcome.message == "1 instance(s) evacuated, 1 already live-migrated by the drain"
    assert 5 <= waited < 10
    landed = store.status.instances[0]
    assert (landed.instance_name, landed.status, landed.type) == (
        "landed",
        "succeeded",
        "live_migration",
    )
    assert (landed.destination_host, landed.attempts) == ("h2", 0)
    assert nova.live_moves == {"uuid-landed": 1}
    assert nova.evacuations == {"uuid-rolled-back": 1}
    assert moves(store)["rolled-back"][0] == "succeeded"


def test_a_guest_that_may_run_on_the_destination_is_never_evacuated() -> None:
    """Nova 34 keeps a live migration `running` after libvirt resumed the guest on the
    destination, until its source has finished its own bookkeeping: a source dead in that
    window leaves a `running` record and a guest alive on h2."""
    nova, clock = _cloud("switched", "plain")
    nova.live_migration("uuid-switched", "h2", status="running")
    store = Store()
    outcome, waited = _recover(nova, clock, store, timeout=30)
    assert (outcome.phase, outcome.reason) == ("Error", "EvacuationFailed")
    assert waited >= 30
    status, destination = moves(store)["switched"]
    assert (status, destination) == ("failed", None)
    (switched,) = [m for m in store.status.instances if m.instance_name == "switched"]
    assert "may run there" in (switched.message or "")
    assert nova.evacuations == {"uuid-plain": 1}
    assert ("reset_state", "uuid-switched", "error") not in nova.calls


def test_a_migration_that_started_long_ago_is_not_waited_for_again() -> None:
    nova, clock = _cloud("a")
    nova.live_migration("uuid-a", "h2", status="preparing", created_at=clock() - timedelta(hours=1))
    store = Store()
    outcome, waited = _recover(nova, clock, store, timeout=600)
    assert outcome.phase == "Finished"
    assert waited < 10
    assert nova.evacuations == {"uuid-a": 1}


def test_a_live_migration_off_a_fenced_host_is_evacuated_on_the_first_look() -> None:
    """Pacemaker fenced h1: the `preparing` migration can never end, so no wait; a placement
    plan keeps the evacuation off its destination all the same."""
    nova, clock = _cloud("a", "b")
    nova.live_migration("uuid-a", "h2", status="preparing")
    store = Store()
    store.status.fencing = _fencing("pacemaker")
    outcome, waited = _recover(nova, clock, store, timeout=600, placement=PlacementPolicy())
    assert (outcome.phase, outcome.reason) == ("Finished", "Recovered")
    assert waited < 5
    assert moves(store)["a"] == ("succeeded", "h3")
    assert nova.evacuations == {"uuid-a": 1, "uuid-b": 1}
    notes = " ".join(d.message for s in store.status.steps for d in s.progress_details)
    assert "can never end" in notes, notes


@pytest.mark.parametrize("status", ["running", "running (post-copy)"])
def test_a_maybe_switched_over_guest_on_a_fenced_host_is_still_left_for_a_person(
    status: str,
) -> None:
    """Fenced or not, the source's memory says nothing of the destination's copy."""
    nova, clock = _cloud("switched")
    nova.live_migration("uuid-switched", "h2", status=status)
    store = Store()
    store.status.fencing = _fencing("redfish")
    outcome, waited = _recover(nova, clock, store, timeout=600)
    assert (outcome.phase, outcome.reason) == ("Error", "EvacuationFailed")
    assert handover.NOVA_ENDS_WITHIN <= waited < handover.NOVA_ENDS_WITHIN + 10
    assert moves(store)["switched"] == ("failed", None)
    assert not nova.evacuations


@pytest.mark.parametrize("cold", [False, True])
def test_without_a_fencing_the_wait_is_nova_s_not_the_drains_whole_bound(cold: bool) -> None:
    """fencing.method none: the host only reported down. Nova may still end the migration, but
    within its own RPC timeout, not the drain's ten minutes. A cold one too: a source that
    still runs may yet hand the instance over (without the wait it was evacuated at once,
    racing it); a stopped instance lands stopped."""
    nova, clock = _cloud("a")
    if cold:
        _stop(nova, "a")
        nova.cold_migration("uuid-a", "h2")
    else:
        nova.live_migration("uuid-a", "h2", status="preparing")
    store = Store()
    store.status.fencing = _fencing("none")
    outcome, waited = _recover(nova, clock, store, timeout=600)
    assert outcome.phase == "Finished", outcome
    assert handover.NOVA_ENDS_WITHIN <= waited < handover.NOVA_ENDS_WITHIN + 10
    assert nova.evacuations == {"uuid-a": 1}
    assert nova.servers["uuid-a"].vm_state == ("stopped" if cold else "active")


def _stop(nova: FakeNova, *names: str) -> None:
    for name in names:
        server = nova.servers[f"uuid-{name}"]
        nova.servers[server.id] = dataclasses.replace(server, vm_state="stopped", status="SHUTOFF")


def test_a_cold_migration_off_a_fenced_host_is_evacuated_at_once_stopped_off_its_destination() -> (
    None
):
    """The drain was copying a stopped instance's disk when h1 was fenced: nothing in Nova will
    hand it over, the guest runs nowhere. Evacuated at once (reset from its resize task),
    away from the destination that holds its claim, and stopped as it was. The one Nova
    had landed on h2 (unconfirmed) is the drain's: not evacuated."""
    nova, clock = _cloud("copying", "landed", "plain")
    _stop(nova, "copying", "landed")
    nova.cold_migration("uuid-copying", "h2")
    nova.cold_migration("uuid-landed", "h2", status="finished")
    store = Store()
    store.status.fencing = _fencing("pacemaker")
    outcome, waited = _recover(nova, clock, store, timeout=600, placement=PlacementPolicy())
    assert (outcome.phase, outcome.reason) == ("Finished", "Recovered"), outcome
    assert waited < 5
    result = moves(store)
    assert result["copying"] == ("succeeded", "h3")
    assert nova.servers["uuid-copying"].vm_state == "stopped"
    assert ("reset_state", "uuid-copying", "error") in nova.calls
    assert "landed" not in result  # on h2 already: never listed among h1's
    assert "uuid-landed" not in nova.evacuations
    assert nova.evacuations == {"uuid-copying": 1, "uuid-plain": 1}

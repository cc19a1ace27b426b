"""The decisions of a maintenance drain (controller.recovery.drain), table-tested, and
properties: over any sequence of drain rounds no instance ever has two live migrations at once,
the bounds hold, and nothing moves off a host that is not on maintenance; over any migration
records, an open migration of either kind is always seen before another is asked for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.recovery import drain
from controller.recovery.drain import HostView, Next, Slots, Want
from controller.recovery.nova import ComputeService, Flavor, Migration, Server
from controller.resources.host import (
    DrainMove,
    DrainMoveStatus,
    DrainPhase,
    DrainStatus,
    HostPhase,
    MigrationKind,
)
from controller.resources.segment import DrainMode, MaintenancePolicy, StoppedInstances

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
UP = ComputeService("s1", "c1", "up", "disabled", False)
DOWN = ComputeService("s1", "c1", "down", "disabled", False)
FORCED = ComputeService("s1", "c1", "down", "disabled", True)
LIVE = MaintenancePolicy(drain=DrainMode.LIVE_MIGRATE)
OR_STOP = MaintenancePolicy(drain=DrainMode.LIVE_MIGRATE_OR_STOP, attempts=2)
OFF = MaintenancePolicy()
COLD = MaintenancePolicy(
    drain=DrainMode.LIVE_MIGRATE_OR_STOP, stopped_instances=StoppedInstances.COLD_MIGRATE
)


def _server(sid: str, vm_state: str = "active", task: str | None = None) -> Server:
    return Server(sid, sid, "ACTIVE", vm_state, task, 1, "c1", False, Flavor("m1", 1, 512, 1))


def _drain(*statuses: DrainMoveStatus, phase: DrainPhase = DrainPhase.DRAINING) -> DrainStatus:
    moves = [DrainMove(instance_uuid=f"i{n}", status=s) for n, s in enumerate(statuses)]
    return DrainStatus(phase=phase, mode="LiveMigrate", start_time=NOW, instances=moves)


def _view(
    on: bool = True,
    phase: HostPhase = HostPhase.MAINTENANCE,
    service: ComputeService | None = UP,
    recovering: bool = False,
    current: DrainStatus | None = None,
    since: datetime | None = NOW,
) -> HostView:
    return HostView(on, phase, service, recovering, current, since)


DRAINING = _drain(DrainMoveStatus.PENDING)
ENDED_EARLIER = _drain(DrainMoveStatus.SUCCEEDED, phase=DrainPhase.DRAINED).model_copy(
    update={"end_time": NOW - timedelta(hours=1)}
)
ENDED_NOW = ENDED_EARLIER.model_copy(update={"end_time": NOW + timedelta(minutes=1)})


@pytest.mark.parametrize(
    ("view", "policy", "want"),
    [
        (_view(), LIVE, Want.DRAIN),
        (_view(), OR_STOP, Want.DRAIN),
        (_view(), OFF, Want.NOTHING),
        (_view(), None, Want.NOTHING),
        (_view(on=False), LIVE, Want.NOTHING),
        (_view(on=False, current=DRAINING), LIVE, Want.STOP),
        (_view(service=DOWN), LIVE, Want.NOTHING),
        (_view(service=FORCED, current=DRAINING), LIVE, Want.HAND_OVER),
        (_view(recovering=True, current=DRAINING), LIVE, Want.HAND_OVER),
        (_view(phase=HostPhase.RECOVERING, current=DRAINING), LIVE, Want.HAND_OVER),
        (_view(phase=HostPhase.FAILED), LIVE, Want.NOTHING),
        (_view(service=None), LIVE, Want.NOTHING),
        # resumed under its own policy even if the segment no longer drains
        (_view(current=DRAINING), OFF, Want.DRAIN),
        # a drain of an earlier maintenance does not stop a new one
        (_view(current=ENDED_EARLIER), LIVE, Want.DRAIN),
        (_view(current=ENDED_NOW), LIVE, Want.NOTHING),
    ],
)
def test_wanted(view: HostView, policy: MaintenancePolicy | None, want: Want) -> None:
    assert drain.wanted(view, policy) == want


@pytest.mark.parametrize(
    ("policy", "current", "service", "allowed"),
    [
        (OFF, None, UP, True),
        (None, None, UP, True),
        (LIVE, None, UP, False),  # not started yet
        (LIVE, DRAINING, UP, False),
        (OFF, DRAINING, UP, False),  # the policy changed mid-drain: standby still waits
        (LIVE, ENDED_NOW, UP, True),
        (LIVE, ENDED_EARLIER, UP, False),  # an earlier maintenance's drain
        (LIVE, None, DOWN, True),  # nothing can be drained off a dead service
    ],
)
def test_standby_waits_for_the_drain(
    policy: MaintenancePolicy | None,
    current: DrainStatus | None,
    service: ComputeService,
    allowed: bool,
) -> None:
    assert drain.standby_allowed(policy, current, NOW, service) is allowed


def test_begin_moves_running_instances_and_leaves_the_others() -> None:
    servers = [_server("b"), _server("a", "paused"), _server("c", "stopped"), _server("d", "error")]
    started = drain.begin(servers, LIVE, NOW)
    assert [(m.instance_uuid, m.status) for m in started.instances] == [
        ("a", DrainMoveStatus.PENDING),
        ("b", DrainMoveStatus.PENDING),
        ("c", DrainMoveStatus.LEFT),
        ("d", DrainMoveStatus.LEFT),
    ]
    assert started.phase == DrainPhase.DRAINING and started.mode == DrainMode.LIVE_MIGRATE


def test_begin_cold_migrates_the_stopped_ones_where_the_segment_says_so() -> None:
    servers = [
        _server("a"),
        _server("b", "stopped"),
        _server("c", "suspended"),
        _server("d", "error"),
        _server("e", "paused"),
    ]
    started = drain.begin(servers, COLD, NOW)
    assert [(m.instance_uuid, m.status, m.kind) for m in started.instances] == [
        ("a", DrainMoveStatus.PENDING, MigrationKind.LIVE),
        ("b", DrainMoveStatus.PENDING, MigrationKind.COLD),
        ("c", DrainMoveStatus.LEFT, MigrationKind.LIVE),
        ("d", DrainMoveStatus.LEFT, MigrationKind.LIVE),
        ("e", DrainMoveStatus.PENDING, MigrationKind.LIVE),
    ]
    left = {m.instance_uuid: m.message for m in started.instances}
    assert "neither live nor cold" in (left["c"] or "")
    assert "stoppedInstances Leave" in (
        drain.begin([servers[1]], LIVE, NOW).instances[0].message or ""
    )


@pytest.mark.parametrize(
    ("statuses", "slots", "expected"),
    [
        ([DrainMoveStatus.PENDING] * 5, Slots(2, 10, 0), ["i0", "i1"]),
        ([DrainMoveStatus.PENDING] * 5, Slots(4, 3, 2), ["i0"]),
        ([DrainMoveStatus.ONGOING, DrainMoveStatus.PENDING], Slots(1, 10, 1), []),
        ([DrainMoveStatus.PENDING] * 2, Slots(2, 2, 5), []),
        ([DrainMoveStatus.FAILED, DrainMoveStatus.LEFT, DrainMoveStatus.PENDING], Slots(2, 2, 0),
         ["i2"]),
    ],
)  # fmt: skip
def test_next_moves_within_both_bounds(
    statuses: list[DrainMoveStatus], slots: Slots, expected: list[str]
) -> None:
    assert drain.next_moves(_drain(*statuses), slots) == expected


def test_an_instance_with_an_attempt_running_is_not_picked_again() -> None:
    pending = _drain(*[DrainMoveStatus.PENDING] * 4)
    assert drain.next_moves(pending, Slots(2, 10, 1), {"i0"}) == ["i1"]


def _record(status: str, created: datetime, kind: str = "live-migration") -> Migration:
    return Migration("1", "i0", "c1", "c2", status, kind, created)


@pytest.mark.parametrize(
    ("task", "records", "flying"),
    [
        ("migrating", [], True),
        (None, [_record("running", NOW)], True),
        (None, [_record("queued", NOW - timedelta(seconds=10))], True),  # clock skew
        (None, [_record("completed", NOW)], False),
        (None, [_record("error", NOW)], False),
        (None, [_record("running", NOW - timedelta(hours=1))], False),  # an older move's
        (None, [_record("running", NOW, "evacuation")], False),
        # Cold ones: under way, landed but unconfirmed, being confirmed; over once confirmed.
        ("resize_migrating", [], True),
        ("resize_prep", [], True),
        (None, [_record("pre-migrating", NOW, "migration")], True),
        (None, [_record("finished", NOW, "migration")], True),
        (None, [_record("confirming", NOW, "migration")], True),
        (None, [_record("confirmed", NOW, "migration")], False),
        (None, [_record("reverted", NOW, "migration")], False),
        (None, [_record("error", NOW, "migration")], False),
    ],
)
def test_in_flight(task: str | None, records: list[Migration], flying: bool) -> None:
    move = DrainMove(instance_uuid="i0", status=DrainMoveStatus.ONGOING, start_time=NOW)
    assert drain.in_flight(_server("i0", task=task), move, records) is flying


def test_a_cold_migration_is_confirmed_only_when_this_move_s_landed() -> None:
    move = DrainMove(
        instance_uuid="i0", status=DrainMoveStatus.ONGOING, start_time=NOW, kind="cold"
    )
    resized = _server("i0", "resized")
    assert drain.to_confirm(resized, move, [_record("finished", NOW, "migration")])
    # Already being confirmed (this drain asked, then crashed): never asked twice.
    assert not drain.to_confirm(resized, move, [_record("confirming", NOW, "migration")])
    # Someone else's resize, left unconfirmed before this move started: theirs.
    old = _record("finished", NOW - timedelta(hours=1), "migration")
    assert not drain.to_confirm(resized, move, [old])
    assert not drain.to_confirm(_server("i0", "stopped"), move, [_record("finished", NOW)])
    # A cold attempt fails by its own record, not by a live one's.
    assert drain.attempt_failed(_server("i0", "stopped"), move, [_record("error", NOW)]) is None
    failed = drain.attempt_failed(
        _server("i0", "stopped"), move, [_record("error", NOW, "migration")]
    )
    assert failed == "cold migration to c2 ended error"


def test_a_cold_move_that_fails_every_attempt_is_given_up_not_stopped() -> None:
    move = DrainMove(instance_uuid="i0", status=DrainMoveStatus.ONGOING, kind="cold")
    move.attempts = COLD.attempts
    assert drain.after_failure(move, COLD) == Next.GIVE_UP


def test_a_failed_attempt_is_retried_then_given_up_or_stopped() -> None:
    move = DrainMove(instance_uuid="i0", status=DrainMoveStatus.ONGOING, attempts=1)
    assert drain.after_failure(move, LIVE) == Next.RETRY
    move.attempts = LIVE.attempts
    assert drain.after_failure(move, LIVE) == Next.GIVE_UP
    move.attempts = OR_STOP.attempts
    assert drain.after_failure(move, OR_STOP) == Next.STOP_INSTANCE


def test_attempt_failed_reads_nova() -> None:
    move = DrainMove(instance_uuid="i0", status=DrainMoveStatus.ONGOING, start_time=NOW)
    assert drain.attempt_failed(_server("i0"), move, [_record("error", NOW)]) is not None
    assert drain.attempt_failed(_server("i0"), move, [_record("completed", NOW)]) is None
    assert drain.attempt_failed(_server("i0", task="migrating"), move, []) is None
    # An earlier attempt's failed record is not this attempt's, once a newer one exists.
    earlier = Migration("1", "i0", "c1", "c2", "error", "live-migration", NOW)
    newer = Migration("2", "i0", "c1", "c3", "completed", "live-migration", NOW)
    assert drain.attempt_failed(_server("i0"), move, [earlier, newer]) is None


@pytest.mark.parametrize(
    ("statuses", "phase"),
    [
        ([DrainMoveStatus.SUCCEEDED, DrainMoveStatus.LEFT, DrainMoveStatus.GONE],
         DrainPhase.DRAINED),
        ([DrainMoveStatus.SUCCEEDED, DrainMoveStatus.FAILED], DrainPhase.INCOMPLETE),
        ([DrainMoveStatus.SUCCEEDED, DrainMoveStatus.ONGOING], None),
        ([DrainMoveStatus.PENDING], None),
        ([], DrainPhase.DRAINED),
    ],
)  # fmt: skip
def test_outcome(statuses: list[DrainMoveStatus], phase: DrainPhase | None) -> None:
    assert drain.outcome(_drain(*statuses)) == phase


# --- the property ---------------------------------------------------------------------------

STEPS = st.lists(
    st.tuples(
        st.sampled_from(["round", "land", "fail", "maintenance_off", "maintenance_on", "die"]),
        st.integers(0, 9),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    count=st.integers(0, 10),
    per_host=st.integers(1, 4),
    per_segment=st.integers(1, 6),
    others=st.integers(0, 6),
    steps=STEPS,
)
def test_no_instance_has_two_live_migrations_and_nothing_moves_off_a_host_in_service(
    count: int, per_host: int, per_segment: int, others: int, steps: list[tuple[str, int]]
) -> None:
    """Drives the decisions the way host_drain does: each round asks `wanted`, then starts
    what `next_moves` gives, on a host that goes on and off maintenance and may die."""
    policy = MaintenancePolicy(
        drain=DrainMode.LIVE_MIGRATE, concurrency_per_host=per_host,
        concurrency_per_segment=per_segment, attempts=3,
    )  # fmt: skip
    servers = [_server(f"i{n}") for n in range(count)]
    state = drain.begin(servers, policy, NOW)
    on_maintenance, service = True, UP
    flying: set[str] = set()
    for action, index in steps:
        moves = state.instances
        move = moves[index % len(moves)] if moves else None
        if action == "maintenance_off":
            on_maintenance = False
        elif action == "maintenance_on":
            on_maintenance = True
        elif action == "die":
            service = FORCED
        elif action in ("land", "fail") and move is not None and move.instance_uuid in flying:
            flying.discard(move.instance_uuid)
            if action == "land":
                move.status = DrainMoveStatus.SUCCEEDED
            elif drain.after_failure(move, policy) == Next.RETRY:
                move.status = DrainMoveStatus.PENDING
            else:
                move.status = DrainMoveStatus.FAILED
        elif action == "round":
            view = HostView(on_maintenance, HostPhase.MAINTENANCE, service, False, state, NOW)
            want = drain.wanted(view, policy)
            if want != Want.DRAIN:
                drain.cancel_pending(state, "stopped", NOW)
                continue
            slots = Slots(per_host, per_segment, others + len(flying))
            picked = drain.next_moves(state, slots)
            assert len(picked) <= max(per_segment - others - len(flying), 0)
            for instance in picked:
                assert on_maintenance, "a live migration off a host not on maintenance"
                assert service.is_up, "a live migration off a dead host"
                assert instance not in flying, "a second live migration of one instance"
                started = next(m for m in state.instances if m.instance_uuid == instance)
                started.status, started.attempts = DrainMoveStatus.ONGOING, started.attempts + 1
                flying.add(instance)
            assert len(flying) <= per_host
        for m in state.instances:
            assert m.attempts <= policy.attempts


def test_a_maintenance_of_unknown_start_keeps_its_ended_drain() -> None:
    """A Host in phase Maintenance whose history lost the entry: its ended drain stands,
    rather than a new drain on every pass (retrying its failed instances forever)."""
    from controller.recovery.hosts import maintenance_since
    from controller.resources.host import HostStatus

    since = maintenance_since(HostStatus(phase=HostPhase.MAINTENANCE), NOW)
    assert since is None
    assert drain.wanted(_view(current=ENDED_EARLIER, since=since), LIVE) == Want.NOTHING
    entering = maintenance_since(HostStatus(phase=HostPhase.ACTIVE), NOW)
    assert drain.wanted(_view(current=ENDED_EARLIER, since=entering), LIVE) == Want.DRAIN


RECORD = st.builds(
    Migration,
    id=st.sampled_from(["1", "2", "3"]),
    server_id=st.just("i0"),
    source_host=st.just("c1"),
    dest_host=st.sampled_from(["c2", None]),
    status=st.sampled_from(
        [
            *sorted(drain.ENDED_MIGRATION),
            *("queued", "preparing", "running", "post-migrating", "accepted"),
            *("pre-migrating", "migrating", "finished", "confirming"),
        ]
    ),
    migration_type=st.sampled_from(["live-migration", "migration", "evacuation", "resize"]),
    created_at=st.one_of(
        st.none(), st.integers(-3600, 60).map(lambda s: NOW + timedelta(seconds=s))
    ),
)


@settings(max_examples=500, deadline=None)
@given(
    records=st.lists(RECORD, max_size=5),
    task=st.sampled_from([None, "migrating", *sorted(drain.RESIZING), "powering-off"]),
    vm_state=st.sampled_from(["active", "stopped", "resized", "paused", "error"]),
    kind=st.sampled_from(list(MigrationKind)),
    started=st.booleans(),
)
def test_an_open_migration_of_either_kind_is_never_asked_again(
    records: list[Migration], task: str | None, vm_state: str, kind: MigrationKind, started: bool
) -> None:
    """host_drain asks Nova for a migration only when `in_flight` says none runs and, for a
    cold one, confirms only what `to_confirm` names. Whatever Nova's records say: a migration
    of this move's still open (of either kind, the kind may have changed since) or under way
    in the server's task state stops a new one; and what is to be confirmed is never also
    asked for again."""
    move = DrainMove(
        instance_uuid="i0",
        status=DrainMoveStatus.ONGOING if started else DrainMoveStatus.PENDING,
        start_time=NOW if started else None,
        kind=kind,
    )
    server = _server("i0", vm_state, task)
    since = NOW - drain.CLOCK_SKEW
    open_ = [
        m
        for m in records
        if m.migration_type in ("live-migration", "migration")
        and m.status not in drain.ENDED_MIGRATION
        and (not started or (m.created_at is not None and m.created_at >= since))
    ]
    asks = not drain.in_flight(server, move, records)
    if open_ or task == "migrating" or task in drain.RESIZING:
        assert not asks, "a second migration of one instance"
    if drain.to_confirm(server, move, records):
        assert not asks, "confirmed and migrated again"
        assert drain.attempt_failed(server, move, records) is None

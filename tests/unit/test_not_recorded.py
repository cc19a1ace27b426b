"""A recovery whose progress the cluster refuses to store (etcd out of space, the status too
large for etcd): nothing is done that is not recorded first, the refusal is said (the blocked
gauge's reason, a signal, the Blocked condition where a small write still goes through), and
the recovery resumes from what was recorded once writes go through again, nothing twice."""

from __future__ import annotations

from controller.recovery.progress import NotRecorded
from controller.resources.failure_event import FailureEventStatus
from tests.unit.test_lifecycle import World

FULL = NotRecorded("EtcdSpaceExceeded", "etcdserver: mvcc: database space exceeded")


def test_nothing_is_done_while_no_write_is_stored_and_all_once_space_returns() -> None:
    world = World()
    world.fail("h1", "a", "b")
    world.store.report("ev", "h1")
    world.store.refusal = FULL
    world.run(["ev"], rounds=4)
    assert world.phase("ev") == (None, None)
    assert not world.nova.evacuations
    assert not world.nova.services["h1"].forced_down, "Nova was touched before a record"
    assert world.signals.blocked_now == {"ev": "EtcdSpaceExceeded"}
    assert world.signals.not_recorded_reasons.count("EtcdSpaceExceeded") == 5

    world.store.refusal = None
    world.run(["ev"])
    assert world.phase("ev") == ("Finished", "Recovered")
    assert dict(world.nova.evacuations) == {"uuid-a": 1, "uuid-b": 1}
    assert world.signals.blocked_now == {}


def test_a_refusal_mid_recovery_stops_it_until_writes_go_through() -> None:
    world = World(hostFailure={"evacuationConcurrency": 1})
    world.fail("h1", "a", "b", "c")
    world.store.report("ev", "h1")
    # Admission, the host taken out, the first move: the second move's write-ahead is refused.
    world.store.refusal, world.store.refuse_after = FULL, 4
    world.run(["ev"], rounds=3)
    assert world.phase("ev") == ("Running", "Recovering")
    moved = dict(world.nova.evacuations)
    assert len(moved) < 3, "an instance was evacuated without its move on record"

    world.store.refusal = None
    world.lifecycle = world.operator()  # also across a restart of the operator
    world.run(["ev"])
    assert world.phase("ev") == ("Finished", "Recovered")
    assert dict(world.nova.evacuations) == {"uuid-a": 1, "uuid-b": 1, "uuid-c": 1}
    blocked = [c for c in world.store.events["ev"].status.conditions if c.type == "Blocked"]
    assert blocked and blocked[0].status == "False", blocked


def test_a_refused_status_is_said_on_the_object_when_a_small_write_goes_through() -> None:
    """The admission is stored; the write with the moves is past etcd's size; the condition,
    written on the status as last stored, goes through."""
    world = World()
    world.fail("h1", "a")
    world.store.report("ev", "h1")
    too_large = NotRecorded("StatusTooLarge", "etcdserver: request is too large")
    writes = world.store.write_event_status

    async def refuse_moves(namespace: str, name: str, status: FailureEventStatus) -> None:
        if status.instances:
            raise too_large
        await writes(namespace, name, status)

    world.store.write_event_status = refuse_moves  # type: ignore[method-assign]
    world.run(["ev"], rounds=2)
    assert not world.nova.evacuations
    status = world.store.events["ev"].status
    assert status.phase == "Running"
    blocked = [c for c in status.conditions if c.type == "Blocked"]
    assert blocked[0].status == "True" and blocked[0].reason == "StatusTooLarge", blocked
    assert "request is too large" in blocked[0].message
    assert world.signals.blocked_now == {"ev": "StatusTooLarge"}

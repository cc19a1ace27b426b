"""Host failure by a placement plan, against the in-memory Nova: the segment as the boundary,
instances without room reported (never tried), fallbacks, a stale plan, the write-ahead."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
from collections.abc import Collection
from typing import Any

from controller.recovery.host_failure import NO_RESERVED_ROOM, NO_ROOM, HostFailure, Timing
from controller.recovery.nova import HostResources, ServerGroup, Unavailable
from controller.recovery.outcome import Outcome
from controller.recovery.progress import Progress
from controller.resources.failure_event import FailureEventStatus, MoveStatus
from controller.resources.segment import (
    HostFailurePolicy,
    PlacementBoundary,
    PlacementPolicy,
    PlacementStrategy,
    RecoveryMethod,
)
from tests.unit.fake_nova import Crash, FakeNova
from tests.unit.test_host_failure import to_the_end


class Store:
    def __init__(self) -> None:
        self.status = FailureEventStatus()
        self.written: list[FailureEventStatus] = []

    async def persist(self, status: FailureEventStatus) -> None:
        self.written.append(status)
        self.status = status


async def _no_wait(_seconds: float) -> None:
    await asyncio.sleep(0)


def world(vcpus: dict[str, int]) -> FakeNova:
    """h1 fails; h2, h3 are the segment's other hosts; h4 is outside it; r1, r2 are reserved."""
    nova = FakeNova(["h1", "h2", "h3", "h4", "r1", "r2"])
    nova.vcpus.update(vcpus)
    for spare in ("r1", "r2"):
        nova.services[spare] = dataclasses.replace(nova.services[spare], status="disabled")
    nova.kill("h1")
    return nova


def recovery(
    nova: FakeNova,
    store: Store,
    method: str = "auto",
    placement: PlacementPolicy | None = None,
    reserved: tuple[str, ...] = ("r1",),
    claimable: tuple[str, ...] = ("r1", "r2"),
    **policy: Any,
) -> HostFailure:
    return HostFailure(
        event="ev",
        host="h1",
        method=RecoveryMethod(method),
        policy=HostFailurePolicy(**policy),
        nova=nova,  # type: ignore[arg-type]
        progress=Progress(store.status.model_copy(deep=True), store.persist),
        reserved_candidates=list(reserved),
        claim=lambda host: host in claimable,
        timing=Timing(poll_interval=0, sleep=_no_wait),
        placement=placement or PlacementPolicy(),
        segment_hosts=["h1", "h2", "h3"],
    )


def run(nova: FakeNova, store: Store, **kwargs: Any) -> Outcome:
    return asyncio.run(to_the_end(recovery(nova, store, **kwargs)))


def h2_looks_empty(nova: FakeNova) -> None:
    """Placement as it was before someone filled h2: a plan picks h2, Nova refuses it."""
    real = nova.host_resources

    async def stale(hosts: Collection[str]) -> list[HostResources]:
        return [
            dataclasses.replace(r, usages=dict.fromkeys(r.usages, 0)) if r.host == "h2" else r
            for r in await real(hosts)
        ]

    nova.host_resources = stale  # type: ignore[method-assign]


def hosts_of(nova: FakeNova) -> dict[str, str | None]:
    return {s.name: s.host for s in nova.servers.values()}


def test_the_segment_is_the_boundary_and_each_move_records_its_target_and_project() -> None:
    # h4, outside the segment, has the most room: Nova's scheduler alone would pick it.
    nova = world({"h2": 4, "h3": 4, "h4": 64})
    for i in range(6):
        nova.add_server(f"vm{i}", "h1")
    store = Store()
    assert run(nova, store).reason == "Recovered"
    assert set(hosts_of(nova).values()) == {"h2", "h3"}
    for move in store.status.instances:
        assert move.status == MoveStatus.SUCCEEDED
        assert move.target_host == move.destination_host
    record = store.status.placement
    assert record is not None
    assert (record.boundary, record.strategy, record.candidate_hosts) == ("Segment", "Spread", 2)
    assert (record.planned, record.unplaced, record.plans) == (6, 0, 1)


def test_one_host_short_the_lowest_priority_are_reported_and_never_tried() -> None:
    nova = world({"h2": 1, "h3": 1})
    nova.add_server("low", "h1", metadata={"HA_Priority": "1"})
    nova.add_server("high", "h1", metadata={"HA_Priority": "9"})
    nova.add_server("mid", "h1", metadata={"HA_Priority": "5"})
    store = Store()
    outcome = run(nova, store)
    assert (outcome.phase, outcome.reason) == ("Error", "InsufficientCapacity")
    assert "without room in the segment (low)" in outcome.message
    moves = {m.instance_name: m for m in store.status.instances}
    assert moves["low"].status == MoveStatus.FAILED
    assert moves["low"].message == NO_ROOM + "does not fit: VCPU: needs 1, at most 0 free on a host"
    assert moves["low"].attempts == 0 and nova.evacuations["uuid-low"] == 0
    assert {moves["high"].status, moves["mid"].status} == {MoveStatus.SUCCEEDED}
    assert hosts_of(nova)["low"] == "h1"


def test_a_retry_plans_again_and_moves_what_now_fits() -> None:
    nova = world({"h2": 1, "h3": 1})
    for name in ("a", "b", "c"):
        nova.add_server(name, "h1")
    store = Store()
    assert run(nova, store).reason == "InsufficientCapacity"
    nova.vcpus["h3"] = 2  # room made by a person
    assert run(nova, store).reason == "Recovered"
    assert set(hosts_of(nova).values()) == {"h2", "h3"}
    assert store.status.placement is not None and store.status.placement.plans == 2


def test_what_does_not_fit_goes_to_the_methods_fallback() -> None:
    nova = world({"h2": 1, "h3": 1})
    for name in ("a", "b", "c"):
        nova.add_server(name, "h1")
    store = Store()
    assert run(nova, store, method="auto_priority").reason == "Recovered"
    landed = sorted(hosts_of(nova).values())
    assert landed == ["h2", "h3", "r1"]
    [to_reserved] = [m for m in store.status.instances if m.destination_host == "r1"]
    assert to_reserved.target_host == "r1" and store.status.reserved_hosts == ["r1"]


def test_aggregates_as_the_boundary() -> None:
    from controller.recovery.nova import Aggregate

    nova = world({"h2": 8, "h3": 8, "h4": 8})
    nova.aggregates_["1"] = Aggregate("1", "rack-b", ("h4",))
    nova.add_server("a", "h1")
    store = Store()
    policy = PlacementPolicy(boundary=PlacementBoundary.AGGREGATES, aggregates=["rack-b"])
    assert run(nova, store, placement=policy).reason == "Recovered"
    assert hosts_of(nova) == {"a": "h4"}


def test_region_is_the_opt_out_nova_scheduler_picks() -> None:
    nova = world({"h2": 1, "h3": 1})
    nova.add_server("a", "h1")
    store = Store()
    policy = PlacementPolicy(boundary=PlacementBoundary.REGION)
    assert run(nova, store, placement=policy).reason == "Recovered"
    assert store.status.placement is None
    assert store.status.instances[0].target_host is None


def test_a_refused_target_is_planned_again_elsewhere() -> None:
    nova = world({"h2": 2, "h3": 2})
    nova.add_server("a", "h1")
    h2_looks_empty(nova)
    nova.vcpus["h2"] = 8
    for i in range(8):
        nova.add_server(f"filler{i}", "h2")
    nova.vcpus["h3"] = 4
    store = Store()
    outcome = run(nova, store, placement=PlacementPolicy(strategy=PlacementStrategy.SPREAD))
    assert outcome.reason == "Recovered", outcome
    assert hosts_of(nova)["a"] == "h3"
    assert nova.evacuations["uuid-a"] == 2
    assert store.status.placement is not None and store.status.placement.plans == 2


def test_the_write_ahead_of_a_move_holds_its_planned_target() -> None:
    nova = world({"h2": 4, "h3": 4})
    nova.add_server("a", "h1")
    nova.crash_on = ("evacuate", 1)
    store = Store()
    try:
        run(nova, store)
    except* Crash:
        pass
    move = store.status.instances[0]
    assert move.status == MoveStatus.ONGOING
    assert move.target_host in ("h2", "h3")
    assert store.status.placement is not None
    # Resumed: Nova's migration record shows the evacuation; it is not started again.
    nova.crash_on = None
    assert run(nova, store).reason == "Recovered"
    assert nova.evacuations["uuid-a"] == 1


def test_anti_affinity_as_nova_reports_it() -> None:
    nova = world({"h2": 8, "h3": 8})
    for name in ("a", "b", "solo"):
        nova.add_server(name, "h1")
    nova.add_server("c", "h2")
    nova.server_groups_ = [
        ServerGroup("g-web", "web", "anti-affinity", ("uuid-a", "uuid-b", "uuid-c")),
        # A preference of Nova's weighers, not a rule: it constrains nothing.
        ServerGroup("g-soft", "soft", "soft-anti-affinity", ("uuid-solo", "uuid-c")),
    ]
    store = Store()
    outcome = run(nova, store)
    assert outcome.reason == "InsufficientCapacity"
    moves = {m.instance_name: m for m in store.status.instances}
    placed = [n for n in ("a", "b") if moves[n].status == MoveStatus.SUCCEEDED]
    [left] = [n for n in ("a", "b") if n not in placed]
    assert [moves[n].destination_host for n in placed] == ["h3"]
    assert moves[left].message == (
        NO_ROOM + "anti-affinity (g-web): every host with room holds a member"
    )
    assert moves["solo"].status == MoveStatus.SUCCEEDED


def test_only_a_refused_target_is_planned_again_within_the_attempt() -> None:
    nova = world({"h2": 8, "h3": 4})
    nova.add_server("a", "h1")
    nova.add_server("broken", "h1")
    nova.failing_evacuations.add("uuid-broken")  # fails on its destination: not a stale plan
    for i in range(8):
        nova.add_server(f"filler{i}", "h2")
    h2_looks_empty(nova)
    store = Store()
    assert run(nova, store).reason == "EvacuationFailed"
    assert store.status.placement is not None and store.status.placement.plans == 2
    assert hosts_of(nova)["a"] == "h3"
    # Its failure waits for the attempt's retry: not evacuated again by the second plan.
    assert nova.evacuations["uuid-broken"] == 1


def test_reserved_hosts_are_filled_in_order_and_only_those_needed_are_taken() -> None:
    nova = world({"r1": 2, "r2": 8})
    for name in ("a", "b", "c"):
        nova.add_server(name, "h1")
    store = Store()
    outcome = run(nova, store, method="reserved_host", reserved=("r1", "r2"))
    assert outcome.reason == "Recovered", outcome
    assert sorted(hosts_of(nova).values()) == ["r1", "r1", "r2"]
    assert store.status.reserved_hosts == ["r1", "r2"]
    assert all(m.target_host == m.destination_host for m in store.status.instances)
    # Two instances fit on r1: r2 is neither recorded nor enabled.
    nova, store = world({"r1": 2, "r2": 8}), Store()
    for name in ("a", "b"):
        nova.add_server(name, "h1")
    assert run(nova, store, method="reserved_host", reserved=("r1", "r2")).reason == "Recovered"
    assert store.status.reserved_hosts == ["r1"]
    assert nova.services["r2"].status == "disabled"


def test_a_reserved_host_claimed_by_another_recovery_is_passed_over() -> None:
    nova = world({"r1": 8, "r2": 8})
    nova.add_server("a", "h1")
    store = Store()
    outcome = run(nova, store, method="reserved_host", reserved=("r1", "r2"), claimable=("r2",))
    assert outcome.reason == "Recovered"
    assert hosts_of(nova) == {"a": "r2"} and store.status.reserved_hosts == ["r2"]


def test_what_no_reserved_host_holds_goes_to_the_segment_plan_with_rh_priority() -> None:
    nova = world({"r1": 1, "h2": 4, "h3": 4})
    for name in ("a", "b"):
        nova.add_server(name, "h1", metadata={"HA_Priority": "5" if name == "a" else "1"})
    store = Store()
    assert run(nova, store, method="rh_priority").reason == "Recovered"
    assert hosts_of(nova)["a"] == "r1"  # the higher priority gets the reserved host
    assert hosts_of(nova)["b"] in ("h2", "h3")
    # With reserved_host alone, the one without room is reported, never sent to overflow r1.
    nova, store = world({"r1": 1}), Store()
    for name in ("a", "b"):
        nova.add_server(name, "h1")
    outcome = run(nova, store, method="reserved_host")
    assert outcome.reason == "InsufficientCapacity"
    [left] = [m for m in store.status.instances if m.status == MoveStatus.FAILED]
    assert (
        left.message == NO_RESERVED_ROOM + "does not fit: VCPU: needs 1, at most 0 free on a host"
    )
    assert nova.evacuations[left.instance_uuid] == 0


def test_an_instance_already_in_error_whose_evacuation_fails_is_not_waited_for() -> None:
    # A refused planned target leaves the instance in ERROR on the failed host; so does a
    # failing rebuild of one that was in ERROR before. Nova's record says it ended.
    nova = world({"h2": 4, "h3": 4})
    nova.add_server("e", "h1", vm_state="error")
    nova.failing_evacuations.add("uuid-e")
    clock = [0.0]

    async def sleep(seconds: float) -> None:
        clock[0] += seconds
        await asyncio.sleep(0)

    store = Store()

    async def attempt() -> Outcome:
        recovery = HostFailure(
            event="ev",
            host="h1",
            method=RecoveryMethod.AUTO,
            policy=HostFailurePolicy(),
            nova=nova,  # type: ignore[arg-type]
            progress=Progress(store.status.model_copy(deep=True), store.persist),
            timing=Timing(poll_interval=1, clock=lambda: clock[0], sleep=sleep),
            placement=PlacementPolicy(),
            segment_hosts=["h2", "h3"],
        )
        return await recovery.run()

    outcome = asyncio.run(attempt())
    assert outcome.reason == "EvacuationFailed"
    [move] = [m for m in store.written[-1].instances]
    assert move.message is not None and move.message.startswith("evacuation failed"), move
    assert clock[0] < HostFailurePolicy().evacuation_timeout_seconds


def timed(nova: FakeNova, names: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    """Each of `names` takes 10 ms, as a call to Nova does; when each (last) began and ended."""
    spans: dict[str, tuple[float, float]] = {}
    for name in names:
        call = getattr(nova, name)

        async def slow(*args: Any, _name: str = name, _call: Any = call) -> Any:
            begun = asyncio.get_running_loop().time()
            await asyncio.sleep(0.01)
            try:
                return await _call(*args)
            finally:
                spans[_name] = (begun, asyncio.get_running_loop().time())

        setattr(nova, name, slow)
    return spans


PLAN_READS = ("compute_services", "host_resources", "server_groups")


def server_groups_down(nova: FakeNova) -> None:
    async def down() -> list[ServerGroup]:
        raise Unavailable("server groups: HTTP 503")

    nova.server_groups = down  # type: ignore[method-assign]


def test_the_plan_reads_the_other_hosts_while_the_failed_one_is_taken_out_and_listed() -> None:
    """On the real-Nova lab those reads took 70 ms of the 0.25 s before the first evacuate
    call when they waited for the failed host's listing."""
    nova = world({"h2": 4, "h3": 4})
    for i in range(2):
        nova.add_server(f"vm{i}", "h1")
    spans = timed(nova, ("force_down", "servers_on_host", *PLAN_READS))
    assert run(nova, Store()).reason == "Recovered"
    taken_out = spans["force_down"]
    for read in PLAN_READS:
        assert spans[read][0] < taken_out[1], f"{read} waited for the host to be taken out"


def test_a_plan_read_begun_early_that_fails_fails_the_attempt_as_before() -> None:
    nova = world({"h2": 4, "h3": 4})
    nova.add_server("vm", "h1")
    server_groups_down(nova)
    store = Store()
    outcome = run(nova, store)
    assert (outcome.reason, outcome.message) == (
        "NovaUnavailable",
        "Nova failed: server groups: HTTP 503",
    )
    assert nova.evacuations["uuid-vm"] == 0
    assert [m.status for m in store.status.instances] == [MoveStatus.PENDING]


def test_plan_reads_not_needed_are_dropped_with_the_attempt() -> None:
    """A host with nothing to move ends before any plan: its early reads are neither left
    running (one still under way) nor failing unseen (one that failed)."""

    async def attempt(nova: FakeNova) -> tuple[Outcome, set[asyncio.Task[Any]], list[Any]]:
        unseen: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, c: unseen.append(c))
        outcome = await recovery(nova, Store()).run()
        gc.collect()  # an exception never retrieved is reported as its task is collected
        left = asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]
        return outcome, left, unseen

    under_way = world({"h2": 4, "h3": 4})
    timed(under_way, ("host_resources",))
    outcome, left, _ = asyncio.run(attempt(under_way))
    assert (outcome.reason, left) == ("NoInstancesToEvacuate", set())

    failed = world({"h2": 4, "h3": 4})
    server_groups_down(failed)
    outcome, _, unseen = asyncio.run(attempt(failed))
    assert (outcome.reason, unseen) == ("NoInstancesToEvacuate", [])

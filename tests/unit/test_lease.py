"""The Lease: a renewal that hangs cannot keep a leader acting past its deadline, and
`holding()` says whether this replica may still act, on a clock that runs while it is frozen."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from kubernetes.client.exceptions import ApiException

from controller.drivers.lease import Lease

HOLDER = "replica-1"


@dataclass
class FakeLeases:
    """CoordinationV1Api's Lease calls on one Lease; `hang` blocks every replace until set."""

    holder: str | None = None
    version: int = 0
    hang: threading.Event | None = None
    timeouts: list[float | None] = field(default_factory=list)
    on_replace: Any = None

    def read_namespaced_lease(self, name: str, namespace: str, **kwargs: Any) -> Any:
        self.timeouts.append(kwargs.get("_request_timeout"))
        if self.holder is None:
            raise ApiException(status=404)
        return SimpleNamespace(
            spec=SimpleNamespace(holder_identity=self.holder, renew_time=str(self.version)),
            metadata=SimpleNamespace(resource_version=str(self.version)),
        )

    def create_namespaced_lease(self, namespace: str, body: Any, **kwargs: Any) -> None:
        self.timeouts.append(kwargs.get("_request_timeout"))
        self.holder = body["spec"]["holderIdentity"]

    def replace_namespaced_lease(self, name: str, namespace: str, body: Any, **kwargs: Any) -> None:
        self.timeouts.append(kwargs.get("_request_timeout"))
        if self.on_replace is not None:
            self.on_replace()
        if self.hang is not None:
            self.hang.wait()
        self.holder = body["spec"]["holderIdentity"]
        self.version += 1


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lease(api: FakeLeases, duration: float, **kwargs: Any) -> Lease:
    return Lease(api, "ns", "masakari-operator", duration, **{"holder": HOLDER, **kwargs})


def test_a_hung_renewal_cannot_keep_a_leader_acting_past_its_deadline() -> None:
    api = FakeLeases()
    lost: list[float] = []
    leader = lease(api, 0.6, on_lost=lambda: lost.append(time.monotonic()))
    assert leader.try_acquire()
    renewed = time.monotonic()
    hang = api.hang = threading.Event()  # every renewal from now on blocks: a dead connection

    async def keep() -> None:
        try:
            await asyncio.wait_for(leader.keep(), 5)
        finally:
            hang.set()

    asyncio.run(keep())
    assert lost, "the keeper never gave up"
    # Stopped at the renew deadline (0.4 s), well before the 0.6 s after which the Lease may
    # be taken; the slack is for a loaded test machine.
    assert lost[0] - renewed < 0.6
    assert not leader.holding()


def test_every_lease_call_has_a_timeout_well_under_a_third_of_the_duration() -> None:
    api = FakeLeases()
    assert lease(api, 15).try_acquire()
    assert lease(api, 15, holder="replica-2").try_acquire() is False  # held by the first
    assert api.timeouts and all(t is not None and 0 < t <= 15 / 6 for t in api.timeouts)


def test_holding_ends_at_the_renew_deadline_without_any_timer() -> None:
    clock = Clock()
    leader = lease(FakeLeases(), 15, clock=clock)
    assert not leader.holding()  # nothing renewed yet
    assert leader.try_acquire()
    assert leader.holding()
    clock.now += 9.9
    assert leader.holding()
    clock.now += 0.1  # two thirds of 15 s: a third before anyone else may take over
    assert not leader.holding()


def test_the_deadline_counts_from_when_a_renewal_started() -> None:
    clock = Clock()
    api = FakeLeases(holder=HOLDER)
    leader = lease(api, 15, clock=clock)

    def slow() -> None:
        clock.now += 6  # the write reached the API server at some point in these 6 s

    api.on_replace = slow
    started = clock.now
    assert leader.try_acquire()
    clock.now = started + 9.9
    assert leader.holding()
    clock.now = started + 10
    assert not leader.holding()


def test_a_frozen_leader_holds_nothing_when_it_wakes_up() -> None:
    clock = Clock()
    api = FakeLeases()
    leader = lease(api, 15, clock=clock)
    assert leader.try_acquire()
    clock.now += 60  # SIGSTOP: CLOCK_MONOTONIC went on counting
    api.holder, api.version = "replica-2", api.version + 1  # the standby took over meanwhile
    assert not leader.holding()
    assert leader.try_acquire() is False


def test_a_lease_taken_by_another_replica_stops_the_leader() -> None:
    api = FakeLeases()
    lost: list[bool] = []
    leader = lease(api, 0.6, on_lost=lambda: lost.append(True))
    assert leader.try_acquire()
    api.holder = "replica-2"
    asyncio.run(asyncio.wait_for(leader.keep(), 5))
    assert lost == [True]
    assert not leader.holding()


def test_release_clears_the_holder_and_no_renewal_in_flight_takes_it_back() -> None:
    api = FakeLeases()
    leader = lease(api, 15)
    assert leader.try_acquire()
    assert leader.release()
    assert api.holder is None and not leader.holding()
    assert leader.try_acquire() is False  # a renewal that was already under way
    assert api.holder is None
    assert lease(api, 15, holder="replica-2").try_acquire()  # the standby, at its next attempt


def test_release_leaves_a_lease_that_another_replica_holds() -> None:
    api = FakeLeases()
    leader = lease(api, 15)
    assert leader.try_acquire()
    api.holder = "replica-2"
    assert leader.release() is False
    assert api.holder == "replica-2"

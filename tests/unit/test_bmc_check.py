"""The BMC check (recovery.bmc_check) against in-memory BMCs: the FencingReady condition as a
pure function of what is known, checks bounded and spread, results forgotten with their hosts,
and the condition written by the host pass in its one write of a Host's status."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from controller.recovery.bmc_check import (
    FENCING_READY,
    BMCCheck,
    Readiness,
    Target,
    fencing_ready,
)
from controller.recovery.host_sync import Access, HostSync
from controller.recovery.power import (
    BMCError,
    BMCUnreachable,
    CredentialsRefused,
    PowerState,
)
from controller.resources.common import Condition, set_condition
from controller.resources.host import BMC
from controller.resources.segment import FencingMethod
from tests.unit.fake_cluster import Clock
from tests.unit.test_host_sync import NAMESPACE, Cluster, CountingNova, Hosts, Said, bound

T0 = datetime(2026, 1, 1, tzinfo=UTC)
A_BMC = BMC(address="https://10.0.0.5", credentials_secret="bmc")
REDFISH = Target(FencingMethod.REDFISH, A_BMC, 600)


def ready(conditions: list[Condition]) -> Condition | None:
    return next((c for c in conditions if c.type == FENCING_READY), None)


# -- the condition, pure ---------------------------------------------------------------------


def test_the_condition_shows_the_last_check() -> None:
    conditions: list[Condition] = []
    refused = Readiness(False, "CredentialsRefused", "redfish BMC ... refused", T0)
    fencing_ready(conditions, REDFISH, refused, T0, 3)
    found = ready(conditions)
    assert found is not None
    assert (found.status, found.reason, found.observed_generation) == ("False", refused.reason, 3)
    fencing_ready(conditions, REDFISH, Readiness(True, "BMCReady", "power On", T0), T0, 3)
    found = ready(conditions)
    assert found is not None and found.status == "True"
    assert found.last_transition_time == T0


def test_no_bmc_named_is_false_at_once() -> None:
    conditions: list[Condition] = []
    fencing_ready(conditions, Target(FencingMethod.IPMI, None, 600), None, T0, 1)
    found = ready(conditions)
    assert found is not None and (found.status, found.reason) == ("False", "CredentialsMissing")


@pytest.mark.parametrize(
    "target",
    [None, Target(FencingMethod.REDFISH, A_BMC, 0)],
    ids=["segment does not fence by BMC", "check off"],
)
def test_the_condition_goes_when_nothing_checks_it(target: Target | None) -> None:
    conditions: list[Condition] = []
    set_condition(conditions, "Ready", True, "InService", "", T0, 1)
    set_condition(conditions, FENCING_READY, True, "BMCReady", "", T0, 1)
    fencing_ready(conditions, target, None, T0, 1)
    assert [c.type for c in conditions] == ["Ready"]


def test_not_checked_yet_keeps_what_was_written() -> None:
    conditions: list[Condition] = []
    set_condition(conditions, FENCING_READY, False, "BMCUnreachable", "before restart", T0, 1)
    fencing_ready(conditions, REDFISH, None, T0, 1)
    found = ready(conditions)
    assert found is not None and found.message == "before restart"
    empty: list[Condition] = []
    fencing_ready(empty, REDFISH, None, T0, 1)
    assert empty == []


# -- the scheduling, against in-memory BMCs --------------------------------------------------


@dataclass
class Ticks:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Bmcs:
    """PowerControl in memory: each host's answer, and a gate every call waits on."""

    answers: dict[str, PowerState | BMCError] = field(default_factory=dict)
    gate: asyncio.Event | None = None
    calls: list[str] = field(default_factory=list)
    running: int = 0
    most: int = 0

    async def power_state(self, namespace: str, method: FencingMethod, bmc: BMC) -> PowerState:
        host = bmc.address
        self.calls.append(host)
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            answer = self.answers.get(host, PowerState.ON)
            if isinstance(answer, BMCError):
                raise answer
            return answer
        finally:
            self.running -= 1

    async def power_off(self, namespace: str, method: FencingMethod, bmc: BMC) -> None:
        raise AssertionError("the check never powers off")


@dataclass
class Seen:
    """The Observer: what the metric would show."""

    results: dict[str, bool] = field(default_factory=dict)
    gone: list[str] = field(default_factory=list)

    def checked(self, namespace: str, host: str, method: str, readiness: Readiness) -> None:
        self.results[host] = readiness.ready

    def forgotten(self, namespace: str, host: str) -> None:
        self.gone.append(host)


def targets(names: list[str], interval: float = 600) -> dict[str, Target]:
    return {
        n: Target(FencingMethod.REDFISH, BMC(address=n, credentials_secret="s"), interval)
        for n in names
    }


async def settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


def test_never_more_than_a_few_at_once_and_all_checked_without_another_pass() -> None:
    async def scenario() -> tuple[Bmcs, BMCCheck]:
        bmcs = Bmcs(gate=asyncio.Event())
        check = BMCCheck(concurrency=4, first_spread=0, clock=Ticks())
        names = [f"h{i}" for i in range(50)]
        check.schedule(NAMESPACE, targets(names), bmcs)
        await settle()
        assert bmcs.running == 4
        assert bmcs.gate is not None
        bmcs.gate.set()
        await settle()
        assert all(check.readiness(NAMESPACE, n) is not None for n in names)
        return bmcs, check

    bmcs, check = asyncio.run(scenario())
    assert bmcs.most == 4
    assert len(bmcs.calls) == 50  # each once: the next is due an interval later
    assert check.running == 0


def test_first_checks_are_spread_over_the_first_minute() -> None:
    async def scenario() -> list[int]:
        ticks = Ticks()
        bmcs = Bmcs()
        check = BMCCheck(concurrency=1000, first_spread=60, clock=ticks)
        names = [f"h{i}" for i in range(300)]
        started = []
        for second in range(0, 61, 10):
            ticks.now = second
            check.schedule(NAMESPACE, targets(names), bmcs)
            await settle()
            started.append(len(bmcs.calls))
        return started

    started = asyncio.run(scenario())
    # Every 10 s about a sixth of the hosts comes due; all have been checked after 60 s.
    assert started[0] < 30
    assert all(30 <= b - a <= 70 for a, b in itertools.pairwise(started))
    assert started[-1] == 300


def test_results_say_why_and_are_forgotten_with_their_hosts() -> None:
    seen = Seen()

    async def scenario() -> BMCCheck:
        bmcs = Bmcs(
            answers={
                "refused": CredentialsRefused("refused the credentials (HTTP 401)"),
                "silent": BMCUnreachable("no answer within 20s"),
            }
        )
        check = BMCCheck(seen, first_spread=0, clock=Ticks())
        check.schedule(NAMESPACE, targets(["ok", "refused", "silent"]), bmcs)
        await settle()
        reasons = [check.readiness(NAMESPACE, n) for n in ("ok", "refused", "silent")]
        assert [r.reason if r else None for r in reasons] == [
            "BMCReady",
            "CredentialsRefused",
            "BMCUnreachable",
        ]
        check.schedule(NAMESPACE, targets(["ok"]), bmcs)  # the other two Hosts are gone
        return check

    check = asyncio.run(scenario())
    assert seen.results == {"ok": True, "refused": False, "silent": False}
    assert sorted(seen.gone) == ["refused", "silent"]
    assert check.readiness(NAMESPACE, "refused") is None


def test_a_check_that_hangs_counts_as_unreachable() -> None:
    async def scenario() -> Readiness | None:
        bmcs = Bmcs(gate=asyncio.Event())  # never set
        check = BMCCheck(first_spread=0, timeout=0.05, clock=Ticks())
        check.schedule(NAMESPACE, targets(["hung"]), bmcs)
        await asyncio.sleep(0.2)
        return check.readiness(NAMESPACE, "hung")

    readiness = asyncio.run(scenario())
    assert readiness is not None and readiness.reason == "BMCUnreachable"


def test_a_changed_bmc_is_checked_again_at_once() -> None:
    async def scenario() -> tuple[Bmcs, BMCCheck]:
        ticks = Ticks()
        bmcs = Bmcs(answers={"old": CredentialsRefused("refused")})
        check = BMCCheck(first_spread=0, clock=ticks)
        old = Target(FencingMethod.REDFISH, BMC(address="old", credentials_secret="s"), 600)
        check.schedule(NAMESPACE, {"h": old}, bmcs)
        await settle()
        ticks.now = 5  # long before the interval
        new = Target(FencingMethod.REDFISH, BMC(address="new", credentials_secret="s"), 600)
        check.schedule(NAMESPACE, {"h": new}, bmcs)
        await settle()
        return bmcs, check

    bmcs, check = asyncio.run(scenario())
    assert bmcs.calls == ["old", "new"]
    readiness = check.readiness(NAMESPACE, "h")
    assert readiness is not None and readiness.reason == "BMCReady"


def test_nothing_is_checked_again_before_the_interval() -> None:
    async def scenario() -> list[str]:
        ticks = Ticks()
        bmcs = Bmcs()
        check = BMCCheck(first_spread=0, clock=ticks)
        for second in (0, 30, 599):
            ticks.now = second
            check.schedule(NAMESPACE, targets(["h"], 600), bmcs)
            await settle()
        ticks.now = 601
        check.schedule(NAMESPACE, targets(["h"], 600), bmcs)
        await settle()
        return bmcs.calls

    assert asyncio.run(scenario()) == ["h", "h"]


# -- in the host pass ------------------------------------------------------------------------


def test_the_host_pass_writes_fencing_ready_with_the_rest_of_status() -> None:
    clock = Clock()
    store = Hosts(clock, NAMESPACE)
    store.add_segment("bmc-seg", fencing={"method": "redfish"})
    store.add_segment("pcmk-seg")
    for name in ("fenced", "refused"):
        store.add_host(name, segment="bmc-seg", bmc={"address": name, "credentialsSecret": "s"})
    store.add_host("unnamed", segment="bmc-seg")
    store.add_host("pacemaker", segment="pcmk-seg")
    names = list(store.hosts_)
    bmcs = Bmcs(answers={"refused": CredentialsRefused("refused the credentials (HTTP 401)")})
    sync = HostSync(store, Said(), clock=clock, bmc_check=BMCCheck(first_spread=0))
    access = Access(CountingNova(names), Cluster(names, clock), bound, bmcs)

    async def passes() -> None:
        bmcs.gate = asyncio.Event()
        await sync.sync_namespace(NAMESPACE, access)  # the pass does not wait for the checks
        assert ready(store.hosts_["fenced"].status.conditions) is None
        bmcs.gate.set()
        await settle()
        store.writes.clear()
        await sync.sync_namespace(NAMESPACE, access)

    asyncio.run(passes())
    shown = {}
    for name in names:
        found = ready(store.hosts_[name].status.conditions)
        shown[name] = (found.status, found.reason) if found else None
    assert shown == {
        "fenced": ("True", "BMCReady"),
        "refused": ("False", "CredentialsRefused"),
        "unnamed": ("False", "CredentialsMissing"),
        "pacemaker": None,
    }
    # One write per host whose condition changed, the other conditions kept beside it.
    assert sorted(store.writes) == ["fenced", "refused"]
    assert {c.type for c in store.hosts_["fenced"].status.conditions} >= {"Ready", FENCING_READY}
    assert sorted(bmcs.calls) == ["fenced", "refused"]


def test_an_unbound_namespace_has_its_bmcs_forgotten() -> None:
    clock = Clock()
    store = Hosts(clock, NAMESPACE)
    store.add_segment("bmc-seg", fencing={"method": "ipmi"})
    store.add_host("h", segment="bmc-seg", bmc={"address": "h", "credentialsSecret": "s"})
    seen = Seen()
    sync = HostSync(store, Said(), clock=clock, bmc_check=BMCCheck(seen, first_spread=0))
    access = Access(CountingNova(["h"]), Cluster(["h"], clock), bound, Bmcs())

    async def scenario() -> None:
        await sync.sync_namespace(NAMESPACE, access)
        await settle()
        assert sync.bmc_check.readiness(NAMESPACE, "h") is not None
        await sync.unbound(NAMESPACE, bound)

    asyncio.run(scenario())
    assert sync.bmc_check.readiness(NAMESPACE, "h") is None
    assert seen.gone == ["h"]

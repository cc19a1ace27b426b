"""The namespaces one shard of a fleet serves: its selector and the claim rules of
controller.recovery.shards, table by table; then the leader's check (controller.handlers.shard)
on an in-memory API server that has the compare-and-set of the real one."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from controller import run
from controller.drivers.lease import Lease
from controller.drivers.namespace_claims import LeaseRecord, NamespaceClaims
from controller.handlers.shard import Shard
from controller.recovery.shards import (
    LeaseAges,
    NamespaceState,
    SelectorError,
    foreign_claims,
    lease_of,
    other_shards,
    parse_selector,
    plan,
)

ME = "masakari-system/shard-eu"
OTHER = "masakari-system/shard-us"


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("region=eu-1", "region=eu-1"),
        ("region==eu-1", "region=eu-1"),
        (" region = eu-1 , tier!=test ", "region=eu-1,tier!=test"),
        ("masakari.dev/region in (eu-1, eu-2),cloud", "masakari.dev/region in (eu-1,eu-2),cloud"),
        ("region notin (us),!retired", "region notin (us),!retired"),
        ("! retired", "!retired"),
        ("region=", "region="),
    ],
)
def test_a_selector_is_read_and_written_back_in_the_api_servers_form(
    text: str, canonical: str
) -> None:
    assert str(parse_selector(text)) == canonical


@pytest.mark.parametrize(
    "text",
    [
        "",
        " , ",
        "region=eu-1,",
        "region in (eu-1",
        "region in eu-1)",
        "region=eu 1",
        "-region=eu",
        "region=-eu",
        "Bad_Prefix/region=eu",
        "region=" + "x" * 64,
        "region in ((eu))",
        "region=a=b",
    ],
)
def test_a_selector_the_api_server_would_refuse_is_refused_before_start(text: str) -> None:
    with pytest.raises(SelectorError):
        parse_selector(text)


def state(name: str, selected: bool, claim: str | None) -> NamespaceState:
    return NamespaceState(name, selected, claim, resource_version="1")


def test_each_rule_of_the_plan() -> None:
    namespaces = [
        state("mine", True, ME),  # 1: served
        state("free", True, None),  # 2: claimed, served
        state("stale", True, OTHER + "-gone"),  # 3: taken over, served
        state("taken", True, OTHER),  # 4: refused
        state("left", False, ME),  # 5: released
        state("theirs", False, OTHER),  # not ours, not selected: untouched
        state("elsewhere", False, None),
    ]
    decision = plan(namespaces, ME, stale=frozenset({OTHER + "-gone"}))
    assert decision.serve == {"mine", "free", "stale"}
    assert decision.claim == {"free", "stale"}
    assert decision.release == {"left"}
    assert decision.refused == {"taken": OTHER}


def test_a_claim_is_never_taken_while_its_shard_is_not_known_stale() -> None:
    """At start nothing is known stale: another shard's claim always wins then."""
    decision = plan([state("cloud-a", True, OTHER)], ME, stale=frozenset())
    assert decision.serve == set() and decision.claim == set()
    assert decision.refused == {"cloud-a": OTHER}


def test_two_shards_that_select_one_namespace_never_both_serve_it() -> None:
    """Whichever claim is written first, the plans of the two shards never both serve it."""
    for owner in (None, ME, OTHER):
        namespaces = [state("shared", True, owner)]
        ours = plan(namespaces, ME, frozenset()).serve
        theirs = plan(namespaces, OTHER, frozenset()).serve
        if owner is not None:
            assert not (ours & theirs)
        else:  # both plan to claim it: the compare-and-set lets one write succeed
            assert plan(namespaces, ME, frozenset()).claim == {"shared"}


def test_the_other_shards_are_those_claiming_our_selection() -> None:
    namespaces = [
        state("a", True, OTHER),
        state("b", True, ME),
        state("c", False, "x/y"),
        state("d", True, None),
    ]
    assert other_shards(namespaces, ME) == {OTHER}


def test_an_operator_that_claims_nothing_sees_the_claims_on_what_it_would_serve() -> None:
    namespaces = [state("a", False, OTHER), state("b", False, None), state("c", False, ME)]
    assert foreign_claims(namespaces, frozenset({"a", "b"})) == {"a": OTHER}
    assert foreign_claims(namespaces, None) == {"a": OTHER, "c": ME}  # -A: any claim at all


@pytest.mark.parametrize(
    ("shard", "lease"),
    [
        ("masakari-system/shard-eu", ("masakari-system", "shard-eu")),
        ("shard-eu", None),
        ("a/b/c", None),
        ("/b", None),
    ],
)
def test_a_shard_names_its_lease(shard: str, lease: tuple[str, str] | None) -> None:
    assert lease_of(shard) == lease


def test_a_shard_is_stale_once_its_lease_has_not_changed_for_a_duration_on_our_clock() -> None:
    ages = LeaseAges()
    record = ("pod-1", "2026-12-03T07:00:00Z", "41")
    assert not ages.stale(OTHER, record, 15, now=100)  # first sight: the clock starts
    assert not ages.stale(OTHER, record, 15, now=114.9)
    renewed = ("pod-1", "2026-12-03T07:00:05Z", "42")
    assert not ages.stale(OTHER, renewed, 15, now=115)  # a renewal restarts it
    assert not ages.stale(OTHER, renewed, 15, now=129.9)
    assert ages.stale(OTHER, renewed, 15, now=130)
    # No Lease at all (deleted, or a shard name that names none) waits as long.
    assert not ages.stale("x/gone", None, 15, now=0)
    assert ages.stale("x/gone", None, 15, now=15)


class FakeClaims:
    """The API server's side of claims: annotations per namespace, a version each, and the
    compare-and-set a patch with a resourceVersion gets."""

    def __init__(self, labels: dict[str, bool], claims: dict[str, str | None]) -> None:
        self.labels, self.claims = labels, claims
        self.versions = dict.fromkeys(claims, 1)
        self.before_write: dict[str, str] = {}  # namespace: a shard that claims it first
        self.released: list[str] = []

    def read(self, selector: str | None) -> list[NamespaceState]:
        return [
            NamespaceState(name, self.labels.get(name, False), owner, str(self.versions[name]))
            for name, owner in self.claims.items()
        ]

    def claim(self, namespace: NamespaceState, shard: str) -> bool:
        if namespace.name in self.before_write:
            self.claims[namespace.name] = self.before_write.pop(namespace.name)
            self.versions[namespace.name] += 1
        if str(self.versions[namespace.name]) != namespace.resource_version:
            return False
        self.claims[namespace.name] = shard
        self.versions[namespace.name] += 1
        return True

    def release(self, name: str, shard: str) -> bool:
        if self.claims[name] != shard:
            return False
        self.claims[name] = None
        self.released.append(name)
        return True

    def warn(self, namespace: str, reason: str, message: str) -> None:
        pass

    def lease(self, shard: str) -> Any:
        return LeaseRecord(("holder", "renewed", "1"), 15)


class HeldLease:
    duration = 15.0
    retry_period = 2.5

    def holding(self) -> bool:
        return True

    async def release_async(self) -> bool:
        return True


def shard(serving: set[str]) -> Shard:
    return Shard("region=eu", ME, frozenset(serving))


async def checked(fleet: FakeClaims, serving: set[str]) -> tuple[Shard, bool]:
    one = shard(serving)
    one.claims, one.lease = cast(NamespaceClaims, fleet), cast(Lease, HeldLease())
    return one, await one.check()


def test_a_claim_lost_to_another_shard_is_not_served_and_restarts_the_shard() -> None:
    """Both shards saw `shared` unclaimed at start; the other wrote first."""
    fleet = FakeClaims({"mine": True, "shared": True}, {"mine": ME, "shared": None})
    fleet.before_write["shared"] = OTHER
    one, serving_on = asyncio.run(checked(fleet, {"mine", "shared"}))
    assert not serving_on and one.restarting and one.stop.is_set()
    assert fleet.claims == {"mine": ME, "shared": OTHER}


def test_a_namespace_deselected_while_served_is_released_only_once_handlers_stopped() -> None:
    fleet = FakeClaims({"kept": True}, {"kept": ME, "left": ME, "old": ME})
    one, serving_on = asyncio.run(checked(fleet, {"kept", "left"}))
    assert not serving_on
    # `old` was not served by this process: released at once. `left` was: not yet.
    assert fleet.released == ["old"]
    asyncio.run(one.end())
    assert fleet.released == ["old", "left"]


def test_an_unchanged_selection_keeps_serving_and_reclaims_a_removed_claim() -> None:
    fleet = FakeClaims({"a": True, "b": True}, {"a": ME, "b": None})  # b's claim removed by hand
    one, serving_on = asyncio.run(checked(fleet, {"a", "b"}))
    assert serving_on and not one.restarting
    assert fleet.claims == {"a": ME, "b": ME}


class Unreachable:
    """The start's read of the namespaces, failing as told, then answering."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.reads = 0

    def read(self, selector: str | None) -> list[NamespaceState]:
        self.reads += 1
        if self.failures:
            raise self.failures.pop(0)
        return [NamespaceState("cloud-a", selector is not None, None, "1")]


def test_the_start_waits_for_an_api_server_still_starting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import ProtocolError

    monkeypatch.setattr("controller.run.time.sleep", lambda seconds: None)
    claims = Unreachable(ProtocolError("connection refused"), ApiException(status=503))
    assert [n.name for n in run._read_at_start(cast(Any, claims), "region=eu")] == ["cloud-a"]
    assert claims.reads == 3
    never = Unreachable(*[ApiException(status=503)] * run.START_READS)
    with pytest.raises(SystemExit, match="cannot list namespaces"):
        run._read_at_start(cast(Any, never), "region=eu")
    assert never.reads == run.START_READS


def test_without_the_right_to_list_namespaces_only_a_shard_refuses_to_start() -> None:
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(SystemExit, match="forbidden"):
        run._read_at_start(cast(Any, Unreachable(ApiException(status=403))), "region=eu")
    # Given its namespaces, the operator may run on a namespaced Role: it goes on, saying so.
    assert run._read_at_start(cast(Any, Unreachable(ApiException(status=403))), None) == []

"""Shards: which namespaces one operator of a fleet serves. Pure: no I/O.

A provider with many clouds runs one operator per set of cloud namespaces (a shard), each
choosing its namespaces by a label selector. A shard is named by its Lease,
`<lease namespace>/<lease name>`: its replicas elect their leader on it, and the rest of the
fleet judges by it whether the shard still runs. Its leader claims every namespace it serves with
the annotation `masakari.dev/shard: <shard>`, written compare-and-set (the Namespace's
resourceVersion), so two shards never serve one namespace. `plan` applies, to each namespace:

1. selected and claimed by this shard: served;
2. selected and claimed by nobody: claimed, then served;
3. selected and claimed by a shard that no longer runs (its Lease unchanged for a whole lease
   duration on our own clock, `LeaseAges`): taken over, then served;
4. selected and claimed by a running shard: refused, named in an error, not served;
5. claimed by this shard but no longer selected: the claim is released (once its handlers have
   stopped, when the namespace was being served).

A claim outlives restarts and rolling updates of its shard on purpose: the namespace stays with
the shard that had it, even when another shard's selector overlaps.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Literal

ANNOTATION = "masakari.dev/shard"

Operator = Literal["=", "!=", "in", "notin", "exists", "!"]

# Kubernetes' label syntax (apimachinery validation): an optional DNS-subdomain prefix, a name
# of at most 63 characters; values as names, or empty.
_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_NAME}$")
_VALUE = re.compile(rf"^({_NAME})?$")
_EQUALITY = re.compile(r"^(?P<key>[^!=\s]+)\s*(?P<op>==|=|!=)\s*(?P<value>\S*)$")
_SET = re.compile(r"^(?P<key>\S+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_EXISTS = re.compile(r"^(?P<op>!?)\s*(?P<key>[^\s!=()]+)$")


class SelectorError(ValueError):
    """A label selector the API server would refuse, said before the operator starts."""


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.operator == "exists":
            return self.key
        if self.operator == "!":
            return f"!{self.key}"
        if self.operator in ("in", "notin"):
            return f"{self.key} {self.operator} ({','.join(self.values)})"
        return f"{self.key}{self.operator}{self.values[0]}"


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Requirement, ...]

    def __str__(self) -> str:
        """The form the API server's `labelSelector` takes."""
        return ",".join(str(requirement) for requirement in self.requirements)


def parse_selector(text: str) -> Selector:
    """A Kubernetes label selector: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`,
    `k`, `!k`, joined by commas. Empty is refused: it would select every namespace, which is
    the shape of one operator (`--all-namespaces`), not of a fleet."""
    terms = _split(text)
    if not any(terms):
        raise SelectorError("an empty selector selects every namespace; use --all-namespaces")
    return Selector(tuple(_requirement(term) for term in terms))


def _split(text: str) -> list[str]:
    """Commas separate requirements, except inside a set's parentheses."""
    terms, depth, current = [], 0, ""
    for character in text:
        depth += {"(": 1, ")": -1}.get(character, 0)
        if depth not in (0, 1):
            raise SelectorError(f"unbalanced parentheses in {text!r}")
        if character == "," and depth == 0:
            terms.append(current.strip())
            current = ""
        else:
            current += character
    if depth:
        raise SelectorError(f"unbalanced parentheses in {text!r}")
    return [*terms, current.strip()]


def _requirement(term: str) -> Requirement:
    requirement: Requirement
    if match := _SET.match(term):
        values = tuple(value.strip() for value in match["values"].split(","))
        op: Operator = "in" if match["op"] == "in" else "notin"
        requirement = Requirement(match["key"], op, values)
    elif match := _EQUALITY.match(term):
        op = "!=" if match["op"] == "!=" else "="
        requirement = Requirement(match["key"], op, (match["value"],))
    elif match := _EXISTS.match(term):
        requirement = Requirement(match["key"], "!" if match["op"] else "exists")
    else:
        raise SelectorError(f"not a label requirement: {term!r}")
    if not _KEY.match(requirement.key):
        raise SelectorError(f"not a label key: {requirement.key!r}")
    for value in requirement.values:
        if not _VALUE.match(value):
            raise SelectorError(f"not a label value: {value!r} (in {term!r})")
    return requirement


@dataclass(frozen=True)
class NamespaceState:
    name: str
    selected: bool  # matched by this shard's selector
    claim: str | None  # the shard named by its annotation, if any
    resource_version: str = ""  # what a claim or release is written against


@dataclass(frozen=True)
class Plan:
    serve: frozenset[str]  # once `claim` is written
    claim: frozenset[str]  # unclaimed, or claimed by a shard that no longer runs
    release: frozenset[str]  # ours, no longer selected
    refused: dict[str, str] = field(default_factory=dict)  # namespace: the running shard's name


def plan(namespaces: Iterable[NamespaceState], shard: str, stale: frozenset[str]) -> Plan:
    """The rules of the module docstring, for `shard`, given the other shards known stale."""
    serve, claim, release, refused = set(), set(), set(), {}
    for namespace in namespaces:
        owner = namespace.claim
        if not namespace.selected:
            if owner == shard:
                release.add(namespace.name)
        elif owner == shard:
            serve.add(namespace.name)
        elif owner is None or owner in stale:
            claim.add(namespace.name)
            serve.add(namespace.name)
        else:
            refused[namespace.name] = owner
    return Plan(frozenset(serve), frozenset(claim), frozenset(release), refused)


def foreign_claims(
    namespaces: Iterable[NamespaceState], served: frozenset[str] | None
) -> dict[str, str]:
    """For an operator that claims nothing (`--namespace` lists, `--all-namespaces`, when
    `served` is None): the claims of shards on namespaces it would serve. It must not start
    while there is one."""
    return {
        namespace.name: namespace.claim
        for namespace in namespaces
        if namespace.claim and (served is None or namespace.name in served)
    }


def other_shards(namespaces: Iterable[NamespaceState], shard: str) -> set[str]:
    """The shards whose Leases tell whether their claims on our selection still stand."""
    return {
        namespace.claim
        for namespace in namespaces
        if namespace.selected and namespace.claim and namespace.claim != shard
    }


def lease_of(shard: str) -> tuple[str, str] | None:
    """(namespace, name) of a shard's Lease; None when the annotation names none."""
    namespace, _, name = shard.partition("/")
    return (namespace, name) if namespace and name and "/" not in name else None


@dataclass
class LeaseAges:
    """When each other shard's Lease record (holder, renew time, version; None when there is
    no Lease) last changed, on our own clock. A shard is stale once its record has not changed
    for a whole lease duration, the rule controller.drivers.lease uses to take a Lease over:
    no trust in remote clocks, and a released Lease too must wait, since that shard's next
    replica may be starting."""

    _seen: dict[str, tuple[Hashable, float]] = field(default_factory=dict)

    def stale(self, shard: str, record: Hashable, duration: float, now: float) -> bool:
        seen = self._seen.get(shard)
        if seen is None or seen[0] != record:
            self._seen[shard] = (record, now)
            return False
        return now - seen[1] >= duration

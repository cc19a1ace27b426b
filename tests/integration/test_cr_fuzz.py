"""Hostile input (issue 16): custom resources fuzzed with hypothesis against the real API
server. FailoverSegments, Hosts and FailureEvents are drawn from their pydantic models' JSON
schemas, valid ones and ones with a flaw (a wrong type, a number out of range, an unknown enum
value, a huge string, a pattern broken, a required field left out, an unknown field), and
created (dry run) on kube-apiserver with kubectl's strict field validation. The oracle is the
model itself (strict JSON validation, what the operator parses objects with): the API server
must refuse what the model refuses and accept what it accepts. A mismatch is a CRD that lets
through what the operator cannot read, or refuses what the documented model allows.

Then a sample of what was accepted is created for real in a namespace an operator serves (on
the simulator): the operator must stay up, log no unhandled exception, and give every
FailureEvent a phase with a reason.

Prints examples tried, accepted, refused, mismatches and crashes (goal 0 for both).
`make test` runs a short sample (MASAKARI_FUZZ_CR_EXAMPLES per kind, default 60); `make fuzz`
runs it long.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel, ValidationError

from controller.resources.common import GROUP, VERSION
from controller.resources.failure_event import FailureEvent
from controller.resources.host import Host
from controller.resources.segment import FailoverSegment
from tests.conftest import Cluster
from tests.harness.operator import running_operator
from tests.harness.sim import running_sim
from tests.integration.operator_env import host as host_manifest
from tests.integration.operator_env import servers, topology, wait_for

EXAMPLES = int(os.environ.get("MASAKARI_FUZZ_CR_EXAMPLES", "60"))
SAMPLE = int(os.environ.get("MASAKARI_FUZZ_CR_SAMPLE", "10"))  # per kind, run by the operator
pytestmark = [pytest.mark.integration, pytest.mark.timeout(240 + 2 * EXAMPLES)]

# Characters JSON and the API server carry: no lone surrogates (not UTF-8).
TEXT = st.characters(codec="utf-8")
HUGE = 100_000  # characters of a huge string: far past every maxLength, under the 3 MiB body
INT64 = 2**63


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    model: type[BaseModel]


KINDS = [
    Kind("FailoverSegment", "failoversegments", FailoverSegment),
    Kind("Host", "hosts", Host),
    Kind("FailureEvent", "failureevents", FailureEvent),
]


class Schema:
    """Strategies for the values a pydantic JSON schema allows, and for flawed ones."""

    def __init__(self, model: type[BaseModel]) -> None:
        spec = model.model_json_schema(by_alias=True)
        self.defs: dict[str, Any] = spec.get("$defs", {})
        self.root = self.resolve(spec["properties"]["spec"])

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target = self.defs[node["$ref"].rsplit("/", 1)[-1]]
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        if "anyOf" in node:  # Optional[X]: X (an unset field is left out instead)
            options = [o for o in node["anyOf"] if o.get("type") != "null"]
            if len(options) == 1:
                rest = {k: v for k, v in node.items() if k != "anyOf"}
                node = {**self.resolve(options[0]), **rest}
        return node

    # -- valid ----------------------------------------------------------------------------

    def valid(self, node: dict[str, Any]) -> st.SearchStrategy[Any]:
        node = self.resolve(node)
        if "anyOf" in node:
            return st.one_of(*(self.valid(o) for o in node["anyOf"] if o.get("type") != "null"))
        if "enum" in node:
            return st.sampled_from(node["enum"])
        if "const" in node:
            return st.just(node["const"])
        kind = node.get("type")
        if kind == "object":
            return self._object(node)
        if kind == "array":
            items = self.valid(node.get("items", {}))
            low = node.get("minItems", 0)
            return st.lists(items, min_size=low, max_size=min(node.get("maxItems", 3), low + 3))
        if kind == "string":
            return self._string(node)
        if kind == "integer":
            low = node.get("minimum", node.get("exclusiveMinimum", -INT64) + 1)
            high = node.get("maximum", node.get("exclusiveMaximum", INT64) - 1)
            return st.integers(low, high)
        if kind == "number":
            return st.floats(
                node.get("minimum"), node.get("maximum"), allow_nan=False, allow_infinity=False
            )
        if kind == "boolean":
            return st.booleans()
        return st.from_type(object).filter(lambda v: isinstance(v, str | int | bool))

    def _string(self, node: dict[str, Any]) -> st.SearchStrategy[str]:
        low, high = node.get("minLength", 0), node.get("maxLength", 64)
        if node.get("format") == "date-time":
            moments = st.datetimes(
                datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)
            )
            return moments.map(lambda d: d.isoformat().replace("+00:00", "Z"))
        if "pattern" in node:
            drawn = st.from_regex(node["pattern"], fullmatch=True, alphabet=TEXT)
            return drawn.filter(lambda s: low <= len(s) <= high)
        short = st.text(TEXT, min_size=low, max_size=min(high, low + 24))
        return (
            st.one_of(short, st.text(TEXT, min_size=high, max_size=high)) if high < 5000 else short
        )

    def _object(self, node: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
        properties: dict[str, Any] = node.get("properties", {})
        if not properties and isinstance(node.get("additionalProperties"), dict):
            keys = st.text(TEXT, min_size=1, max_size=16)
            return st.dictionaries(keys, self.valid(node["additionalProperties"]), max_size=3)
        required = set(node.get("required", []))
        fields = {
            name: self.valid(value) if name in required else st.none() | self.valid(value)
            for name, value in properties.items()
        }
        return st.fixed_dictionaries(fields).map(
            lambda d: {k: v for k, v in d.items() if v is not None}
        )

    # -- flawed ---------------------------------------------------------------------------

    def flawed(self, node: dict[str, Any]) -> st.SearchStrategy[Any]:
        """A value of `node` with one flaw somewhere (the model may still find it valid)."""
        node = self.resolve(node)
        if node.get("type") == "object" and node.get("properties"):
            return self._flawed_object(node)
        if node.get("type") == "array" and "items" in node:
            low, high = node.get("minItems", 0), node.get("maxItems")
            options = [
                st.tuples(
                    st.lists(self.valid(node["items"]), max_size=2), self.flawed(node["items"])
                ).map(lambda pair: [*pair[0], pair[1]])
            ]
            if high is not None and high < 200:
                options.append(
                    st.lists(self.valid(node["items"]), min_size=high + 1, max_size=high + 1)
                )
            if low:
                options.append(st.just([]))
            return st.one_of(*options, self._wrong_type(node))
        return st.one_of(self._wrong_type(node), *self._out_of_range(node))

    def _flawed_object(self, node: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
        properties: dict[str, Any] = node["properties"]
        required = list(node.get("required", []))

        @st.composite
        def one_flaw(draw: st.DrawFn) -> dict[str, Any]:
            body: dict[str, Any] = draw(self._object(node))
            how = draw(st.sampled_from(["field", "field", "field", "missing", "unknown"]))
            if how == "missing" and required:
                body.pop(draw(st.sampled_from(required)), None)
            elif how == "unknown":
                body[draw(st.sampled_from(["bogus", "Spec", "extra_field"]))] = draw(
                    st.sampled_from([1, "x", True])
                )
            else:
                name = draw(st.sampled_from(sorted(properties)))
                body[name] = draw(self.flawed(properties[name]))
            return body

        return st.one_of(one_flaw(), self._wrong_type(node))

    @staticmethod
    def _wrong_type(node: dict[str, Any]) -> st.SearchStrategy[Any]:
        kind = node.get("type")
        others: list[Any] = [
            v
            for t, v in [
                ("string", "text"),
                ("integer", 7),
                ("number", 1.5),
                ("boolean", True),
                ("array", ["x"]),
                ("object", {"x": 1}),
            ]
            if t != kind and not (kind == "number" and t == "integer")
        ]
        if kind == "string":
            others += [12, 0.5]
        if kind == "integer":
            others += ["12", 1.5, INT64, -INT64 - 1]
        if kind == "boolean":
            others += ["true", "yes", 1]
        return st.sampled_from(others)

    def _out_of_range(self, node: dict[str, Any]) -> list[st.SearchStrategy[Any]]:
        options: list[st.SearchStrategy[Any]] = []
        if "enum" in node:
            options.append(st.sampled_from(["Bogus", "", str(node["enum"][0]).lower() + "x"]))
        if "minimum" in node:
            options.append(st.just(node["minimum"] - 1))
        if "maximum" in node:
            options.append(st.just(node["maximum"] + 1))
        if node.get("type") == "string" and "enum" not in node:
            high = node.get("maxLength")
            options.append(st.just("x" * (high + 1 if high else HUGE)))
            options.append(st.just("é" * HUGE))
            if node.get("minLength"):
                options.append(st.just(""))
            if "pattern" in node or node.get("format") == "date-time":
                broken = ["has space", "UPPER_case!", "a\u00a0b", "-lead", "trail.", "x\ty"]
                options.append(st.sampled_from(broken))
        return options


# What each type of FailureEvent's payload has (its CEL rules): drawn at random, the schema's
# payloads seldom fit their type, and the operator would see no event at all.
PAYLOAD_KEYS = {
    "COMPUTE_HOST": (("STARTED", "STOPPED"), {"host_status", "cluster_status"}, set()),
    "PROCESS": (("STARTED", "STOPPED"), set(), {"process_name"}),
    "VM": ((), set(), {"instance_uuid", "vir_domain_event"}),
}


def well_formed_events(schema: Schema) -> st.SearchStrategy[dict[str, Any]]:
    payload = schema.resolve(schema.root["properties"]["payload"])["properties"]

    @st.composite
    def draw_one(draw: st.DrawFn) -> dict[str, Any]:
        spec: dict[str, Any] = draw(schema.valid(schema.root))
        events, optional, required = PAYLOAD_KEYS[spec["type"]]
        body = {
            "event": draw(st.sampled_from(events) if events else schema.valid(payload["event"]))
        }
        for key in sorted(optional | required):
            if key in required or draw(st.booleans()):
                body[key] = draw(schema.valid(payload[key]))
        spec["payload"] = body
        return spec

    return draw_one()


@dataclass
class Tally:
    tried: int = 0
    accepted: int = 0
    refused: int = 0
    mismatches: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    kept: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    flaws: Counter[str] = field(default_factory=Counter)


def model_accepts(kind: Kind, spec: Any) -> str | None:
    """None when the model takes the object as the operator would read it; else why not."""
    try:
        kind.model.model_validate_json(json.dumps({"spec": spec}), strict=True)
    except ValidationError as error:
        first = error.errors()[0]
        return f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
    return None


@pytest.fixture(scope="module")
def objects(cluster: Cluster) -> Iterator[kubernetes.client.CustomObjectsApi]:
    client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        yield kubernetes.client.CustomObjectsApi(client)
    finally:
        client.close()


@pytest.fixture(scope="module")
def tally() -> Iterator[Tally]:
    found = Tally()
    yield found
    print(
        f"\nCR-FUZZ | examples {found.tried} | accepted {found.accepted} "
        f"| refused {found.refused} | mismatches {len(found.mismatches)} "
        f"| API server errors {len(found.server_errors)} "
        f"| drawn valid {found.flaws['valid']}, with a flaw {found.flaws['flawed']} |",
        flush=True,
    )


def server_accepts(
    objects: kubernetes.client.CustomObjectsApi, kind: Kind, namespace: str, body: dict[str, Any]
) -> tuple[bool, str]:
    try:
        objects.create_namespaced_custom_object(
            GROUP, VERSION, namespace, kind.plural, body,
            dry_run="All", field_validation="Strict", _request_timeout=30,
        )  # fmt: skip
    except ApiException as error:
        message = json.loads(error.body or "{}").get("message", "") if error.body else ""
        return False, f"{error.status}: {message[:300]}"
    return True, ""


@pytest.mark.parametrize("kind", KINDS, ids=[k.kind for k in KINDS])
def test_the_api_server_agrees_with_the_model(
    kind: Kind,
    cluster: Cluster,
    namespace: str,
    objects: kubernetes.client.CustomObjectsApi,
    tally: Tally,
) -> None:
    schema = Schema(kind.model)
    counter = iter(range(10**9))

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        st.one_of(
            schema.valid(schema.root).map(lambda s: ("valid", s)),
            schema.flawed(schema.root).map(lambda s: ("flawed", s)),
            *(
                [well_formed_events(schema).map(lambda s: ("valid", s))]
                if kind.kind == "FailureEvent"
                else []
            ),
        )
    )
    def agree(drawn: tuple[str, Any]) -> None:
        how, spec = drawn
        name = f"fz-{kind.kind.lower()}-{next(counter)}"
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind.kind, "metadata": {"name": name}}
        body["spec"] = spec
        refusal = model_accepts(kind, spec)
        accepted, answer = server_accepts(objects, kind, namespace, body)
        tally.tried += 1
        tally.flaws[how] += 1
        if answer.startswith("5"):
            tally.server_errors.append(f"{kind.kind}: {answer}")
        if accepted:
            tally.accepted += 1
            tally.kept.setdefault(kind.kind, []).append(spec)
        else:
            tally.refused += 1
        if accepted == (refusal is None):
            return
        text = json.dumps(spec)
        text = text if len(text) < 600 else text[:600] + "..."
        if accepted:
            mismatch = (
                f"{kind.kind}: accepted by the API server, refused by the model ({refusal}): {text}"
            )
        else:
            mismatch = (
                f"{kind.kind}: refused by the API server ({answer}), valid per the model: {text}"
            )
        tally.mismatches.append(mismatch)
        raise AssertionError(mismatch)

    try:
        agree()
    finally:
        for line in tally.mismatches[-5:]:
            print(line)
    assert not tally.server_errors, tally.server_errors[:5]


# What `\s` means differs between the API server (Go's RE2: ASCII whitespace but \v), pydantic
# (Rust's regex: Unicode White_Space) and Python's re: a character from each side of that.
SPACES = ["\t", "\v", "\x1c", "\x85", "\xa0", "\u2003", "\u3000", "\ufeff"]


@pytest.mark.parametrize("where", ["address", "system"])
def test_odd_whitespace_is_judged_alike(
    where: str,
    cluster: Cluster,
    namespace: str,
    objects: kubernetes.client.CustomObjectsApi,
    tally: Tally,
) -> None:
    """Found by the fuzzing above, seldom (a pattern flaw deep in an optional field): kept as
    a fixed case so that it runs every time."""
    kind = KINDS[1]
    disagree = []
    for i, space in enumerate(SPACES):
        bmc = {"address": "https://10.0.0.5", "credentialsSecret": "bmc", where: f"a{space}b"}
        spec = {"segment": "seg", "bmc": bmc}
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind.kind,
            "metadata": {"name": f"ws-{where}-{i}"},
            "spec": spec,
        }
        accepted, answer = server_accepts(objects, kind, namespace, body)
        refusal = model_accepts(kind, spec)
        tally.tried += 1
        tally.accepted += accepted
        tally.refused += not accepted
        if accepted != (refusal is None):
            disagree.append(
                f"{space!r}: API server {answer or 'accepts'}, model {refusal or 'accepts'}"
            )
    tally.mismatches += disagree
    assert not disagree, disagree


def test_the_operator_on_what_was_accepted(
    cluster: Cluster, namespace: str, tmp_path: Path, tally: Tally
) -> None:
    """A sample of the accepted objects, created for real where an operator serves: it stays
    up, logs no unhandled exception, and says of every FailureEvent what became of it."""
    kept = {kind: specs[:SAMPLE] for kind, specs in tally.kept.items()}
    assert kept, "nothing was accepted"
    spec = topology([{"name": "compute1"}, {"name": "compute2"}], servers(["vm-1"], "compute1"))
    with (
        running_sim(spec, "--service-down-time", "2") as sim,
        running_operator(
            cluster.kubeconfig, namespace, sim.clouds_yaml, sim.cloud, tmp_path
        ) as operator,
    ):
        documents: list[dict[str, Any]] = []
        segments = [f"fz-seg-{i}" for i in range(len(kept.get("FailoverSegment", [])))]
        hosts = [f"fz-host-{i}" for i in range(len(kept.get("Host", [])))]
        names = {"FailoverSegment": segments, "Host": hosts}
        for kind in KINDS:
            for i, body in enumerate(kept.get(kind.kind, [])):
                body = json.loads(json.dumps(body))
                # Half of them tied to the others, so handlers follow the references.
                if kind.kind == "Host" and segments and i % 2 == 0:
                    body["segment"] = segments[i % len(segments)]
                if kind.kind == "FailureEvent" and hosts and i % 2 == 0:
                    body["host"] = hosts[i % len(hosts)]
                name = names.get(kind.kind, [])
                documents.append(
                    {
                        "apiVersion": f"{GROUP}/{VERSION}",
                        "kind": kind.kind,
                        "metadata": {"name": name[i] if name else f"fz-ev-{i}"},
                        "spec": body,
                    }
                )
        documents.append(host_manifest("compute1"))
        for document in documents:
            cluster.kubectl("create", "-n", namespace, "-f", "-", stdin=json.dumps(document))
        events = [d["metadata"]["name"] for d in documents if d["kind"] == "FailureEvent"]

        def reported() -> bool:
            answer = cluster.kubectl("get", "fev", "-n", namespace, "-o", "json")
            items = json.loads(answer.stdout)["items"]
            return all((item.get("status") or {}).get("reason") for item in items)

        began = time.monotonic()
        try:
            wait_for("every FailureEvent to have a reason", reported, 60, 1)
        finally:
            log = operator.log()
            crashes = log.count("Traceback")
            alive = operator.process is not None and operator.process.poll() is None
            print(
                f"\nCR-FUZZ-OPERATOR | objects created {len(documents)} "
                f"| FailureEvents {len(events)} | all reported after "
                f"{time.monotonic() - began:.1f} s | crashes {crashes} "
                f"| operator {'up' if alive else 'exited'} |",
                flush=True,
            )
        assert alive, log[-4000:]
        assert crashes == 0, log[-8000:]

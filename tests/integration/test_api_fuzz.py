"""Hostile input (issue 16): schemathesis fuzzes every route of the API from the OpenAPI
document the API itself publishes (GET /openapi.json), against a real kube-apiserver.

Each operation gets positive and negative cases (bodies, queries, path ids and the microversion
header), then the document's links are walked as a state machine (create a segment, a host in
it, a notification from that host; show, update, delete). Every answer must be below 500, a
refusal must be a Masakari fault body, and every response must match the document. After the
run the API server's objects are read: every one was created by an accepted request, and every
segment and host still holds what its last accepted write gave it, so a refused request left
nothing behind.

`make test` runs a short sample (MASAKARI_FUZZ_EXAMPLES, default 6 per operation and mode);
`make fuzz` runs it long and prints the figures.
"""

from __future__ import annotations

import copy
import json
import os
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky, Unsatisfiable
from schemathesis import Case, GenerationMode, Response
from schemathesis.specs.openapi.checks import positive_data_acceptance

from controller.api import views
from controller.api.faults import FAULT_NAMES
from controller.api.ids import object_uuid
from controller.microversions import HEADER
from tests.conftest import Cluster
from tests.harness.masakari_api import ODD_HOST, THIS_HOST, ApiCloud
from tests.integration.api_env import call, objects

EXAMPLES = int(os.environ.get("MASAKARI_FUZZ_EXAMPLES", "6"))
# About 2 s per example of every operation, stateful walk included (measured at 6 and 40).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(120 + 10 * EXAMPLES)]
HOSTS = "/v1/segments/{segment_id}/hosts"
COMPUTE_HOSTS = ["compute1", "compute2", "compute3", ODD_HOST, THIS_HOST]
# None: keep the header schemathesis generated (hostile), else one of the microversions.
VERSIONS = st.sampled_from([None, "1.0", "1.1", "1.2", "1.3", "latest"])
RESTARTS = 20
STEPS_PER_SCENARIO = 4  # what a walk sends on average, measured: the budget of a restarted one
FAULTS = {*FAULT_NAMES.values(), "masakariFault"}
SEGMENT_FIELDS = ("name", "description", "recovery_method", "service_type", "enabled")
HOST_FIELDS = ("name", "type", "control_attributes", "reserved", "on_maintenance")


@schemathesis.check
def masakari_fault(ctx: Any, response: Response, case: Case) -> bool | None:
    """A refusal is `{"<faultName>": {"code": <status>, "message": "..."}}` and says nothing
    of the machinery behind it."""
    if response.status_code < 400:
        return None
    body = response.json()
    assert isinstance(body, dict) and len(body) == 1, f"not a fault body: {response.text[:300]}"
    ((name, inner),) = body.items()
    assert name in FAULTS, f"unknown fault name {name!r}"
    assert inner["code"] == response.status_code, body
    assert isinstance(inner["message"], str) and inner["message"], body
    assert "Traceback" not in inner["message"], body
    return True


@dataclass
class Tally:
    """What was sent and what it did: the figures, and the writes the API accepted."""

    sent: int = 0
    walked: int = 0  # of those, by the walk along the links
    server_errors: int = 0
    crashes: int = 0
    failures: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    created: set[str] = field(default_factory=set)
    created_kinds: Counter[str] = field(default_factory=Counter)
    # uuid -> the fields its last accepted create or update answered with
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)

    def record(self, case: Case, response: Response) -> None:
        self.sent += 1
        self.statuses[response.status_code] += 1
        if response.status_code >= 500:
            self.server_errors += 1
        if case.method not in ("POST", "PUT") or response.status_code >= 300:
            return
        ((key, value),) = response.json().items()
        uuid = value.get("uuid") or value["notification_uuid"]
        if case.method == "POST":
            self.created.add(uuid)
            self.created_kinds[key] += 1
        wanted = {"segment": SEGMENT_FIELDS, "host": HOST_FIELDS}.get(key, ())
        self.accepted[uuid] = {name: value[name] for name in wanted}

    def figures(self) -> str:
        codes = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items()))
        kinds = ", ".join(f"{n} {kind}s" for kind, n in sorted(self.created_kinds.items()))
        return (
            f"fuzz: {self.sent} requests ({self.walked} along the links), "
            f"{self.server_errors} 5xx, {self.crashes} crashes ({codes}); "
            f"created {kinds or 'nothing'}"
        )


class Client:
    """Sends a case with the admin token and a microversion, records and checks the answer."""

    def __init__(self, cloud: ApiCloud, tally: Tally) -> None:
        self.cloud, self.tally = cloud, tally
        self.session = requests.Session()
        self.auth = {"X-Auth-Token": cloud.token()}

    def call(self, case: Case, version: str | None) -> Response:
        headers = {**self.auth, **({} if version is None else {HEADER: f"instance-ha {version}"})}
        try:
            response = case.call(
                base_url=self.cloud.api.url, session=self.session, headers=headers, timeout=30
            )
        except requests.RequestException:
            self.tally.crashes += 1
            raise
        self.tally.record(case, response)
        return response

    def check(self, case: Case, response: Response) -> None:
        try:
            # "Schema-valid data accepted" cannot hold: a valid marker, uuid or host name
            # still names nothing that exists (400, 404), and Masakari answers so too.
            # The token is named as the caller's own, so the auth check tries the request
            # again without it and with a wrong one, and expects 401.
            case.validate_response(
                response,
                additional_checks=[masakari_fault],
                excluded_checks=[positive_data_acceptance],
                headers=self.auth,
            )
        except Exception as error:
            # Kept as first seen: hypothesis replays a failure to shrink it, and against a
            # server whose state moved on the replay may go another way.
            self.tally.failures.append(f"{case.method} {case.formatted_path}: {error}")
            raise


def published(cloud: ApiCloud) -> dict[str, Any]:
    """The document as a client gets it (no token)."""
    with urllib.request.urlopen(cloud.api.url + "/openapi.json", timeout=30) as answer:
        document: dict[str, Any] = json.load(answer)
    return document


def inner_body(document: dict[str, Any], path: str, method: str, key: str) -> Any:
    operation = document["paths"][path][method]
    return operation["requestBody"]["content"]["application/json"]["schema"]["properties"][key]


def likely(document: dict[str, Any], *, only: bool) -> dict[str, Any]:
    """A copy where a name is one a create is likely to be accepted with: the cloud's compute
    hosts for hosts and notifications (Nova knows no others), plain segment names, a VM's
    instance as a uuid. As one choice beside the published rule (a value outside both is
    outside the published rule, so negative cases stay negative), or (`only`) instead of it,
    for the walk along the links, of positive cases only: it then gets past validation to
    the states behind it (hosts, notifications) far more often."""
    document = copy.deepcopy(document)

    def widen(properties: dict[str, Any], name: str, likely: dict[str, Any]) -> None:
        properties[name] = likely if only else {"anyOf": [likely, properties[name]]}

    compute = {"enum": COMPUTE_HOSTS}
    plain = {"type": "string", "pattern": "^[a-z][a-z0-9-]{0,20}$"}
    for path, method in [(HOSTS, "post"), (HOSTS + "/{host_id}", "put")]:
        widen(inner_body(document, path, method, "host")["properties"], "name", compute)
    for path, method in [("/v1/segments", "post"), ("/v1/segments/{segment_id}", "put")]:
        segment = inner_body(document, path, method, "segment")["properties"]
        widen(segment, "name", plain)
        widen(segment, "service_type", plain)
    notification = inner_body(document, "/v1/notifications", "post", "notification")
    widen(notification["properties"], "hostname", compute)
    for kind in notification["oneOf"]:
        if kind["properties"]["type"]["const"] == "VM":
            payload = kind["properties"]["payload"]["properties"]
            widen(payload, "instance_uuid", {"type": "string", "format": "uuid"})
    return document


def fuzz_each_operation(schema: Any, client: Client) -> None:
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode), version=VERSIONS)
            def exchange(case: Case, version: str | None) -> None:
                client.check(case, client.call(case, version))

            try:
                exchange()
            except Unsatisfiable:
                # No parameter, or only free strings: nothing can be made invalid.
                if mode is GenerationMode.POSITIVE:
                    raise


def walk_links(schema: Any, client: Client) -> None:
    # The /v1 family only (the links name its operations; each operation was fuzzed under
    # both prefixes already): among 37 roots the walk seldom took a link at all.
    workflow = schema.include(path_regex=r"^/v1/(segments|notifications)").as_state_machine()

    class Walk(workflow):  # type: ignore[misc, valid-type]
        def call(self, case: Case, **kwargs: Any) -> Response:
            return client.call(case, "latest")

        def validate_response(self, response: Response, case: Case, **kwargs: Any) -> None:
            client.check(case, response)

    scenarios = settings(
        max_examples=EXAMPLES * 4,
        stateful_step_count=12,
        deadline=None,
        database=None,
        # Shrinking replays steps against a server whose state has moved on.
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    started = client.tally.sent
    for _ in range(RESTARTS):
        try:
            Walk.run(settings=scenarios)
            break
        except Flaky:
            # Hypothesis replays choice sequences it has seen; against a server whose state
            # moved on, a replay draws differently. A check that failed is in the tally;
            # without one this is no finding, and the walk starts again (as schemathesis'
            # own runner does) until it has sent its share of requests.
            if client.tally.failures:
                raise
            if client.tally.sent - started >= EXAMPLES * 4 * STEPS_PER_SCENARIO:
                break
    client.tally.walked = client.tally.sent - started


def assert_nothing_left_by_refusals(cluster: Cluster, namespace: str, tally: Tally) -> None:
    stored = {
        kind: objects(cluster, kind, namespace)
        for kind in ("failoversegments", "hosts.masakari.dev", "failureevents")
    }
    for kind, bodies in stored.items():
        strays = [b["metadata"]["name"] for b in bodies if object_uuid(b) not in tally.created]
        assert not strays, f"{kind} stored without an accepted create: {strays}"
    segments = {b["metadata"]["name"]: b for b in stored["failoversegments"]}
    for body in stored["failoversegments"]:
        shown = views.segment(body)
        assert {k: shown[k] for k in SEGMENT_FIELDS} == tally.accepted[shown["uuid"]], shown
    for body in stored["hosts.masakari.dev"]:
        shown = views.host(body, segments.get(body["spec"]["segment"]))
        assert {k: shown[k] for k in HOST_FIELDS} == tally.accepted[shown["uuid"]], shown


def test_hostile_requests_get_faults_and_store_nothing(
    api_env: ApiCloud, cluster: Cluster, namespace: str
) -> None:
    tally = Tally()
    client = Client(api_env, tally)
    document = published(api_env)
    schema, walk = (schemathesis.openapi.from_dict(likely(document, only=o)) for o in (False, True))
    for each in (schema, walk):
        # Unknown query parameters are ignored, as Masakari ignores them.
        each.config.generation.update(allow_extra_parameters=False, with_security_parameters=False)
    walk.config.generation.update(modes=[GenerationMode.POSITIVE])
    started = time.monotonic()
    try:
        fuzz_each_operation(schema, client)
        walk_links(walk, client)
    finally:
        print(f"\n{tally.figures()} in {time.monotonic() - started:.0f}s")
        print("\n".join(tally.failures[:3]))
    assert api_env.api.process.poll() is None, "the API exited"
    assert not tally.failures, tally.failures[0]
    assert tally.server_errors == 0 and tally.crashes == 0, tally.figures()
    assert tally.created, "no request was accepted: the fuzzing never got past validation"
    assert_nothing_left_by_refusals(cluster, namespace, tally)


# Found past the fuzzer (it builds neither deep JSON nor times at datetime's ends, nor
# charsets): each answered 500 before its fix.
HOSTILE_EXAMPLES = {
    "JSON nested 50,000 deep (RecursionError in the decoder)": (
        "POST", "/v1/segments", b"[" * 50_000, "nested too deeply", "application/json",
    ),
    "a charset Python has no codec for (LookupError)": (
        "POST", "/v1/segments", b"{}", "unknown charset", "application/json; charset=nope",
    ),
    "a generated-since before year 1 in UTC (OverflowError)": (
        "GET", "/v1/notifications?generated-since=0001-01-01T00:00:00%2B14:00", None,
        "not an ISO 8601 time", "application/json",
    ),
    "a report window reaching back before year 1 (OverflowError)": (
        "GET", "/report?until=0001-01-01T00:00:00&format=json", None, "before year 1",
        "application/json",
    ),
}  # fmt: skip


def test_inputs_that_answered_500_get_a_fault_body(api_env: ApiCloud) -> None:
    # One API for them all (an API's start is most of such a test's time).
    token = api_env.token()
    for name, (method, path, raw, words, content_type) in HOSTILE_EXAMPLES.items():
        status, _, body = call(
            api_env, method, path, token=token, raw=raw, content_type=content_type
        )
        assert status == 400 and list(body) == ["badRequest"], (name, body)
        assert words in body["badRequest"]["message"], (name, body)

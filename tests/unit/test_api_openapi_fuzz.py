"""The published OpenAPI document against the checks it is derived from: every routed handler
is in it, schemathesis can read every operation, and no body the API accepts is one the
document refuses (a client that follows the document is never wrong about what is allowed).
"""

from __future__ import annotations

import os
from typing import Any

import jsonschema_rs
import schemathesis
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.api import openapi, validation
from controller.api.app import PUBLIC, build_app
from controller.api.faults import ApiFault

EXAMPLES = int(os.environ.get("MASAKARI_FUZZ_UNIT_EXAMPLES", "500"))
DOCUMENT = openapi.document(build_app(None).router, PUBLIC, "http://127.0.0.1:15868")  # type: ignore[arg-type]


def body_schema(path: str, method: str) -> Any:
    operation = DOCUMENT["paths"][path][method]
    return operation["requestBody"]["content"]["application/json"]["schema"]


def test_every_route_is_an_operation_schemathesis_reads() -> None:
    routes = {
        (route.resource.canonical, route.method.lower())
        for route in build_app(None).router.routes()  # type: ignore[arg-type]
        if route.method != "HEAD" and route.resource is not None
    }
    documented = {(path, method) for path, item in DOCUMENT["paths"].items() for method in item}
    assert documented == routes
    ids = [op["operationId"] for item in DOCUMENT["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    schema = schemathesis.openapi.from_dict(DOCUMENT)
    assert all(result.ok() for result in schema.get_all_operations())
    assert len(list(schema.get_all_operations())) == len(routes)


# Values that are not anywhere near a rule's edge, for every field.
COMMON = [None, True, 1, {}, "", " a", "a ", "a\tb", "yes", "Off", "tRuE", "2026-12-02T20:00:00",
          "2026-12-02T20:00:00Z", "12345678123456781234567812345678"]  # fmt: skip


def edges(schema: Any) -> list[Any]:
    """A rule's boundary values, read from its schema: each enum value, and strings of the
    shortest and longest length allowed and one past each."""
    values: list[Any] = list(schema.get("enum", []))
    for alternative in schema.get("anyOf", []):
        values += edges(alternative)
    if "maxLength" in schema:
        low, high = schema.get("minLength", 0), schema["maxLength"]
        values += ["x" * n for n in (max(low - 1, 0), low, high, high + 1)]
    return values


def value(schema: Any) -> st.SearchStrategy[Any]:
    # The rule's own edges mostly, so that bodies the API accepts are common.
    own = st.sampled_from(edges(schema) or COMMON)
    return st.one_of(own, own, own, st.sampled_from(COMMON), st.text(max_size=12))


def bodies(key: str, schema: validation.Schema) -> st.SearchStrategy[Any]:
    optional = {name: value(rule.schema) for name, rule in schema.fields.items()}
    return st.builds(lambda inner: {key: inner}, st.fixed_dictionaries({}, optional=optional))


def notification_bodies() -> st.SearchStrategy[Any]:
    payloads = [rules.fields for rules in validation.PAYLOADS.values()]
    keys = {name: value(rule.schema) for fields in payloads for name, rule in fields.items()}
    inner = st.fixed_dictionaries(
        {
            "type": st.sampled_from(validation.NOTIFICATION_TYPES),
            "hostname": value(validation.hostname.schema),
            "generated_time": value({}),
            "payload": st.fixed_dictionaries({}, optional={**keys, "bad key!": value({})}),
        }
    )
    return st.builds(lambda fields: {"notification": fields}, inner)


SEGMENT, HOST = "/v1/segments/{segment_id}", "/v1/segments/{segment_id}/hosts"
CASES = [
    ("/v1/segments", "post", "segment", validation.SEGMENT_CREATE_12),
    (SEGMENT, "put", "segment", validation.SEGMENT_UPDATE_12),
    (HOST, "post", "host", validation.HOST_CREATE),
    (HOST + "/{host_id}", "put", "host", validation.HOST_UPDATE),
]


def accepted(check: Any, body: Any) -> bool:
    try:
        check(body)
    except ApiFault:
        return False
    return True


@settings(max_examples=EXAMPLES, deadline=None)
@given(data=st.data())
def test_what_the_api_accepts_the_document_allows(data: st.DataObject) -> None:
    path, method, key, check = data.draw(st.sampled_from(CASES))
    body = data.draw(bodies(key, check))
    if accepted(check, body):
        jsonschema_rs.validate(body_schema(path, method), body)


def check_notification(body: Any) -> None:
    fields = validation.NOTIFICATION_CREATE(body)
    validation.payload(fields["type"], fields["payload"])


@settings(max_examples=EXAMPLES, deadline=None)
@given(body=notification_bodies())
def test_a_notification_the_api_accepts_the_document_allows(body: Any) -> None:
    if accepted(check_notification, body):
        jsonschema_rs.validate(body_schema("/v1/notifications", "post"), body)

"""Hostile input (issue 16) on the API's own parsers, where schemathesis reaches only by luck:
any text is a time or a Refused, any body is checked or a 400, never another exception (which
the API answers 500), and what passes can be stored as it was sent.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.api import validation, versions
from controller.api.faults import ApiFault

EXAMPLES = int(os.environ.get("MASAKARI_FUZZ_UNIT_EXAMPLES", "500"))
OFFSETS = st.sampled_from(["", "Z", "+00:00", "+14:00", "-14:00", "+23:59", "-23:59", "+05:30"])
# ISO 8601 times at and near the ends of what datetime holds, with the widest offsets.
EDGE_TIMES = st.builds(
    lambda moment, offset: moment.isoformat() + offset,
    st.one_of(
        st.datetimes(max_value=datetime(1, 1, 3)),
        st.datetimes(min_value=datetime(9999, 12, 29)),
        st.datetimes(),
    ),
    OFFSETS,
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(text=st.one_of(EDGE_TIMES, st.text(max_size=40)))
def test_any_text_is_a_time_or_refused(text: str) -> None:
    try:
        moment = validation.date_time(text)
    except validation.Refused:
        return
    assert moment.tzinfo is UTC


@pytest.mark.parametrize(
    "text", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00Z"]
)
def test_a_time_beyond_what_datetime_holds_in_utc_is_refused(text: str) -> None:
    """Found by probing the API past the fuzzer: astimezone(UTC) raised OverflowError, and
    POST /notifications and GET /notifications?generated-since= answered 500."""
    if text.endswith("Z"):
        assert validation.date_time(text) == datetime(1, 1, 1, tzinfo=UTC)
        return
    with pytest.raises(validation.Refused, match="date-time"):
        validation.date_time(text)


# Text as JSON can carry it: "\ud800" in a body decodes to a lone surrogate, which no
# UTF-8 (and so no Kubernetes object) can hold.
TEXT = st.one_of(
    st.text(max_size=20),
    st.text(alphabet=st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010), max_size=5),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
SCHEMAS = [
    validation.SEGMENT_CREATE_12, validation.SEGMENT_UPDATE_12, validation.HOST_CREATE,
    validation.HOST_UPDATE, validation.NOTIFICATION_CREATE, *validation.PAYLOADS.values(),
]  # fmt: skip


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in strings(key) + strings(item)]
    return [text for item in value for text in strings(item)] if isinstance(value, list) else []


@settings(max_examples=EXAMPLES, deadline=None)
@given(data=st.data())
def test_a_body_is_checked_or_refused_and_what_passes_can_be_stored(data: st.DataObject) -> None:
    schema = data.draw(st.sampled_from(SCHEMAS))
    fields = st.dictionaries(st.sampled_from(sorted(schema.fields)), JSON | TEXT, max_size=5)
    body = data.draw(st.one_of(JSON, st.builds(lambda inner: {schema.key: inner}, fields)))
    try:
        checked = schema(body)
    except ApiFault as fault:
        assert fault.code == 400
        return
    for text in strings(checked):
        text.encode()  # what Kubernetes stores is UTF-8


def test_a_lone_surrogate_is_refused_not_stored_changed() -> None:
    """Found by this file's property: a description of "\\ud800" was accepted, and Kubernetes
    stored U+FFFD in its place: the segment answered back was not the one sent."""
    with pytest.raises(ApiFault, match="Unicode"):
        fields = {"name": "s", "recovery_method": "auto", "service_type": "C"}
        validation.SEGMENT_CREATE_12({"segment": {**fields, "description": "a\ud800"}})


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    header=st.one_of(
        st.text(max_size=30),
        st.from_regex(r"\Ainstance-ha (latest|[0-9]{1,30}\.[0-9]{1,30})\Z"),
        st.integers(4290, 4400).map(lambda digits: "instance-ha 1." + "9" * digits),
    )
)
def test_any_microversion_header_is_a_version_or_a_fault(header: str) -> None:
    try:
        version = versions.requested([header])
    except ApiFault as fault:
        assert fault.code in (400, 406)
        return
    assert versions.MIN_VERSION <= version <= versions.MAX_VERSION


def test_a_microversion_of_5000_digits_is_a_bad_request() -> None:
    """Found by probing past the fuzzer: int() refuses more than 4300 digits with ValueError,
    and the API answered 500."""
    with pytest.raises(ApiFault, match="invalid format"):
        versions.requested(["instance-ha 1." + "9" * 5000])

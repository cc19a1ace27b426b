"""Hostile input (issue 16) on the API's own parsers, the ones schemathesis reaches only by
luck: any text is a time or a Refused, never another exception (which the API answers 500).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.api import validation

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

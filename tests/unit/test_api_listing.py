"""Masakari's list parameters and body checks, without a server."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import MultiDict

from controller.api import listing, validation, versions, views
from controller.api.faults import ApiFault


def items(*rows: tuple[int, str, str]) -> list[dict[str, Any]]:
    return [{"id": i, "name": n, "created_at": c} for i, n, c in rows]


ROWS = items((1, "b", "2026-01-01"), (2, "a", "2026-01-02"), (3, "c", "2026-01-02"))


def test_default_order_is_newest_first_with_id_tiebreak() -> None:
    sort = listing.sort_params(MultiDict(), ["created_at", "name"])
    assert sort == [("created_at", "desc"), ("id", "desc")]
    assert [i["id"] for i in listing.page(ROWS, {}, sort, 10, None)] == [3, 2, 1]


def test_marker_continues_after_that_item_even_if_filtered_out() -> None:
    sort = listing.sort_params(MultiDict([("sort_key", "name"), ("sort_dir", "asc")]), ["name"])
    every = {row["id"]: row for row in ROWS}
    assert [i["name"] for i in listing.page(ROWS, every, sort, 1, 2)] == ["b"]
    assert [i["name"] for i in listing.page(ROWS[2:], every, sort, 5, 1)] == ["c"]
    with pytest.raises(ApiFault, match="Marker 7 could not be found"):
        listing.page(ROWS, every, sort, 5, 7)


@pytest.mark.parametrize(
    ("query", "limit"), [({}, 1000), ({"limit": "0"}, 1000), ({"limit": "5000"}, 1000)]
)
def test_limit_is_capped(query: dict[str, str], limit: int) -> None:
    assert listing.limit_and_marker(MultiDict(query)) == (limit, None)


def test_microversion_header() -> None:
    assert versions.requested([]) == (1, 0)
    assert versions.requested(["compute 2.1, instance-ha 1.2"]) == (1, 2)
    assert versions.requested(["instance-ha latest"]) == (1, 3)
    with pytest.raises(ApiFault) as refused:
        versions.requested(["instance-ha 1.4"])
    assert refused.value.code == 406
    with pytest.raises(ApiFault) as malformed:
        versions.requested(["instance-ha 1.x"])
    assert malformed.value.code == 400


def test_boolean_strings_as_masakari_accepts_them() -> None:
    body = {"host": {"name": "h", "type": "COMPUTE", "control_attributes": "", "reserved": "on"}}
    assert validation.HOST_CREATE(body)["reserved"] is True
    body["host"]["reserved"] = "sometimes"
    with pytest.raises(ApiFault, match="not a boolean"):
        validation.HOST_CREATE(body)


@pytest.mark.parametrize(
    ("display", "expected"),
    [("compute1", "compute1"), ("seg.a-1", "seg.a-1")],
)
def test_object_names_kept_when_kubernetes_accepts_them(display: str, expected: str) -> None:
    assert views.object_name(display) == expected


def test_other_names_get_distinct_valid_object_names() -> None:
    names = {views.object_name(n) for n in ("Rack A", "rack a", "Rack_A", "!!!", "x" * 300)}
    assert len(names) == 5
    assert all(len(n) <= 63 and n == n.lower() and n[0].isalnum() for n in names)

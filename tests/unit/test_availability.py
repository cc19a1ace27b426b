"""The availability report's figures (recovery.availability) and its three renderings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.api import report as rendering
from controller.recovery.availability import NO_PROJECT, UNKNOWN_SEGMENT, percentile

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
UNTIL = T0 + timedelta(days=30)


def _host(name: str, segment: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"segment": segment}}


def _event(
    name: str,
    host: str,
    at: datetime,
    phase: str = "Finished",
    seconds: float | None = 30,
    moves: list[tuple[str | None, str]] = (),  # type: ignore[assignment]
    segment: str | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if seconds is not None:
        status["endTime"] = (at + timedelta(seconds=seconds)).isoformat()
    if segment is not None:
        status["segment"] = segment
    status["instances"] = [
        {
            "instanceUuid": f"{name}-{index}",
            "status": state,
            **({"projectId": project} if project else {}),
            **(
                {"endTime": (at + timedelta(seconds=10 + index)).isoformat()}
                if state == "succeeded"
                else {}
            ),
        }
        for index, (project, state) in enumerate(moves)
    ]
    return {
        "metadata": {"name": name},
        "spec": {
            "type": "COMPUTE_HOST",
            "host": host,
            "generatedTime": at.isoformat(),
            "payload": {"event": "STOPPED", "host_status": "NORMAL", "cluster_status": "OFFLINE"},
        },
        "status": status,
    }


HOSTS = [_host("c1", "rack-a"), _host("c2", "rack-a"), _host("c3", "rack-b")]


def test_figures_per_segment_host_and_project() -> None:
    events = [
        _event("e1", "c1", T0, seconds=20, moves=[("p1", "succeeded"), ("p2", "succeeded")]),
        _event("e2", "c1", T0 + timedelta(days=1), seconds=40, moves=[("p1", "succeeded")]),
        _event(
            "e3",
            "c3",
            T0 + timedelta(days=2),
            phase="Failed",
            seconds=90,
            moves=[("p1", "succeeded"), ("p2", "pending"), (None, "failed")],
        ),
        _event("e4", "c3", T0 + timedelta(days=3), phase="Ignored", seconds=1),
    ]
    result = rendering.build(events, HOSTS, T0, UNTIL)

    assert (result.total.failures, result.total.recovered, result.total.failed) == (3, 2, 1)
    assert (result.total.instances_recovered, result.total.instances_lost) == (4, 2)
    assert result.total.mean_seconds == 30 and result.total.p95_seconds == 40
    a, b = result.segments["rack-a"], result.segments["rack-b"]
    assert (a.failures, a.recovered, a.times) == (2, 2, [40.0, 20.0])
    assert (b.failures, b.failed, b.instances_lost, b.mean_seconds) == (1, 1, 2, None)
    assert result.hosts[("rack-a", "c2")].failures == 0, "a host without failures is a row"
    p1 = result.projects["p1"]
    assert (p1.instances_recovered, p1.instances_lost) == (3, 0)
    assert sorted(p1.times) == [10.0, 10.0, 10.0]
    assert result.projects["p2"].instances_lost == 1
    assert result.projects[NO_PROJECT].instances_lost == 1
    assert [r.event for r in result.recoveries] == ["e3", "e2", "e1"], "newest first"


def test_the_window_and_events_of_deleted_hosts() -> None:
    events = [
        _event("old", "c1", T0 - timedelta(seconds=1)),
        _event("gone", "c9", T0 + timedelta(hours=1)),
        _event("gone-named", "c8", T0 + timedelta(hours=2), segment="rack-z"),
        _event("open", "c2", T0 + timedelta(hours=3), phase="Running", seconds=None),
        _event("late", "c2", UNTIL),
    ]
    result = rendering.build(events, HOSTS, T0, UNTIL)

    assert {r.event for r in result.recoveries} == {"gone", "gone-named", "open"}
    assert result.hosts[(UNKNOWN_SEGMENT, "c9")].failures == 1
    assert result.hosts[("rack-z", "c8")].failures == 1
    assert result.segments["rack-a"].open == 1
    assert result.total.times == [30.0, 30.0], "an open recovery has no time yet"


def test_an_unparsable_event_is_left_out() -> None:
    broken = _event("x", "c1", T0)
    broken["spec"]["generatedTime"] = "yesterday"
    result = rendering.build([broken, _event("ok", "c1", T0)], HOSTS, T0, UNTIL)
    assert [r.event for r in result.recoveries] == ["ok"]


def test_renderings_escape_and_carry_every_row() -> None:
    events = [_event("e1", "c1", T0, moves=[("<script>alert(1)</script>", "succeeded")])]
    result = rendering.build(events, HOSTS, T0, UNTIL)

    page = rendering.html(result, "cloud-a")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count("<svg") == 3
    assert all(f"rack-a/{host}" in page for host in ("c1", "c2"))
    table = rendering.text(result)
    assert "rack-a/c1" in table and "rack-b/c3" in table
    as_json = result.as_dict()
    assert as_json["total"]["meanSecondsToRecover"] == 30.0
    assert as_json["hosts"][0] == {"segment": "rack-a", "host": "c1", **as_json["hosts"][0]}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("90m", timedelta(minutes=90))],
)
def test_window(text: str, expected: timedelta) -> None:
    assert rendering.window(text) == expected


@pytest.mark.parametrize("text", ["30", "d", "-1d", "1w", "1e9d", ""])
def test_a_window_without_its_unit_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="give a number"):
        rendering.window(text)


def test_percentile_is_a_value_that_happened() -> None:
    assert percentile([5.0], 0.95) == 5.0
    assert percentile([float(v) for v in range(1, 101)], 0.95) == 95.0


PHASES = st.sampled_from(["Running", "Error", "Finished", "Failed", "Ignored", "New"])
MOVES = st.lists(
    st.tuples(
        st.sampled_from([None, "p1", "p2"]),
        st.sampled_from(["pending", "ongoing", "succeeded", "failed", "ignored"]),
    ),
    max_size=4,
)


@given(
    st.lists(
        st.tuples(st.sampled_from(["c1", "c2", "c3", "c9"]), PHASES, MOVES, st.integers(0, 40)),
        max_size=30,
    )
)
def test_every_row_adds_up_to_the_total(drawn: list[tuple[str, str, Any, int]]) -> None:
    events = [
        _event(f"e{i}", host, T0 + timedelta(days=day), phase=phase, moves=moves)
        for i, (host, phase, moves, day) in enumerate(drawn)
    ]
    result = rendering.build(events, HOSTS, T0, UNTIL)
    total = result.total
    for rows in (result.segments.values(), result.hosts.values()):
        assert sum(r.failures for r in rows) == total.failures
        assert sum(r.instances_recovered for r in rows) == total.instances_recovered
        assert sum(r.instances_lost for r in rows) == total.instances_lost
    assert total.failures == total.recovered + total.failed + total.open
    projects = result.projects.values()
    assert sum(r.instances_recovered + r.instances_lost for r in projects) == (
        total.instances_recovered + total.instances_lost
    )

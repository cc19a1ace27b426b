"""Confirming a host down before anything is evacuated, on every crm_mon capture of the lab."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from controller.drivers.pacemaker import crm_mon
from controller.recovery.fencing import FENCING_RECORD_MAX_AGE, Evidence, confirm, confirmed_down
from controller.recovery.gates import Report, Verdict
from controller.recovery.pacemaker import ClusterState
from controller.resources.failure_event import FailureEventSpec
from controller.resources.segment import FailoverSegmentSpec

DATA = Path(__file__).parent / "data" / "pacemaker"
FIXTURES = sorted(p.stem for p in DATA.glob("*.xml") if p.stem != "not-connected")
# Every capture's fencings are of 2026-11-26 03:01; the nodes were seen online before that.
BEFORE_FENCING = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
AFTER_FENCING = datetime(2026, 11, 26, 3, 5, tzinfo=UTC)
# (capture, node) pairs whose node is offline and was fenced after BEFORE_FENCING.
FENCED = {("member-fenced", "node3"), ("remote-fenced", "remote1")}


def state(name: str) -> ClusterState:
    return crm_mon.parse((DATA / f"{name}.xml").read_text())


@pytest.mark.parametrize("fixture", FIXTURES)
def test_confirmed_down_on_every_capture(fixture: str) -> None:
    cluster = state(fixture)
    assert cluster.nodes, fixture
    for node in cluster.nodes:
        down, why = confirmed_down(cluster, node.name, BEFORE_FENCING)
        assert down == ((fixture, node.name) in FENCED), (fixture, node.name, why)
        # A fencing older than the node's last coming online confirms nothing.
        assert not confirmed_down(cluster, node.name, AFTER_FENCING)[0], (fixture, node.name)


def test_a_clean_stop_is_not_fencing() -> None:
    """Defect 2: a node offline after its cluster stack was stopped by hand, stonith enabled,
    was taken as confirmed down. The hypervisor still runs its instances."""
    cluster = replace(state("member-offline-no-fencing"), stonith_enabled=True)
    down, why = confirmed_down(cluster, "node2", BEFORE_FENCING)
    assert not down
    assert "no fencing of it" in why
    down, why = confirmed_down(replace(cluster, stonith_enabled=False), "node2", None)
    assert not down and "fencing is disabled" in why


def test_a_fencing_record_from_an_earlier_failure_is_not_this_one() -> None:
    """node3 was fenced at 03:01:16, came back, and is now offline again after a clean stop."""
    cluster = state("member-fenced")
    assert not confirmed_down(cluster, "node3", AFTER_FENCING)[0]
    assert confirmed_down(cluster, "node3", BEFORE_FENCING)[0]


# -- the decision ---------------------------------------------------------------------------

REPORTED = datetime(2026, 11, 26, 3, 1, 30, tzinfo=UTC)


def report(host_status: str = "NORMAL", created: datetime = REPORTED) -> Report:
    spec = FailureEventSpec.model_validate(
        {
            "type": "COMPUTE_HOST",
            "host": "node3",
            "generatedTime": REPORTED.isoformat(),
            "payload": {"event": "STOPPED", "host_status": host_status},
        }
    )
    return Report("ev", spec, created=created, phase="New")


def segment(method: str = "pacemaker", timeout: int = 300) -> FailoverSegmentSpec:
    spec: dict[str, Any] = {
        "recoveryMethod": "auto",
        "serviceType": "COMPUTE",
        "fencing": {"method": method},
        "hostFailure": {"fencingTimeoutSeconds": timeout},
    }
    return FailoverSegmentSpec.model_validate(spec)


def decide(
    evidence: Evidence,
    method: str = "pacemaker",
    host_status: str = "NORMAL",
    waited: float = 1,
) -> tuple[str, str]:
    now = REPORTED + timedelta(seconds=waited)
    decision = confirm(report(host_status), "node3", segment(method), evidence, now)
    return decision.verdict, decision.reason


FENCED_NODE3 = Evidence(cluster=state("member-fenced"), online_since=BEFORE_FENCING)


def test_pacemaker_fencing_confirms_whatever_the_reporter_says() -> None:
    assert decide(FENCED_NODE3) == (Verdict.PROCEED, "FencingConfirmed")
    assert decide(FENCED_NODE3, host_status="UNKNOWN") == (Verdict.PROCEED, "FencingConfirmed")


def test_a_normal_report_is_not_trusted_where_the_segment_can_confirm() -> None:
    """Defect 3: with Pacemaker as the segment's method, NORMAL alone proceeds no more."""
    unfenced = Evidence(cluster=state("member-unclean"), online_since=BEFORE_FENCING)
    assert decide(unfenced) == (Verdict.WAIT, "AwaitingFencing")
    assert decide(unfenced, waited=300) == (Verdict.IGNORE, "HostNotConfirmedDown")
    no_access = Evidence()
    assert decide(no_access) == (Verdict.WAIT, "AwaitingFencing")
    assert decide(no_access, waited=301) == (Verdict.IGNORE, "HostNotConfirmedDown")


def test_none_is_an_explicit_opt_in_to_the_reporters_word() -> None:
    assert decide(Evidence(), method="none") == (Verdict.PROCEED, "ReportedDown")
    # Pacemaker is not asked: its view does not matter to a segment that opted out.
    assert decide(Evidence(cluster=state("member-unclean")), method="none")[0] == Verdict.PROCEED
    unknown = decide(Evidence(), method="none", host_status="UNKNOWN")
    assert unknown == (Verdict.WAIT, "AwaitingFencing")
    late = decide(Evidence(), method="none", host_status="UNKNOWN", waited=300)
    assert late == (Verdict.IGNORE, "HostNotConfirmedDown")


def test_the_host_came_back() -> None:
    """Defect 5: a heartbeat newer than the report, or the node online again."""
    alive = Evidence(heartbeat=REPORTED + timedelta(seconds=40), cluster=state("member-fenced"))
    assert decide(alive) == (Verdict.IGNORE, "HostRecovered")
    assert decide(alive, method="none") == (Verdict.IGNORE, "HostRecovered")
    last_breath = replace(FENCED_NODE3, heartbeat=REPORTED - timedelta(seconds=20))
    assert decide(last_breath) == (Verdict.PROCEED, "FencingConfirmed")
    online = Evidence(cluster=state("healthy"), online_since=BEFORE_FENCING)
    assert decide(online) == (Verdict.IGNORE, "HostRecovered")
    # A minority partition's view of the node says nothing either way.
    assert decide(Evidence(cluster=state("minority-no-quorum")))[0] == Verdict.WAIT


def test_an_old_fencing_counts_only_within_its_age_when_the_node_was_never_seen_online() -> None:
    recent = Evidence(cluster=state("member-fenced"))
    assert decide(recent) == (Verdict.PROCEED, "FencingConfirmed")
    much_later = REPORTED + FENCING_RECORD_MAX_AGE + timedelta(minutes=1)
    decision = confirm(
        report(created=much_later), "node3", segment(), recent, much_later + timedelta(seconds=1)
    )
    assert decision.verdict == Verdict.WAIT

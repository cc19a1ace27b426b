"""The host monitor's decisions, fed with crm_mon samples captured from the lab."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from controller.drivers.pacemaker import crm_mon
from controller.monitors.host_failures import FailureDetector, HostEvent, NodeReport
from controller.recovery.pacemaker import ClusterState

DATA = Path(__file__).parent / "data" / "pacemaker"


def sample(name: str) -> ClusterState:
    return crm_mon.parse((DATA / f"{name}.xml").read_text())


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def feed(detector: FailureDetector, clock: Clock, *states: ClusterState) -> list[NodeReport]:
    reports: list[NodeReport] = []
    for state in states:
        clock.now += 1
        reports += detector.observe(state)
    return reports


def test_killed_node_is_reported_once_fenced_with_a_shared_episode() -> None:
    healthy, unclean, fenced = sample("healthy"), sample("member-unclean"), sample("member-fenced")
    episodes = []
    for local, offset in (("node1", 0.0), ("node2", 0.7)):
        clock = Clock(1_800_000_000.0 + offset)
        detector = FailureDetector(local, samples=2, clock=clock)
        assert feed(detector, clock, healthy, healthy) == []
        # Unclean: lost, but not fenced yet, so nothing to report with NORMAL.
        assert feed(detector, clock, unclean, unclean, unclean) == []
        (report,) = feed(detector, clock, fenced)
        assert (report.node, report.event, report.host_status, report.cluster_status) == (
            "node3",
            HostEvent.STOPPED,
            "NORMAL",
            "OFFLINE",
        )
        assert feed(detector, clock, fenced, fenced) == []
        episodes.append(report.episode)
    (fencing,) = fenced.fencing_of("node3")
    assert fencing.completed is not None
    assert episodes[0] == episodes[1] == fencing.completed.strftime("fenced-%Y%m%d-%H%M%S")


def test_return_through_joining_states_reports_started_for_the_same_episode() -> None:
    clock = Clock()
    detector = FailureDetector("node1", samples=2, clock=clock)
    joining = sample("member-joining")
    feed(detector, clock, sample("healthy"), sample("healthy"), sample("member-unclean"))
    (stopped,) = feed(detector, clock, sample("member-fenced"), sample("member-fenced"))
    # A joining node (online, pending, standby) neither counts as up nor breaks the streak.
    assert feed(detector, clock, joining, joining, joining) == []
    (started,) = feed(detector, clock, sample("healthy"), sample("healthy"))
    assert (started.node, started.event, started.cluster_status) == ("node3", "STARTED", "ONLINE")
    assert started.episode == stopped.episode


def test_minority_reports_nothing() -> None:
    clock = Clock()
    detector = FailureDetector("node3", samples=1, fencing_timeout=0, clock=clock)
    feed(detector, clock, sample("healthy"))
    minority = sample("minority-no-quorum")
    assert feed(detector, clock, *[minority] * 10) == []
    assert detector.quorate is False
    # The same picture with quorum would be reported: the quorum gate is what stops it.
    quorate = dataclasses.replace(minority, has_quorum=True)
    reported = {report.node for report in feed(detector, clock, quorate)}
    assert reported == {"node1", "node2"}


def test_samples_must_agree() -> None:
    clock = Clock()
    healthy, fenced = sample("healthy"), sample("member-fenced")
    detector = FailureDetector("node1", samples=3, clock=clock)
    feed(detector, clock, healthy, healthy, healthy)
    assert detector.watched() == {"node2", "node3", "remote1"}
    assert feed(detector, clock, fenced, fenced, healthy, fenced, fenced) == []
    assert [r.node for r in feed(detector, clock, fenced)] == ["node3"]


def test_first_observation_is_recorded_not_reported() -> None:
    clock = Clock()
    detector = FailureDetector("node1", samples=1, clock=clock)
    assert feed(detector, clock, sample("member-fenced"), sample("healthy")) == []


def test_without_fencing_a_lost_node_is_unknown_at_once() -> None:
    clock = Clock(1_800_000_030.0)
    detector = FailureDetector("node1", samples=2, episode_bucket=60, clock=clock)
    feed(detector, clock, sample("healthy"), sample("healthy"))
    offline = sample("member-offline-no-fencing")
    (report,) = feed(detector, clock, offline, offline)
    assert (report.node, report.host_status) == ("node2", "UNKNOWN")
    # Named after the minute the node was first seen down: 1_800_000_000 is 2027-01-15 08:00.
    assert report.episode == "lost-20270115-080000"


def test_old_fencing_does_not_confirm_a_new_failure() -> None:
    clock = Clock()
    old = sample("member-fenced").fence_history
    healthy = dataclasses.replace(sample("healthy"), fence_history=old)
    unclean = dataclasses.replace(sample("member-unclean"), fence_history=old)
    detector = FailureDetector("node1", samples=2, fencing_timeout=30, clock=clock)
    feed(detector, clock, healthy, healthy)
    assert feed(detector, clock, *[unclean] * 20) == []
    clock.now += 30
    (report,) = feed(detector, clock, unclean)
    assert (report.node, report.host_status) == ("node3", "UNKNOWN")
    assert report.episode.startswith("lost-")


def test_lost_remote_node_is_reported_when_fenced() -> None:
    clock = Clock()
    detector = FailureDetector("node2", samples=2, clock=clock)
    feed(detector, clock, sample("member-fenced"), sample("member-fenced"))
    assert feed(detector, clock, sample("remote-lost"), sample("remote-lost")) == []
    fenced = sample("remote-fenced")
    (report,) = feed(detector, clock, fenced)
    assert (report.node, report.host_status) == ("remote1", "NORMAL")
    (fencing,) = fenced.fencing_of("remote1")
    assert fencing.completed is not None
    assert report.episode == fencing.completed.strftime("fenced-%Y%m%d-%H%M%S")


def test_a_node_flapping_within_one_bucket_gives_each_failure_its_own_report() -> None:
    """Issue 16, flapping, with no fencing to name failures by: down, up, down within one
    minute. Both failures were named after the same `--episode-bucket` window, so the second
    report had the first one's name: its create met the first object ("already reported") and
    the failure that lasted was never reported. Every monitor that saw both numbers the second
    alike, so their reports of it still collide with each other."""
    healthy, offline = sample("healthy"), sample("member-offline-no-fencing")
    episodes = []
    for local, offset in (("node1", 0.0), ("node3", 0.4)):
        clock = Clock(1_800_000_010.0 + offset)
        detector = FailureDetector(local, samples=2, episode_bucket=60, clock=clock)
        feed(detector, clock, healthy, healthy)
        (first,) = feed(detector, clock, offline, offline)
        (back,) = feed(detector, clock, healthy, healthy)
        (second,) = feed(detector, clock, offline, offline)
        (again,) = feed(detector, clock, healthy, healthy)
        assert [r.event for r in (first, back, second, again)] == [
            HostEvent.STOPPED,
            HostEvent.STARTED,
            HostEvent.STOPPED,
            HostEvent.STARTED,
        ]
        assert clock.now - 1_800_000_000.0 < 60  # all within one bucket
        assert first.episode == back.episode != second.episode == again.episode
        episodes.append((first.episode, second.episode))
    assert episodes[0] == episodes[1]

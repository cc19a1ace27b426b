"""Deciding, from successive crm_mon samples, that a node went down or came back.

Pure logic over `ClusterState` samples: no commands, no Kubernetes. Several monitors (one per
cluster node) run this on their own samples; the `episode` of a report is what makes their
reports of one failure the same report (see docs/hostmonitor.md, "naming").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Literal

from controller.recovery.pacemaker import ClusterState, FenceEvent, Node


class NodeCondition(StrEnum):
    UP = "up"
    DOWN = "down"


class HostEvent(StrEnum):
    STOPPED = "STOPPED"
    STARTED = "STARTED"


FENCED = "fenced-"
EPISODE_TIME = "%Y%m%d-%H%M%S"


def fencing_neighbours(episode: str) -> tuple[str, ...]:
    """The names other monitors may give the fencing of a fenced episode: each node's fencer
    stamps a fencing's completion with its own clock as the result reaches it, so the nodes'
    histories can read a second apart (seen in the lab: 00:56:18 on one, 00:56:19 on the
    other). None for other episodes."""
    if not episode.startswith(FENCED):
        return ()
    try:
        completed = datetime.strptime(episode.removeprefix(FENCED), EPISODE_TIME)
    except ValueError:
        return ()
    return tuple(
        FENCED + (completed + timedelta(seconds=s)).strftime(EPISODE_TIME) for s in (-1, 1)
    )


@dataclass(frozen=True)
class NodeReport:
    """A node's failure or return, as one monitor concluded it."""

    node: str
    event: HostEvent
    host_status: Literal["NORMAL", "UNKNOWN"]
    cluster_status: Literal["ONLINE", "OFFLINE"]
    episode: str  # shared by every monitor that saw the same down-episode of the node
    generated_time: datetime


@dataclass
class _NodeWatch:
    stable: NodeCondition | None = None
    candidate: NodeCondition | None = None
    streak: int = 0
    # Fence events of the node already in the history while it was last seen up: a fencing
    # that confirms a new failure is one not among them.
    fences_while_up: frozenset[tuple[object, ...]] = frozenset()
    down_since: float | None = None  # set while a STOPPED report waits for fencing
    episode: str | None = None  # set once STOPPED was reported, until STARTED
    # The bucket of the last unfenced failure reported, and how many were named after it: a
    # node that flaps within one bucket gets `lost-<bucket>`, then `lost-<bucket>-2`, ...
    lost_bucket: str | None = None
    lost_in_bucket: int = 0


def _fence_key(event: FenceEvent) -> tuple[object, ...]:
    return (event.target, event.action, event.completed, event.origin, event.delegate)


def _classify(node: Node) -> NodeCondition | None:
    if node.is_up:
        return NodeCondition.UP
    if node.is_down:
        return NodeCondition.DOWN
    # Joining (online, pending, often standby): neither, so it neither confirms nor breaks a
    # streak.
    return None


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


@dataclass
class FailureDetector:
    """Turns crm_mon samples into node reports.

    - Nothing is concluded while this node's partition has no quorum (or no DC): a minority
      sees the majority as lost, and must not report it. Streaks restart after quorum returns.
    - A node changes condition only after `samples` consecutive samples agree; the first stable
      condition of a node is recorded, not reported.
    - A lost node is reported STOPPED with host_status NORMAL as soon as the cluster-wide
      fencing history has a new successful fencing of it; UNKNOWN at once when fencing is
      disabled, or after `fencing_timeout` seconds without a confirmed fencing.
    """

    local_node: str
    samples: int = 2
    fencing_timeout: float = 60.0
    episode_bucket: float = 60.0
    clock: Callable[[], float] = field(default=lambda: datetime.now(UTC).timestamp())
    watches: dict[str, _NodeWatch] = field(default_factory=dict)
    quorate: bool | None = None

    def observe(self, state: ClusterState) -> list[NodeReport]:
        now = self.clock()
        local = state.node(self.local_node)
        self.quorate = state.has_quorum and local is not None and local.is_up
        if not self.quorate:
            for watch in self.watches.values():
                watch.candidate, watch.streak = None, 0
            return []
        reports: list[NodeReport] = []
        for node in state.nodes:
            if node.name == self.local_node:
                continue
            watch = self.watches.setdefault(node.name, _NodeWatch())
            report = self._step(watch, node, state, now)
            if report is not None:
                reports.append(report)
        return reports

    def watched(self) -> frozenset[str]:
        """Nodes whose condition is known (observed stable at least once)."""
        return frozenset(name for name, watch in self.watches.items() if watch.stable is not None)

    def _step(
        self, watch: _NodeWatch, node: Node, state: ClusterState, now: float
    ) -> NodeReport | None:
        condition = _classify(node)
        if condition is not None:
            if condition == watch.candidate:
                watch.streak += 1
            else:
                watch.candidate, watch.streak = condition, 1
        fences = state.fencing_of(node.name)
        if watch.stable is NodeCondition.UP and condition is NodeCondition.UP:
            watch.fences_while_up = frozenset(_fence_key(event) for event in fences)
        candidate = watch.candidate
        if candidate is not None and candidate != watch.stable and watch.streak >= self.samples:
            return self._change(watch, candidate, fences, node.name, now, state)
        if watch.down_since is not None:
            return self._stopped_if_settled(watch, watch.down_since, node.name, fences, state, now)
        return None

    def _change(
        self,
        watch: _NodeWatch,
        condition: NodeCondition,
        fences: tuple[FenceEvent, ...],
        name: str,
        now: float,
        state: ClusterState,
    ) -> NodeReport | None:
        first = watch.stable is None
        watch.stable = condition
        if condition is NodeCondition.UP:
            watch.fences_while_up = frozenset(_fence_key(event) for event in fences)
            watch.down_since = None  # back before fencing settled: nothing was reported
            episode, watch.episode = watch.episode, None
            if first or episode is None:
                return None
            return NodeReport(name, HostEvent.STARTED, "NORMAL", "ONLINE", episode, _utc(now))
        if first:
            return None
        watch.down_since = now
        return self._stopped_if_settled(watch, now, name, fences, state, now)

    def _stopped_if_settled(
        self,
        watch: _NodeWatch,
        down_since: float,
        name: str,
        fences: tuple[FenceEvent, ...],
        state: ClusterState,
        now: float,
    ) -> NodeReport | None:
        confirmed = [
            event.completed
            for event in fences
            if event.succeeded
            and event.completed is not None
            and _fence_key(event) not in watch.fences_while_up
        ]
        if confirmed:
            # The fencing's completion time in the history every node of the partition keeps:
            # the same fencing for every monitor, its second as each node stamped it (see
            # `fencing_neighbours`).
            episode = FENCED + max(confirmed).strftime(EPISODE_TIME)
            host_status: Literal["NORMAL", "UNKNOWN"] = "NORMAL"
        elif not state.stonith_enabled or now - down_since >= self.fencing_timeout:
            bucket = int(down_since // self.episode_bucket * self.episode_bucket)
            episode = "lost-" + _utc(bucket).strftime(EPISODE_TIME)
            # A second failure in the bucket named like the first would meet the first's
            # object and go unreported. Every monitor that saw both counts alike.
            if episode == watch.lost_bucket:
                watch.lost_in_bucket += 1
                episode = f"{episode}-{watch.lost_in_bucket}"
            else:
                watch.lost_bucket, watch.lost_in_bucket = episode, 1
            host_status = "UNKNOWN"
        else:
            return None
        watch.down_since, watch.episode = None, episode
        return NodeReport(name, HostEvent.STOPPED, host_status, "OFFLINE", episode, _utc(now))

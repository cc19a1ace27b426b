"""Pacemaker's vocabulary as the operator and the host monitor see it: nodes, fencing history,
the cluster's state, and the errors of its tools. No command line in sight; the port itself,
`PacemakerCluster`, is in controller.recovery.ports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class PacemakerError(Exception):
    """A Pacemaker command failed or its output made no sense."""


class InvalidNodeName(PacemakerError, ValueError):
    """A node name that could be read as an option or a shell word; refused before any command
    runs."""


class CommandTimeout(PacemakerError):
    """A command did not finish in time; nothing is known about its effect."""


class ClusterUnavailable(PacemakerError):
    """The cluster stack does not answer on the node the commands run on (not running, not
    connected, or the node is still starting)."""


class PermissionDenied(PacemakerError):
    """The account the commands run as may not read or change the cluster."""


class ToolMissing(PacemakerError):
    """A Pacemaker command line tool is not installed where the commands run."""


class NodeNotFound(PacemakerError):
    """The cluster has no node of that name."""


class ChangeNotObserved(PacemakerError):
    """A command succeeded but the cluster did not show its effect in time."""


class FencingFailed(PacemakerError):
    """The cluster could not fence the node: its fencing device answered failure, or no device
    can fence it. The node must be taken as possibly running."""


class NodeType(StrEnum):
    MEMBER = "member"
    REMOTE = "remote"
    PING = "ping"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Node:
    """One node as crm_mon reports it."""

    name: str
    id: str
    type: NodeType
    online: bool
    standby: bool
    maintenance: bool
    pending: bool
    unclean: bool
    shutdown: bool
    expected_up: bool
    is_dc: bool = False

    @property
    def is_remote(self) -> bool:
        return self.type is NodeType.REMOTE

    @property
    def is_joining(self) -> bool:
        """Half way into the cluster: a joining member shows online, pending and standby."""
        return self.online and self.pending

    @property
    def is_down(self) -> bool:
        """Out of the cluster: offline, or online in name only while the cluster thinks it
        unclean (lost without a clean shutdown, awaiting fencing)."""
        return not self.online or self.unclean

    @property
    def is_up(self) -> bool:
        return self.online and not self.pending and not self.unclean


class FenceStatus(StrEnum):
    SUCCESS = "success"
    FAILED = "failed"
    PENDING = "pending"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class FenceEvent:
    """One entry of the cluster-wide fencing history (the same on every node of a partition)."""

    target: str
    action: str
    status: FenceStatus
    origin: str | None = None
    delegate: str | None = None
    client: str | None = None
    completed: datetime | None = None
    exit_reason: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status is FenceStatus.SUCCESS


@dataclass(frozen=True)
class ClusterState:
    """The cluster as one node sees it at one moment."""

    dc: str | None
    has_quorum: bool
    stonith_enabled: bool
    maintenance_mode: bool
    nodes: tuple[Node, ...] = ()
    fence_history: tuple[FenceEvent, ...] = field(default=())

    def node(self, name: str) -> Node | None:
        return next((node for node in self.nodes if node.name == name), None)

    def fencing_of(self, target: str) -> tuple[FenceEvent, ...]:
        return tuple(event for event in self.fence_history if event.target == target)

"""Host: one hypervisor, i.e. a nova-compute service host and a Pacemaker node."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from .common import (
    Condition,
    Hostname,
    Model,
    ObjectName,
    conditions_field,
    observed_generation_field,
)

HISTORY_LIMIT = 20
# status.recentFailures: the host's failures of the last FAILURE_WINDOW_DAYS, at most this many.
FAILURES_KEPT = 50
FAILURE_WINDOW_DAYS = 7
# status.serviceHolds: written by recoveries, cleared by the Host reconciler, key by key.
HOLDS = "serviceHolds"
# status.drain: one entry per instance the drain found on the host.
DRAIN_LIMIT = 1000
DRAIN = "drain"
# The heartbeat agent's UDP port (masakari-operator heartbeat-agent) when a Host's
# spec.heartbeat.address names none.
HEARTBEAT_PORT = 7411


# No whitespace, spelled out: `\s` means ASCII whitespace but \v to the API server (Go's RE2)
# and Unicode White_Space to pydantic (Rust's regex), so "^[^\s]+$" let the API server take
# values (a no-break space, \v) the operator then failed to read. These are Unicode's
# White_Space characters, which every engine reads alike: literal, but U+0085 and U+00A0 as
# the regex escapes \x85 and \xa0 (the CRD's YAML loader drops a literal U+0085).
_WHITESPACE = "\t\n\v\f\r " + r"\x85\xa0" + "\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NO_WHITESPACE = f"^[^{_WHITESPACE}]+$"


class BMC(Model):
    """The host's baseboard management controller, through which the operator powers it off
    when its segment fences by redfish or ipmi."""

    address: str = Field(
        min_length=1,
        max_length=2048,
        pattern=NO_WHITESPACE,
        description="redfish: the BMC's base URL, e.g. https://10.0.0.5 or "
        "https://10.0.0.5:8443. ipmi: host or host:port of its LAN interface (port 623 by "
        "default).",
    )
    system: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        pattern=NO_WHITESPACE,
        description="redfish: the ComputerSystem to power off, its id or its path "
        "(/redfish/v1/Systems/<id>); when unset, the BMC's only system.",
    )
    credentials_secret: ObjectName = Field(
        description="A Secret of this namespace holding the BMC's `username` and `password`. "
        "Credentials are read when needed and never copied into a resource, a log line, an "
        "Event or a metric.",
    )
    verify_tls: bool = Field(
        default=True,
        description="redfish over https: verify the BMC's certificate against the system's "
        "trust store.",
    )


class Heartbeat(Model):
    """How the operator reaches the host's heartbeat agent (`masakari-operator
    heartbeat-agent`), the second opinion its segment's detection.novaServiceDown asks for."""

    address: str = Field(
        min_length=1,
        max_length=261,
        pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?$",
        description="host or host:port (an IPv6 address in brackets) of the agent's UDP "
        f"socket; port {HEARTBEAT_PORT} when none is given. Use an address on the network "
        "nova-compute reaches Nova by, so that a host cut off from it does not answer either.",
    )


class HostSpec(Model):
    """The desired state of a host; written by people or GitOps, never by the operator."""

    segment: ObjectName = Field(
        description="Name of the FailoverSegment (same namespace) this host belongs to."
    )
    type: str = Field(
        default="COMPUTE",
        min_length=1,
        max_length=255,
        pattern=r"^[a-zA-Z0-9]+$",
        description="Masakari host type, free text of letters and digits (e.g. COMPUTE).",
    )
    control_attributes: str = Field(
        default="",
        max_length=4096,
        description="Masakari control attributes, free text kept for API compatibility (e.g. SSH).",
    )
    reserved: bool = Field(
        default=False,
        description="A spare host: its compute service is kept disabled (out of Nova's "
        "scheduler) until a recovery of its segment takes it.",
    )
    on_maintenance: bool = Field(
        default=False,
        description="Take the host out of service: its compute service is disabled and its "
        "Pacemaker node put in standby. Refused while a recovery of the host runs.",
    )
    nova_host: Hostname | None = Field(
        default=None,
        description="The nova-compute service host name when it differs from the object name.",
    )
    pacemaker_node: Hostname | None = Field(
        default=None,
        description="The Pacemaker node name when it differs from the object name.",
    )
    bmc: BMC | None = Field(
        default=None,
        description="The host's BMC, needed when its segment fences by redfish or ipmi.",
    )
    heartbeat: Heartbeat | None = Field(
        default=None,
        description="The host's heartbeat agent. Without it the host is never reported by its "
        "segment's detection.novaServiceDown: a down nova-compute alone does not tell a dead "
        "host from a dead service.",
    )
    release_failure: ObjectName | None = Field(
        default=None,
        description="Name of the FailureEvent whose failure the person in charge has dealt "
        "with. A Failed host returns to service only once this names its last failure and "
        "the host is healthy again, so an old value never releases a new failure.",
    )


class HostPhase(StrEnum):
    PENDING = "Pending"
    ACTIVE = "Active"
    RESERVED = "Reserved"
    MAINTENANCE = "Maintenance"
    RECOVERING = "Recovering"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


class ReservationState(StrEnum):
    NOT_RESERVED = "NotReserved"
    AVAILABLE = "Available"
    IN_USE = "InUse"


class NovaServiceStatus(Model):
    """The host's nova-compute service as Nova last reported it."""

    id: str | None = Field(default=None, max_length=64, description="Nova's service id.")
    state: str | None = Field(default=None, max_length=16, description="Service state: up or down.")
    status: str | None = Field(
        default=None, max_length=16, description="Service status: enabled or disabled."
    )
    forced_down: bool | None = Field(
        default=None, description="Whether the service is forced down."
    )
    disabled_reason: str | None = Field(
        default=None, max_length=255, description="Reason given when the service was disabled."
    )
    updated_at: datetime | None = Field(
        default=None,
        description="Last heartbeat of the service as Nova reported it when this status was "
        "last written. Status is written only when something else changed, so this is not "
        "rewritten on every heartbeat.",
    )
    observed_at: datetime | None = Field(
        default=None,
        description="When the operator read the service for the last status write. The "
        "operator reads it every host resync interval, but writes status only when something "
        "besides the heartbeat and this time changed.",
    )


class PacemakerNodeStatus(Model):
    """The host's Pacemaker node as crm_mon last reported it."""

    state: str | None = Field(
        default=None,
        max_length=32,
        description="online, offline, standby, maintenance, pending, unclean or fenced.",
    )
    remote: bool | None = Field(default=None, description="Whether it is a pacemaker-remote node.")
    observed_at: datetime | None = Field(
        default=None,
        description="When the operator read the node for the last status write; like "
        "nova.observedAt, it does not move on its own.",
    )
    online_since: datetime | None = Field(
        default=None,
        description="When the operator saw the node come online, after its latest fencing: "
        "only a fencing of the node completed after this confirms a later failure of the host.",
    )


class FailureRecord(Model):
    """A failure of the host, as recorded when its FailureEvent ended."""

    event: str = Field(max_length=253, description="Name of the FailureEvent.")
    type: str = Field(max_length=32, description="COMPUTE_HOST, VM or PROCESS.")
    time: datetime = Field(description="When the failure was generated.")
    result: str | None = Field(
        default=None, max_length=32, description="Phase the FailureEvent ended in, if it ended."
    )


class RecoveryRecord(Model):
    """A recovery of the host that ran and ended, as its FailureEvent recorded it."""

    event: str = Field(max_length=253, description="Name of the FailureEvent.")
    type: str = Field(max_length=32, description="COMPUTE_HOST, VM or PROCESS.")
    result: str = Field(max_length=32, description="Phase the FailureEvent ended in.")
    start_time: datetime = Field(description="When the recovery started.")
    end_time: datetime = Field(description="When the recovery ended.")
    duration_seconds: float = Field(ge=0, description="endTime minus startTime, in seconds.")


class ServiceHold(Model):
    """The compute service taken out of Nova by a host recovery."""

    since: datetime = Field(description="When the recovery was about to force it down.")


class HistoryEntry(Model):
    """One transition of the host, newest last."""

    time: datetime = Field(description="When the transition happened.")
    phase: str = Field(max_length=32, description="The phase the host entered.")
    reason: str = Field(max_length=1024, description="CamelCase reason of the transition.")
    message: str = Field(default="", max_length=1024, description="Human-readable details.")


class DrainPhase(StrEnum):
    DRAINING = "Draining"
    DRAINED = "Drained"  # every instance moved or left as configured
    INCOMPLETE = "Incomplete"  # some instance could not be moved: it is still on the host
    STOPPED = "Stopped"  # maintenance ended before the drain did
    HANDED_OVER = "HandedOver"  # the host failed: what was not moved is the recovery's


class DrainMoveStatus(StrEnum):
    PENDING = "pending"
    ONGOING = "ongoing"  # a migration was asked for (written before asking)
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # every attempt failed: still on the host
    STOPPED = "stopped"  # LiveMigrateOrStop: stopped on the host after its attempts
    LEFT = "left"  # not moved by either kind of migration: left on the host (stoppedInstances)
    GONE = "gone"  # deleted, or moved by someone else
    CANCELLED = "cancelled"  # never started: maintenance ended or the host failed


class MigrationKind(StrEnum):
    LIVE = "live"  # running: os-migrateLive
    COLD = "cold"  # stopped, stoppedInstances ColdMigrate: migrate, then confirmResize


class DrainMove(Model):
    """One instance of a drain, like a recovery's instance moves."""

    instance_uuid: str = Field(max_length=64, description="Nova server id.")
    name: str | None = Field(default=None, max_length=255, description="Server name.")
    status: DrainMoveStatus = Field(description="Where its move is.")
    kind: MigrationKind = Field(
        default=MigrationKind.LIVE,
        description="live: a live migration of a running instance; cold: a cold migration "
        "(stopped, with the segment's stoppedInstances ColdMigrate).",
    )
    attempts: int = Field(default=0, ge=0, description="Migrations asked for.")
    destination: str | None = Field(
        default=None, max_length=255, description="The host it landed on."
    )
    start_time: datetime | None = Field(
        default=None, description="When its latest migration was asked for."
    )
    end_time: datetime | None = Field(default=None, description="When its move ended.")
    message: str | None = Field(
        default=None, max_length=1024, description="Why it failed or was left, Nova's words."
    )


class DrainStatus(Model):
    """The emptying of the host for maintenance (its segment's spec.maintenance.drain)."""

    phase: DrainPhase = Field(description="Draining, Drained, Incomplete, Stopped, HandedOver.")
    mode: str = Field(max_length=32, description="The drain policy it runs under.")
    start_time: datetime = Field(description="When the drain started.")
    end_time: datetime | None = Field(default=None, description="When it ended.")
    instances: list[DrainMove] = Field(
        default_factory=list,
        max_length=DRAIN_LIMIT,
        description="The instances found on the host when the drain started, with their moves.",
    )


class HostStatus(Model):
    """What the operator observed of the host."""

    observed_generation: int | None = observed_generation_field()
    phase: HostPhase | None = Field(
        default=None,
        description="Pending before the first reconcile, then Active, Reserved, "
        "Maintenance, Recovering, Failed or Unknown (Nova or Pacemaker unreachable).",
    )
    reservation: ReservationState | None = Field(
        default=None,
        description="NotReserved, Available (reserved and free) or InUse (taken by a "
        "recovery; stays so until the host's reserved flag is cleared).",
    )
    reserved_for: str | None = Field(
        default=None, max_length=253, description="The FailureEvent that took this reserved host."
    )
    nova: NovaServiceStatus | None = Field(default=None, description="The nova-compute service.")
    pacemaker: PacemakerNodeStatus | None = Field(default=None, description="The Pacemaker node.")
    last_failure: FailureRecord | None = Field(
        default=None, description="The host's most recent failure."
    )
    recent_failures: list[FailureRecord] = Field(
        default_factory=list,
        max_length=FAILURES_KEPT,
        description=f"The host's failures (every FailureEvent but reports ignored as "
        f"duplicates) generated in the last {FAILURE_WINDOW_DAYS} days, oldest first, at most "
        f"{FAILURES_KEPT}: kept when their FailureEvents are deleted (spec.retention of the "
        "segment).",
    )
    last_recovery: RecoveryRecord | None = Field(
        default=None,
        description="The host's latest recovery that ran and ended, kept when its "
        "FailureEvent is deleted.",
    )
    service_holds: dict[str, ServiceHold] = Field(
        default_factory=dict,
        max_length=HISTORY_LIMIT,
        description="Host recoveries that forced the compute service down and disabled it, by "
        "FailureEvent name: recorded before Nova is touched and kept until the host is "
        "released and back in service, even if the FailureEvent is deleted.",
    )
    healthy_since: datetime | None = Field(
        default=None,
        description="Failed hosts of WhenHealthy segments (spec.returnToService): since when "
        "the host has looked healthy without interruption.",
    )
    returned_failure: str | None = Field(
        default=None,
        max_length=253,
        description="The failure the operator released by itself (WhenHealthy), as "
        "spec.releaseFailure would have named it.",
    )
    reservation_returned: str | None = Field(
        default=None,
        max_length=253,
        description="A reserved host back in the pool (segment returnToService."
        "usedReservedHost: ReturnsWhenEmpty): the FailureEvent whose use of it ended.",
    )
    drain: DrainStatus | None = Field(
        default=None,
        description="The latest drain of the host for maintenance, written by the drain "
        "alone, ahead of each live migration, so a restarted operator resumes it.",
    )
    history: list[HistoryEntry] = Field(
        default_factory=list,
        max_length=HISTORY_LIMIT,
        description=f"The host's last {HISTORY_LIMIT} phase transitions, oldest first.",
    )
    conditions: list[Condition] = conditions_field("host")


class Host(Model):
    """The body of a Host object (metadata is handled as a plain mapping)."""

    spec: HostSpec
    status: HostStatus = Field(default_factory=HostStatus)

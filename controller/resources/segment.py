"""FailoverSegment: a failover boundary (shared storage, rack, power) and its recovery policy."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from .common import Condition, Model, conditions_field, observed_generation_field, rule_message


class RecoveryMethod(StrEnum):
    """Masakari's four recovery methods, with Masakari's fallbacks."""

    AUTO = "auto"
    RESERVED_HOST = "reserved_host"
    AUTO_PRIORITY = "auto_priority"
    RH_PRIORITY = "rh_priority"


class ImageProperty(Model):
    """A Glance image property an instance's image must carry (its image as Glance holds it
    now, read once per recovery attempt; an instance booted from a volume has no image here)."""

    key: str = Field(min_length=1, max_length=255, description="The property's name.")
    value: str | None = Field(
        default=None,
        max_length=255,
        description="Its value, compared as text; absent: any value (the key alone).",
    )


# Said once for every image-based field: what an unreadable image or a volume does.
_IMAGE_READS = (
    " The image is read from Glance once per recovery attempt, and only when the segment names an "
    "image property or tag. An instance booted from a volume has no image here (its volume's "
    "image metadata is Cinder's, not read): it has no properties and no tags. An image Glance "
    "cannot give (an error, a deleted image) is unknown: its instances are never excluded or "
    "prioritized by it, they are evacuated with the priority the other rules give, and the "
    "event's PrepareHAEnabledInstancesTask says which image could not be read."
)


class HostFailurePolicy(Model):
    """How a failed host's instances are evacuated (Masakari's [host_failure] options)."""

    evacuate_all_instances: bool = Field(
        default=True,
        description="Evacuate every instance of the failed host, HA-enabled ones first. "
        "When false, only instances with the HA-enabled metadata key set to true are moved.",
    )
    ha_enabled_metadata_key: str = Field(
        default="HA_Enabled",
        min_length=1,
        max_length=255,
        description="Instance metadata key that marks an instance as HA-enabled.",
    )
    exclude_metadata_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Instance metadata key that, when true, keeps an instance from being "
        "evacuated at all (e.g. instances pinned to local hardware).",
    )
    ignore_instances_in_error_state: bool = Field(
        default=False,
        description="Leave instances whose vm_state is error where they are.",
    )
    exclude_projects: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list,
        max_length=64,
        description="Projects (ids) whose instances are never evacuated: e.g. Octavia's service "
        "project, whose amphorae Octavia fails over itself. Their owner is what tells them "
        "apart; their metadata is Octavia's, not the cloud operator's.",
    )
    exclude_image_properties: list[ImageProperty] = Field(
        default_factory=list,
        max_length=32,
        description="Instances whose image carries any of these properties are never "
        "evacuated: service VMs whose image says what they are, whoever owns them." + _IMAGE_READS,
    )
    exclude_image_tags: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        default_factory=list,
        max_length=32,
        description="Instances whose image has any of these Glance tags are never evacuated "
        "(e.g. amphora, the tag Octavia boots its amphorae from)." + _IMAGE_READS,
    )
    add_reserved_host_to_aggregate: bool = Field(
        default=False,
        description="Add the chosen reserved host to every Nova aggregate of the failed host "
        "before evacuating to it.",
    )
    # Masakari's 3 (host_failure_recovery_threads) makes a full host land in waves a rebuild
    # apart, and below the host's count Nova has less to do between waves than it could; 32 is
    # Red Hat InstanceHA's budget (EVACUATION_MAX_THREADS), and MASAKARI_MAX_EVACUATIONS still
    # bounds the whole operator.
    evacuation_concurrency: int = Field(
        default=32,
        ge=1,
        le=64,
        description="Instances of one failed host evacuated at the same time "
        "(the operator's MASAKARI_MAX_EVACUATIONS bounds all of them together).",
    )
    evacuation_timeout_seconds: int = Field(
        default=90,
        ge=5,
        le=3600,
        description="How long one instance may take to be ACTIVE (or back in its original "
        "state) on another host before its move counts as failed.",
    )
    fencing_timeout_seconds: int = Field(
        default=300,
        ge=0,
        le=3600,
        description="How long a host failure waits to be confirmed down (see fencing) "
        "before the event ends HostNotConfirmedDown. 0 means do not wait.",
    )


class PlacementBoundary(StrEnum):
    """Where a failed host's instances may go."""

    SEGMENT = "Segment"
    AGGREGATES = "Aggregates"
    REGION = "Region"


class PlacementStrategy(StrEnum):
    """How the placement plan picks among hosts that fit (controller/recovery/placement.py)."""

    SPREAD = "Spread"
    BEST_FIT = "BestFit"


class PriorityRule(Model):
    """A priority for the instances it matches: every field given must match."""

    flavor: str | None = Field(
        default=None, min_length=1, max_length=255, description="The instance's flavor name."
    )
    project: str | None = Field(
        default=None, min_length=1, max_length=64, description="The instance's project id."
    )
    image_property: ImageProperty | None = Field(
        default=None,
        description="A property of the instance's Glance image; never matches an instance "
        "whose image could not be read or that was booted from a volume.",
    )
    image_tag: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="A Glance tag of the instance's image; never matches an instance whose "
        "image could not be read or that was booted from a volume.",
    )
    priority: int = Field(
        ge=-1000, le=1000, description="Higher priorities are planned first and keep room."
    )


class PlacementPolicy(Model):
    """Capacity-aware recovery: the hosts a failed host's instances may go to, and the plan
    that picks each instance's host from Placement before the first evacuation."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.boundary != 'Aggregates' "
                    "|| (has(self.aggregates) && size(self.aggregates) > 0)",
                    "message": "boundary Aggregates needs at least one aggregate",
                }
            ]
        }
    )

    boundary: PlacementBoundary = Field(
        default=PlacementBoundary.SEGMENT,
        description="Segment: only the segment's own hosts (not reserved, on maintenance or "
        "failed) are targets, each instance evacuated to the host the plan chose (Nova's "
        "scheduler still validates it). Aggregates: the hosts of the Nova aggregates named "
        "in `aggregates`. Region: no plan; Nova's scheduler picks any host of the region, "
        "as Masakari does.",
    )
    aggregates: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        default_factory=list,
        max_length=32,
        description="With boundary Aggregates: the Nova aggregates whose hosts are targets.",
    )
    strategy: PlacementStrategy = Field(
        default=PlacementStrategy.SPREAD,
        description="Spread: the host with the most free memory, as Nova's default weigher "
        "(even headroom for the next failure). BestFit: the fullest host that fits (keeps "
        "whole hosts free for large flavors).",
    )
    priority_metadata_key: str = Field(
        default="HA_Priority",
        min_length=1,
        max_length=255,
        description="Instance metadata key holding an integer priority (default 0): higher "
        "priorities are planned first and, when the targets are short of room, keep it; "
        "HA-enabled instances go before others of the same priority.",
    )
    priority_rules: list[PriorityRule] = Field(
        default_factory=list,
        max_length=32,
        description="Priorities by flavor, project, image property and image tag, for "
        "instances whose metadata names none: the first rule that matches gives it; no match "
        "is 0." + _IMAGE_READS,
    )

    @model_validator(mode="after")
    def _aggregates_named(self) -> PlacementPolicy:
        if self.boundary == PlacementBoundary.AGGREGATES and not self.aggregates:
            raise ValueError(rule_message(PlacementPolicy))
        return self


class CapacityPolicy(Model):
    """HA readiness: whether the segment can absorb the loss of its hosts, checked
    continuously, before a failure needs it."""

    tolerate_host_failures: int = Field(
        default=1,
        ge=0,
        le=16,
        description="How many hosts the segment must be able to lose at once with every "
        "instance of theirs still finding room on the others (1: N+1, the worst single "
        "host decides). 0 turns the check off.",
    )


class FencingMethod(StrEnum):
    """How a failed host is fenced (and the fencing confirmed) before anything is evacuated."""

    PACEMAKER = "pacemaker"
    REDFISH = "redfish"
    IPMI = "ipmi"
    NONE = "none"


class FencingPolicy(Model):
    """How a failed host is fenced and confirmed off (principle: fence before evacuate)."""

    method: FencingMethod = Field(
        default=FencingMethod.PACEMAKER,
        description="pacemaker (default): the operator asks the cloud's Pacemaker cluster to "
        "fence the node (unless a fencing of it newer than its last time online is already "
        "recorded) and waits for the fencing record. redfish: the operator powers the host "
        "off through its BMC (the Host's spec.bmc) and reads PowerState Off back. ipmi: the "
        "same with IPMI chassis power. none: nothing can fence in this segment, so a report "
        "with host_status NORMAL is trusted as it is (Masakari's behaviour). RISK: with none, "
        "a host that is alive but reported down (a network partition, a monitor's mistake) "
        "has its instances evacuated while they still run, and instances on shared storage "
        "then run twice and corrupt their disks. Choose none only where no fencing exists and "
        "the reporters are trusted. Whatever the method, a host that cannot be confirmed off "
        "within hostFailure.fencingTimeoutSeconds is never evacuated: its event ends "
        "HostNotConfirmedDown.",
    )
    attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Fencing requests (Pacemaker fence, BMC power off) sent per recovery "
        "attempt before the host counts as not fenceable; each waits attemptTimeoutSeconds "
        "for the confirmation.",
    )
    attempt_timeout_seconds: int = Field(
        default=60,
        ge=5,
        le=600,
        description="How long one fencing request may take to be confirmed (fencing record, "
        "PowerState Off) before it is sent again.",
    )
    bmc_check_interval_seconds: int = Field(
        default=600,
        ge=0,
        le=86400,
        description="With redfish or ipmi, each Host's BMC is checked this often (reachable, "
        "credentials accepted, power state readable) and the result shown as its "
        "FencingReady condition, so a broken BMC is found before a failure needs it. "
        "0 turns the check off.",
    )


class NovaServiceDownDetection(Model):
    """Failure detection from Nova alone, for segments whose computes run no Pacemaker."""

    enabled: bool = Field(
        default=False,
        description="Report a host as failed (a FailureEvent of type COMPUTE_HOST, "
        "host_status UNKNOWN, source detection/nova-service-down) when its nova-compute "
        "service has been down for thresholdSeconds and the host's heartbeat agent (the "
        "Host's spec.heartbeat) does not answer. Off by default. RISK: Nova's view and one "
        "heartbeat are weaker evidence than a cluster's membership; a network partition that "
        "cuts both looks like a dead host. So it may be turned on only where the segment can "
        "fence (spec.fencing.method not none): the fencing step powers the host off and reads "
        "it back before anything is evacuated. The API server refuses enabled: true with "
        "fencing.method none. Hosts without spec.heartbeat, on maintenance, or whose service "
        "is forced down are never reported.",
    )
    threshold_seconds: int = Field(
        default=60,
        ge=0,
        le=3600,
        description="How long since nova-compute's last heartbeat to Nova (the service's "
        "updated_at) before a down service counts; Nova itself calls a service down after "
        "its service_down_time (60 s by default), so the effective delay is the larger of "
        "the two plus up to one detection pass.",
    )


class DetectionPolicy(Model):
    """Failure detection done by the operator itself (monitors report on their own)."""

    nova_service_down: NovaServiceDownDetection = Field(
        default_factory=NovaServiceDownDetection,
        description="A host whose nova-compute service is down and whose heartbeat agent is "
        "silent is reported failed (off by default; needs fencing).",
        json_schema_extra={"default": NovaServiceDownDetection().to_wire()},
    )


class InstanceFailurePolicy(Model):
    """How a crashed instance is restarted (Masakari's [instance_failure] options)."""

    process_all_instances: bool = Field(
        default=False,
        description="Restart every failed instance, not only those with the HA-enabled "
        "metadata key set to true.",
    )
    ha_enabled_metadata_key: str = Field(
        default="HA_Enabled",
        min_length=1,
        max_length=255,
        description="Instance metadata key that marks an instance as HA-enabled.",
    )
    max_restarts: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Restarts of one instance allowed within restartWindowSeconds; "
        "failures beyond that are recorded but not acted on, so a crash loop stays a crash "
        "loop and not a restart storm.",
    )
    restart_window_seconds: int = Field(
        default=3600,
        ge=60,
        le=604800,
        description="The sliding window for maxRestarts, in seconds.",
    )


class RetryPolicy(Model):
    """How a recovery that ended in Error is tried again."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.initialBackoffSeconds <= self.maxBackoffSeconds",
                    "message": "initialBackoffSeconds must not exceed maxBackoffSeconds",
                }
            ]
        }
    )

    max_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Attempts of one recovery, the first included, before it is Failed.",
    )
    initial_backoff_seconds: int = Field(
        default=10,
        ge=1,
        le=3600,
        description="Wait before the second attempt; doubles after each attempt.",
    )
    max_backoff_seconds: int = Field(
        default=300,
        ge=1,
        le=86400,
        description="Upper bound of the wait between attempts.",
    )

    @model_validator(mode="after")
    def _backoff_ordered(self) -> RetryPolicy:
        if self.initial_backoff_seconds > self.max_backoff_seconds:
            raise ValueError(rule_message(RetryPolicy))
        return self


class StormPolicy(Model):
    """Limits that keep a correlated failure (power, network) from cascading."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.maxFailedHosts) || !has(self.maxFailedHostsPercent)",
                    "message": "maxFailedHosts and maxFailedHostsPercent are mutually exclusive",
                }
            ]
        }
    )

    max_failed_hosts: int | None = Field(
        default=None,
        ge=0,
        le=10000,
        description="Recoveries stop being started while this many hosts of the segment "
        "have failed and are not back in service. Exclusive with maxFailedHostsPercent.",
    )
    max_failed_hosts_percent: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="As maxFailedHosts, as a percentage of the segment's hosts (rounded "
        "down, at least one host). Exclusive with maxFailedHosts.",
    )
    pause_requests: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=list,
        max_length=32,
        description="While non-empty no new recovery starts in this segment (running ones "
        "finish). Each entry says who paused and why, e.g. 'alice: storage maintenance'.",
    )

    @model_validator(mode="after")
    def _one_limit(self) -> StormPolicy:
        if self.max_failed_hosts is not None and self.max_failed_hosts_percent is not None:
            raise ValueError(rule_message(StormPolicy))
        return self


class RetentionPolicy(Model):
    """How long ended FailureEvents of the segment's hosts are kept, as a Job's
    ttlSecondsAfterFinished and a CronJob's history limits; what the history is for stays on
    each Host's status."""

    ttl_seconds_after_finished: int = Field(
        default=604800,
        ge=3600,
        le=31622400,
        description="An ended FailureEvent (Finished, Ignored or Failed) is deleted this many "
        "seconds after it ended (default 7 days), unless something still needs it: an open "
        "recovery, a service hold or a release the host awaits, a reserved host it took, the "
        "duplicate or restart windows. Its failure stays counted in the Host's "
        "status.recentFailures and status.lastRecovery.",
    )
    keep_per_host: int = Field(
        default=20,
        ge=1,
        le=1000,
        description="At most this many ended FailureEvents are kept per host, the newest by "
        "generatedTime; older ones are deleted even before ttlSecondsAfterFinished, with the "
        "same exceptions.",
    )


class DrainMode(StrEnum):
    """What entering maintenance does with the host's instances."""

    NONE = "None"
    LIVE_MIGRATE = "LiveMigrate"
    LIVE_MIGRATE_OR_STOP = "LiveMigrateOrStop"


class StoppedInstances(StrEnum):
    """What a drain does with instances that are not running (they cannot be live-migrated)."""

    LEAVE = "Leave"
    COLD_MIGRATE = "ColdMigrate"


class MaintenancePolicy(Model):
    """How a host of the segment is emptied when it goes on maintenance (Host
    spec.onMaintenance): its instances live-migrated to other hosts of the segment, a few at a
    time, before its Pacemaker node is put in standby."""

    drain: DrainMode = Field(
        default=DrainMode.NONE,
        description="None: disable the compute service and put the node in standby, the "
        "instances stay (Masakari's behaviour). LiveMigrate: also live-migrate every running "
        "instance to another host of the segment first; one that fails every attempt stays "
        "and is reported. LiveMigrateOrStop: as LiveMigrate, and one that fails every attempt "
        "is stopped where it is, so the host can be serviced.",
    )
    concurrency_per_host: int = Field(
        default=2, ge=1, le=32, description="Live migrations off one host at the same time."
    )
    concurrency_per_segment: int = Field(
        default=4,
        ge=1,
        le=128,
        description="Live migrations in the segment at the same time, all draining hosts "
        "together: each copies an instance's memory over the network.",
    )
    instance_timeout_seconds: int = Field(
        default=600,
        ge=10,
        le=86400,
        description="How long one live migration may take before it counts as failed. The "
        "migration is not aborted: a later attempt starts only once Nova says it ended.",
    )
    attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Live migrations tried per instance before it is reported failed (never "
        "forced past the scheduler).",
    )
    stopped_instances: StoppedInstances = Field(
        default=StoppedInstances.LEAVE,
        description="Instances not running (stopped, in error): Leave keeps them on the host, "
        "recorded as left. ColdMigrate moves the stopped ones (Nova's migrate, its resize "
        "confirmed once Nova lands it, the instance still stopped), within the same bounds, "
        "attempts and timeout as live migrations; instances in any other state (suspended, "
        "error, shelved) Nova moves neither way: they are left.",
    )


class ReturnMode(StrEnum):
    """How a failed host returns to service."""

    MANUAL = "Manual"
    WHEN_HEALTHY = "WhenHealthy"


class UsedReservedHost(StrEnum):
    """What becomes of a reserved host once a recovery took it."""

    STAYS_IN_USE = "StaysInUse"
    RETURNS_WHEN_EMPTY = "ReturnsWhenEmpty"


class ReturnPolicy(Model):
    """When a host that failed goes back into Nova's scheduler, and a used reserved host back
    into the pool."""

    policy: ReturnMode = Field(
        default=ReturnMode.MANUAL,
        description="Manual: once a person names its last failure in the Host's "
        "spec.releaseFailure. WhenHealthy: also by itself, once its recovery ended and for "
        "stableSeconds its nova-compute has reported since the failure and its Pacemaker "
        "node (when the operator sees the cluster) has been online, with no new failure.",
    )
    stable_seconds: int = Field(
        default=600,
        ge=30,
        le=86400,
        description="How long the host must look healthy, without interruption, before "
        "WhenHealthy returns it.",
    )
    used_reserved_host: UsedReservedHost = Field(
        default=UsedReservedHost.STAYS_IN_USE,
        description="StaysInUse: a reserved host a recovery took stays in use (enabled) until "
        "its spec.reserved is cleared, as Masakari's reserved flag turned false. "
        "ReturnsWhenEmpty: once the recovery that took it has ended and no instance is left "
        "on it (moved back, or drained by a maintenance), it is Available again and disabled, "
        "for the next failure.",
    )


class FailoverSegmentSpec(Model):
    """The desired state of a failover segment; written by people or GitOps, never the operator."""

    # A segment that cannot fence never takes the operator's own detection for a failure:
    # evacuating on that evidence alone could run instances twice.
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.detection) || !has(self.detection.novaServiceDown) "
                    "|| !has(self.detection.novaServiceDown.enabled) "
                    "|| !self.detection.novaServiceDown.enabled "
                    "|| !has(self.fencing) || !has(self.fencing.method) "
                    "|| self.fencing.method != 'none'",
                    "message": "detection.novaServiceDown.enabled needs a fencing method: "
                    "with fencing.method none a host would be evacuated on Nova's word alone",
                    "fieldPath": ".detection.novaServiceDown.enabled",
                }
            ]
        }
    )

    recovery_method: RecoveryMethod = Field(
        description="How a failed host's instances are recovered: auto (Nova's scheduler "
        "picks), reserved_host (the segment's reserved hosts, one after another), "
        "auto_priority (auto, then reserved hosts) or rh_priority (reserved hosts, then auto)."
    )
    service_type: str = Field(
        min_length=1,
        max_length=255,
        description="The service the segment's hosts provide, as in Masakari (e.g. COMPUTE).",
    )
    enabled: bool = Field(
        default=True,
        description="When false, failures of the segment's hosts are recorded as Ignored.",
    )
    description: str | None = Field(
        default=None, max_length=4096, description="Free text for the people in charge."
    )
    fencing: FencingPolicy = Field(
        default_factory=FencingPolicy,
        description="How host failures are confirmed down before any evacuation.",
        json_schema_extra={"default": FencingPolicy().to_wire()},
    )
    host_failure: HostFailurePolicy = Field(
        default_factory=HostFailurePolicy,
        description="Policy for host failures.",
        json_schema_extra={"default": HostFailurePolicy().to_wire()},
    )
    placement: PlacementPolicy = Field(
        default_factory=PlacementPolicy,
        description="Where a failed host's instances go and how their hosts are planned.",
        json_schema_extra={"default": PlacementPolicy().to_wire()},
    )
    instance_failure: InstanceFailurePolicy = Field(
        default_factory=InstanceFailurePolicy,
        description="Policy for instance failures.",
        json_schema_extra={"default": InstanceFailurePolicy().to_wire()},
    )
    retry: RetryPolicy = Field(
        default_factory=RetryPolicy,
        description="Retries of recoveries that ended in Error.",
        json_schema_extra={"default": RetryPolicy().to_wire()},
    )
    storm: StormPolicy = Field(
        default_factory=StormPolicy,
        description="Storm protection: failed-host limits and pause requests.",
        json_schema_extra={"default": StormPolicy().to_wire()},
    )
    detection: DetectionPolicy = Field(
        default_factory=DetectionPolicy,
        description="Failures the operator detects itself (off by default).",
        json_schema_extra={"default": DetectionPolicy().to_wire()},
    )
    retention: RetentionPolicy = Field(
        default_factory=RetentionPolicy,
        description="How long ended FailureEvents of the segment's hosts are kept.",
        json_schema_extra={"default": RetentionPolicy().to_wire()},
    )
    maintenance: MaintenancePolicy = Field(
        default_factory=MaintenancePolicy,
        description="How a host going on maintenance is emptied (drain).",
        json_schema_extra={"default": MaintenancePolicy().to_wire()},
    )
    return_to_service: ReturnPolicy = Field(
        default_factory=ReturnPolicy,
        description="How a failed host returns to service.",
        json_schema_extra={"default": ReturnPolicy().to_wire()},
    )
    capacity: CapacityPolicy = Field(
        default_factory=CapacityPolicy,
        description="HA readiness: the host failures the segment must be able to absorb.",
        json_schema_extra={"default": CapacityPolicy().to_wire()},
    )

    @model_validator(mode="after")
    def _detection_fences(self) -> FailoverSegmentSpec:
        if self.detection.nova_service_down.enabled and self.fencing.method == FencingMethod.NONE:
            raise ValueError(rule_message(FailoverSegmentSpec))
        return self


class SegmentPhase(StrEnum):
    PENDING = "Pending"
    READY = "Ready"
    RECOVERING = "Recovering"
    BLOCKED = "Blocked"
    PAUSED = "Paused"
    DISABLED = "Disabled"


class CapacityStatus(Model):
    """The last HA readiness check: Placement's figures of the segment's hosts and the
    instances on them, planned as a recovery would plan them."""

    ready: bool = Field(
        description="Whether every instance of the worst loss of toleratedHostFailures "
        "hosts would find room on the segment's other hosts."
    )
    tolerated_host_failures: int = Field(
        ge=0, description="The hosts the segment was checked to lose at once (spec)."
    )
    hosts_checked: int = Field(
        ge=0, description="Hosts in service (and reserved hosts available) the check used."
    )
    worst_loss: list[Annotated[str, Field(max_length=255)]] = Field(
        default_factory=list,
        max_length=64,
        description="The hosts whose loss leaves the most instances without room (the "
        "largest, when all fit).",
    )
    unplaced_instances: int = Field(
        default=0, ge=0, description="Instances of the worst loss that would find no room."
    )
    shortfall: dict[str, int] = Field(
        default_factory=dict,
        description="Per resource class (VCPU, MEMORY_MB, DISK_GB), what those instances ask "
        "for: the room missing at least.",
    )
    separated_groups: list[Annotated[str, Field(max_length=255)]] = Field(
        default_factory=list,
        max_length=64,
        description="Anti-affinity server groups (name, then id) of the worst loss whose "
        "members would find room only on a host that already holds a member: Nova never "
        "puts two on one host, so they count as without room.",
    )
    observed_at: datetime | None = Field(
        default=None,
        description="When Placement and the servers were read for this verdict: a verdict "
        "the next checks find unchanged keeps it for up to 10 checks.",
    )


class FailoverSegmentStatus(Model):
    """What the operator observed of the segment."""

    observed_generation: int | None = observed_generation_field()
    phase: SegmentPhase | None = Field(
        default=None,
        description="Summary of the conditions: Disabled, Paused, Blocked (storm limit "
        "reached), Recovering, Ready, or Pending before the first reconcile.",
    )
    hosts: int | None = Field(default=None, ge=0, description="Hosts in the segment.")
    active_hosts: int | None = Field(
        default=None, ge=0, description="Hosts in service (phase Active)."
    )
    failed_hosts: int | None = Field(
        default=None, ge=0, description="Hosts failed and not yet back in service."
    )
    maintenance_hosts: int | None = Field(default=None, ge=0, description="Hosts on maintenance.")
    reserved_hosts_available: int | None = Field(
        default=None,
        ge=0,
        description="Reserved hosts that a recovery may still take.",
    )
    reserved_hosts_in_use: int | None = Field(
        default=None, ge=0, description="Reserved hosts taken by recoveries."
    )
    recoveries_in_flight: int | None = Field(
        default=None, ge=0, description="Recoveries of this segment now running."
    )
    recoveries_blocked: int | None = Field(
        default=None,
        ge=0,
        description="Recoveries waiting on a storm limit or a pause request.",
    )
    capacity: CapacityStatus | None = Field(
        default=None,
        description="HA readiness (spec.capacity): can the segment lose its largest hosts "
        "now; absent while unchecked or turned off.",
    )
    conditions: list[Condition] = conditions_field("segment")


class FailoverSegment(Model):
    """The body of a FailoverSegment object (metadata is handled as a plain mapping)."""

    spec: FailoverSegmentSpec
    status: FailoverSegmentStatus = Field(default_factory=FailoverSegmentStatus)

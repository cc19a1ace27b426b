"""FailureEvent: one reported failure and the recovery it caused (Masakari's notification)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, JsonValue, model_validator

from .common import (
    Condition,
    Model,
    ObjectName,
    conditions_field,
    observed_generation_field,
    rule_message,
)

STEP_DETAILS_LIMIT = 50
INSTANCES_LIMIT = 2000


class FailureType(StrEnum):
    COMPUTE_HOST = "COMPUTE_HOST"
    VM = "VM"
    PROCESS = "PROCESS"


class Payload(Model):
    """What the monitor reported, with Masakari's payload keys so monitors send it unchanged."""

    # Masakari's keys are snake_case on the wire; keep them as they are.
    model_config = ConfigDict(alias_generator=None)

    event: str = Field(
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9_]+$",
        description="STARTED or STOPPED for COMPUTE_HOST and PROCESS; the libvirt event "
        "(e.g. LIFECYCLE, IO_ERROR) for VM.",
    )
    host_status: Literal["NORMAL", "UNKNOWN"] | None = Field(
        default=None,
        description="COMPUTE_HOST: NORMAL when the monitor confirmed the host is down and "
        "fenced, UNKNOWN otherwise.",
    )
    cluster_status: Literal["ONLINE", "OFFLINE"] | None = Field(
        default=None,
        description="COMPUTE_HOST: the node's cluster membership, ONLINE or OFFLINE.",
    )
    process_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="PROCESS: the process that stopped or started, e.g. nova-compute.",
    )
    instance_uuid: str | None = Field(
        default=None,
        max_length=36,
        pattern=r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
        r"[0-9a-fA-F]{12}$",
        description="VM: the failed instance's UUID.",
    )
    vir_domain_event: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="VM: the libvirt domain event detail, e.g. STOPPED_FAILED.",
    )


_TYPE_RULES: list[JsonValue] = [
    {
        "rule": "self.type != 'COMPUTE_HOST' || (self.payload.event in ['STARTED', 'STOPPED'] "
        "&& !has(self.payload.process_name) && !has(self.payload.instance_uuid) "
        "&& !has(self.payload.vir_domain_event))",
        "message": "a COMPUTE_HOST payload has event STARTED or STOPPED and optionally "
        "host_status and cluster_status, nothing else",
        "fieldPath": ".payload",
    },
    {
        "rule": "self.type != 'PROCESS' || (self.payload.event in ['STARTED', 'STOPPED'] "
        "&& has(self.payload.process_name) && !has(self.payload.instance_uuid) "
        "&& !has(self.payload.host_status) && !has(self.payload.cluster_status))",
        "message": "a PROCESS payload has process_name and event STARTED or STOPPED",
        "fieldPath": ".payload",
    },
    {
        "rule": "self.type != 'VM' || (has(self.payload.instance_uuid) "
        "&& has(self.payload.vir_domain_event) && !has(self.payload.process_name) "
        "&& !has(self.payload.host_status) && !has(self.payload.cluster_status))",
        "message": "a VM payload has instance_uuid, vir_domain_event and event",
        "fieldPath": ".payload",
    },
    {
        "rule": "self == oldSelf",
        "message": "the spec of a FailureEvent is immutable: report a new failure instead",
    },
]


class FailureEventSpec(Model):
    """The failure as reported. Immutable: it is the record of what a monitor saw."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _TYPE_RULES})

    type: FailureType = Field(
        description="What failed: COMPUTE_HOST (the hypervisor), VM (one instance) or "
        "PROCESS (a service on the host, e.g. nova-compute)."
    )
    host: ObjectName = Field(description="Name of the Host object (same namespace) that failed.")
    generated_time: datetime = Field(description="When the monitor saw the failure (UTC).")
    payload: Payload = Field(description="The monitor's report, in Masakari's payload shape.")
    source: str | None = Field(
        default=None,
        max_length=253,
        description="Who reported the failure, e.g. hostmonitor/node1, masakari-api, kubectl.",
    )

    @model_validator(mode="after")
    def _payload_of_its_type(self) -> FailureEventSpec:
        """The CEL rules of _TYPE_RULES, in the same order."""
        payload, started_or_stopped = self.payload, self.payload.event in ("STARTED", "STOPPED")
        host_keys = payload.host_status is not None or payload.cluster_status is not None
        fits = {
            FailureType.COMPUTE_HOST: started_or_stopped
            and payload.process_name is None
            and payload.instance_uuid is None
            and payload.vir_domain_event is None,
            FailureType.PROCESS: started_or_stopped
            and payload.process_name is not None
            and payload.instance_uuid is None
            and not host_keys,
            FailureType.VM: payload.instance_uuid is not None
            and payload.vir_domain_event is not None
            and payload.process_name is None
            and not host_keys,
        }
        if not fits[self.type]:
            raise ValueError(rule_message(FailureEventSpec, list(fits).index(self.type)))
        return self


class EventPhase(StrEnum):
    NEW = "New"
    RUNNING = "Running"
    FINISHED = "Finished"
    IGNORED = "Ignored"
    ERROR = "Error"
    FAILED = "Failed"


class StepState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    SKIPPED = "SKIPPED"


class ProgressDetail(Model):
    """One progress message of a step, as Masakari's progress_details entries."""

    timestamp: datetime = Field(description="When the message was recorded.")
    message: str = Field(max_length=1024, description="What happened.")
    progress: float = Field(ge=0, le=1, description="Progress of the step at that time, 0 to 1.")


class WorkflowStep(Model):
    """One step of the recovery workflow, in the shape of recovery_workflow_details."""

    name: str = Field(max_length=128, description="Step name, e.g. DisableComputeServiceTask.")
    state: StepState = Field(description="PENDING, RUNNING, SUCCESS, FAILURE or SKIPPED.")
    progress: float = Field(default=0, ge=0, le=1, description="Progress of the step, 0 to 1.")
    progress_details: list[ProgressDetail] = Field(
        default_factory=list,
        max_length=STEP_DETAILS_LIMIT,
        description=f"The step's last {STEP_DETAILS_LIMIT} progress messages, oldest first.",
    )


class MoveStatus(StrEnum):
    PENDING = "pending"
    ONGOING = "ongoing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    IGNORED = "ignored"


class InstanceMove(Model):
    """One instance's move, Masakari's vmove."""

    instance_uuid: str = Field(max_length=64, description="The instance's UUID.")
    instance_name: str = Field(default="", max_length=255, description="The instance's name.")
    type: str = Field(
        default="evacuation",
        max_length=32,
        description="evacuation (host failure), or live_migration / cold_migration: moved by "
        "the host's maintenance drain before the host failed, not evacuated.",
    )
    status: MoveStatus = Field(description="pending, ongoing, succeeded, failed or ignored.")
    source_host: str | None = Field(default=None, max_length=255, description="Host it left.")
    destination_host: str | None = Field(
        default=None, max_length=255, description="Host it landed on."
    )
    original_state: str | None = Field(
        default=None,
        max_length=32,
        description="The instance's vm_state before the move; stopped instances stay stopped.",
    )
    project_id: str | None = Field(
        default=None, max_length=64, description="The instance's project (tenant)."
    )
    target_host: str | None = Field(
        default=None,
        max_length=255,
        description="The host the evacuation is sent to: the placement plan's choice or a "
        "reserved host, recorded before the evacuate call. Empty: Nova's scheduler picks.",
    )
    start_time: datetime | None = Field(default=None, description="When the move started.")
    end_time: datetime | None = Field(default=None, description="When the move ended.")
    attempts: int = Field(default=0, ge=0, description="Evacuate calls made for this instance.")
    locked_by_recovery: bool = Field(
        default=False,
        description="The recovery locked the instance and will unlock it; an instance locked "
        "by someone else stays locked.",
    )
    message: str | None = Field(
        default=None, max_length=1024, description="Why it failed or was ignored."
    )


class PlacementRecord(Model):
    """The latest placement plan of a host failure (each instance's host is its move's
    targetHost; one that did not fit is failed with the resource it lacked)."""

    boundary: str = Field(max_length=32, description="The segment's placement boundary.")
    strategy: str = Field(max_length=32, description="Spread or BestFit.")
    planned_time: datetime = Field(description="When the latest plan was made.")
    plans: int = Field(
        default=1, ge=0, description="Plans made: more than one when Nova refused a target."
    )
    candidate_hosts: int = Field(
        default=0, ge=0, description="Live hosts in the boundary the plan could use."
    )
    planned: int = Field(default=0, ge=0, description="Instances given a host.")
    unplaced: int = Field(default=0, ge=0, description="Instances that did not fit.")


class FencingRecord(Model):
    """How a host failure's host was fenced: the proof that it is off, or why there is none."""

    method: str = Field(max_length=32, description="The segment's fencing method.")
    started_time: datetime = Field(description="When this event began to fence the host.")
    requests: int = Field(
        default=0,
        ge=0,
        description="Fencing requests sent (Pacemaker fence, BMC power off), each counted "
        "before it was sent.",
    )
    last_request_time: datetime | None = Field(
        default=None, description="When the last fencing request was about to be sent."
    )
    last_error: str | None = Field(
        default=None, max_length=1024, description="Why the last fencing request failed."
    )
    confirmed_time: datetime | None = Field(
        default=None,
        description="When the host was confirmed off; nothing is evacuated before this is "
        "recorded.",
    )
    proof: str | None = Field(
        default=None,
        max_length=1024,
        description="What confirmed the host off: the fencing record or the power state read.",
    )


class FailureEventStatus(Model):
    """The recovery as it happened; written only by the operator."""

    observed_generation: int | None = observed_generation_field()
    phase: EventPhase | None = Field(
        default=None,
        description="New, Running, then Finished, Ignored, Error (will be retried) or Failed.",
    )
    reason: str | None = Field(
        default=None, max_length=1024, description="CamelCase reason for the current phase."
    )
    message: str | None = Field(
        default=None, max_length=4096, description="Human-readable details of the phase."
    )
    segment: str | None = Field(
        default=None,
        max_length=253,
        description="The host's FailoverSegment when the event arrived.",
    )
    recovery_method: str | None = Field(
        default=None, max_length=32, description="The recovery method used."
    )
    reserved_hosts: list[Annotated[str, Field(max_length=253)]] = Field(
        default_factory=list,
        max_length=16,
        description="Reserved hosts this recovery took, in the order it took them.",
    )
    attempts: int | None = Field(default=None, ge=0, description="Attempts started so far.")
    next_attempt_time: datetime | None = Field(
        default=None, description="When an event in Error is tried again."
    )
    start_time: datetime | None = Field(default=None, description="When the recovery started.")
    end_time: datetime | None = Field(default=None, description="When the recovery ended.")
    fencing: FencingRecord | None = Field(
        default=None, description="Host failures: how the host was fenced before recovery."
    )
    placement: PlacementRecord | None = Field(
        default=None, description="Host failures: the placement plan the evacuations follow."
    )
    steps: list[WorkflowStep] = Field(
        default_factory=list,
        max_length=32,
        description="The workflow's steps in order, as Masakari's recovery_workflow_details.",
    )
    instances: list[InstanceMove] = Field(
        default_factory=list,
        max_length=INSTANCES_LIMIT,
        description="Per-instance moves (Masakari's vmoves).",
    )
    conditions: list[Condition] = conditions_field("failure event")


class FailureEvent(Model):
    """The body of a FailureEvent object (metadata is handled as a plain mapping)."""

    spec: FailureEventSpec
    status: FailureEventStatus = Field(default_factory=FailureEventStatus)

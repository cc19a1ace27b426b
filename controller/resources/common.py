"""Pieces shared by the three resources: the API group, camelCase models and conditions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "masakari.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "masakari"

# RFC 1123 subdomain, what Kubernetes accepts as an object name; used to refer to other objects.
OBJECT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# Masakari's notification `hostname` rule: what Nova and Pacemaker use for host names.
HOSTNAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$"
# metav1.Condition's rule for reasons: CamelCase, machine-readable.
REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"

ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=OBJECT_NAME_PATTERN)]
Hostname = Annotated[str, Field(min_length=1, max_length=255, pattern=HOSTNAME_PATTERN)]


class Model(BaseModel):
    """Base of every resource model: camelCase on the wire, snake_case in Python.

    Unknown fields are refused: the API server prunes them before we see an object, so one
    showing up here means a manifest or a test is wrong, not something to ignore quietly.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase keys, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_merge_patch(self, exclude: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
        """The object as a JSON merge patch that makes the stored one equal to it: every field
        named, None for an unset one (which deletes it), nested objects likewise; lists are
        replaced whole. Fields in `exclude` are left to their other writers."""
        wire = self.to_wire()
        patch: dict[str, Any] = {}
        for name, info in type(self).model_fields.items():
            if name in exclude:
                continue
            key = info.alias or name
            value = getattr(self, name)
            patch[key] = value.to_merge_patch() if isinstance(value, Model) else wire.get(key)
        return patch


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(Model):
    """A condition in the shape of Kubernetes' metav1.Condition."""

    type: str = Field(
        min_length=1,
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        description="Type of condition in CamelCase, e.g. Ready or RecoveryAllowed.",
    )
    status: ConditionStatus = Field(description="Status of the condition: True, False or Unknown.")
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="The .metadata.generation the condition was set for; older means stale.",
    )
    last_transition_time: datetime = Field(
        description="When the condition last changed from one status to another."
    )
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=REASON_PATTERN,
        description="Machine-readable CamelCase reason for the condition's last transition.",
    )
    message: str = Field(
        default="",
        max_length=32768,
        description="Human-readable details about the transition; may be empty.",
    )


def conditions_field(subject: str) -> Any:
    """The conditions list every status carries, keyed by type as Kubernetes lists are."""
    return Field(
        default_factory=list,
        max_length=16,
        description=f"Observations of the {subject}'s state in metav1.Condition shape.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


def observed_generation_field() -> Any:
    return Field(
        default=None,
        ge=0,
        description="The .metadata.generation of the spec this status was computed from.",
    )


def set_condition(
    conditions: list[Condition],
    kind: str,
    true: bool,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> None:
    """Set one condition in place; lastTransitionTime moves only when the status flips."""
    state = ConditionStatus.TRUE if true else ConditionStatus.FALSE
    for condition in conditions:
        if condition.type == kind:
            if condition.status != state:
                condition.last_transition_time = now
            condition.status, condition.reason, condition.message = state, reason, message
            condition.observed_generation = generation
            return
    conditions.append(
        Condition(
            type=kind,
            status=state,
            reason=reason,
            message=message,
            last_transition_time=now,
            observed_generation=generation,
        )
    )


def condition_true(conditions: list[Condition], kind: str) -> bool:
    return any(c.type == kind and c.status == ConditionStatus.TRUE for c in conditions)


def rule_message(model: type[BaseModel], index: int = 0) -> str:
    """The message of one of the model's CEL rules (x-kubernetes-validations), for the pydantic
    validator that mirrors it: the model refuses what the API server refuses, in its words."""
    extra: Any = model.model_config.get("json_schema_extra") or {}
    return str(extra["x-kubernetes-validations"][index]["message"])

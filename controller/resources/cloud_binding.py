"""CloudBinding: which OpenStack cloud the resources of its namespace belong to.

One namespace is one cloud, and says so explicitly: a namespace with no binding (or with more
than one) is never acted on. The binding names a Secret of its namespace holding a clouds.yaml,
never the credentials themselves, and how the cloud's Pacemaker cluster is reached.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from .common import (
    Condition,
    Hostname,
    Model,
    ObjectName,
    conditions_field,
    observed_generation_field,
)

#: The Secret's key holding the clouds.yaml, as `kubectl create secret --from-file` names it.
CLOUDS_YAML_KEY = "clouds.yaml"
#: The condition on a binding, on each FailoverSegment and each Host of its namespace.
READY = "Ready"
CLOUD_BOUND = "CloudBound"


class PacemakerLocal(Model):
    """Pacemaker's tools run on the operator's own machine, which is a cluster node.

    No command can be given here: whoever may write a CloudBinding would otherwise run
    commands inside the operator, which reads every served namespace's credentials. A
    command prefix (sudo, nsenter) is the operator's own setting
    (MASAKARI_PACEMAKER_LOCAL_PREFIX).
    """


class PacemakerSsh(Model):
    """Pacemaker's tools run on a cluster node over SSH, with the operator's own SSH key."""

    host: Hostname = Field(description="A cluster node to run crm_mon and crm_attribute on.")
    user: str | None = Field(
        default=None,
        max_length=32,
        pattern=r"^[a-z_][a-z0-9_-]{0,31}$",
        description="The SSH user; the operator's SSH configuration decides when unset.",
    )
    port: int = Field(default=22, ge=1, le=65535, description="The SSH port.")


class PacemakerAccess(Model):
    """How the cloud's Pacemaker cluster is reached: exactly one of local or ssh."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.local) != has(self.ssh)",
                    "message": "set exactly one of local and ssh",
                }
            ]
        }
    )

    local: PacemakerLocal | None = Field(
        default=None,
        description="Run Pacemaker's tools on the operator's machine (`local: {}`).",
    )
    ssh: PacemakerSsh | None = Field(default=None, description="Run them on a node over SSH.")


class CloudBindingSpec(Model):
    """The cloud of this namespace; written by people or GitOps, never by the operator."""

    secret_name: ObjectName = Field(
        description=f"A Secret in this namespace whose key `{CLOUDS_YAML_KEY}` holds a "
        "clouds.yaml. Only the Secret's name is here, never a credential."
    )
    cloud: str = Field(
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="The cloud's entry under `clouds:` in that clouds.yaml.",
    )
    pacemaker: PacemakerAccess | None = Field(
        default=None,
        description="How the cloud's Pacemaker cluster is reached, to confirm fencing and to "
        "put nodes in standby. Unset: host failures of segments with fencing.method pacemaker "
        "cannot be confirmed and are not recovered; only segments with fencing.method none "
        "take a monitor's NORMAL.",
    )


class CloudBindingStatus(Model):
    """Whether the namespace is bound, as the operator last found it."""

    observed_generation: int | None = observed_generation_field()
    secret_resource_version: str | None = Field(
        default=None,
        max_length=64,
        description="The resourceVersion of the Secret in use, so a rotation is seen applied.",
    )
    conditions: list[Condition] = conditions_field("binding")


class CloudBinding(Model):
    """The body of a CloudBinding object (metadata is handled as a plain mapping)."""

    spec: CloudBindingSpec
    status: CloudBindingStatus = Field(default_factory=CloudBindingStatus)

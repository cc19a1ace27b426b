"""The vocabulary of a host's power as its BMC reports it, for the redfish and ipmi fencing
methods. The drivers (controller.drivers.bmc) raise these errors; the fencing step and the BMC
check read them to say why a host cannot be fenced."""

from __future__ import annotations

from enum import StrEnum


class PowerState(StrEnum):
    ON = "On"
    OFF = "Off"


class BMCError(Exception):
    """The BMC could not be used; the message names the BMC, never its credentials."""

    reason = "BMCError"


class BMCUnreachable(BMCError):
    """No answer from the BMC (connection refused, timeout, TLS failure)."""

    reason = "BMCUnreachable"


class CredentialsRefused(BMCError):
    """The BMC answered and refused the credentials."""

    reason = "CredentialsRefused"


class CredentialsMissing(BMCError):
    """The Host names no BMC, or its Secret is missing or lacks username/password."""

    reason = "CredentialsMissing"


class PowerStateUnreadable(BMCError):
    """The BMC answered but gave no power state the operator understands."""

    reason = "PowerStateUnreadable"
